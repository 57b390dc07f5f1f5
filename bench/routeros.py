"""Router figures, through the real librouteros client into the RouterOS emulator
(a separate process, as a real router would be):

- provisioning 10,000 PPPoE secrets: 10,000 router jobs run by services.run_jobs over
  one connection (profiles, secrets, read-back);
- a drift check over those 10,000 secrets.

Uses the bench ISP of bench.subscribers (built on first use).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.subscribers import ensure_bench_isp
from bench.util import free_port
from network import services
from network.models import Router, RouterJob
from subscribers.models import ServiceAccount

COUNT = int(os.environ.get("BENCH_SECRETS", "10000"))
ROOT = Path(__file__).resolve().parent.parent


def _start_emulator(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "routeros_emulator",
            "--port",
            str(port),
            "--username",
            "admin",
            "--password",
            "bench-router",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("bench: the emulator did not start")


def run():
    isp = ensure_bench_isp()
    port = free_port()
    emulator = _start_emulator(port)
    try:
        with tenant_context(isp):
            name = f"bench-emu-{int(time.time())}"
            router = services.add_router(
                actor="bench",
                name=name,
                host="127.0.0.1",
                port=port,
                username="admin",
                password="bench-router",
            )
            ids = list(
                ServiceAccount.objects.filter(status="active", service="pppoe")
                .order_by("id")
                .values_list("id", flat=True)[:COUNT]
            )
            ServiceAccount.objects.filter(id__in=ids).update(router=router)
            now = timezone.now()
            RouterJob.objects.bulk_create(
                [
                    RouterJob(
                        router=router,
                        service_account_id=i,
                        action="provision",
                        created_by="bench",
                        created_at=now,
                        next_attempt_at=now,
                    )
                    for i in ids
                ],
                batch_size=5000,
            )
            started = time.perf_counter()
            result = services.run_jobs(router.pk)
            elapsed = time.perf_counter() - started
            print(
                f"provision {len(ids):,} PPPoE secrets (jobs, one connection): "
                f"{elapsed:6.2f} s  [{result}]"
            )
            started = time.perf_counter()
            report = services.check_drift(router)
            elapsed = time.perf_counter() - started
            print(
                f"drift check over {report.checked:,} router items: {elapsed:6.2f} s  "
                f"[{len(report.items)} differences]"
            )
            # Leave the bench ISP as it was: accounts without this router.
            ServiceAccount.objects.filter(router=router).update(router=None)
            Router.objects.filter(pk=router.pk).delete()
        connection.set_schema_to_public()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
