"""Redis stops while a confirmation arrives: the web process (gunicorn) still stores the
payment and answers Safaricom; once Redis is back, the sweep credits it and the worker
restores the subscriber on the router. Its own redis-server, worker and gunicorn, so the
session's Redis is never stopped."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.celery import app
from payments.models import Payment
from payments.tasks import sweep_payments
from subscribers import services as subscribers
from tests.conftest import (
    ROOT,
    free_port,
    start_redis_server,
    stop_process,
    subprocess_database_url,
    wait_for,
)
from tests.payments.world import PAYER, SHORTCODE, new_subscriber, secret_disabled

pytestmark = [pytest.mark.committed, pytest.mark.worker]


def test_redis_down_during_a_confirmation_loses_nothing(
    pay_world, django_db_blocker, celery_worker_process
):
    world = pay_world
    redis_port, web_port = free_port(), free_port()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": broker,
        "ISPOPS_TEST_REDIS_DB": "0",
    }
    log = open(ROOT / "var" / "test-redis-down.log", "w")  # noqa: SIM115 (closed below)
    procs = {"redis": start_redis_server(redis_port)}
    try:
        procs["worker"] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ispops", "worker", "--pool", "solo",
             "-n", f"redis-down-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs["web"] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "ispops.wsgi", "-b", f"127.0.0.1:{web_port}",
             "--workers", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        # Not the current app: the test's own tasks must keep going to the session's Redis.
        private = Celery(broker=broker, set_as_current=False)
        assert wait_for(lambda: bool(private.control.ping(timeout=0.5)), 30), "no worker"

        with django_db_blocker.unblock(), tenant_context(world.isp):
            account = new_subscriber(world)
            subscribers.change_status(account, "suspended", actor="test", reason="Expired")
            assert wait_for(lambda: secret_disabled(world, account.username) is True)

            stop_process(procs.pop("redis"))
            registered = world.sim.registered_urls[SHORTCODE]
            world.sim.registered_urls[SHORTCODE] = {
                **registered,
                "ValidationURL": "",
                "ConfirmationURL": f"http://{world.tenant.host}:{web_port}"
                + registered["ConfirmationURL"].split(str(world.port), 1)[1],
            }
            try:
                started = time.monotonic()
                result = world.sim.pay_c2b(SHORTCODE, PAYER, "1500", account.customer.account)
                took = time.monotonic() - started
            finally:
                world.sim.registered_urls[SHORTCODE] = registered
            assert result["confirmation"]["status"] == 200, result["confirmation"]
            assert took < 5, f"the callback waited {took:.1f} s for Redis"
            payment = Payment.objects.get(reference=result["TransID"])
            assert payment.state == "received"  # stored, not lost, not yet credited
            time.sleep(1)
            assert secret_disabled(world, account.username) is True

            procs["redis"] = start_redis_server(redis_port)
            # The sweep credits payments left for 30 s; age this one instead of waiting.
            Payment.objects.filter(pk=payment.pk).update(
                received_at=timezone.now() - timedelta(minutes=1)
            )
            with app.connection_for_write(broker) as conn:
                sweep_payments.apply_async(connection=conn)  # what beat sends every 30 s
            assert wait_for(lambda: secret_disabled(world, account.username) is False, 30), (
                "not restored after Redis came back; see var/test-redis-down.log"
            )
            payment.refresh_from_db()
            assert payment.state == "credited"
            account.refresh_from_db()
            assert account.status == "active"
    finally:
        for proc in procs.values():
            stop_process(proc)
        log.close()
        connection.set_schema_to_public()
