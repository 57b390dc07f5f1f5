"""M-Pesa callbacks against gunicorn, with a Celery worker crediting behind it.

1. Throughput: C2B confirmations sent open-loop at BENCH_C2B_RATE per second (300) for
   BENCH_C2B_SECONDS (20), 2 % of them repeats of an earlier TransID; latency per
   request, then the count check: one payment per distinct TransID, one stored callback
   per request. Then how long the worker takes to credit them all.
2. Restoration: BENCH_RESTORE suspended subscribers (50) on a RouterOS emulator each pay
   at 5 per second; time from sending the confirmation to the secret enabled on the
   emulator (polled every 20 ms).
"""

import multiprocessing
import os
import random
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import connection
from django_tenants.utils import tenant_context

from bench.loadgen import send_schedule
from bench.subscribers import HOST, ensure_bench_isp
from bench.util import free_port, p95, percentile, production_env
from network.models import RouterJob
from network.services import add_router, run_jobs
from payments import services
from payments.models import Callback, MpesaSettings, Payment
from subscribers import services as subscribers
from subscribers.models import Customer, Plan

ROOT = Path(__file__).resolve().parent.parent
RATE = int(os.environ.get("BENCH_C2B_RATE", "300"))
SECONDS = int(os.environ.get("BENCH_C2B_SECONDS", "20"))
RESTORES = int(os.environ.get("BENCH_RESTORE", "50"))
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "3"))
WORKER_NICE = int(os.environ.get("BENCH_WORKER_NICE", "10"))
SENDERS = 12  # processes; each sends 1/12 of the rate, one request at a time
NAIROBI = ZoneInfo("Africa/Nairobi")


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {what} exited at start (see var/bench-payments.log)")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} did not start")


def _confirmation(receipt: str, account: str, amount: int) -> dict:
    return {
        "TransactionType": "Pay Bill",
        "TransID": receipt,
        "TransTime": datetime.now(NAIROBI).strftime("%Y%m%d%H%M%S"),
        "TransAmount": f"{amount}.00",
        "BusinessShortCode": "174379",
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "BENCH",
        "MiddleName": "",
        "LastName": "",
    }


def run():
    isp = ensure_bench_isp()
    web_port = free_port()
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "bench-payments.log", "w")  # noqa: SIM115 (closed below)
    env = production_env()
    procs = []
    try:
        # The worker as `make run` starts it: prefork, two processes, at a lower CPU
        # priority than the web (callbacks answer first; crediting follows at once).
        worker = ["nice", "-n", str(WORKER_NICE), sys.executable, "-m", "celery", "-A", "ispops",
                  "worker", "--concurrency", "2", "-n", f"bench-pay-{os.getpid()}@%h",
                  "--without-mingle", "--without-gossip", "-l", "warning"]  # fmt: skip
        web = [sys.executable, "-m", "gunicorn", "ispops.wsgi", "-b", f"127.0.0.1:{web_port}",
               "--workers", str(WEB_WORKERS), "--log-level", "warning"]  # fmt: skip
        for command in (worker, web):
            procs.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        _wait_port(web_port, procs[-1], "gunicorn")
        with tenant_context(isp):
            cfg = services.configure(actor="bench", public_url=f"http://{HOST}:{web_port}")
            path = services.callback_paths(cfg)["confirmation"]
            host = f"{HOST}:{web_port}"
            if SECONDS > 0:
                _throughput(host, web_port, path)
            if RESTORES > 0:
                _restoration(isp, host, web_port, path)
        connection.set_schema_to_public()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _throughput(host: str, port: int, path: str) -> None:
    total = RATE * SECONDS
    accounts = list(Customer.objects.order_by("?").values_list("account", flat=True)[:2000])
    rng = random.Random(7)
    prefix = f"B{int(time.time()) % 10**6:06d}"
    bodies, receipts = [], []
    for i in range(total):
        if receipts and rng.random() < 0.02:
            receipt = rng.choice(receipts)  # Safaricom sending a confirmation again
        else:
            receipt = f"{prefix}{i:06d}"
            receipts.append(receipt)
        bodies.append(_confirmation(receipt, rng.choice(accounts), rng.choice((500, 1500))))
    start_at = time.time() + 2.0  # let every sender start first
    shares = [
        (port, host, path, bodies[k::SENDERS], RATE / SENDERS, start_at + k / RATE)
        for k in range(SENDERS)
    ]
    before_callbacks = Callback.objects.count()
    with multiprocessing.get_context("spawn").Pool(SENDERS) as pool:
        results = pool.map(send_schedule, shares)
    finished = time.time()
    flat = [r for share in results for r in share]
    latencies = [r[0] for r in flat]
    failed = [r for r in flat if r[1] != 200]
    took = finished - start_at
    print(
        f"C2B confirmations: {len(flat):,} sent at {RATE}/s over {took:.1f} s "
        f"({len(flat) / took:.0f}/s achieved), {len(failed)} not 200"
        + (f" (first: {failed[0][1]} {failed[0][2]})" if failed else ""),
        flush=True,
    )
    print(
        f"  latency p50 {percentile(latencies, 0.5):6.1f} ms   p95 "
        f"{percentile(latencies, 0.95):6.1f} ms   p99 {percentile(latencies, 0.99):6.1f} ms"
        f"   max {max(latencies):6.1f} ms",
        flush=True,
    )
    distinct = len(set(receipts))
    stored = Payment.objects.filter(reference__startswith=prefix).count()
    callbacks = Callback.objects.count() - before_callbacks
    verdict = "OK" if stored == distinct and callbacks == len(flat) else "MISMATCH"
    print(
        f"  count check: {stored:,} payments for {distinct:,} distinct TransIDs, "
        f"{callbacks:,} callbacks stored for {len(flat):,} requests: {verdict}",
        flush=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        left = Payment.objects.filter(reference__startswith=prefix, state="received").count()
        if not left:
            break
        time.sleep(0.5)
    drained = time.time() - start_at
    credited = Payment.objects.filter(reference__startswith=prefix, state="credited").count()
    print(
        f"  worker: {credited:,} credited {drained:.1f} s after the first request "
        f"({credited / drained:.0f}/s while and after the load)",
        flush=True,
    )


def _restoration(isp, host: str, port: int, path: str) -> None:
    from network.emulator import RouterOSEmulator

    emulator = RouterOSEmulator(port=0, users={"admin": "bench-router"}).start()
    try:
        router = add_router(
            actor="bench",
            name=f"bench-pay-{int(time.time())}",
            host="127.0.0.1",
            port=emulator.port,
            username="admin",
            password="bench-router",
        )
        plan = Plan.objects.filter(billing="prepaid", service="pppoe").order_by("price").first()
        if plan is None:
            plan = Plan.objects.create(
                name="Bench prepaid", price=1000, billing="prepaid", download_kbps=5000,
                upload_kbps=2000,
            )  # fmt: skip
        accounts = []
        tag = int(time.time()) % 10**6
        for i in range(RESTORES):
            customer = subscribers.create_customer(
                actor="bench", name=f"Restore {tag} {i}", phone=f"0712{(tag + i) % 10**6:06d}"
            )
            account = subscribers.create_service_account(
                actor="bench", customer=customer, plan=plan, username=f"rs{tag}-{i}",
                password="pw", router=router, status="installing",
            )  # fmt: skip
            subscribers.activate(account, actor="bench")
            subscribers.change_status(account, "suspended", actor="bench", reason="Expired")
            accounts.append(account)
        run_jobs(router.pk)  # provisioned and disabled before the clock starts (or the
        names = {a.username for a in accounts}  # worker does it: wait for either)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = emulator.rows("/ppp/secret")
            if names <= {r["name"] for r in rows if r.get("disabled") == "true"}:
                break
            time.sleep(0.5)
        else:
            states = list(
                RouterJob.objects.filter(router=router).values_list("state", "last_error")[:5]
            )
            raise SystemExit(f"bench: the subscribers were not disabled on the emulator: {states}")

        sent_at: dict[str, float] = {}
        enabled_at: dict[str, float] = {}
        done = threading.Event()

        def watch():
            while not done.is_set():
                now = time.perf_counter()
                for row in emulator.rows("/ppp/secret"):
                    name = row.get("name")
                    waiting = name in sent_at and name not in enabled_at
                    if waiting and row.get("disabled") == "false":
                        enabled_at[name] = now
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        prefix = f"R{tag:06d}"
        for i, account in enumerate(accounts):
            body = _confirmation(f"{prefix}{i:03d}", account.customer.account, int(plan.price))
            sent_at[account.username] = time.perf_counter()
            [(_ms, status, error)] = send_schedule((port, host, path, [body], 1000, time.time()))
            if status != 200:
                print(f"  restore payment {i}: HTTP {status} {error}")
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while len(enabled_at) < len(accounts) and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        watcher.join()
        waits = [(enabled_at[n] - sent_at[n]) * 1000 for n in enabled_at]
        print(
            f"confirmation -> secret enabled on the emulator: {len(waits)}/{len(accounts)} "
            f"restored; p50 {percentile(waits, 0.5):6.0f} ms   p95 {p95(waits):6.0f} ms   "
            f"max {max(waits):6.0f} ms",
            flush=True,
        )
        MpesaSettings.objects.filter(pk=1).update(public_url="")
    finally:
        emulator.stop()
