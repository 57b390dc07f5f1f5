"""A real browser logs in on the demo ISP and sees the staff home page."""

import pytest

from ispops.tenancy.management.commands.seed_demo import DEMO_PASSWORD, DEMO_STAFF

pytestmark = pytest.mark.browser


def _log_in(page, base, email):
    page.goto(f"{base}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_owner_logs_in_on_the_demo_isp_and_sees_home(desktop, live_server_url):
    base = f"http://demo.localhost:{live_server_url}"
    _log_in(desktop, base, DEMO_STAFF[0][0])
    assert desktop.locator("h1").inner_text() == "Demo Fibre & Wireless"
    assert desktop.locator(".figure").count() >= 2
    nav = desktop.locator("nav.mainnav")
    assert nav.get_by_role("link", name="Staff").is_visible()
    # htmx is served locally (no CDN) and loaded.
    assert desktop.evaluate("typeof htmx") == "object"


def test_home_works_on_a_360px_phone(phone, live_server_url):
    base = f"http://demo.localhost:{live_server_url}"
    _log_in(phone, base, "tech@demo.ispops.local")
    assert phone.locator("h1").inner_text() == "Demo Fibre & Wireless"
    # Nothing wider than the screen: no sideways scrolling.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    # The menu is folded behind a toggle; a technician does not see Staff.
    phone.click("label.nav-toggle-label")
    assert phone.get_by_role("link", name="Home").is_visible()
    assert phone.locator("nav.mainnav").get_by_role("link", name="Staff").count() == 0


def test_wrong_password_shows_an_error(desktop, live_server_url):
    base = f"http://demo.localhost:{live_server_url}"
    desktop.goto(f"{base}/login/")
    desktop.fill("input[name=username]", "owner@demo.ispops.local")
    desktop.fill("input[name=password]", "wrong")
    desktop.click("button[type=submit]")
    assert desktop.locator(".errorlist").is_visible()
    assert "/login/" in desktop.url
