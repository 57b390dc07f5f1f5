"""Staff's "Top up data" on a service account (issue 14): the plan's pack charged to the
account (a one-line invoice with VAT, due as bills are, paid from credit the customer
holds) or free as goodwill (a reason required, audited with who gave it); the account
back at full speed once it commits; who may do which; bad input gets the form back with
its error and changes nothing."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing import sales
from billing import services as billing
from billing.models import Invoice
from ispops.audit.models import AuditEntry
from ispops.staff.models import Role
from network import fup
from network.models import DataTopUp, UsageMeter, UsagePeriod
from subscribers import services, top_ups
from subscribers.models import Plan

PACK_GB, PACK_PRICE = 5, Decimal("250.00")


@pytest.fixture
def account(in_alpha):
    plan = Plan.objects.create(
        name="Capped 20M", price="2000.00", download_kbps=20_000, upload_kbps=10_000,
        data_cap_gb=10, top_up_gb=PACK_GB, top_up_price=PACK_PRICE,
    )  # fmt: skip
    customer = services.create_customer(actor="test", name="Achieng Otieno", phone="0712555001")
    account = services.create_service_account(
        actor="test", customer=customer, plan=plan, username="achieng", password="pw",
        status="active",
    )  # fmt: skip
    return account


def used_up(account):
    """11 GB of the 10 GB cap this period: blocked (the plan has no FUP speeds)."""
    now = timezone.now()
    UsageMeter.objects.get_or_create(service_account=account)
    UsagePeriod.objects.create(
        service_account=account, period_start=fup.period_start(account, now), bytes_out=11 * fup.GB
    )
    fup.evaluate([account.pk], now=now)
    assert UsageMeter.objects.get(service_account=account).fup_level == "blocked"


def url(account):
    return f"/accounts/{account.pk}/top-up/"


def post(alpha, role, account, data, capture):
    with capture(execute=True):
        return alpha.client(alpha.people[role]).post(url(account), data)


def test_a_charged_top_up_invoices_the_pack_and_restores_full_speed(
    alpha, account, django_capture_on_commit_callbacks
):
    used_up(account)
    page = alpha.client(alpha.owner).get(url(account)).content.decode()
    assert "5 GB" in page and "KES 250.00" in page and "Free (goodwill)" in page
    response = post(
        alpha, Role.FINANCE, account, {"how": "charge"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 302 and response["Location"] == f"/accounts/{account.pk}/"
    top_up = DataTopUp.objects.get(service_account=account)
    assert top_up.gigabytes == PACK_GB and "finance" in top_up.created_by
    assert UsageMeter.objects.get(service_account=account).fup_level == "full"  # 11 of 15 GB
    invoice = Invoice.objects.get(customer=account.customer, service_account=account)
    assert invoice.total == PACK_PRICE and invoice.vat == Decimal("34.48")  # 16 % inclusive
    assert invoice.status == "open" and invoice.due_on > invoice.issued_on
    assert invoice.lines.get().description.startswith("5 GB data top-up")
    assert billing.customer_balance(account.customer) == PACK_PRICE


def test_a_charged_top_up_is_paid_from_credit_the_customer_holds(
    alpha, account, django_capture_on_commit_callbacks
):
    billing.record_payment(account.customer, "300.00", actor="test", reference="CASH1")
    post(alpha, Role.SUPPORT, account, {"how": "charge"}, django_capture_on_commit_callbacks)
    invoice = Invoice.objects.get(customer=account.customer, service_account=account)
    assert invoice.status == "paid" and invoice.amount_paid == PACK_PRICE
    assert billing.customer_balance(account.customer) == Decimal("-50.00")


def test_a_free_top_up_needs_a_reason_and_is_audited_with_who_gave_it(
    alpha, account, django_capture_on_commit_callbacks
):
    used_up(account)
    free = {"how": "free", "reason": " "}
    refused = post(alpha, Role.SUPPORT, account, free, django_capture_on_commit_callbacks)
    assert (
        refused.status_code == 400 and "Say why the data is given free" in refused.content.decode()
    )
    assert not DataTopUp.objects.filter(service_account=account).exists()

    reason = "Outage on 3 Dec at Kibera tower"
    response = post(
        alpha, Role.SUPPORT, account, {"how": "free", "reason": reason},
        django_capture_on_commit_callbacks,
    )  # fmt: skip
    assert response.status_code == 302
    assert DataTopUp.objects.get(service_account=account).gigabytes == PACK_GB
    assert not Invoice.objects.filter(customer=account.customer).exists()
    assert billing.customer_balance(account.customer) == 0
    assert UsageMeter.objects.get(service_account=account).fup_level == "full"
    entry = AuditEntry.objects.filter(changes__has_key="data_top_up_free").get()
    assert reason in entry.changes["data_top_up_free"][1]
    assert entry.actor == alpha.people[Role.SUPPORT]


def test_finance_may_sell_but_not_give_and_technicians_neither(
    alpha, account, django_capture_on_commit_callbacks
):
    page = alpha.client(alpha.people[Role.FINANCE]).get(url(account)).content.decode()
    assert "Free (goodwill)" not in page
    response = post(
        alpha, Role.FINANCE, account, {"how": "free", "reason": "friend"},
        django_capture_on_commit_callbacks,
    )  # fmt: skip
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    technician = alpha.client(alpha.people[Role.TECHNICIAN])
    assert technician.get(url(account)).status_code == 403
    assert technician.post(url(account), {"how": "charge"}).status_code == 403
    assert not DataTopUp.objects.filter(service_account=account).exists()


def test_bad_input_and_accounts_without_a_pack_change_nothing(
    alpha, account, django_capture_on_commit_callbacks
):
    owner = alpha.client(alpha.owner)
    for data in ({}, {"how": "sell twice"}, {"how": ""}):
        response = owner.post(url(account), data)
        assert response.status_code == 400, data
    assert owner.post("/accounts/999999/top-up/", {"how": "charge"}).status_code == 404
    plain = Plan.objects.create(
        name="Unlimited 10M", price="1500.00", download_kbps=10_000, upload_kbps=5_000
    )
    services.change_plan(account, plain, actor="test")
    response = owner.post(url(account), {"how": "charge"}, follow=True)
    assert response.status_code == 200
    assert "No top-up for this account" in response.content.decode()
    assert not DataTopUp.objects.filter(service_account=account).exists()
    assert not Invoice.objects.filter(customer=account.customer).exists()


def test_a_terminated_account_gets_no_top_up(alpha, account):
    services.change_status(account, "terminated", actor="test", reason="Moved away")
    response = alpha.client(alpha.owner).post(url(account), {"how": "charge"})
    assert response.status_code == 302
    assert not DataTopUp.objects.filter(service_account=account).exists()


def test_the_pack_total_adds_vat_where_prices_exclude_it(in_alpha):
    from billing.models import BillingSettings

    cfg = BillingSettings.load()
    cfg.vat_inclusive = False
    cfg.save()
    assert sales.total(PACK_PRICE) == Decimal("290.00")


def test_the_plan_form_takes_the_pack_both_fields_or_neither(alpha, in_alpha):
    owner = alpha.client(alpha.owner)
    base = {
        "name": "Capped 50M", "price": "3000", "cycle": "monthly", "billing": "prepaid",
        "service": "pppoe", "download_kbps": "50M", "upload_kbps": "20M", "burst_seconds": "8",
        "is_active": "on",
    }  # fmt: skip
    response = owner.post("/plans/new/", {**base, "data_cap_gb": "100", "top_up_gb": "10"})
    assert response.status_code in (200, 400)
    assert "give both the pack" in response.content.decode()
    response = owner.post(
        "/plans/new/", {**base, "top_up_gb": "10", "top_up_price": "300"}
    )  # no cap
    assert "a top-up pack needs a data cap" in response.content.decode()
    assert not Plan.objects.filter(name="Capped 50M").exists()
    response = owner.post(
        "/plans/new/", {**base, "data_cap_gb": "100", "top_up_gb": "10", "top_up_price": "300"}
    )
    assert response.status_code == 302
    plan = Plan.objects.get(name="Capped 50M")
    assert (plan.top_up_gb, plan.top_up_price) == (10, Decimal("300.00"))


def test_a_bought_pack_is_paid_by_its_own_payment_not_the_oldest_bill(
    alpha, account, django_capture_on_commit_callbacks
):
    """The money of a pack bought by M-Pesa settles the pack's invoice, even with an
    older bill open: no reminder for a pack that was paid, the old bill still owed."""
    old = billing.charge_once(account.customer, "2000.00", actor="test", reason="March")
    with django_capture_on_commit_callbacks(execute=True):
        row, entry = top_ups.buy(
            account, amount=Decimal("250.00"), reference="UAB12CD34E", actor="M-Pesa"
        )
    assert row.gigabytes == PACK_GB and entry.amount == Decimal("-250.00")
    pack_invoice = Invoice.objects.get(service_account=account)
    assert pack_invoice.status == "paid" and pack_invoice.due_on == pack_invoice.issued_on
    old.refresh_from_db()
    assert old.status == "open" and old.amount_paid == 0
    assert billing.customer_balance(account.customer) == Decimal("2000.00")
    # Money short of the pack buys nothing and records nothing.
    with pytest.raises(top_ups.TopUpError, match="does not pay for the pack"):
        top_ups.buy(account, amount=Decimal("249.00"), reference="UAB12CD34F", actor="M-Pesa")
    assert DataTopUp.objects.filter(service_account=account).count() == 1
    assert billing.customer_balance(account.customer) == Decimal("2000.00")
