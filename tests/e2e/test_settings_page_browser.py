"""The settings page in a browser: the M-Pesa address boxes are as wide as the form
(they were cut at the browser's 20 characters) and nothing is wider than a phone."""

import pytest

from tests.e2e.test_lead_to_activation import OWNER, log_in

pytestmark = pytest.mark.browser

ADDRESS = "https://billing.demo-fibre-and-wireless.co.ke"


def _url_boxes(page):
    return [
        page.locator("#mpesa input[name=base_url]"),
        page.locator("#mpesa input[name=public_url]"),
    ]


def test_mpesa_addresses_show_in_full_on_a_laptop(desktop, live_server_url):
    base = f"http://demo.localhost:{live_server_url}"
    log_in(desktop, base, OWNER, "/settings/")
    for box in _url_boxes(desktop):
        box.fill(ADDRESS)
        # The whole address is in view: the box does not scroll its text.
        assert box.evaluate("el => el.scrollWidth <= el.clientWidth")
        assert box.bounding_box()["width"] >= 400


def test_settings_page_fits_a_phone(phone, live_server_url):
    base = f"http://demo.localhost:{live_server_url}"
    log_in(phone, base, OWNER, "/settings/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    for box in _url_boxes(phone):
        rect = box.bounding_box()
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= 360
