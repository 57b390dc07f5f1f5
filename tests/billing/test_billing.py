"""Billing: proration, VAT, the ledger's invariant, runs that bill once, discounts that
end, prepaid expiry, settlement."""

import threading
from datetime import date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import periods, services
from billing.models import BillingSettings, ChargedPeriod, Invoice, LedgerEntry
from subscribers import services as subscribers
from subscribers.models import Discount, Plan

D = Decimal


# --- proration and periods: worked cases ---------------------------------------------


@pytest.mark.parametrize(
    "price,used,days,expected",
    [
        ("3000", 31, 31, "3000.00"),  # a whole 31-day month
        ("3000", 15, 30, "1500.00"),  # half of a 30-day month
        ("3000", 10, 31, "967.74"),  # 967.741.. rounds down
        ("2500", 12, 31, "967.74"),  # 967.7419.. rounds down
        ("1000", 1, 28, "35.71"),  # a day of February 2026
        ("1000", 1, 29, "34.48"),  # a day of February 2024 (leap)
        ("1999", 14, 29, "965.03"),  # 964.9999.. rounds half-up... to .03? see below
        ("100", 1, 3, "33.33"),
        ("200", 1, 3, "66.67"),  # 66.666.. rounds up
        ("5", 1, 8, "0.63"),  # 0.625 rounds half-up
    ],
)
def test_proration_worked_cases(price, used, days, expected):
    assert periods.prorate(D(price), used, days) == D(expected)


def test_proration_worked_case_check():
    # 1999 x 14 / 29 = 965.0344..: two decimals, half-up.
    assert periods.prorate(D("1999"), 14, 29) == D("965.03")


@pytest.mark.parametrize(
    "anchor,day,expected",
    [
        (date(2026, 1, 31), date(2026, 2, 28), (date(2026, 2, 28), date(2026, 3, 31))),
        (date(2026, 1, 31), date(2026, 4, 15), (date(2026, 3, 31), date(2026, 4, 30))),
        (date(2024, 1, 31), date(2024, 2, 29), (date(2024, 2, 29), date(2024, 3, 31))),
        (date(2026, 3, 10), date(2026, 3, 10), (date(2026, 3, 10), date(2026, 4, 10))),
        (date(2026, 3, 10), date(2026, 12, 9), (date(2026, 11, 10), date(2026, 12, 10))),
        (date(2025, 12, 15), date(2026, 1, 20), (date(2026, 1, 15), date(2026, 2, 15))),
    ],
)
def test_anniversary_periods(anchor, day, expected):
    assert periods.period_containing("monthly", anchor, day) == expected


def test_fixed_day_first_period_is_partial_and_prorated():
    start, end = periods.period_containing(
        "monthly", date(2026, 1, 20), date(2026, 1, 20), fixed_day=1
    )
    assert (start, end) == (date(2026, 1, 20), date(2026, 2, 1))
    assert periods.full_period_days("monthly", start, date(2026, 1, 20), 1) == 31
    assert periods.prorate(D("3100"), (end - start).days, 31) == D("1200.00")


@pytest.mark.parametrize(
    "amount,rate,inclusive,expected",
    [
        ("2500", "16", True, ("2155.17", "344.83", "2500.00")),
        ("2500", "16", False, ("2500.00", "400.00", "2900.00")),
        ("999.99", "16", True, ("862.06", "137.93", "999.99")),
        ("999.99", "16", False, ("999.99", "160.00", "1159.99")),
        ("0.05", "16", False, ("0.05", "0.01", "0.06")),  # 0.008 rounds up
        ("1000", "0", True, ("1000.00", "0.00", "1000.00")),
    ],
)
def test_vat_inclusive_and_exclusive_rounding(amount, rate, inclusive, expected):
    assert periods.split_vat(D(amount), D(rate), inclusive) == tuple(D(x) for x in expected)


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def postpaid(in_alpha):
    return Plan.objects.create(
        name="Biz 20M",
        price=D("3000.00"),
        billing="postpaid",
        download_kbps=20_000,
        upload_kbps=10_000,
    )


@pytest.fixture
def prepaid(in_alpha):
    return Plan.objects.create(
        name="Home 10M",
        price=D("2500.00"),
        billing="prepaid",
        download_kbps=10_000,
        upload_kbps=5_000,
    )


def make_active(plan, *, on: date, name="Akinyi", phone="0712000001"):
    customer = subscribers.create_customer(actor="t", name=name, phone=phone)
    with time_machine.travel(
        datetime(on.year, on.month, on.day, 9, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        account = subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username=f"u-{name.lower()}", status="active"
        )
    return account


# --- runs -----------------------------------------------------------------------------


def test_a_rerun_for_the_same_day_bills_once(postpaid):
    account = make_active(postpaid, on=date(2026, 3, 10))
    first = services.run_billing(date(2026, 3, 10), actor="t")
    again = services.run_billing(date(2026, 3, 10), actor="t")
    assert (first.invoice_count, again.invoice_count) == (1, 0)
    invoice = Invoice.objects.get(service_account=account)
    assert invoice.total == D("3000.00") and invoice.vat == D("413.79")
    assert invoice.period_start == date(2026, 3, 10)
    assert invoice.period_end == date(2026, 4, 9)
    assert services.customer_balance(account.customer) == D("3000.00")


def test_missed_days_catch_up_each_period_once(postpaid):
    account = make_active(postpaid, on=date(2026, 1, 31))
    services.run_billing(date(2026, 4, 1), actor="t")
    starts = list(
        ChargedPeriod.objects.filter(service_account=account).values_list("period_start", flat=True)
    )
    assert starts == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    numbers = list(Invoice.objects.order_by("id").values_list("number", flat=True))
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_invoice_numbers_are_gapless(postpaid):
    for n in range(5):
        make_active(postpaid, on=date(2026, 3, 1), name=f"N{n}", phone=f"071200010{n}")
    services.run_billing(date(2026, 3, 1), actor="t")
    numbers = [int(n.split("-")[1]) for n in Invoice.objects.values_list("number", flat=True)]
    assert sorted(numbers) == list(range(min(numbers), min(numbers) + 5))


def test_a_discount_stops_at_its_end_date(postpaid):
    account = make_active(postpaid, on=date(2026, 3, 1))
    Discount.objects.create(
        service_account=account,
        kind="percent",
        value=D("10"),
        reason="Launch offer",
        starts_on=date(2026, 3, 1),
        ends_on=date(2026, 4, 15),
    )
    services.run_billing(date(2026, 5, 1), actor="t")
    totals = dict(
        Invoice.objects.filter(service_account=account).values_list("period_start", "total")
    )
    assert totals == {
        date(2026, 3, 1): D("2700.00"),
        # Discounts count by day: 1-15 April of 30 days at 10 %.
        date(2026, 4, 1): D("2850.00"),
        date(2026, 5, 1): D("3000.00"),
    }


def test_fixed_day_billing_prorates_the_first_period(postpaid):
    cfg = BillingSettings.load()
    cfg.anchor, cfg.fixed_day = BillingSettings.Anchor.FIXED_DAY, 1
    cfg.save()
    account = make_active(postpaid, on=date(2026, 1, 20))
    services.run_billing(date(2026, 2, 1), actor="t")
    totals = list(
        Invoice.objects.filter(service_account=account)
        .order_by("period_start")
        .values_list("period_start", "total")
    )
    assert totals == [(date(2026, 1, 20), D("1161.29")), (date(2026, 2, 1), D("3000.00"))]


def test_vat_exclusive_invoices_add_the_tax(postpaid):
    cfg = BillingSettings.load()
    cfg.vat_inclusive = False
    cfg.save()
    account = make_active(postpaid, on=date(2026, 3, 1))
    services.run_billing(date(2026, 3, 1), actor="t")
    invoice = Invoice.objects.get(service_account=account)
    assert (invoice.subtotal, invoice.vat, invoice.total) == (
        D("3000.00"),
        D("480.00"),
        D("3480.00"),
    )


@pytest.mark.parametrize(
    "new_price,kind,amount",
    [("4500.00", "charge", "750.00"), ("1500.00", "credit_note", "-750.00")],
)
def test_mid_cycle_plan_change_credits_the_old_and_charges_the_new(
    postpaid, new_price, kind, amount
):
    account = make_active(postpaid, on=date(2026, 4, 1))  # April has 30 days
    services.run_billing(date(2026, 4, 1), actor="t")
    other = Plan.objects.create(
        name=f"Other {new_price}",
        price=D(new_price),
        billing="postpaid",
        download_kbps=1,
        upload_kbps=1,
    )
    with time_machine.travel(
        datetime(2026, 4, 16, 10, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        subscribers.change_plan(account, other, actor="t")
    # 15 of 30 days left: old credit 1500, new charge new_price / 2.
    entry = LedgerEntry.objects.filter(customer=account.customer).order_by("-id").first()
    assert (entry.kind, entry.amount) == (kind, D(amount))


def test_termination_credits_the_unused_days(postpaid):
    account = make_active(postpaid, on=date(2026, 4, 1))
    services.run_billing(date(2026, 4, 1), actor="t")
    with time_machine.travel(
        datetime(2026, 4, 21, 10, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        subscribers.change_status(account, "terminated", actor="t", reason="Moved")
    # Days 21..30 of April unused: 10/30 of 3000.
    assert services.customer_balance(account.customer) == D("2000.00")


# --- the ledger -----------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["charge", "payment", "credit_note", "refund", "adjustment"]),
        st.decimals(
            min_value=D("-5000"),
            max_value=D("5000"),
            places=2,
            allow_nan=False,
            allow_infinity=False,
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_balance_is_always_the_sum_of_the_entries(in_alpha, ops):
    customer = subscribers.create_customer(actor="t", name="Invariant", phone="0712000999")
    expected = D("0.00")
    with transaction.atomic():
        for kind, raw in ops:
            amount = abs(raw) if kind != "adjustment" else raw
            try:
                entry = services.record_entry(customer, kind, amount, actor="t", description=kind)
            except services.BillingError:
                assert amount == 0
                continue
            expected += entry.amount
            assert (entry.amount > 0) == (
                kind in ("charge", "refund") or (kind == "adjustment" and raw > 0)
            )
        assert services.customer_balance(customer) == expected
        rows = services.statement(customer)
        assert (rows[-1][1] if rows else D("0.00")) == expected
        transaction.set_rollback(True)


def test_ledger_entries_cannot_be_changed_or_deleted(in_alpha):
    customer = subscribers.create_customer(actor="t", name="Immutable", phone="0712000998")
    entry = services.record_entry(customer, "charge", D("100"), actor="t", description="x")
    with pytest.raises(DatabaseError, match="never changed or deleted"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=D("1"))
    with pytest.raises(DatabaseError, match="never changed or deleted"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    assert services.customer_balance(customer) == D("100.00")


def test_wrong_signs_are_refused(in_alpha):
    customer = subscribers.create_customer(actor="t", name="Signs", phone="0712000997")
    with pytest.raises(services.BillingError):
        services.record_entry(customer, "payment", D("-5"), actor="t", description="x")
    with pytest.raises(services.BillingError):
        services.record_entry(customer, "adjustment", D("0"), actor="t", description="x")
    assert not LedgerEntry.objects.filter(customer=customer).exists()


# --- prepaid --------------------------------------------------------------------------


def test_prepaid_payment_extends_from_the_later_of_now_and_expiry(prepaid):
    with time_machine.travel(
        datetime(2026, 3, 10, 12, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        account = make_active(prepaid, on=date(2026, 3, 10))
        account.refresh_from_db()
        services.record_payment(account.customer, D("2500"), actor="t", reference="MP1")
        account.refresh_from_db()
        assert timezone.localtime(account.expires_at).date() == date(2026, 4, 10)
        # Paid early again: the new month starts at the current expiry, not today.
        services.record_payment(account.customer, D("2500"), actor="t", reference="MP2")
        account.refresh_from_db()
        assert timezone.localtime(account.expires_at).date() == date(2026, 5, 10)
    # Lapsed: a payment long after expiry counts from the day it arrives.
    with time_machine.travel(
        datetime(2026, 6, 1, 8, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        services.record_payment(account.customer, D("2500"), actor="t", reference="MP3")
        account.refresh_from_db()
        assert timezone.localtime(account.expires_at).date() == date(2026, 7, 1)
    assert services.customer_balance(account.customer) == D("0.00")


def test_a_part_payment_is_held_as_credit_by_default(prepaid):
    account = make_active(prepaid, on=date(2026, 3, 10))
    before = account.expires_at
    services.record_payment(account.customer, D("1000"), actor="t", reference="P1")
    account.refresh_from_db()
    assert account.expires_at == before
    assert services.customer_balance(account.customer) == D("-1000.00")
    services.record_payment(account.customer, D("1500"), actor="t", reference="P2")
    account.refresh_from_db()
    assert account.expires_at > (before or timezone.now())


def test_a_part_payment_extends_in_proportion_when_set(prepaid):
    cfg = BillingSettings.load()
    cfg.prepaid_partial = BillingSettings.Partial.PRORATE
    cfg.save()
    with time_machine.travel(
        datetime(2026, 4, 1, 12, tzinfo=timezone.get_current_timezone()), tick=False
    ):
        account = make_active(prepaid, on=date(2026, 4, 1))
        services.record_payment(account.customer, D("1250"), actor="t", reference="H1")
        account.refresh_from_db()
        assert timezone.localtime(account.expires_at).date() == date(2026, 4, 16)


def test_payment_settles_and_restores_a_suspended_prepaid_account(prepaid):
    account = make_active(prepaid, on=date(2026, 3, 10))
    subscribers.change_status(account, "suspended", actor="t", reason="Expired")
    services.record_payment(account.customer, D("2500"), actor="t", reference="R1")
    account.refresh_from_db()
    assert account.status == "active" and account.expires_at > timezone.now()


def test_payment_allocates_to_the_oldest_open_invoice_and_restores(postpaid):
    account = make_active(postpaid, on=date(2026, 1, 1))
    services.run_billing(date(2026, 2, 1), actor="t")
    subscribers.change_status(account, "suspended", actor="t", reason="Unpaid")
    services.record_payment(account.customer, D("3000"), actor="t", reference="A1")
    invoices = list(Invoice.objects.filter(customer=account.customer).order_by("period_start"))
    assert [i.status for i in invoices] == ["paid", "open"]
    account.refresh_from_db()
    assert account.status == "suspended"  # February's invoice is still open (and overdue)
    services.record_payment(account.customer, D("3000"), actor="t", reference="A2")
    account.refresh_from_db()
    assert account.status == "active"


def test_void_invoice_credits_its_charge(postpaid):
    account = make_active(postpaid, on=date(2026, 3, 1))
    services.run_billing(date(2026, 3, 1), actor="t")
    invoice = Invoice.objects.get(service_account=account)
    services.void_invoice(invoice, actor="t", reason="Billed in error")
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert services.customer_balance(account.customer) == D("0.00")
    with pytest.raises(services.BillingError, match="already void"):
        services.void_invoice(invoice, actor="t", reason="again")


def test_voiding_an_unpaid_invoice_does_not_pay_another(postpaid):
    account = make_active(postpaid, on=date(2026, 3, 1))
    for month in (3, 4):
        services.run_billing(date(2026, month, 1), actor="t")
    march, april = Invoice.objects.filter(service_account=account).order_by("period_start")
    services.void_invoice(march, actor="t", reason="Billed in error")
    april.refresh_from_db()
    assert (april.status, april.amount_paid) == ("open", D("0.00"))
    assert services.unallocated_credit(account.customer) == D("0.00")
    assert services.customer_balance(account.customer) == april.total


def test_voiding_a_paid_invoice_turns_its_payment_into_credit(postpaid):
    account = make_active(postpaid, on=date(2026, 3, 1))
    services.run_billing(date(2026, 3, 1), actor="t")
    march = Invoice.objects.get(service_account=account)
    services.record_payment(account.customer, march.total, actor="t", reference="R1")
    services.void_invoice(march, actor="t", reason="Billed in error")
    assert services.unallocated_credit(account.customer) == march.total
    services.run_billing(date(2026, 4, 1), actor="t")
    april = Invoice.objects.invoices().get(service_account=account, status="paid")  # credit paid it
    assert april.amount_paid == april.total


def test_aged_debt_buckets(postpaid):
    account = make_active(postpaid, on=date(2026, 1, 1))
    for month in (1, 2, 3):
        services.run_billing(date(2026, month, 1), actor="t")
    buckets = services.aged_debt(date(2026, 3, 20))
    # Jan due 8 Jan (71 days late), Feb due 8 Feb (40), Mar due 8 Mar (12).
    assert buckets["61-90"] == D("3000.00") and buckets["31-60"] == D("3000.00")
    assert buckets["1-30"] == D("3000.00") and buckets["current"] == D("0.00")
    assert account.pk


# --- two runs at once -------------------------------------------------------------------


@pytest.mark.committed
def test_two_concurrent_runs_for_the_same_day_bill_once(django_db_blocker):
    from ispops.tenancy.services import create_isp

    schema = "conc_runs"
    with django_db_blocker.unblock():
        isp, _ = create_isp(
            schema=schema,
            name="Concurrency",
            domain="conc-runs.localhost",
            owner_email="o@conc.test",
            owner_password="conc-pass-2026-x",
        )
        try:
            with tenant_context(isp):
                plan = Plan.objects.create(
                    name="P", price=D("1000"), billing="postpaid", download_kbps=1, upload_kbps=1
                )
                for n in range(60):
                    make_active(plan, on=date(2026, 3, 1), name=f"C{n}", phone=f"07120{n:05d}")
            errors = []

            def run():
                try:
                    with tenant_context(isp):
                        services.run_billing(date(2026, 3, 1), actor="thread", chunk=7)
                except Exception as exc:  # reported by the assertion below
                    errors.append(exc)
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=run) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert errors == []
            with tenant_context(isp):
                assert Invoice.objects.count() == 60
                assert ChargedPeriod.objects.count() == 60
                numbers = sorted(
                    int(n.split("-")[1]) for n in Invoice.objects.values_list("number", flat=True)
                )
                assert numbers == list(range(1, 61))
                assert LedgerEntry.objects.count() == 60
        finally:
            connection.set_schema_to_public()
            isp.delete(force_drop=True)


def test_run_billing_command_twice_bills_once(postpaid, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    make_active(postpaid, on=date(2026, 3, 1))
    call_command("run_billing", "--schema", "alpha", "--date", "2026-03-01")
    call_command("run_billing", "--schema", "alpha", "--date", "2026-03-01")
    out = capsys.readouterr().out.strip().splitlines()
    assert "1 invoices, KES 3000.00" in out[0] and "0 invoices" in out[1]
    with pytest.raises(CommandError, match="bad --date"):
        call_command("run_billing", "--schema", "alpha", "--date", "01/03/2026")
