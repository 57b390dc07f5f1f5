"""Prepaid expiry reaching the router (issue 11), through a real Celery worker into a
RouterOS emulator running in its own process, as a router would:

1. BENCH_EXPIRY_N (1,000) prepaid PPPoE subscribers of one router, all online, expire at
   the same moment and the expiry run (`expire` below) suspends them. Printed: the time
   from the run's start to the first of them cut off on the router and to all of them,
   how long the run itself took, and the API commands the router received per account.
   Twice: with each suspension committed on its own (as the run does now), and with the
   whole run in one transaction (every router job arriving at once).
2. BENCH_EXPIRY_PAYMENTS (100) of them pay, one after another; payment -> restored on
   the router, p50/p95, and the part of it after the payment committed.

Cut off = the subscriber's address in the suspended address list (a soft suspension:
the walled garden; the session is dropped just after) or its login disabled. Restored =
the address out of the list and the login enabled. The emulator stamps each change as
it applies it, so the figures do not depend on how often the bench looks.

Uses its own small ISP (schema `benchexp`, built on first use) in the development
database; everything talks to 127.0.0.1 only, and the bench stops by itself.
"""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.util import p95, percentile, production_env
from billing.expiry import enforce_expiry
from billing.models import BillingSettings
from ispops.celery import app
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from network.emulator.process import EmulatorProcess
from network.models import Router, RouterJob
from network.services import add_router, run_jobs
from payments import services as payments
from subscribers import services as subscribers
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import Plan, ServiceAccount

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_EXPIRY_N", "1000"))
PAYMENTS = int(os.environ.get("BENCH_EXPIRY_PAYMENTS", "100"))
SCHEMA, HOST = "benchexp", "benchexp.localhost"
OWNER, PASSWORD = "owner@benchexp.test", "bench-pass-2026"
ROUTER_PASSWORD = "bench-router"
PLAN = "Expiry prepaid"
LIST = "/ip/firewall/address-list"
WAIT_SECONDS = 300  # give up on a run that has not converged by then


def expire(as_of):
    """The expiry run, as beat starts it every minute: every active prepaid account whose
    expiry and grace are over is suspended (walled garden), a small batch per transaction
    whose router jobs leave on commit. (Before billing.expiry existed this was a loop of
    subscribers.change_status(account, "suspended", suspension="soft"); swapping was this
    one line.)"""
    return enforce_expiry(as_of, actor="bench")


def run():
    isp = _ensure_isp()
    worker = None
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "bench-expiry.log", "w")  # noqa: SIM115 (closed below)
    try:
        worker = _start_worker(log)
        _drain()  # tasks an interrupted run left behind
        with tenant_context(isp):
            # As the expiry run commits: a small batch per transaction.
            _scenario("as the expiry run commits", _one_by_one, payments=PAYMENTS)
            # Every router job committed at once (the router side's best case).
            _scenario("all in one transaction", _all_at_once)
        connection.set_schema_to_public()
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()


def _one_by_one(as_of) -> None:
    """The expiry run as it is; no single commit to time from (hence None)."""
    expire(as_of)


def _all_at_once(as_of) -> float:
    """The expiry run in one transaction; returns when it committed (time.monotonic())."""
    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.monotonic()))
        expire(as_of)
    return committed[0]


def _drain(timeout: float = 180) -> None:
    """Wait until the worker has emptied the queues (the suspensions' SMS, tasks for a
    router already gone), so that the next figures start from an idle worker."""
    import redis
    from kombu.transport.redis import Channel

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = [
        f"{queue}{Channel.sep}{step}" if step else queue
        for queue in ("urgent", "celery")
        for step in Channel.priority_steps
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(client.llen(k) for k in keys):
        time.sleep(0.2)
    # Tasks the worker already took off the queues (prefetched, or running: a batch of
    # suspension SMS) are not in those lists: wait until it says it has none.
    while time.monotonic() < deadline:
        inspect = app.control.inspect(timeout=1.0)
        busy = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
        if not any(busy):
            break
        time.sleep(0.5)
    time.sleep(0.5)  # the last tasks taken off the queue finish


def _scenario(title: str, expire_fn, payments: int = 0) -> None:
    """N subscribers online on a new router (its own emulator process) expire through
    `expire_fn`; then `payments` of them pay."""
    emulator = EmulatorProcess(users={"admin": ROUTER_PASSWORD})
    try:
        router = add_router(
            actor="bench",
            name=f"bench-exp-{time.time():.3f}",
            host="127.0.0.1",
            port=emulator.port,
            username="admin",
            password=ROUTER_PASSWORD,
        )
        try:
            accounts = _online_accounts(router, emulator)
            _expiry(title, accounts, emulator, expire_fn)
            _drain()
            if payments:
                _restoration(accounts[:payments], emulator)
                _drain()
        finally:
            # Leave the ISP as it was: its subscribers belong to no router.
            ServiceAccount.objects.filter(router=router).update(router=None)
            Router.objects.filter(pk=router.pk).delete()
    finally:
        emulator.stop()


# --- set-up -----------------------------------------------------------------------------


def _ensure_isp() -> Isp:
    isp = Isp.objects.filter(schema_name=SCHEMA).first()
    if isp is None:
        started = time.perf_counter()
        isp, _ = create_isp(
            schema=SCHEMA, name="Bench Expiry", domain=HOST, owner_email=OWNER,
            owner_password=PASSWORD,
        )  # fmt: skip
        print(f"(bench ISP {SCHEMA} created in {time.perf_counter() - started:.1f} s)")
    with tenant_context(isp):
        import_plans(
            "name,price,cycle,download,upload,service,billing\n"
            f"{PLAN},1000,monthly,10M,5M,pppoe,prepaid\n",
            actor="bench",
        )
        have = ServiceAccount.objects.filter(plan__name=PLAN).count()
        if have < N:
            rows = ["account,name,phone,email,plan,username,password,router,status"]
            rows += [f",Expiry {i},0711{i:06d},,{PLAN},ex{i},pw{i},,active" for i in range(have, N)]
            report = import_subscribers("\n".join(rows), actor="bench")
            if not report.ok:
                raise SystemExit(f"bench: import refused: {report.errors[:3]}")
    connection.set_schema_to_public()
    return isp


def _online_accounts(router, emulator) -> list:
    """N subscribers active on `router`, provisioned, dialled in, and expired."""
    ids = list(
        ServiceAccount.objects.filter(plan__name=PLAN).order_by("id").values_list("id", flat=True)
    )[:N]
    # Those a previous run left suspended come back through the status machine (no
    # router yet, so no job): the billing side stays as a real restoration leaves it.
    for account in ServiceAccount.objects.filter(id__in=ids, status="suspended"):
        subscribers.change_status(account, "active", actor="bench", reason="bench reset")
    ServiceAccount.objects.filter(id__in=ids).update(router=router)
    now = timezone.now()
    RouterJob.objects.bulk_create(
        [RouterJob(router=router, service_account_id=i, created_by="bench") for i in ids],
        batch_size=5000,
    )
    started = time.perf_counter()
    result = run_jobs(router.pk)
    accounts = list(
        ServiceAccount.objects.filter(id__in=ids).select_related("customer").order_by("id")
    )
    emulator.dial_in([(a.username, _address(i)) for i, a in enumerate(accounts)])
    print(
        f"(set-up: {len(accounts):,} PPPoE secrets provisioned in "
        f"{time.perf_counter() - started:.1f} s [{result}], all online)",
        flush=True,
    )
    # They all expired at the same moment, their grace ending a minute ago.
    grace = timedelta(days=BillingSettings.load().grace_days, minutes=1)
    ServiceAccount.objects.filter(id__in=ids).update(expires_at=now - grace)
    return accounts


def _address(i: int) -> str:
    return f"10.100.{i // 250}.{i % 250 + 2}"


def _start_worker(log) -> subprocess.Popen:
    """A Celery worker as `make run` starts one (prefork, two processes), configured as
    in production."""
    from ispops.celery import app

    name = f"bench-exp-{os.getpid()}@%h"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ispops", "worker", "--concurrency", "2",
         "-n", name, "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=ROOT, env=production_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    wanted = name.replace("%h", "")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("bench: the Celery worker exited at start (see var/bench-expiry.log)")
        replies = app.control.ping(timeout=0.5)
        if any(wanted in host for reply in replies for host in reply):
            return proc
    proc.kill()
    raise SystemExit("bench: the Celery worker did not answer within 60 s")


# --- the figures ------------------------------------------------------------------------


def _expiry(title, accounts, emulator, expire_fn) -> None:
    by_address = {_address(i): a.username for i, a in enumerate(accounts)}
    names, listname = set(by_address.values()), settings.SUSPENDED_ADDRESS_LIST
    commands_before = emulator.command_count()
    mark = len(emulator.writes())
    wall, started = timezone.now(), time.monotonic()
    committed = expire_fn(wall)
    took = time.monotonic() - started
    cut: dict[str, float] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while len(cut) < len(names) and time.monotonic() < deadline:
        read, changes = _changes(emulator, mark, listname)
        mark += read
        for at, kind, key in changes:
            name = by_address.get(key) if kind == "listed" else key
            if kind in ("listed", "disabled") and name in names:
                cut.setdefault(name, at)
        time.sleep(0.05)
    commands = emulator.command_count() - commands_before
    if not cut:
        raise SystemExit(f"bench: nobody was cut off within {WAIT_SECONDS} s")
    times = sorted(at - started for at in cut.values())
    print(
        f"expiry of {len(names):,} prepaid accounts at once, {title}: "
        f"first cut {times[0]:6.2f} s, all cut {times[-1]:6.2f} s after the run started "
        f"({len(cut):,}/{len(names):,}; the run itself took {took:.2f} s)",
        flush=True,
    )
    if committed is not None:
        print(
            f"  after its commit: first cut {min(cut.values()) - committed:6.2f} s, "
            f"all cut {max(cut.values()) - committed:6.2f} s",
            flush=True,
        )
    # Each account's wait on the router side: from its suspension's router job being
    # written (in the run's transaction for it) to its cut.
    written = dict(
        RouterJob.objects.filter(
            service_account__in=accounts, action="suspend", created_at__gte=wall
        ).values_list("service_account__username", "created_at")
    )
    lags = [
        (at - started - (written[name] - wall).total_seconds()) * 1000
        for name, at in cut.items()
        if name in written
    ]
    print(
        f"  API commands: {commands:,}, {commands / len(names):.1f} per account "
        "(logins and reads included)",
        flush=True,
    )
    if lags and committed is None:
        print(
            f"  router job written -> cut: p50 {percentile(lags, 0.5):6.1f} ms   "
            f"p95 {p95(lags):6.1f} ms   max {max(lags):6.1f} ms",
            flush=True,
        )


def _restoration(accounts, emulator) -> None:
    price = Plan.objects.get(name=PLAN).price
    listname = settings.SUSPENDED_ADDRESS_LIST
    tag = int(time.time()) % 10**6
    waits, recorded, after_commit = [], [], []
    for i, account in enumerate(accounts):
        address = _address(i)
        mark = len(emulator.writes())
        started = time.monotonic()
        payments.record_manual_payment(
            account.customer, method="cash", amount=price, reference=f"EXP{tag}-{i}",
            actor="bench",
        )  # fmt: skip
        recorded.append((time.monotonic() - started) * 1000)
        restored_at = None
        deadline = time.monotonic() + 30
        while restored_at is None and time.monotonic() < deadline:
            read, changes = _changes(emulator, mark, listname)
            mark += read
            for at, kind, key in changes:
                if (kind, key) in (("unlisted", address), ("enabled", account.username)):
                    restored_at = at
            # The emulator stamps each change itself: looking more often would only
            # take CPU from the worker and the router being measured.
            time.sleep(0.02)
        if restored_at is not None:
            waits.append((restored_at - started) * 1000)
            after_commit.append(waits[-1] - recorded[-1])
        time.sleep(0.05)
    if not waits:
        raise SystemExit("bench: no payment restored anyone within 30 s")
    print(
        f"payment -> restored on the router: {len(waits)}/{len(accounts)} restored; "
        f"p50 {percentile(waits, 0.5):6.1f} ms   p95 {p95(waits):6.1f} ms   "
        f"max {max(waits):6.1f} ms",
        flush=True,
    )
    print(
        f"  recording the payment (billing; committed, router job queued): "
        f"p50 {percentile(recorded, 0.5):6.1f} ms   p95 {p95(recorded):6.1f} ms",
        flush=True,
    )
    print(
        f"  from its commit to restored on the router (worker, router job): "
        f"p50 {percentile(after_commit, 0.5):6.1f} ms   p95 {p95(after_commit):6.1f} ms",
        flush=True,
    )


def _changes(emulator, since: int, listname: str):
    """(count read, [(at, kind, key)]): what the router applied from write `since` on that
    cuts someone off or restores them: ("listed"/"unlisted", address) in the suspended
    list, ("disabled"/"enabled", secret name)."""
    writes = emulator.writes(since)
    out = []
    for at, path, verb, args, before in writes:
        if path == LIST and verb == "add" and args.get("list") == listname:
            out.append((at, "listed", args.get("address")))
        elif path == LIST and verb == "remove":
            out += [(at, "unlisted", r.get("address")) for r in before if r.get("list") == listname]
        elif path == "/ppp/secret" and verb == "set" and "disabled" in args:
            kind = "disabled" if args["disabled"] in ("yes", "true") else "enabled"
            out += [(at, kind, r.get("name")) for r in before]
    return len(writes), out
