"""The report pages and the owner's home in a real browser, as the demo ISP's owner, at
360 px (a phone) and 1366 px (a laptop): every page answers, nothing is wider than the
screen, no box scrolls sideways (wide tables turn into cards instead), every chart is
drawn, fits and has labels that do not run into each other; the home's figures open
their reports, a movement figure opens the customers behind it, and a table downloads
as CSV and XLSX with the rows the page shows.

The demo seed takes no snapshots (the nightly beat would, from the timeline), so the
test takes the missing days itself with reports.snapshots.fill_missing: without them
the MRR charts have nothing to draw. They are committed into the session's demo ISP
(immutable history, and what the beat would have written)."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from openpyxl import load_workbook

from ispops.tenancy.models import Isp
from tests.e2e.test_lead_to_activation import log_in

pytestmark = [pytest.mark.committed, pytest.mark.browser]

OWNER = "owner@demo.ispops.local"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Each page and how many charts (svg[role=img]) it must draw at least.
PAGES = {
    "/": 1,  # the MRR sparkline
    "/reports/": 0,
    "/reports/mrr/": 2,  # waterfall, MRR and customers
    "/reports/mrr/?kind=week": 2,
    "/reports/rates/": 1,
    "/reports/rates/?kind=week": 1,
    "/reports/collections/": 1,
    "/reports/collections/?by=week&count=12": 1,
    "/reports/aging/": 1,
    "/reports/aging/?by=site": 1,
    "/reports/aging/act/?bucket=1-30&action=reminder": 0,
    "/reports/revenue/": 1,
    "/reports/operations/": 0,  # a chart only when someone installed in the period
}

# Chart text smaller than this on the screen is not readable.
MIN_TEXT_PX = 9

# What the page must not do, found by the browser: boxes scrolling sideways, charts
# missing, too big or with labels on top of each other.
LAYOUT_PROBLEMS = """
(minTextPx) => {
  const width = document.documentElement.clientWidth;
  const tiny = [];
  // A chart label's own words (not the <title> tooltip inside it).
  const words = (t) => (t.firstChild ? t.firstChild.textContent : "");
  const name = (el) => {
    const css = typeof el.className === "string" ? el.className.trim().split(/\\s+/) : [];
    return [el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""), ...css].join(".");
  };
  const problems = [];
  for (const el of document.querySelectorAll("body *")) {
    const ox = getComputedStyle(el).overflowX;
    if ((ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${name(el)} scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`);
    }
  }
  // A figure may wrap between words ("KES" / "1,234.00"), never inside an amount.
  for (const value of document.querySelectorAll(".figure .value")) {
    const walker = document.createTreeWalker(value, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      for (const word of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) problems.push(`figure "${word[0]}" broken across lines`);
      }
    }
  }
  const charts = [...document.querySelectorAll("svg[role=img]")];
  charts.forEach((svg, i) => {
    const label = `chart ${i + 1} (${svg.getAttribute("aria-label")})`;
    const box = svg.getBoundingClientRect();
    if (!svg.getAttribute("viewBox")) problems.push(`${label} has no viewBox`);
    if (box.width < 1 || box.height < 1 || getComputedStyle(svg).visibility !== "visible") {
      problems.push(`${label} is not visible`);
    }
    if (box.left < -0.5 || box.right > width + 0.5) {
      problems.push(`${label} does not fit: ${box.left}..${box.right} of ${width}`);
    }
    const drawn = [...svg.querySelectorAll("rect, polyline")].filter((s) => {
      const b = s.getBoundingClientRect();
      return b.width > 0 || b.height > 0;
    });
    if (!drawn.length) problems.push(`${label} draws nothing`);
    // Text drawn in viewBox units shrinks with the chart: its size on the screen.
    const scale = box.width / svg.viewBox.baseVal.width;
    for (const t of svg.querySelectorAll("text")) {
      const px = parseFloat(getComputedStyle(t).fontSize) * scale;
      if (px < minTextPx) tiny.push(`${label}: "${words(t)}" at ${px.toFixed(1)} px`);
    }
    const texts = [...svg.querySelectorAll("text")].map(
      (t) => [words(t), t.getBoundingClientRect()]);
    for (const [text, b] of texts) {
      if (b.left < -0.5 || b.right > width + 0.5) {
        problems.push(`${label}: "${text}" off the screen`);
      }
    }
    for (let a = 0; a < texts.length; a++) {
      for (let b = a + 1; b < texts.length; b++) {
        const [ta, ra] = texts[a], [tb, rb] = texts[b];
        const overlap = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left) > 1
          && Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top) > 1;
        if (overlap) problems.push(`${label}: "${ta}" runs into "${tb}"`);
      }
    }
  });
  return {charts: charts.length, problems, tiny};
}
"""


@pytest.fixture(scope="module")
def demo_history(django_db_setup, django_db_blocker):
    """The demo ISP's snapshots up to yesterday (see the module docstring)."""
    from reports import snapshots

    now = timezone.now()
    with django_db_blocker.unblock(), tenant_context(Isp.objects.get(schema_name="demo")):
        snapshots.fill_missing(timezone.localdate(now) - timedelta(days=1), as_of=now)
    connection.set_schema_to_public()


@pytest.fixture(params=[360, 1366], ids=["phone", "laptop"])
def screen(request, browser):
    context = browser.new_context(viewport={"width": request.param, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.width = request.param
    yield page
    context.close()


def look_at(page, url: str) -> dict:
    """Open `url`: what is wrong with its layout ("problems", empty: nothing), how many
    charts it draws, and the chart text too small to read ("tiny")."""
    response = page.goto(url)
    path = "/" + url.split("/", 3)[-1]
    if response.status != 200:
        return {"problems": [f"{path}: status {response.status}"], "charts": 0, "tiny": []}
    found = page.evaluate(LAYOUT_PROBLEMS, MIN_TEXT_PX)
    found["problems"] = [f"{path}: {p}" for p in found["problems"]]
    found["tiny"] = [f"{path}: {p}" for p in found["tiny"]]
    wide = page.evaluate("document.documentElement.scrollWidth")
    if wide > page.width:
        found["problems"].append(f"{path}: page {wide} px wide")
    return found


def test_report_pages_fit_the_screen_and_draw_their_charts(
    demo_history, live_server_url, django_db_blocker, screen
):
    base = f"http://demo.localhost:{live_server_url}"
    problems = []
    with django_db_blocker.unblock():  # the live server's threads use the database
        log_in(screen, base, OWNER, "/reports/")
        for path, charts in PAGES.items():
            found = look_at(screen, f"{base}{path}")
            problems += found["problems"]
            problems += found["tiny"]
            if found["charts"] < charts:
                problems.append(f"{path}: {found['charts']} charts, expected {charts}")

        # The demo has history: the MRR figures are not all nought.
        screen.goto(f"{base}/reports/mrr/")
        assert screen.locator(".figures .figure .value").first.text_content() != "KES 0.00"
        # A movement figure opens the customers behind it: click the first non-zero one.
        figure = screen.locator("a[href^='/reports/mrr/20']").filter(
            has_not_text=re.compile(r"^KES 0\.00$")
        )
        assert figure.count(), "no MRR movement figure to open"
        amount = figure.first.text_content().strip()
        figure.first.click()
        screen.wait_for_url(re.compile(r"/reports/mrr/\d{4}-(\d{2}|W\d{2})/[a-z]+/$"))
        assert amount in screen.locator("h1").text_content()
        assert screen.locator("tbody tr td a[href^='/subscribers/']").count() >= 1
        problems += look_at(screen, screen.url)["problems"]
    assert not problems, "\n".join(problems)


def test_the_owners_figures_open_their_reports(
    demo_history, live_server_url, django_db_blocker, screen
):
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        log_in(screen, base, OWNER, "/")
        links = screen.locator(".month-figures .figure a")
        targets = {
            links.nth(i).locator(".label").text_content(): links.nth(i).get_attribute("href")
            for i in range(links.count())
        }
        to_reports = {k: v for k, v in targets.items() if v.startswith("/reports/")}
        # MRR, collection rate, overdue and churn each open their report.
        assert len(to_reports) >= 4, targets
        for label, href in to_reports.items():
            screen.goto(f"{base}/")
            screen.locator(".month-figures .figure a", has_text=label).click()
            screen.wait_for_url(f"{base}{href}")
            assert screen.locator("h1").is_visible()


def page_table(page, heading: str) -> list[list[str]]:
    """The cells of the table in the card headed `heading`, as the page shows them."""
    card = page.locator("section.card", has=page.locator("h2", has_text=heading))
    return card.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


def same(shown: str, stored) -> bool:
    """A cell of the page and the same cell of the download."""
    if stored is None or stored == "":
        return shown in ("-", "")
    if isinstance(stored, (int, float)):
        return Decimal(shown.replace(",", "")) == Decimal(str(stored)).quantize(Decimal("0.01"))
    return shown == str(stored)


def test_a_report_table_downloads_as_csv_and_xlsx_with_the_rows_of_the_page(
    demo_history, live_server_url, django_db_blocker, phone
):
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        log_in(phone, base, OWNER, "/reports/revenue/")
        shown = page_table(phone, "Revenue by plan")
        assert shown and shown[0][0] != "Nothing in this period.", "the demo has no revenue"
        card = phone.locator("section.card", has=phone.locator("h2", has_text="Revenue by plan"))
        files = {}
        for fmt in ("csv", "xlsx"):
            link = card.get_by_role("link", name=fmt.upper(), exact=True)
            with phone.expect_download() as wait:
                link.click()
            download = wait.value
            # The headers, asked by the page itself (the same link, the same session).
            status, content_type = phone.evaluate(
                "href => fetch(href).then(r => [r.status, r.headers.get('content-type')])",
                link.get_attribute("href"),
            )
            assert status == 200
            files[fmt] = (
                download.suggested_filename,
                Path(download.path()).read_bytes(),
                content_type,
            )

    name, body, content_type = files["csv"]
    assert re.fullmatch(r"revenue-by-plan-[a-z]+-\d{4}\.csv", name), name
    assert content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["Name", "Recurring", "One-off", "Total"]
    # The page groups thousands (20,689.66); the CSV keeps plain numbers (20689.66).
    assert rows[1:] == [[cell.replace(",", "") for cell in row] for row in shown]

    name, body, content_type = files["xlsx"]
    assert re.fullmatch(r"revenue-by-plan-[a-z]+-\d{4}\.xlsx", name), name
    assert content_type == XLSX_TYPE
    sheet = load_workbook(io.BytesIO(body)).active
    stored = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert stored[0] == ["Name", "Recurring", "One-off", "Total"]
    assert len(stored[1:]) == len(shown)
    for page_row, file_row in zip(shown, stored[1:], strict=True):
        assert all(same(a, b) for a, b in zip(page_row, file_row, strict=True)), (
            page_row,
            file_row,
        )


def test_a_big_money_figure_never_breaks_inside_its_amount_on_a_phone(
    demo_history, live_server_url, django_db_blocker, phone
):
    """The demo's figures are small; a big ISP's are not: the owner's home and the MRR
    page at 360 px with every money figure set to the widest amount (a 100,000-subscriber
    ISP's MRR) break only between "KES" and the amount, and nothing leaves the screen."""
    base = f"http://demo.localhost:{live_server_url}"
    widest = "KES 261,419,498.03"
    problems = []
    with django_db_blocker.unblock():
        log_in(phone, base, OWNER, "/")
        for path in ("/", "/reports/mrr/"):
            phone.goto(f"{base}{path}")
            changed = phone.evaluate(
                """widest => {
                  const values = [...document.querySelectorAll(".figure .value")]
                    .filter((v) => v.textContent.trim().startsWith("KES"));
                  values.forEach((v) => { v.textContent = widest; });
                  return values.length;
                }""",
                widest,
            )
            assert changed, f"{path}: no money figure"
            found = phone.evaluate(LAYOUT_PROBLEMS, MIN_TEXT_PX)
            problems += [f"{path}: {p}" for p in found["problems"]]
            if phone.evaluate("document.documentElement.scrollWidth") > 360:
                problems.append(f"{path}: wider than the phone")
    assert not problems, "\n".join(problems)
