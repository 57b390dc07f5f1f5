"""The money pages (/reports/collections/, /reports/aging/, /reports/revenue/) as an
owner opens them: the SQL each costs is pinned, and stays the same whether the ISP has
3 customers or 30; a bad query string is a 400 naming the value, never a 500; `?branch=`
narrows the figures to one branch the reader may see."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from billing import services as billing
from ispops.staff.models import Branch
from payments import services as payments
from subscribers import services as subscribers
from subscribers.models import Customer, NetworkSite, Plan
from tests.reports import money_history
from tests.reports.money_history import at

D = Decimal
history = money_history.history  # the fixture

COLLECTIONS = "/reports/collections/?until=2026-01-31"
AGING = "/reports/aging/?on=2026-01-25"
REVENUE = "/reports/revenue/?until=2026-01-31"
# What each page costs (session, user and tenant included), measured and pinned: one
# more is a regression to look at, not a number to raise.
BOUNDS = {COLLECTIONS: 23, AGING: 10, REVENUE: 17}


def add_customers(count: int, first: int) -> None:
    """`count` more customers over two branches and two sites, through the services:
    each on a plan from 1 Jan, billed that day, half with a one-off fee on 3 Jan, every
    third paying part of it in cash on 12 Jan."""
    plan = Plan.objects.get_or_create(
        name="Home8", defaults={"price": D("2320"), "billing": "postpaid", "cycle": "monthly",
                                "download_kbps": 8000, "upload_kbps": 4000},
    )[0]  # fmt: skip
    branches = [
        Branch.objects.get_or_create(code=code, defaults={"name": code.title()})[0]
        for code in ("east", "west")
    ]
    sites = [NetworkSite.objects.get_or_create(name=n, kind="pop")[0] for n in ("Hill", "Vale")]
    made = []
    with at(date(2026, 1, 1)):
        for n in range(first, first + count):
            customer = subscribers.create_customer(
                actor="t", name=f"Customer {n}", phone=f"07130{n:05d}"
            )
            subscribers.create_service_account(
                actor="t", customer=customer, plan=plan, username=f"m{n}", status="active"
            )
            Customer.objects.filter(pk=customer.pk).update(
                branch=branches[n % 2], site=sites[n % 2]
            )
            made.append(customer)
    with at(date(2026, 1, 1), 1):
        billing.run_billing(date(2026, 1, 1), actor="t")
    with at(date(2026, 1, 3)):
        for customer in made[::2]:
            billing.charge_once(customer, D("1160"), actor="t", reason="Installation")
    with at(date(2026, 1, 12)):
        for customer in made[::3]:
            payments.record_manual_payment(
                customer, method="cash", amount="1000", reference=f"C-{customer.pk}", actor="t"
            )


def queries(client, url) -> int:
    with at(date(2026, 2, 15)), CaptureQueriesContext(connection) as captured:
        page = client.get(url)
    assert page.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", [COLLECTIONS, AGING, REVENUE])
def test_a_money_page_costs_the_same_queries_at_3_and_at_30_customers(
    alpha, url, django_assert_max_num_queries
):
    client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        add_customers(3, first=1)
        assert Customer.objects.count() == 3
    client.get(url)  # the session and caches warm, as for any reader
    few = queries(client, url)
    with tenant_context(alpha.isp):
        add_customers(27, first=4)
        assert Customer.objects.count() == 30
    many = queries(client, url)
    assert few == many
    with at(date(2026, 2, 15)), django_assert_max_num_queries(BOUNDS[url]):
        assert client.get(url).status_code == 200
    # The CSV of each table costs no more than the page.
    with at(date(2026, 2, 15)), django_assert_max_num_queries(BOUNDS[url]):
        assert client.get(url + "&format=csv").status_code == 200


PAGES = ("/reports/collections/", "/reports/aging/", "/reports/revenue/")
BAD = [
    ("until=2026-02-30", "until"),
    ("until=yesterday", "until"),
    ("since=2026-01-01&until=9999-12-31", "until"),
    ("until=0001-01-01", "until"),
    ("since=2020-01-01&until=2026-01-31", "since"),  # longer than two years
    ("on=2026-13-01", "on"),
    ("on=9999-12-31", "on"),
    ("count=0", "count"),
    ("count=25", "count"),
    ("count=six", "count"),
    ("by=year", "by"),
    ("branch=999999", "branch"),
    ("branch=north", "branch"),
    ("format=pdf", "format"),
    ("format=csv&table=nosuch", "table"),
]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("query,field", BAD)
def test_a_bad_filter_is_a_400_naming_it_never_a_500(alpha, page, query, field):
    response = alpha.client(alpha.owner).get(f"{page}?{query}")
    assert response.status_code == 400, (page, query, response.status_code)
    assert f"{field}:".encode() in response.content


def test_a_branch_outside_the_readers_branches_is_refused(alpha, history):
    with tenant_context(alpha.isp):
        alpha.finance.branches.add(history.south)
    client = alpha.client(alpha.finance)
    for page in PAGES:
        assert client.get(f"{page}?branch={history.north.pk}").status_code == 400
        assert client.get(f"{page}?branch={history.south.pk}").status_code == 200


def test_a_branch_chosen_narrows_every_money_page_to_it(alpha, history):
    client = alpha.client(alpha.owner)
    north, south = history.north.pk, history.south.pk
    jan = "until=2026-01-31&count=1"
    with at(date(2026, 2, 15)):
        figures = {
            pk: (
                client.get(f"/reports/collections/?{jan}&branch={pk}").context["current"],
                client.get(f"/reports/revenue/?until=2026-01-31&branch={pk}").context["data"],
                client.get(f"/reports/aging/?branch={pk}").context["data"],
            )
            for pk in (north, south)
        }
    # Worked out in test_collections, test_revenue and test_aging for each branch.
    assert figures[north][0]["billed"] == D("5100.00")
    assert figures[south][0]["billed"] == D("1000.00")
    assert (figures[north][1]["total"], figures[south][1]["total"]) == (
        D("4396.55"),
        D("862.07"),
    )
    assert (figures[north][2]["total"], figures[south][2]["total"]) == (
        D("2000.00"),
        D("500.00"),
    )


def test_each_page_offers_the_readers_branches_to_choose_from(alpha, history):
    with tenant_context(alpha.isp):
        alpha.finance.branches.add(history.south, history.north)
        Branch.objects.create(name="Coast", code="coast")
    owner, finance = alpha.client(alpha.owner), alpha.client(alpha.finance)
    for page in PAGES:
        everyone = owner.get(page).content.decode()
        mine = finance.get(f"{page}?branch={history.south.pk}").content.decode()
        assert 'name="branch"' in everyone and ">Coast</option>" in everyone
        assert ">Coast</option>" not in mine
        assert f'<option value="{history.south.pk}" selected>South</option>' in mine


def test_a_long_table_pages_and_its_amounts_carry_separators(alpha, monkeypatch):
    from reports import views_money

    monkeypatch.setattr(views_money, "PER_PAGE", 10)
    client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        add_customers(12, first=1)
    with at(date(2026, 2, 15)):
        first = client.get(AGING).content.decode()
        second = client.get(AGING + "&customers_page=2").content.decode()
        everything = client.get(AGING + "&table=customers&format=csv").content.decode()
    assert "Page 1 of 2 (12 rows)" in first and "Page 2 of 2 (12 rows)" in second
    assert "2,320.00" in first  # a page shows amounts grouped; the CSV keeps them plain
    assert len(everything.strip().splitlines()) == 13 and "2320.00" in everything
