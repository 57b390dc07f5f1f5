"""The pipeline board in a real browser as the demo's owner: on a 1366 px laptop all
eight stage columns sit side by side inside the screen, each with its name and count;
on a 360 px phone they stack, nothing wider than the screen."""

import pytest

from subscribers import services
from tests.e2e.test_lead_to_activation import log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]

OWNER = "owner@demo.ispops.local"
COLUMNS = """(width) => [...document.querySelectorAll('.board-column')].map(col => {
  const box = col.getBoundingClientRect();
  const head = col.querySelector('h2').getBoundingClientRect();
  return {stage: col.dataset.stage, inside: box.left >= 0 && box.right <= width,
          head: head.width > 0 && head.left >= 0 && head.right <= width,
          title: col.querySelector('h2').innerText};
})"""


@pytest.mark.parametrize("width", [1366, 360])
def test_every_stage_column_is_on_the_screen(browser, live_server_url, django_db_blocker, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    base = f"http://demo.localhost:{live_server_url}"
    try:
        with django_db_blocker.unblock():
            log_in(page, base, OWNER, "/pipeline/")
            columns = page.evaluate(COLUMNS, width)
            wide = page.evaluate("document.documentElement.scrollWidth")
    finally:
        context.close()
    assert [c["stage"] for c in columns] == list(services.STAGE_ORDER)
    shown = [c["stage"] for c in columns if c["inside"] and c["head"]]
    assert shown == list(services.STAGE_ORDER), f"{len(shown)} of 8 stages on screen: {shown}"
    assert all(any(ch.isdigit() for ch in c["title"]) for c in columns)  # each has its count
    assert wide <= width, f"page {wide} px wide at {width} px"
