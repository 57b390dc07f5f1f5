"""The money defects an audit found at frozen times (issue 11), each driven through the
real services and commands at the moments it happened, asserting the fair figure.

Plans: Home10 3,100/month postpaid, Home5 1,550, Biz20 6,200, Pre5 1,000/month prepaid;
VAT 16 % inclusive unless stated; anniversary billing, charges paused while suspended,
7 days to pay, 3 grace days, hard suspension 14 days after soft. January 2026 has 31
days, April 30.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.utils import timezone

from billing import dunning, expiry
from billing import services as billing
from billing.models import BillingSettings, Invoice, InvoiceLine
from subscribers import services as subscribers
from subscribers.models import Plan

D = Decimal


def moment(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def at(day: date, hour: int = 9, minute: int = 0):
    return time_machine.travel(moment(day, hour, minute), tick=False)


@pytest.fixture
def plans(in_alpha):
    def plan(name, price, mode="postpaid", cycle="monthly"):
        return Plan.objects.create(
            name=name,
            price=D(price),
            billing=mode,
            cycle=cycle,
            download_kbps=10_000,
            upload_kbps=5_000,
        )

    return {
        "home10": plan("Home10", "3100"),
        "home5": plan("Home5", "1550"),
        "biz20": plan("Biz20", "6200"),
        "pre5": plan("Pre5", "1000", "prepaid"),
        "week": plan("Week8", "800", "postpaid", "weekly"),
        "hour": plan("Hour", "20", "prepaid", "hourly"),
    }


_phones = iter(range(1, 10_000))


def activate(plan, on: date, hour: int = 9, name="Akinyi"):
    with at(on, hour):
        customer = subscribers.create_customer(
            actor="t", name=name, phone=f"0712{next(_phones):06d}"
        )
        account = subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username=f"u{customer.pk}", status="active"
        )
    account.refresh_from_db()
    return account


def bill(day: date):
    with at(day, 1):
        return billing.run_billing(day, actor="t")


def dun(day: date):
    with at(day, 8):
        return dunning.run_dunning(day, actor="t")


def change(account, to, on: date, hour=10, **kw):
    with at(on, hour):
        subscribers.change_status(account, to, actor="t", reason="test", **kw)
    account.refresh_from_db()


def period_net(account, start: date) -> Decimal:
    """What the period starting `start` was charged, net of credits (line amounts)."""
    return InvoiceLine.objects.filter(service_account=account, billing_period=start).aggregate(
        s=Sum("amount")
    )["s"] or D("0.00")


def balance(account) -> Decimal:
    return billing.customer_balance(account.customer)


# 1 -------------------------------------------------------------------------------------


def test_a_prepaid_account_moved_to_postpaid_is_billed_from_the_change_only(plans):
    account = activate(plans["pre5"], date(2026, 1, 1))
    with at(date(2026, 11, 1), 10):
        subscribers.change_plan(account, plans["home10"], actor="t")
    run = bill(date(2026, 11, 1))
    # One invoice, for the first postpaid month only (not one per month since January).
    assert (run.invoice_count, run.amount) == (1, D("3100.00"))
    invoices = Invoice.objects.invoices().filter(service_account=account)
    assert [(i.period_start, i.total) for i in invoices] == [(date(2026, 11, 1), D("3100.00"))]
    assert bill(date(2026, 11, 2)).invoice_count == 0


# 2 -------------------------------------------------------------------------------------


def test_a_restored_account_pays_only_the_days_from_its_restoration(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "suspended", date(2026, 1, 12), suspension="soft")
    assert period_net(account, date(2026, 1, 1)) == D("1100.00")
    for day in (date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)):
        assert bill(day).invoice_count == 0
    with at(date(2026, 4, 15), 10):
        billing.record_payment(account.customer, D("1100"), actor="t", reference="PAY1")
    account.refresh_from_db()
    assert account.status == "active"
    bill(date(2026, 4, 15))
    assert period_net(account, date(2026, 2, 1)) == D("0.00")
    assert period_net(account, date(2026, 3, 1)) == D("0.00")
    assert period_net(account, date(2026, 4, 1)) == D("1653.33")  # 16 of 30 days
    assert balance(account) == D("1653.33")


# 3 -------------------------------------------------------------------------------------


def test_a_postpaid_account_moved_to_prepaid_gets_an_expiry_and_is_suspended(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    with at(date(2026, 1, 10), 10):
        subscribers.change_plan(account, plans["pre5"], actor="t")
    account.refresh_from_db()
    assert account.expires_at == moment(date(2026, 1, 10), 10)
    # Days 10-31 of January are credited on the postpaid invoice: 9 days charged.
    assert period_net(account, date(2026, 1, 1)) == D("900.00")
    cfg = BillingSettings.load()
    assert expiry.enforce_expiry(moment(date(2026, 1, 13), 9), actor="t").suspended == 0
    assert expiry.enforce_expiry(moment(date(2026, 1, 13), 10, 1), actor="t").suspended == 1
    account.refresh_from_db()
    assert (account.status, account.suspension) == ("suspended", "soft")
    assert cfg.grace_days == 3


def test_an_imported_prepaid_row_without_expiry_expires_at_the_import(plans):
    from subscribers.imports import import_subscribers

    text = "account,name,phone,email,plan,username,password,router,status\n"
    text += ",Imported,0712999001,,Pre5,imp1,pw,,active\n"
    with at(date(2026, 3, 1), 12):
        assert import_subscribers(text, actor="t").ok
    account = plans["pre5"].service_accounts.get(username="imp1")
    assert account.expires_at == moment(date(2026, 3, 1), 12)
    assert expiry.enforce_expiry(moment(date(2026, 3, 4), 12, 1), actor="t").suspended == 1


# 4 -------------------------------------------------------------------------------------


def test_a_run_for_a_day_to_come_is_refused_and_changes_nothing(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    with at(date(2026, 1, 5)):
        for command in ("run_dunning", "run_billing"):
            with pytest.raises(CommandError, match="in the future"):
                call_command(
                    command, "--schema", "alpha", "--date", "2026-01-06", stdout=StringIO()
                )
    assert Invoice.objects.filter(service_account=account).count() == 0


def test_a_run_for_a_past_day_acts_as_of_that_day(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    dun(date(2026, 1, 9))  # the reminder on the day after the due date
    with at(date(2026, 2, 20)):
        call_command("run_dunning", "--schema", "alpha", "--date", "2026-01-12", stdout=StringIO())
    account.refresh_from_db()
    assert account.status == "suspended"
    assert timezone.localtime(account.suspended_at).date() == date(2026, 1, 12)
    # Credited from the 12th (as of that day), not from 20 February.
    assert period_net(account, date(2026, 1, 1)) == D("1100.00")


# 5 -------------------------------------------------------------------------------------


def test_a_pause_then_a_termination_credits_the_unused_days_once(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "suspended", date(2026, 1, 12))
    change(account, "terminated", date(2026, 1, 20))
    assert balance(account) == D("1100.00")


def test_a_pause_credit_then_a_void_leaves_nothing_owed(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "suspended", date(2026, 1, 12))
    invoice = Invoice.objects.invoices().get(service_account=account)
    with at(date(2026, 1, 14)):
        billing.void_invoice(invoice, actor="t", reason="goodwill")
    assert balance(account) == D("0.00")
    assert billing.unallocated_credit(account.customer) == D("0.00")


def test_a_void_then_a_termination_leaves_nothing_owed(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    invoice = Invoice.objects.invoices().get(service_account=account)
    with at(date(2026, 1, 3)):
        billing.void_invoice(invoice, actor="t", reason="billed in error")
    change(account, "terminated", date(2026, 1, 5))
    assert balance(account) == D("0.00")


def test_a_downgrade_while_paused_charges_each_plan_for_its_own_billable_days(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "suspended", date(2026, 1, 12))
    with at(date(2026, 1, 15), 10):
        subscribers.change_plan(account, plans["home5"], actor="t")
    change(account, "active", date(2026, 1, 18))
    # Home10 1-11 January (1,100) + Home5 18-31 January (14 days, 700).
    assert period_net(account, date(2026, 1, 1)) == D("1800.00")
    bill(date(2026, 2, 1))
    assert period_net(account, date(2026, 2, 1)) == D("1550.00")
    assert balance(account) == D("3350.00")


# 6 -------------------------------------------------------------------------------------


def test_a_credit_counts_the_discount_that_was_invoiced(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    with at(date(2026, 1, 1)):
        subscribers.add_discount(
            account,
            actor="t",
            kind="percent",
            value=D("50"),
            reason="Staff",
            starts_on=date(2026, 1, 1),
            ends_on=date(2026, 12, 31),
        )
    bill(date(2026, 1, 1))
    assert period_net(account, date(2026, 1, 1)) == D("1550.00")
    change(account, "terminated", date(2026, 1, 16))
    assert balance(account) == D("750.00")  # 15 days at half price


def test_a_credit_uses_the_price_invoiced_not_a_later_one(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    with at(date(2026, 1, 10)):
        billing.set_plan_price(
            plans["home10"], D("4650"), effective_on=date(2026, 1, 11), actor="t"
        )
        with pytest.raises(billing.BillingError, match="at the earliest"):
            billing.set_plan_price(
                plans["home10"], D("4650"), effective_on=date(2026, 1, 10), actor="t"
            )
    change(account, "terminated", date(2026, 1, 16))
    assert balance(account) == D("1500.00")


def test_an_add_on_is_credited_with_its_plan(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    with at(date(2026, 1, 1)):
        subscribers.add_addon(
            account, actor="t", kind="ott", name="TV", price=D("500"), starts_on=date(2026, 1, 1)
        )
    bill(date(2026, 1, 1))
    assert period_net(account, date(2026, 1, 1)) == D("3600.00")
    change(account, "terminated", date(2026, 1, 1), hour=15)
    assert balance(account) == D("0.00")


# 7 -------------------------------------------------------------------------------------


def test_vat_exclusive_credits_carry_the_vat_of_the_invoice(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(vat_inclusive=False)
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    with at(date(2026, 1, 2)):
        billing.record_payment(account.customer, D("3596"), actor="t", reference="JAN")
    bill(date(2026, 2, 1))
    february = Invoice.objects.invoices().get(
        service_account=account, period_start=date(2026, 2, 1)
    )
    assert february.total == D("3596.00")
    change(account, "terminated", date(2026, 2, 1), hour=11)
    assert balance(account) == D("0.00")
    february.refresh_from_db()
    assert february.credit_notes.get().vat == D("-496.00")


# 8 -------------------------------------------------------------------------------------


def test_a_monthly_to_weekly_change_prices_each_side_on_its_own_cycle(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    with at(date(2026, 1, 10), 10):
        subscribers.change_plan(account, plans["week"], actor="t")
    for day in (date(2026, 1, 10), date(2026, 1, 17), date(2026, 1, 24), date(2026, 1, 31)):
        bill(day)
    assert period_net(account, date(2026, 1, 1)) == D("900.00")  # 1-9 January
    weeks = [date(2026, 1, 10), date(2026, 1, 17), date(2026, 1, 24), date(2026, 1, 31)]
    assert [period_net(account, w) for w in weeks] == [D("800.00")] * 4
    # January's own days: 900 + three weeks + 31 January's seventh of a week.
    january = D("900.00") + 3 * D("800.00") + D("800.00") / 7
    assert january.quantize(D("0.01")) == D("3414.29")


# 9 -------------------------------------------------------------------------------------


def test_a_reversed_prepaid_payment_takes_back_the_month_it_bought(plans):
    account = activate(plans["pre5"], date(2026, 3, 1))
    with at(date(2026, 3, 1), 10):
        entry = billing.record_payment(account.customer, D("1000"), actor="t", reference="CHQ1")
    account.refresh_from_db()
    # The term starts at the payment (the account expired at activation, 09:00).
    assert account.expires_at == moment(date(2026, 4, 1), 10)
    with at(date(2026, 3, 5)):
        billing.reverse_payment_entry(entry, actor="t", reason="bounced")
    account.refresh_from_db()
    assert account.expires_at == moment(date(2026, 3, 1), 10)  # where the term began
    assert balance(account) == D("0.00")
    assert expiry.enforce_expiry(moment(date(2026, 3, 5), 10), actor="t").suspended == 1


# 10 ------------------------------------------------------------------------------------


def test_a_customer_restored_and_unpaid_again_is_suspended_again(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    dun(date(2026, 1, 9))
    assert dun(date(2026, 1, 11)).soft == 1
    change(account, "active", date(2026, 1, 12))  # staff re-enable on a promise
    with at(date(2026, 1, 12)):
        dunning.add_hold(account.customer, "promise", date(2026, 1, 15), actor="t")
    assert dun(date(2026, 1, 14)).soft == 0
    assert dun(date(2026, 1, 16)).soft == 1
    account.refresh_from_db()
    assert account.status == "suspended"


def test_prepaid_re_enabled_by_staff_and_still_unpaid_is_suspended_again(plans):
    account = activate(plans["pre5"], date(2026, 3, 1))
    assert expiry.enforce_expiry(moment(date(2026, 3, 4), 10), actor="t").suspended == 1
    change(account, "active", date(2026, 3, 5))
    assert expiry.enforce_expiry(moment(date(2026, 3, 5), 11), actor="t").suspended == 1


# 11 & 12 -------------------------------------------------------------------------------


def test_a_customer_who_paid_what_was_shown_is_not_suspended(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "suspended", date(2026, 1, 12))
    owed = billing.dues(account.customer, date(2026, 1, 12)).owed
    assert owed == D("1100.00")
    with at(date(2026, 1, 13)):
        billing.record_payment(account.customer, owed, actor="t", reference="ALL")
    account.refresh_from_db()
    assert account.status == "active"
    january, restored = Invoice.objects.invoices().filter(service_account=account).order_by("id")
    assert january.outstanding == 0
    # Restored on the 13th: days 13-31 are charged again, due a week later.
    assert (restored.total, restored.due_on) == (D("1900.00"), date(2026, 1, 20))
    assert dun(date(2026, 1, 20)).soft == 0


def test_a_terminated_customer_with_nothing_owed_gets_no_demand_and_no_aged_debt(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(account, "terminated", date(2026, 1, 1), hour=12)
    assert balance(account) == D("0.00")
    report = dun(date(2026, 1, 9))
    assert report.reminders == 0
    assert sum(billing.aged_debt(date(2026, 2, 1)).values()) == D("0.00")


def test_voiding_the_invoice_that_caused_a_suspension_restores_the_account(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    dun(date(2026, 1, 9))
    assert dun(date(2026, 1, 11)).soft == 1
    invoice = Invoice.objects.invoices().get(service_account=account)
    with at(date(2026, 1, 11), 12):
        billing.void_invoice(invoice, actor="t", reason="billed in error")
    account.refresh_from_db()
    assert account.status == "active"
    assert balance(account) == D("0.00")


# 13 ------------------------------------------------------------------------------------


def test_one_payment_for_two_prepaid_lines_renews_each_once(plans):
    first = activate(plans["pre5"], date(2026, 3, 10))
    with at(date(2026, 3, 20)):
        second = subscribers.create_service_account(
            actor="t",
            customer=first.customer,
            plan=plans["pre5"],
            username="second",
            status="active",
        )
    with at(date(2026, 3, 21)):
        billing.record_payment(first.customer, D("2000"), actor="t", reference="BOTH")
    first.refresh_from_db()
    second.refresh_from_db()
    assert timezone.localtime(first.expires_at).date() == date(2026, 4, 21)
    assert timezone.localtime(second.expires_at).date() == date(2026, 4, 21)


# 14 ------------------------------------------------------------------------------------


def test_an_hourly_plan_is_cut_within_minutes_of_its_grace(plans):
    account = activate(plans["hour"], date(2026, 3, 1), hour=10)
    with at(date(2026, 3, 1), 10):
        billing.record_payment(account.customer, D("20"), actor="t", reference="HR1")
    account.refresh_from_db()
    assert account.expires_at == moment(date(2026, 3, 1), 11)
    # One hour's grace for sub-day plans.
    assert expiry.enforce_expiry(moment(date(2026, 3, 1), 11, 59), actor="t").suspended == 0
    assert expiry.enforce_expiry(moment(date(2026, 3, 1), 12, 1), actor="t").suspended == 1


# 15 ------------------------------------------------------------------------------------


def test_monthly_renewals_keep_the_day_they_started_on(plans):
    account = activate(plans["pre5"], date(2026, 1, 31))
    with at(date(2026, 1, 31), 10):
        billing.record_payment(account.customer, D("4000"), actor="t", reference="FOUR")
    account.refresh_from_db()
    assert timezone.localtime(account.expires_at).date() == date(2026, 5, 31)


# 17 ------------------------------------------------------------------------------------


def test_a_catch_up_run_reminds_before_it_suspends(plans):
    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    first = dun(date(2026, 1, 20))  # dunning missed every day since the invoice
    assert (first.reminders, first.soft) == (1, 0)
    assert dun(date(2026, 1, 21)).soft == 1
    account.refresh_from_db()
    assert account.status == "suspended"


# 18 ------------------------------------------------------------------------------------


def test_an_hourly_plan_cannot_be_postpaid(plans):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.create(
            name="Hourly post",
            price=D("20"),
            billing="postpaid",
            cycle="hourly",
            download_kbps=1,
            upload_kbps=1,
        )


# 19 ------------------------------------------------------------------------------------


def test_a_prepaid_upgrade_is_charged_for_the_rest_of_the_paid_month(plans):
    pre10 = Plan.objects.create(
        name="Pre10", price=D("2000"), billing="prepaid", download_kbps=1, upload_kbps=1
    )
    account = activate(plans["pre5"], date(2026, 4, 1))
    with at(date(2026, 4, 1), 9):
        billing.record_payment(account.customer, D("1000"), actor="t", reference="APR")
    with at(date(2026, 4, 16), 9):
        subscribers.change_plan(account, pre10, actor="t")
    # 15 of 30 days left: half of the 1,000 difference.
    assert balance(account) == D("500.00")
    upgrade = Invoice.objects.invoices().filter(service_account=account).order_by("-id").first()
    assert upgrade.total == D("500.00")


def test_an_isp_may_make_upgrades_wait_for_renewal(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(prepaid_upgrade="renewal")
    pre10 = Plan.objects.create(
        name="Pre10", price=D("2000"), billing="prepaid", download_kbps=1, upload_kbps=1
    )
    account = activate(plans["pre5"], date(2026, 4, 1))
    with at(date(2026, 4, 1), 9):
        billing.record_payment(account.customer, D("1000"), actor="t", reference="APR")
    with at(date(2026, 4, 16), 9), pytest.raises(subscribers.SubscriberError, match="renewal"):
        subscribers.change_plan(account, pre10, actor="t")
    account.refresh_from_db()
    assert account.plan == plans["pre5"]
    assert timedelta(0) < account.expires_at - moment(date(2026, 4, 16))


def test_what_to_pay_counts_open_invoices_and_lapsed_prepaid_terms_less_credit(plans):
    postpaid = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    change(postpaid, "suspended", date(2026, 1, 12))
    assert billing.to_pay(postpaid.customer, moment(date(2026, 1, 12), 12)) == D("1100.00")
    prepaid = activate(plans["pre5"], date(2026, 3, 1), name="Baraka")
    with at(date(2026, 3, 1), 10):
        billing.record_payment(prepaid.customer, D("300"), actor="t", reference="PART")
    # Lapsed since activation: a term of 1,000, less the 300 held as credit.
    assert billing.to_pay(prepaid.customer, moment(date(2026, 3, 2), 9)) == D("700.00")


def test_a_price_changed_on_the_plan_page_reaches_periods_from_tomorrow(plans, alpha):
    from django.db import connection

    from tests.subscribers.test_plans import plan_data

    account = activate(plans["home10"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    plan = plans["home10"]
    client = alpha.client(alpha.owner)
    connection.set_tenant(alpha.isp)  # the client's login left the public schema set
    data = plan_data(plan, price="4650", billing="postpaid", download_kbps="10M")
    with at(date(2026, 1, 1), 12):
        response = client.post(f"/plans/{plan.pk}/edit/", data)
    connection.set_tenant(alpha.isp)
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.price == D("4650.00")
    # January began at the old price and keeps it: 15 of 31 days used at 3,100.
    change(account, "terminated", date(2026, 1, 16))
    assert balance(account) == D("1500.00")


def test_a_vat_exclusive_prepaid_term_costs_its_price_plus_vat_and_the_pay_page_asks_it(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(vat_inclusive=False)
    account = activate(plans["pre5"], date(2026, 3, 1))
    # Lapsed since activation: the pay page asks for a term with its VAT.
    assert billing.to_pay(account.customer, moment(date(2026, 3, 1), 10)) == D("1160.00")
    with at(date(2026, 3, 1), 10):
        billing.record_payment(account.customer, D("1000"), actor="t", reference="SHORT")
    account.refresh_from_db()
    # 1,000 does not buy a term of 1,160: held as credit, the account still lapsed.
    assert account.expires_at == moment(date(2026, 3, 1), 9)
    assert billing.to_pay(account.customer, moment(date(2026, 3, 1), 11)) == D("160.00")
    with at(date(2026, 3, 1), 11):
        billing.record_payment(account.customer, D("160"), actor="t", reference="REST")
    account.refresh_from_db()
    assert account.expires_at == moment(date(2026, 4, 1), 11)
    assert balance(account) == D("0.00")
    term = Invoice.objects.get(service_account=account, kind=Invoice.Kind.INVOICE)
    assert (term.subtotal, term.vat, term.total, term.status) == (
        D("1000.00"),
        D("160.00"),
        D("1160.00"),
        Invoice.Status.PAID,
    )


def test_discounts_together_never_take_more_than_the_plan_costs(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(vat_inclusive=False)
    account = activate(plans["biz20"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    for value in ("10", "100"):
        with at(date(2026, 1, 1), 12):
            subscribers.add_discount(
                account,
                actor="t",
                kind="percent",
                value=D(value),
                reason=f"{value} %",
                starts_on=date(2026, 1, 1),
                ends_on=date(2026, 1, 31),
            )
    # 10 % then 100 % of the rest: January is free, not a credit of 620 more.
    assert period_net(account, date(2026, 1, 1)) == D("0.00")
    january = Invoice.objects.get(service_account=account, kind=Invoice.Kind.INVOICE)
    assert january.amount_credited == january.total == D("7192.00")
    assert balance(account) == D("0.00")


def test_credit_notes_never_give_back_more_vat_than_the_invoice_charged(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(vat_inclusive=False)
    account = activate(plans["biz20"], date(2026, 1, 1))
    bill(date(2026, 1, 1))
    with at(date(2026, 1, 2), 10):
        addon = subscribers.add_addon(
            account, actor="t", kind="ott", name="TV", price=D("300"), starts_on=date(2026, 1, 2)
        )
    with at(date(2026, 1, 3), 10):
        subscribers.end_addon(addon, actor="t")
    change(account, "suspended", date(2026, 1, 3))
    # The add-on's invoice (290.32 + 46.45 VAT) is credited by two notes whose VAT,
    # each rounded on its own, came to 46.46: a cent more than it charged.
    tv = Invoice.objects.invoices().get(service_account=account, reason__startswith="Add-on")
    credited = -Invoice.objects.filter(credits=tv).aggregate(s=Sum("total"))["s"]
    assert credited == tv.total == D("336.77")
    # January: 2 days of Biz20 and 1 of the add-on, 409.68 + 65.55 VAT.
    assert balance(account) == D("475.23")
