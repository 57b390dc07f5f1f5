"""Hotspot figures (issue 14). `run()` runs each part below in turn; each part is its own
function so others can be added beside it.

- usage poll: BENCH_HOTSPOT_SESSIONS (5,000) live entitlements on one router, each
  with its /ip/hotspot/user and a session logged in over the API, on a RouterOS emulator
  in its own process (as a router would be). Printed: the time of one usage poll
  (read /ip/hotspot/active and /ip/hotspot/user, count every delta, store it), first
  with no counters seen before and then again. Target: under 10 s.

- vouchers: a batch of BENCH_VOUCHERS (10,000) cards generated (codes from secrets,
  unique in the database), then printed as A4 sheets of 50: times of both, and the PDF's
  size.

Uses its own small ISP (schema `benchhs`, built on first use) in the development
database; the entitlements it makes are removed at the start of the next run.
"""

import logging
import os
import time

from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import cards, usage, vouchers
from hotspot.models import Entitlement, Grant, Package
from hotspot.router import ensure_profile, marker, user_fields
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from network import routeros
from network.emulator.process import EmulatorProcess
from network.models import Router
from network.provisioning import RouterSession

SESSIONS = int(os.environ.get("BENCH_HOTSPOT_SESSIONS", "5000"))
SCHEMA, HOST = "benchhs", "benchhs.localhost"
ROUTER_USER, ROUTER_PASSWORD = "admin", "bench-hs-router"
TARGET_SECONDS = 10.0


VOUCHERS = int(os.environ.get("BENCH_VOUCHERS", "10000"))


def run():
    isp = _ensure_isp()
    with tenant_context(isp):
        vouchers_and_cards()
        usage_poll()


def vouchers_and_cards():
    package, _ = Package.objects.get_or_create(
        name="Bench 1 hour",
        defaults={"price": 20, "validity_minutes": 60, "download_kbps": 2000, "upload_kbps": 1000},
    )
    started = time.perf_counter()
    batch = vouchers.generate_batch(package, VOUCHERS, actor="bench")
    made = time.perf_counter() - started
    print(f"vouchers: {VOUCHERS:,} cards generated in {made:.2f} s", flush=True)
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # a line per page otherwise
    started = time.perf_counter()
    pdf = cards.cards_pdf(batch, "a4")
    printed = time.perf_counter() - started
    print(
        f"vouchers: {VOUCHERS:,} cards printed (A4, 50 a page) in {printed:.1f} s, "
        f"{len(pdf) / 1e6:.1f} MB, {printed * 1000 / VOUCHERS:.1f} ms a card",
        flush=True,
    )
    vouchers.revoke_batch(batch, actor="bench")


def _ensure_isp() -> Isp:
    isp = Isp.objects.filter(schema_name=SCHEMA).first()
    if isp is None:
        isp, _ = create_isp(
            schema=SCHEMA,
            name="Bench Hotspot",
            domain=HOST,
            owner_email="owner@benchhs.test",
            owner_password="bench-pass-2026",
        )
    return isp


def usage_poll():
    emulator = EmulatorProcess(users={ROUTER_USER: ROUTER_PASSWORD})
    try:
        router = _router(emulator.port)
        package, _ = Package.objects.get_or_create(
            name="Bench day 1 GB",
            defaults={
                "price": "50.00",
                "validity_minutes": 24 * 60,
                "data_limit_bytes": 10**9,
                "download_kbps": 5000,
                "upload_kbps": 2000,
            },
        )
        Grant.objects.filter(entitlement__router=router).delete()
        Entitlement.objects.filter(router=router).delete()
        now = timezone.now()
        started = time.perf_counter()
        made = Entitlement.objects.bulk_create(
            [
                Entitlement(
                    login=f"bench{i:05d}",
                    password=f"pw{i}",
                    package=package,
                    router=router,
                    source=Entitlement.Source.STAFF,
                    state=Entitlement.State.LIVE,
                    minutes=package.validity_minutes,
                    data_limit_bytes=package.data_limit_bytes,
                    starts_at=now,
                    ends_at=now + timezone.timedelta(minutes=package.validity_minutes),
                    live_at=now,
                    router_pending=False,
                    guard_seconds=package.validity_minutes * 60,
                    guard_bytes=package.data_limit_bytes,
                )
                for i in range(SESSIONS)
            ],
            batch_size=2000,
        )
        with routeros.connect(router) as api:
            session = RouterSession(api)
            ensure_profile(session, package)
            for entitlement in made:
                entitlement.package = package
                session.add("/ip/hotspot/user", **user_fields(entitlement))
            for i, entitlement in enumerate(made):
                mac = f"02:00:00:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X}"
                list(
                    api.rawCmd(
                        "/ip/hotspot/active/login",
                        f"=user={entitlement.login}",
                        f"=password={entitlement.password}",
                        f"=ip=10.{5 + (i >> 16)}.{i >> 8 & 255}.{i & 255}",
                        f"=mac-address={mac}",
                    )
                )
        assert marker(made[0].pk) == user_fields(made[0])["comment"]
        print(
            f"set up {SESSIONS} live entitlements, users and sessions: "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        for label in ("first poll (no counters seen before)", "second poll (deltas)"):
            time.sleep(1.0)  # the sessions move on
            started = time.perf_counter()
            result = usage.poll(router)
            seconds = time.perf_counter() - started
            verdict = "ok" if seconds < TARGET_SECONDS else f"OVER {TARGET_SECONDS:.0f} s"
            print(
                f"usage poll over {result['sessions']} live sessions, {label}: "
                f"{seconds:.2f} s ({verdict}); {result['counted'] / 10**6:.0f} MB counted",
                flush=True,
            )
    finally:
        emulator.stop()
        routeros.close_pool()


def _router(port: int) -> Router:
    router, _ = Router.objects.update_or_create(
        name="bench-hotspot",
        defaults={
            "host": "127.0.0.1",
            "port": port,
            "username": ROUTER_USER,
            "password": ROUTER_PASSWORD,
        },
    )
    return router
