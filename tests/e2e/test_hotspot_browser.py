"""A phone on a hotspot, at 360 x 780: it opens a page, the "router" (a local test
servlet standing in for RouterOS's, serving the login.html ispops generated for the
emulator's router with its $(var)s filled) sends it to the ISP's /hs/; it types a
voucher in lower case and ends logged in on the RouterOS emulator, an active session
for its MAC, through the router's own login form with the CHAP hash computed by ispops.
Then it buys a 1-hour package by STK push against the Daraja simulator the same way,
and, online on one voucher, adds a second one under the ISP's stacking rule."""

import hashlib
import html
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import captive, vouchers
from hotspot.models import Entitlement, HotspotSettings, Package, Purchase, Stacking
from network.emulator.state import parse_duration
from payments.models import Callback
from tests.e2e.portal import assert_fits

pytestmark = [pytest.mark.committed, pytest.mark.worker, pytest.mark.browser]


def octal(data: bytes) -> str:
    return "".join(f"\\{b:03o}" for b in data)


class Servlet:
    """The router's hotspot web server, as far as a phone sees it: any page is the
    login page (login.html with the phone's variables), and POST /login checks the
    username and the CHAP response against the router's hotspot user, then starts the
    session on the emulator, as RouterOS does."""

    def __init__(self, emulator, pages: dict, mac: str, ip: str):
        self.emulator, self.pages, self.mac, self.ip = emulator, pages, mac, ip
        self.chap_id, self.challenge = secrets.token_bytes(1), secrets.token_bytes(16)
        self.logins: list[tuple[str, str]] = []
        servlet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, servlet.login_page(error=""))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                ok, error = servlet.login(form.get("username", ""), form.get("password", ""))
                if ok:
                    self._send(200, "<!doctype html><title>ok</title><h1>You are connected</h1>")
                else:
                    self._send(200, servlet.login_page(error=error))

            def _send(self, status, text):
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def login_page(self, *, error: str) -> str:
        values = {
            "mac": self.mac,
            "ip": self.ip,
            "link-login-only": f"{self.url}/login",
            "link-orig": "http://example.com/",
            "chap-id": octal(self.chap_id),
            "chap-challenge": octal(self.challenge),
            "identity": "pay-core",
            "server-name": "hotspot1",
            "error": html.escape(error),
        }
        page = self.pages["login.html"]
        page = re.sub(
            r"\$\(if ([a-z-]+)\)(.*?)\$\(endif\)",
            lambda m: m.group(2) if values.get(m.group(1)) else "",
            page,
            flags=re.S,
        )
        return re.sub(r"\$\(([a-z-]+)\)", lambda m: values.get(m.group(1), ""), page)

    def login(self, username: str, response: str) -> tuple[bool, str]:
        users = {r["name"]: r for r in self.emulator.rows("/ip/hotspot/user")}
        user = users.get(username)
        if user is None:
            return False, "invalid username or password"
        digest = self.chap_id + user.get("password", "").encode() + self.challenge
        if hashlib.md5(digest, usedforsecurity=False).hexdigest() != response:
            return False, "invalid username or password"
        try:
            self.emulator.hotspot.login(username, address=self.ip, mac=self.mac)
        except Exception as exc:
            return False, str(exc)
        self.logins.append((username, self.mac))
        self.logged_in_at = timezone.now()
        return True, ""

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(pay_world, django_db_blocker, celery_worker_process):
    with django_db_blocker.unblock(), tenant_context(pay_world.isp):
        yield pay_world
    connection.set_schema_to_public()


@pytest.fixture
def servlet(world):
    with override_settings(PUBLIC_SCHEME="http", PUBLIC_PORT=str(world.port)):
        pages = captive.router_pages(world.router)
    tail = uuid.uuid4().hex[:6].upper()
    mac = "02:00:00:" + ":".join(tail[i : i + 2] for i in range(0, 6, 2))
    servlet = Servlet(world.emulator, pages, mac, f"10.5.50.{uuid.uuid4().int % 200 + 20}")
    yield servlet
    servlet.stop()


@pytest.fixture
def hour(world):
    package = Package.objects.create(
        name=f"1 hour {uuid.uuid4().hex[:4]}",
        price=10,
        validity_minutes=60,
        download_kbps=2000,
        upload_kbps=1000,
        devices=2,
    )
    package.routers.add(world.router)
    return package


def session_for(world, mac: str):
    return [r for r in world.emulator.rows("/ip/hotspot/active") if r.get("mac-address") == mac]


def test_a_phone_redeems_a_voucher_and_is_logged_in_on_the_router(world, servlet, hour, phone):
    batch = vouchers.generate_batch(hour, 1, actor=world.tenant.owner)
    code = batch.vouchers.get().code
    phone.goto(f"{servlet.url}/generate_204")  # the router intercepts any page
    phone.wait_for_url(re.compile(r"/hs/"))
    phone.get_by_text(hour.name).wait_for()
    assert_fits(phone)
    phone.fill("input[name=code]", code.lower())
    phone.get_by_role("button", name="Use voucher").click()
    phone.get_by_text("You are connected").wait_for(timeout=30_000)
    assert servlet.logins == [(code, servlet.mac)]
    assert len(session_for(world, servlet.mac)) == 1


def test_a_phone_buys_an_hour_by_stk_and_is_logged_in_on_the_router(world, servlet, hour, phone):
    mobile = f"0712{uuid.uuid4().int % 10**6:06d}"
    phone.goto(f"{servlet.url}/")
    phone.wait_for_url(re.compile(r"/hs/"))
    phone.get_by_role("button", name=re.compile(f"Buy {re.escape(hour.name)}")).click()
    phone.locator("input[name=phone]").wait_for()
    assert_fits(phone)
    world.sim.callback_delay = 2.0  # the buyer takes a moment to type the PIN
    try:
        phone.fill("input[name=phone]", mobile)
        phone.get_by_role("button", name="Send the M-Pesa prompt to my phone").click()
        phone.locator("#pay-status").get_by_text("enter your M-Pesa PIN").wait_for()
        assert "seconds left" in phone.locator("#pay-status").inner_text()
        assert_fits(phone)
        phone.get_by_text("You are connected").wait_for(timeout=30_000)
    finally:
        world.sim.callback_delay = 0.0
    assert servlet.logins == [(mobile, servlet.mac)]
    assert len(session_for(world, servlet.mac)) == 1
    # Logged in within 10 s of M-Pesa's callback (the acceptance's promise).
    stk = Purchase.objects.get(phone="254" + mobile[1:]).stk
    callback = Callback.objects.filter(kind="stk", body__contains=stk.checkout_request_id).get()
    assert (servlet.logged_in_at - callback.received_at).total_seconds() < 10


@pytest.fixture
def phone_without_js(browser):
    """A 360 x 780 phone whose browser runs no JavaScript."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_without_javascript_every_step_is_a_button(world, servlet, hour, phone_without_js):
    page = phone_without_js
    code = vouchers.generate_batch(hour, 1, actor=world.tenant.owner).vouchers.get().code
    page.goto(f"{servlet.url}/")
    page.get_by_role("button", name="Continue").click()  # login.html's own button
    page.wait_for_url(re.compile(r"/hs/"))
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Use voucher").click()
    # The page refreshes itself until the router holds the login, then shows the button.
    page.get_by_role("button", name="Connect").click(timeout=30_000)
    page.get_by_text("You are connected").wait_for()
    assert len(session_for(world, servlet.mac)) == 1
    assert_fits(page)


def redeem(phone, servlet, code: str) -> None:
    phone.goto(f"{servlet.url}/")  # the router sends any page to the login page
    phone.wait_for_url(re.compile(r"/hs/"))
    phone.fill("input[name=code]", code)
    phone.get_by_role("button", name="Use voucher").click()


def guard_on_router(world, login: str) -> int:
    user = next(r for r in world.emulator.rows("/ip/hotspot/user") if r["name"] == login)
    return parse_duration(user["limit-uptime"])


def test_a_second_voucher_on_a_live_login_follows_the_stacking_rule(world, servlet, hour, phone):
    assert HotspotSettings.load().stacking == Stacking.EXTEND  # the default: same package adds up
    first, second = (v.code for v in vouchers.generate_batch(hour, 2, actor="test").vouchers.all())
    redeem(phone, servlet, first)
    phone.get_by_text("You are connected").wait_for(timeout=30_000)
    guard_before = guard_on_router(world, first)

    redeem(phone, servlet, second)
    phone.get_by_role("heading", name="Add this voucher?").wait_for()
    assert "This adds 1 hour" in phone.content()
    assert_fits(phone)
    assert not Entitlement.objects.filter(voucher__code=second).exists()  # asked, not done
    phone.get_by_role("button", name="Yes, add it").click()
    phone.get_by_text("You are connected").wait_for(timeout=30_000)

    live = Entitlement.objects.get(login=first, state=Entitlement.State.LIVE)
    assert live.login == first and live.minutes == 120
    assert not Entitlement.objects.exclude(pk=live.pk).filter(login=first).exists()
    # The router's guard moved with it: one more hour for each device the package allows.
    added = guard_on_router(world, first) - guard_before
    assert abs(added - 3600 * hour.devices) < 60
    assert len(session_for(world, servlet.mac)) == 1
