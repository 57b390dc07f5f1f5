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

- purchase -> login: BENCH_HOTSPOT_PURCHASES (200) phones buy a package on the captive
  page of one router (a RouterOS emulator in its own process), BENCH_HOTSPOT_RATE (2) new
  buyers a second, each as its phone does over real HTTP against gunicorn: open /hs/ as
  the router's login page sends it (no link-login-only, so ispops logs it in over the
  router's API), buy, poll the waiting page every 2 s as htmx does, then the connect page
  (refreshing every 2 s until the router has the login) and tap Connect. The Daraja
  simulator answers each prompt BENCH_HOTSPOT_PIN_SECONDS (2) later with its STK callback
  to our callback view; a Celery worker started here credits the payment, the hotspot
  purpose grants the package, the router push writes the login, and the login task logs
  the device in (/ip/hotspot/active/login). Printed: from the callback's arrival (its
  stored received_at) to an /ip/hotspot/active entry for the buyer's MAC on the emulator
  (watched every 50 ms), p50, p95, max and the count; the parts (callback -> credited ->
  user on the router -> logged in); PASS when p95 is under 10 s (the acceptance test's
  promise).

Uses its own small ISP (schema `benchhs`, built on first use) in the development
database; the entitlements it makes are removed at the start of the next run.
"""

import logging
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests
from celery import Celery
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.util import free_port, p95, percentile, production_env
from hotspot import captive, cards, usage, vouchers
from hotspot.models import Entitlement, Grant, Package, Purchase
from hotspot.router import ensure_profile, marker, user_fields
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from network import routeros
from network.emulator.process import EmulatorProcess
from network.models import Router
from network.provisioning import RouterSession
from payments import services as payments
from payments.models import Callback, MpesaSettings, Payment
from payments.simulator import DarajaSimulator
from payments.simulator.server import SANDBOX_PASSKEY

SESSIONS = int(os.environ.get("BENCH_HOTSPOT_SESSIONS", "5000"))
SCHEMA, HOST = "benchhs", "benchhs.localhost"
ROUTER_USER, ROUTER_PASSWORD = "admin", "bench-hs-router"
TARGET_SECONDS = 10.0


VOUCHERS = int(os.environ.get("BENCH_VOUCHERS", "10000"))
PURCHASES = int(os.environ.get("BENCH_HOTSPOT_PURCHASES", "200"))
PURCHASE_RATE = float(os.environ.get("BENCH_HOTSPOT_RATE", "2"))
PIN_SECONDS = float(os.environ.get("BENCH_HOTSPOT_PIN_SECONDS", "2"))
LOGIN_TARGET_SECONDS = 10.0
PAGE_POLL = 2.0  # the waiting page's hx-trigger "every 2s", the connect page's refresh
ROOT = Path(__file__).resolve().parent.parent


def run():
    isp = _ensure_isp()
    with tenant_context(isp):
        vouchers_and_cards()
        usage_poll()
        if PURCHASES > 0:
            purchase_to_login()


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


# --- purchase callback -> logged in ---------------------------------------------------------


def purchase_to_login():
    emulator = EmulatorProcess(users={ROUTER_USER: ROUTER_PASSWORD})
    sim = DarajaSimulator(port=0).start()
    sim.callback_delay = PIN_SECONDS  # the buyer types the PIN
    web_port, redis_port = free_port(), free_port()
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "bench-hotspot.log", "w")  # noqa: SIM115 (closed below)
    # A broker of its own: the figures do not depend on what other work (another bench's
    # bulk SMS, say) waits in the development Redis, and this worker takes none of it.
    broker = f"redis://127.0.0.1:{redis_port}/0"
    procs = [_redis_server(redis_port)]
    # Plain HTTP on 127.0.0.1 (production has TLS in front of gunicorn): no redirect to
    # https, and the session cookie goes back over http.
    env = {
        **production_env(),
        "REDIS_URL": broker,
        "ISPOPS_SSL_REDIRECT": "0",
        "ISPOPS_SECURE_COOKIES": "0",
    }
    name = f"bench-hs-{os.getpid()}"
    # The worker and the web as `make run` starts them.
    worker = [sys.executable, "-m", "celery", "-A", "ispops", "worker", "--concurrency", "2",
              "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
              "-l", "warning"]  # fmt: skip
    web = [sys.executable, "-m", "gunicorn", "ispops.wsgi", "-b", f"127.0.0.1:{web_port}",
           "--workers", "3", "--log-level", "warning"]  # fmt: skip
    try:
        procs += [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            for command in (worker, web)
        ]
        _wait_started(web_port, procs, broker, name)
        router = _router(emulator.port)
        package, _ = Package.objects.get_or_create(
            name="Bench 1 hour by M-Pesa",
            defaults={"price": 10, "validity_minutes": 60, "download_kbps": 2000,
                      "upload_kbps": 1000},
        )  # fmt: skip
        package.routers.add(router)
        Grant.objects.filter(entitlement__router=router).delete()
        Entitlement.objects.filter(router=router).delete()
        payments.configure(
            actor="bench",
            base_url=sim.base_url,
            shortcode=sim.shortcode,
            kind="paybill",
            consumer_key=sim.consumer_key,
            consumer_secret=sim.consumer_secret,
            passkey=SANDBOX_PASSKEY,
            public_url=f"http://{HOST}:{web_port}",
        )
        _purchases(emulator, web_port, router, package)
    finally:
        for proc in reversed(procs):  # the broker last
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sim.stop()
        emulator.stop()
        routeros.close_pool()
        MpesaSettings.objects.filter(pk=1).update(public_url="")
        log.close()


def _redis_server(port: int) -> subprocess.Popen:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("bench: redis-server is not installed (make services)")
    return subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )


def _wait_started(port: int, procs, broker: str, name: str) -> None:
    app = Celery(broker=broker)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            raise SystemExit("bench: the worker or gunicorn exited (var/bench-hotspot.log)")
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        except requests.RequestException:
            time.sleep(0.2)
            continue
        try:
            if app.control.ping(destination=[f"{name}@{os.uname().nodename}"], timeout=0.5):
                return
        except OSError:  # the broker is still starting
            time.sleep(0.2)
    raise SystemExit("bench: the worker or gunicorn did not start (var/bench-hotspot.log)")


class _Phone:
    """One buyer's phone behind the router, doing what the captive pages tell it to."""

    def __init__(self, port: int, device: dict, number: str, package_pk: int):
        self.base = f"http://127.0.0.1:{port}"
        self.device, self.number, self.package_pk = device, number, package_pk
        self.http = requests.Session()
        self.http.headers["Host"] = f"{HOST}:{port}"
        self.tapped_at: float | None = None  # when it tapped Connect (time.time())

    def _get(self, path, **kw):
        return self.http.get(self.base + path, allow_redirects=False, timeout=30, **kw)

    def _post(self, path, data):
        data = {**data, "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}
        return self.http.post(self.base + path, data=data, allow_redirects=False, timeout=30)

    def buy(self) -> str:
        """'' when it tapped Connect and ispops said it is being connected, else why not."""
        page = self._get("/hs/", params=self.device)
        if page.status_code != 200:
            return f"/hs/ answered {page.status_code}"
        bought = self._post("/hs/buy/", {"package": self.package_pk, "phone": self.number})
        if bought.status_code != 302:
            return f"buy answered {bought.status_code}: {_words(bought.text)}"
        waiting, deadline = bought.headers["Location"], time.monotonic() + 90
        while True:  # the waiting page, as htmx polls it
            status = self._get(waiting, headers={"HX-Request": "true"})
            if status.status_code == 204 and status.headers.get("HX-Redirect"):
                break
            if status.status_code != 200 or "pay-failed" in status.text:
                return f"waiting page: {status.status_code} {_words(status.text)}"
            if time.monotonic() > deadline:
                return "still waiting after 90 s"
            time.sleep(PAGE_POLL)
        while True:  # the connect page, refreshing until the router has the login
            connect = self._get("/hs/connect/")
            if 'action="/hs/connect/"' in connect.text:
                break
            if connect.status_code != 200 or time.monotonic() > deadline:
                return f"connect page: {connect.status_code} {_words(connect.text)}"
            time.sleep(PAGE_POLL)
        self.tapped_at = time.time()
        tapped = self._post("/hs/connect/", {})
        if "You are being connected" not in tapped.text:
            return f"Connect answered {tapped.status_code}: {_words(tapped.text)}"
        return ""


def _words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))[:160]


def _purchases(emulator, port: int, router, package) -> None:
    run_tag = random.randrange(10**6)
    net = random.randrange(16, 250)  # addresses of this run (a few prompts per address)
    phones = []
    for i in range(PURCHASES):
        mac = f"02:{run_tag >> 16 & 255:02X}:{run_tag >> 8 & 255:02X}:{run_tag & 255:02X}:"
        mac += f"{i >> 8 & 255:02X}:{i & 255:02X}"
        device = {"r": captive.router_ref(router.pk), "mac": mac,
                  "ip": f"10.{net}.{i >> 8 & 255}.{i & 255 or 1}"}  # fmt: skip
        number = f"0711{(run_tag + i * 7919) % 10**6:06d}"
        phones.append(_Phone(port, device, number, package.pk))
    logged_in: dict[str, float] = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            rows = emulator.rows("/ip/hotspot/active")
            now = time.time()
            for row in rows:
                logged_in.setdefault(str(row.get("mac-address", "")).upper(), now)
            time.sleep(0.05)  # every table read costs the router: not more often

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    writes_from = len(emulator.writes())
    started = time.time()
    errors = []
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        for i, phone in enumerate(phones):
            pause = started + i / PURCHASE_RATE - time.time()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(phone.buy))
        for future in futures:
            try:
                error = future.result()
            except Exception as exc:  # a phone's failure is counted, not fatal
                error = f"{type(exc).__name__}: {exc}"
            if error:
                errors.append(error)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(p.device["mac"] in logged_in for p in phones):
            break
        time.sleep(0.1)
    done.set()
    watcher.join()
    took = time.time() - started
    _report(phones, logged_in, emulator.writes(writes_from), errors, took)


def _report(phones, logged_in, writes, errors, took) -> None:
    """Callback arrival -> logged in per purchase, and the parts in between."""
    offset = time.time() - time.monotonic()  # the emulator stamps writes on the monotonic clock
    user_at = {}
    for at, path, verb, args, _before in writes:
        if path == "/ip/hotspot/user" and verb == "add":
            user_at.setdefault(args.get("name"), at + offset)
    mobiles = {"254" + p.number[1:]: p for p in phones}
    purchases = Purchase.objects.filter(phone__in=mobiles).select_related("stk", "entitlement")
    received = {}
    checkouts = [p.stk.checkout_request_id for p in purchases if p.stk_id]
    since = timezone.now() - timedelta(seconds=took + 60)
    for callback in Callback.objects.filter(kind="stk", received_at__gte=since):
        for checkout in checkouts:  # a handful of callbacks a second: a scan is fine
            if checkout in str(callback.body):
                received.setdefault(checkout, callback.received_at.timestamp())
                break
    credited = {
        p.stk_request_id: p.credited_at.timestamp()
        for p in Payment.objects.filter(stk_request__in=[p.stk_id for p in purchases])
        if p.credited_at is not None
    }
    total, to_credit, to_user, to_tap, to_login = [], [], [], [], []
    for purchase in purchases:
        phone = mobiles[purchase.phone]
        arrived = received.get(purchase.stk.checkout_request_id if purchase.stk_id else None)
        at = logged_in.get(phone.device["mac"])
        if arrived is None or at is None:
            continue
        total.append((at - arrived) * 1000)
        pushed = user_at.get(purchase.login)
        paid = credited.get(purchase.stk_id)
        if paid is not None and pushed is not None and phone.tapped_at is not None:
            to_credit.append((paid - arrived) * 1000)
            to_user.append((pushed - paid) * 1000)
            to_tap.append((phone.tapped_at - pushed) * 1000)
            to_login.append((at - phone.tapped_at) * 1000)
    print(
        f"purchase -> login: {len(phones)} phones bought at {PURCHASE_RATE:g}/s in {took:.0f} s "
        f"(PIN typed in {PIN_SECONDS:g} s); {len(total)} logged in, {len(errors)} failed"
        + (f" (first: {errors[0]})" if errors else ""),
        flush=True,
    )
    if not total:
        print("  callback -> logged in: no purchase got through: FAIL", flush=True)
        return
    verdict = "PASS" if p95(total) < LOGIN_TARGET_SECONDS * 1000 else "FAIL"
    print(
        f"  callback -> logged in: p50 {percentile(total, 0.5):6.0f} ms   p95 {p95(total):6.0f} ms"
        f"   max {max(total):6.0f} ms   (n={len(total)}): {verdict} (p95 under "
        f"{LOGIN_TARGET_SECONDS:.0f} s)",
        flush=True,
    )
    for label, samples in (
        ("callback -> credited", to_credit),
        ("credited -> user on router", to_user),
        ("user on router -> Connect", to_tap),
        ("Connect -> logged in", to_login),
    ):
        if samples:
            print(
                f"    {label:28} p50 {percentile(samples, 0.5):6.0f} ms   "
                f"p95 {p95(samples):6.0f} ms   max {max(samples):6.0f} ms",
                flush=True,
            )
