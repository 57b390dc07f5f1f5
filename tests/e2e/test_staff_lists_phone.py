"""Every staff list works on a 360 px phone: nothing wider than the screen, nothing that
scrolls sideways (the old tables hid status, amounts and buttons off the right edge), and
each row's link or button on screen. At 1366 px the same pages still render whole.

The demo ISP, as its owner. One test a page, so a failure names it."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.tenancy.models import Isp
from tests.e2e.test_lead_to_activation import log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]

OWNER = "owner@demo.ispops.local"

# "{name}" parts are filled from the demo's rows (see demo_ids). Not here: the pipeline, a
# board whose stage columns scroll sideways on purpose.
LISTS = [
    "/subscribers/",
    "/subscribers/{customer}/",
    "/customers/{customer}/statement/",
    "/plans/",
    "/plans/{capped_plan}/fair-use/",
    "/network-map/",
    "/network-map/{site}/",
    "/imports/",
    "/invoices/",
    "/invoices/{invoice}/",
    "/billing/runs/",
    "/billing/runs/{run}/",
    "/billing/aged-debt/",
    "/billing/dunning/",
    "/payments/",
    "/payments/unmatched/",
    "/payments/stk/",
    "/payments/reconcile/",
    "/routers/",
    "/routers/{router}/jobs/",
    "/routers/{router}/drift/",
    "/alerts/",
    "/jobs/",
    "/tickets/",
    "/tickets/mine/",
    "/tickets/settings/",
    "/inventory/",
    "/inventory/stock/",
    "/inventory/stores/",
    "/inventory/models/",
    "/inventory/import/",
    "/staff/",
    "/branches/",
    "/messages/",
    "/messages/templates/",
    "/hotspot/live/",
    "/hotspot/packages/",
    "/hotspot/batches/",
    "/hotspot/batches/{batch}/",
    "/hotspot/agents/",
    "/hotspot/agents/{agent}/",
    "/hotspot/bypasses/",
    "/hotspot/bypass-offers/",
    "/hotspot/sales/",
]

# What the page shows at the width of the screen, measured in the browser.
MEASURE = """() => {
  const width = window.innerWidth;
  const scrollers = [];
  for (const el of document.querySelectorAll("body *")) {
    const overflow = getComputedStyle(el).overflowX;
    if ((overflow === "auto" || overflow === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      scrollers.push(`${el.tagName.toLowerCase()}.${el.className}`);
    }
  }
  const offscreen = [];
  let rows = 0;
  for (const row of document.querySelectorAll("main table tbody tr")) {
    const action = row.querySelector(
      "td.primary a, td.primary button, td.actions button, td.actions a"
    ) || row.querySelector("a, button");
    if (!action) continue;
    rows += 1;
    const box = action.getBoundingClientRect();
    const shown = getComputedStyle(action).visibility !== "hidden";
    if (!shown || box.width === 0 || box.height === 0 || box.left < 0 || box.right > width + 0.5) {
      const name = (action.textContent || action.value || "").trim();
      offscreen.push(`${name} at ${Math.round(box.left)}-${Math.round(box.right)} px`);
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    scrollers: scrollers.slice(0, 5),
    rows,
    offscreen: offscreen.slice(0, 5),
  };
}"""


@pytest.fixture(scope="module")
def demo_ids(django_db_setup, django_db_blocker):
    """The demo's rows that the detail lists need."""
    from billing.models import BillingRun, Invoice
    from hotspot import agents
    from hotspot.models import VoucherBatch
    from network.models import Router
    from subscribers.models import NetworkSite, Plan

    with django_db_blocker.unblock(), tenant_context(Isp.objects.get(schema_name="demo")):
        rows = {
            "invoice": Invoice.objects.all(),
            "capped_plan": Plan.objects.filter(data_cap_gb__isnull=False),
            "site": NetworkSite.objects.all(),
            "run": BillingRun.objects.all(),
            "router": Router.objects.all(),
            "batch": VoucherBatch.objects.all(),
            "agent": agents.agents(),
        }
        ids = {
            name: qs.order_by("pk").values_list("pk", flat=True).first()
            for name, qs in rows.items()
        }
        # A customer with an invoice: their page and statement have rows.
        ids["customer"] = (
            Invoice.objects.filter(pk=ids["invoice"]).values_list("customer_id", flat=True).first()
        )
    connection.set_schema_to_public()
    return ids


def _logged_in(browser, live_server_url, django_db_blocker, width):
    context = browser.new_context(viewport={"width": width, "height": 780})
    page = context.new_page()
    page.set_default_timeout(15_000)
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        log_in(page, base, OWNER, "/invoices/")
    return context, page, base


@pytest.fixture(scope="module")
def owner_phone(browser, live_server_url, django_db_blocker):
    context, page, base = _logged_in(browser, live_server_url, django_db_blocker, 360)
    yield page, base
    context.close()


@pytest.fixture(scope="module")
def owner_desktop(browser, live_server_url, django_db_blocker):
    context, page, base = _logged_in(browser, live_server_url, django_db_blocker, 1366)
    yield page, base
    context.close()


def _visit(page, base, path, demo_ids, django_db_blocker):
    missing = [name for name, pk in demo_ids.items() if pk is None and f"{{{name}}}" in path]
    if missing:
        pytest.skip(f"the demo has no {missing[0]} to open {path} with")
    path = path.format(**demo_ids)
    with django_db_blocker.unblock():  # the live server's threads use the database
        response = page.goto(f"{base}{path}")
        assert response.status == 200, f"{path}: {response.status}"
        return page.evaluate(MEASURE)


@pytest.mark.parametrize("path", LISTS)
def test_staff_list_fits_a_360px_phone_with_each_rows_action_on_screen(
    owner_phone, demo_ids, django_db_blocker, path
):
    page, base = owner_phone
    shown = _visit(page, base, path, demo_ids, django_db_blocker)
    assert shown["scrollWidth"] <= 360, f"{path} is {shown['scrollWidth']} px wide"
    assert not shown["scrollers"], f"{path} scrolls sideways in {shown['scrollers']}"
    assert not shown["offscreen"], f"{path}: rows' actions off the screen: {shown['offscreen']}"


@pytest.mark.parametrize("path", LISTS)
def test_staff_list_renders_whole_at_1366px(owner_desktop, demo_ids, django_db_blocker, path):
    page, base = owner_desktop
    shown = _visit(page, base, path, demo_ids, django_db_blocker)
    assert shown["scrollWidth"] <= 1366, f"{path} is {shown['scrollWidth']} px wide"
    assert not shown["scrollers"], f"{path} scrolls sideways in {shown['scrollers']}"
    assert not shown["offscreen"], f"{path}: rows' actions off the screen: {shown['offscreen']}"
