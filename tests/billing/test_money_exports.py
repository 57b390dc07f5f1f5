"""CSV downloads of the invoices list and the aged-debt page, with the URL's filters; the
invoices and payments lists filtered by branch, a branch-limited reader only theirs."""

import csv
import io
import itertools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import Invoice
from ispops.staff.models import Branch, Role
from payments import services as payments
from subscribers import services
from subscribers.models import Plan
from tests.probe_world import limited_user

_n = itertools.count(1)


def _postpaid(plan, branch, name):
    n = next(_n)
    customer = services.create_customer(
        actor="test", name=name, phone=f"0755{n:06d}", branch=branch
    )
    services.create_service_account(
        actor="test",
        customer=customer,
        plan=plan,
        username=f"exp{n}",
        password="pw",
        status="active",
    )
    return customer


@pytest.fixture
def world(alpha):
    """Alpha: one postpaid customer invoiced in each of two branches; the away one's
    invoice 45 days late, the home one's not yet due; a bank payment each."""
    with tenant_context(alpha.isp):
        home = Branch.objects.get(code="alpha-0")
        away = Branch.objects.create(name="Export away", code="export-away")
        plan = Plan.objects.create(
            name="Export 10M",
            price="2320.00",
            billing="postpaid",
            download_kbps=10_000,
            upload_kbps=5_000,
        )
        near = _postpaid(plan, home, "=HYPERLINK Home Customer")
        far = _postpaid(plan, away, "Away Customer")
        billing.run_billing(timezone.localdate(), actor="test")
        Invoice.objects.filter(customer=far).update(
            due_on=timezone.localdate() - timedelta(days=45)
        )
        for customer, ref in ((near, "SLIP-H"), (far, "SLIP-A")):
            payments.record_manual_payment(
                customer, method="bank", amount=Decimal("100.00"), reference=ref, actor="test"
            )
        limited = limited_user(Role.FINANCE, home)
    connection.set_schema_to_public()
    return SimpleNamespace(alpha=alpha, home=home, away=away, near=near, far=far, limited=limited)


def _rows(response) -> list[dict]:
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_the_invoices_csv_has_every_invoice_of_the_filter(world):
    client = world.alpha.client(world.alpha.finance)
    every = _rows(client.get("/invoices/", {"format": "csv"}))
    accounts = {r["customer_account"] for r in every}
    assert {world.near.account, world.far.account} <= accounts
    (far,) = [r for r in every if r["customer_account"] == world.far.account]
    assert far["branch"] == "Export away" and far["total"] == "2320.00"
    assert far["outstanding"] == "2220.00"  # the payment settled part of it
    # A name that a spreadsheet would run as a formula is defused.
    (near,) = [r for r in every if r["customer_account"] == world.near.account]
    assert near["customer_name"] == "'=HYPERLINK Home Customer"
    overdue = _rows(client.get("/invoices/", {"format": "csv", "overdue": "on"}))
    assert [r["customer_account"] for r in overdue] == [world.far.account]
    away = _rows(client.get("/invoices/", {"format": "csv", "branch": world.away.pk}))
    assert [r["customer_account"] for r in away] == [world.far.account]


def test_the_invoices_list_filters_by_branch_and_limits_the_reader(world):
    client = world.alpha.client(world.alpha.finance)
    page = client.get("/invoices/", {"branch": world.home.pk})
    assert {i.customer_id for i in page.context["page"]} == {world.near.pk}
    assert "Download these invoices (CSV)" in page.content.decode()
    limited = world.alpha.client(world.limited)
    assert {r["customer_account"] for r in _rows(limited.get("/invoices/", {"format": "csv"}))} == {
        world.near.account
    }
    refused = limited.get("/invoices/", {"branch": world.away.pk})
    assert refused.context["totals"]["count"] == 0
    assert "Select a valid choice" in refused.content.decode()
    assert _rows(limited.get("/invoices/", {"format": "csv", "branch": world.away.pk})) == []
    assert limited.get("/invoices/", {"branch": "nonsense"}).status_code == 200
    # Support reads the list but does not download it.
    support = world.alpha.client(world.alpha.support)
    assert support.get("/invoices/", {"format": "csv"}).status_code == 403


def test_the_aged_debt_csv_splits_each_debtor_by_age(world):
    client = world.alpha.client(world.alpha.finance)
    rows = _rows(client.get("/billing/aged-debt/", {"format": "csv"}))
    by_account = {r["Account"]: r for r in rows}
    far = by_account[world.far.account]
    assert far["31 to 60 days late"] == "2220.00" and far["Not yet due"] == "0.00"
    assert far["Days late"] == "45" and far["Branch"] == "Export away"
    near = by_account[world.near.account]
    assert near["Not yet due"] == "2220.00" and near["Outstanding"] == "2220.00"
    only_away = _rows(client.get("/billing/aged-debt/", {"format": "csv", "branch": world.away.pk}))
    assert [r["Account"] for r in only_away] == [world.far.account]
    page = client.get("/billing/aged-debt/", {"branch": world.away.pk})
    bars = {bar["key"]: bar["amount"] for bar in page.context["bars"]}
    assert bars["31-60"] == Decimal("2220.00") and bars["current"] == 0
    limited = _rows(world.alpha.client(world.limited).get("/billing/aged-debt/", {"format": "csv"}))
    assert [r["Account"] for r in limited] == [world.near.account]


def test_the_payments_list_filters_by_branch_and_limits_the_reader(world):
    client = world.alpha.client(world.alpha.finance)
    page = client.get("/payments/", {"branch": world.away.pk})
    assert [p.reference for p in page.context["page"]] == ["SLIP-A"]
    csv_rows = _rows(client.get("/payments/", {"branch": world.away.pk, "format": "csv"}))
    assert [r["reference"] for r in csv_rows] == ["SLIP-A"]
    limited = world.alpha.client(world.limited)
    assert [p.reference for p in limited.get("/payments/").context["page"]] == ["SLIP-H"]
    assert list(limited.get("/payments/", {"branch": world.away.pk}).context["page"]) == []
