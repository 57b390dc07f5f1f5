"""Dunning: reminders on the right days, soft then hard suspension once each, holds
(exemptions, promises to pay), payment stopping the sequence, prepaid expiry, the
command, and the dunning page's roles."""

import itertools
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import dunning, dunning_queue
from billing import services as billing
from billing.models import BillingSettings, DunningAction, DunningHold, Invoice
from ispops import urls as tenant_urls
from ispops.audit.models import AuditEntry
from subscribers import services as subscribers
from subscribers.models import Plan

try:
    from ispops.messaging.models import Message
except ImportError:  # messaging is being written elsewhere; the actions still prove it
    Message = None

# The page is served once billing's urls include views_dunning.urls; until then this
# module adds it under the "billing" namespace itself.
try:
    reverse("billing:dunning", urlconf=tenant_urls)
    urlpatterns = [*tenant_urls.urlpatterns]
except NoReverseMatch:
    from billing import views_dunning

    urlpatterns = [path("", include((views_dunning.urls, "billing"))), *tenant_urls.urlpatterns]

_numbers = itertools.count(1)
# Invoices issued on 1 March are due on 8 March (due_days 7). Default policy: reminders
# 3 and 1 days before and 1 and 3 days after; soft after 3 days' grace (11 March); hard
# 14 days later (25 March).
ISSUED = date(2026, 3, 1)
DUE = date(2026, 3, 8)
SOFT_DAY = date(2026, 3, 11)
HARD_DAY = date(2026, 3, 25)


def local(day: date, hour: int = 0) -> datetime:
    """`hour` o'clock in Nairobi on `day`."""
    return timezone.make_aware(datetime.combine(day, time(hour)))


def at(day: date, hour: int = 6):
    """Travel to `hour` o'clock (Nairobi) on `day`, the clock standing still."""
    return time_machine.travel(local(day, hour), tick=False)


def run_on(day: date) -> dunning.DunningReport:
    with at(day):
        return dunning.run_dunning(day, actor="test dunning")


def make_plan(billing_mode="postpaid", price="2500.00"):
    return Plan.objects.create(
        name=f"{billing_mode.title()} {next(_numbers)}",
        price=price,
        billing=billing_mode,
        download_kbps=10_000,
        upload_kbps=5_000,
    )


def make_subscriber(plan, name="Wanjiru Kamau", **account_fields):
    n = next(_numbers)
    customer = subscribers.create_customer(actor="test", name=name, phone=f"0733{n:06d}")
    account = subscribers.create_service_account(
        actor="test",
        customer=customer,
        plan=plan,
        username=f"dun{n}",
        password="pw",
        status="active",
        **account_fields,
    )
    return customer, account


def postpaid_customer(name="Wanjiru Kamau"):
    """A postpaid subscriber activated and billed on 1 March: one open invoice due 8 March."""
    plan = make_plan()
    with at(ISSUED):
        customer, account = make_subscriber(plan, name=name)
        billing.run_billing(ISSUED, actor="test")
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.status, invoice.due_on, invoice.total) == ("open", DUE, Decimal("2500.00"))
    return customer, account, invoice


def reminder_keys(customer) -> set[str]:
    return set(
        DunningAction.objects.filter(customer=customer, step="reminder").values_list(
            "key", flat=True
        )
    )


def message_keys(customer) -> list[str]:
    if Message is None:
        pytest.skip("ispops.messaging is not importable: the DunningAction rows were checked")
    return list(
        Message.objects.filter(customer=customer)
        .order_by("id")
        .values_list("template_key", flat=True)
    )


def status_of(account):
    account.refresh_from_db()
    return account.status, account.suspension


# --- reminders --------------------------------------------------------------------------


def test_each_reminder_goes_out_on_its_own_day_and_on_no_other(in_alpha):
    customer, _, invoice = postpaid_customer()
    sent = {}
    for offset in range(0, 12):  # 1 to 12 March
        day = ISSUED + timedelta(days=offset)
        before = reminder_keys(customer)
        report = run_on(day)
        new = reminder_keys(customer) - before
        assert report.reminders == len(new)
        if new:
            sent[day] = new
    p = f"inv{invoice.pk}"
    assert sent == {
        date(2026, 3, 5): {f"{p}:before:3"},
        date(2026, 3, 7): {f"{p}:before:1"},
        date(2026, 3, 9): {f"{p}:after:1"},
        date(2026, 3, 11): {f"{p}:after:3"},
    }
    assert [k for k in message_keys(customer) if k.startswith("payment_reminder")] == [
        "payment_reminder_before",
        "payment_reminder_before",
        "payment_reminder_after",
        "payment_reminder_after",
    ]


def test_a_reminder_rerun_the_same_day_is_not_sent_twice(in_alpha):
    customer, _, _ = postpaid_customer()
    assert run_on(date(2026, 3, 5)).reminders == 1
    assert run_on(date(2026, 3, 5)).reminders == 0
    assert DunningAction.objects.filter(customer=customer).count() == 1
    assert message_keys(customer).count("payment_reminder_before") == 1


def test_reminder_message_names_the_amount_and_due_date(in_alpha):
    customer, _, _ = postpaid_customer()
    run_on(date(2026, 3, 7))
    if Message is None:
        pytest.skip("ispops.messaging is not importable")
    message = Message.objects.get(customer=customer, template_key="payment_reminder_before")
    assert "2,500.00" in message.body
    assert message.related.startswith("invoice:")


def test_the_isp_reminder_days_are_followed(in_alpha):
    cfg = BillingSettings.load()
    cfg.reminder_days_before, cfg.reminder_days_after = [5], []
    cfg.save()
    customer, _, invoice = postpaid_customer()
    assert run_on(date(2026, 3, 5)).reminders == 0
    assert run_on(date(2026, 3, 3)).reminders == 1
    assert run_on(date(2026, 3, 9)).reminders == 0
    assert reminder_keys(customer) == {f"inv{invoice.pk}:before:5"}


# --- suspension ----------------------------------------------------------------------------


def test_soft_after_grace_then_hard_after_the_further_period_each_once(in_alpha):
    customer, account, invoice = postpaid_customer()
    assert run_on(SOFT_DAY - timedelta(days=1)).soft == 0
    assert status_of(account) == ("active", "")

    first = run_on(SOFT_DAY)
    assert (first.soft, first.hard, first.errors) == (1, 0, [])
    assert status_of(account) == ("suspended", "soft")
    again = run_on(SOFT_DAY)
    assert (again.soft, again.hard, again.reminders) == (0, 0, 0)
    change = account.status_changes.filter(to_status="suspended").get()
    assert change.reason == f"Unpaid invoice {invoice.number}"
    assert change.actor_label == "test dunning"

    assert run_on(HARD_DAY - timedelta(days=1)).hard == 0
    assert status_of(account) == ("suspended", "soft")
    assert run_on(HARD_DAY).hard == 1
    assert status_of(account) == ("suspended", "hard")
    assert run_on(HARD_DAY).hard == 0
    assert run_on(HARD_DAY + timedelta(days=1)).hard == 0

    steps = list(
        DunningAction.objects.filter(customer=customer)
        .exclude(step="reminder")
        .values_list("step", "on_date")
    )
    assert sorted(steps) == [("hard", HARD_DAY), ("soft", SOFT_DAY)]
    keys = message_keys(customer)
    assert keys.count("suspended_soft") == 1
    assert keys.count("suspended_hard") == 1


def test_an_exempt_customer_gets_no_reminders_and_is_not_suspended(alpha, in_alpha):
    customer, account, _ = postpaid_customer()
    with at(ISSUED):
        dunning.add_hold(customer, "exempt", None, "Hospital board", actor=alpha.finance)
    reports = [run_on(ISSUED + timedelta(days=n)) for n in range(0, 30)]
    assert sum(r.reminders for r in reports) == 0
    assert sum(r.soft + r.hard for r in reports) == 0
    assert reports[SOFT_DAY.day - 1].held == 1
    assert status_of(account) == ("active", "")
    assert not DunningAction.objects.filter(customer=customer).exists()


def test_a_promise_to_pay_holds_until_its_date_then_suspension_happens(alpha, in_alpha):
    customer, account, _ = postpaid_customer()
    promised = date(2026, 3, 14)
    with at(date(2026, 3, 9)):
        hold = dunning.add_hold(customer, "promise", promised, "Pays Friday", actor=alpha.owner)
    assert hold.created_by == alpha.owner.email
    held = run_on(SOFT_DAY)
    assert (held.soft, held.held, held.reminders) == (0, 1, 1)  # reminders still go out
    assert run_on(promised).soft == 0
    assert status_of(account) == ("active", "")
    assert run_on(promised + timedelta(days=1)).soft == 1
    assert status_of(account) == ("suspended", "soft")


def test_an_ended_hold_no_longer_holds(alpha, in_alpha):
    customer, _, _ = postpaid_customer()
    run_on(DUE + timedelta(days=1))  # the reminder a suspension needs before it
    with at(SOFT_DAY):
        hold = dunning.add_hold(customer, "exempt", None, "", actor=alpha.owner)
    assert run_on(SOFT_DAY).held == 1
    with at(SOFT_DAY):
        assert dunning.end_hold(hold, actor=alpha.owner) is True
        assert dunning.end_hold(hold, actor=alpha.owner) is False
    assert run_on(SOFT_DAY).soft == 1
    assert (
        AuditEntry.objects.filter(model="billing.dunninghold", object_id=str(hold.pk)).count() == 2
    )


def test_a_paid_invoice_stops_the_sequence(in_alpha):
    customer, account, invoice = postpaid_customer()
    assert run_on(date(2026, 3, 5)).reminders == 1
    with at(date(2026, 3, 6)):
        billing.record_payment(customer, invoice.total, actor="test", reference="QAB12CD34")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    for n in range(6, 30):
        report = run_on(ISSUED + timedelta(days=n))
        assert (report.reminders, report.soft, report.hard) == (0, 0, 0)
    assert status_of(account) == ("active", "")
    assert len(reminder_keys(customer)) == 1


def test_a_payment_after_the_soft_suspension_stops_the_hard_one(in_alpha):
    customer, account, invoice = postpaid_customer()
    run_on(SOFT_DAY)
    with at(SOFT_DAY + timedelta(days=2)):
        billing.record_payment(customer, invoice.total, actor="test", reference="QAB12CD35")
    assert status_of(account) == ("active", "")
    assert run_on(HARD_DAY).hard == 0
    assert status_of(account) == ("active", "")


def test_an_invoice_of_no_account_suspends_every_active_postpaid_account(in_alpha):
    plan = make_plan()
    with at(ISSUED):
        customer, first = make_subscriber(plan)
        second = subscribers.create_service_account(
            actor="test", customer=customer, plan=plan, username="dun-second", status="active"
        )
        Invoice.objects.create(
            number="MAN-1",
            customer=customer,
            issued_on=ISSUED,
            due_on=DUE,
            subtotal=Decimal("862.07"),
            vat=Decimal("137.93"),
            total=Decimal("1000.00"),
            vat_rate=Decimal("16.00"),
            vat_inclusive=True,
        )
    run_on(DUE + timedelta(days=1))  # the reminder a suspension needs before it
    assert run_on(SOFT_DAY).soft == 2
    assert status_of(first) == status_of(second) == ("suspended", "soft")


# --- prepaid ----------------------------------------------------------------------------


def test_prepaid_expiry_reminders_then_soft_after_grace_then_hard(in_alpha):
    expiry = local(date(2026, 3, 10), 12)
    with at(ISSUED):
        customer, account = make_subscriber(make_plan("prepaid", "1000.00"), expires_at=expiry)
    reports = {}
    for n in range(0, 15):  # 1 to 15 March
        day = ISSUED + timedelta(days=n)
        reports[day] = run_on(day)
    reminded = [day for day, r in reports.items() if r.reminders]
    assert reminded == [date(2026, 3, 7), date(2026, 3, 9)]
    assert reminder_keys(customer) == {
        f"acct{account.pk}:expiry:2026-03-10:3",
        f"acct{account.pk}:expiry:2026-03-10:1",
    }
    # Expired on the 10th, 3 days' grace: suspended once more than 3 days have passed.
    suspended = [day for day, r in reports.items() if r.soft]
    assert suspended == [date(2026, 3, 14)]
    assert status_of(account) == ("suspended", "soft")
    change = account.status_changes.filter(to_status="suspended").get()
    assert change.reason == "Prepaid period ended 10 Mar 2026 12:00"
    assert run_on(date(2026, 3, 27)).hard == 0
    assert run_on(date(2026, 3, 28)).hard == 1
    assert status_of(account) == ("suspended", "hard")
    keys = message_keys(customer)
    assert keys.count("expiry_reminder") == 2
    assert keys.count("suspended_soft") == keys.count("suspended_hard") == 1


def test_a_renewed_prepaid_account_is_left_alone(in_alpha):
    expiry = local(date(2026, 3, 10), 12)
    with at(ISSUED):
        customer, account = make_subscriber(make_plan("prepaid", "1000.00"), expires_at=expiry)
    with at(date(2026, 3, 12)):
        billing.record_payment(customer, "1000.00", actor="test", reference="QAB12CD36")
    account.refresh_from_db()
    assert account.expires_at > local(date(2026, 4, 1))
    assert run_on(date(2026, 3, 14)).soft == 0
    assert status_of(account) == ("active", "")


# --- the queue and holds ------------------------------------------------------------------


def test_the_queue_says_who_is_next_why_and_when(alpha, in_alpha):
    customer, account, invoice = postpaid_customer("Achieng Otieno")
    other, other_account, _ = postpaid_customer("Baraka Mwangi")
    with at(date(2026, 3, 6)):
        dunning.add_hold(other, "promise", date(2026, 3, 12), "", actor=alpha.owner)
        rows = dunning_queue.upcoming(date(2026, 3, 6))
    assert [(r["customer"], r["account"], r["step"], r["on"]) for r in rows] == [
        (customer, account, "soft", SOFT_DAY),
        (other, other_account, "soft", date(2026, 3, 13)),
    ]
    assert rows[0]["reason"] == f"Invoice {invoice.number} overdue since 09 Mar 2026"
    assert rows[0]["amount"] == Decimal("2500.00")
    assert rows[0]["hold"] is None and rows[1]["hold"].kind == "promise"
    # Once soft-suspended, the hard step is what comes next.
    run_on(DUE + timedelta(days=1))
    run_on(SOFT_DAY)
    with at(date(2026, 3, 20)):
        rows = dunning_queue.upcoming(date(2026, 3, 20))
    hard = [r for r in rows if r["customer"] == customer]
    assert [(r["step"], r["on"]) for r in hard] == [("hard", HARD_DAY)]


def test_a_promise_needs_a_date_that_has_not_passed(alpha, in_alpha):
    customer, _, _ = postpaid_customer()
    with at(date(2026, 3, 9)):
        with pytest.raises(dunning.DunningError, match="needs the date"):
            dunning.add_hold(customer, "promise", None, "", actor=alpha.owner)
        with pytest.raises(dunning.DunningError, match="has passed"):
            dunning.add_hold(customer, "promise", date(2026, 3, 8), "", actor=alpha.owner)
    assert not DunningHold.objects.exists()


# --- the command --------------------------------------------------------------------------


def test_command_prints_one_summary_line(alpha, in_alpha):
    postpaid_customer()
    out = StringIO()
    with at(date(2026, 3, 5)):
        call_command("run_dunning", "--schema", "alpha", "--date", "2026-03-05", stdout=out)
    assert out.getvalue().strip() == (
        "Dunning 2026-03-05: 1 reminders, 0 soft, 0 hard, 0 held, 0 errors"
    )


@pytest.mark.parametrize("bad", ["2026-02-30", "5 March", "20260305"])
def test_command_refuses_a_bad_date_in_one_line(alpha, bad):
    with pytest.raises(CommandError, match=r"^bad date .*: use YYYY-MM-DD$"):
        call_command("run_dunning", "--schema", "alpha", "--date", bad, stdout=StringIO())


# --- the page -------------------------------------------------------------------------------

pytest_urls = pytest.mark.urls("tests.billing.test_dunning")


@pytest.fixture
def overdue(alpha):
    with tenant_context(alpha.isp):
        customer, _, _ = postpaid_customer("Chebet Kiprop")
    return customer


@pytest_urls
@pytest.mark.parametrize("role", ["owner", "admin", "finance", "support"])
def test_staff_who_deal_with_debt_see_the_queue(alpha, overdue, role):
    with at(date(2026, 3, 9), hour=10):
        response = alpha.client(alpha.people[role]).get("/billing/dunning/")
    assert response.status_code == 200
    assert "Chebet Kiprop" in response.content.decode()
    shows_forms = 'action="/billing/dunning/holds/"' in response.content.decode()
    assert shows_forms == (role != "support")


@pytest_urls
def test_a_technician_cannot_open_the_dunning_page(alpha):
    assert alpha.client(alpha.technician).get("/billing/dunning/").status_code == 403


@pytest_urls
@pytest.mark.parametrize("role", ["owner", "admin", "finance"])
def test_finance_and_managers_record_a_promise_to_pay(alpha, overdue, role):
    with at(date(2026, 3, 9), hour=10):
        response = alpha.client(alpha.people[role]).post(
            "/billing/dunning/holds/",
            {"customer": overdue.account.lower(), "kind": "promise", "until": "2026-03-20"},
        )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        hold = DunningHold.objects.get(customer=overdue)
    assert (hold.kind, hold.until, hold.created_by) == (
        "promise",
        date(2026, 3, 20),
        alpha.people[role].email,
    )


@pytest_urls
def test_support_cannot_record_or_end_a_hold(alpha, overdue):
    client = alpha.client(alpha.support)
    response = client.post(
        "/billing/dunning/holds/", {"customer": overdue.account, "kind": "exempt"}
    )
    assert response.status_code == 403
    with tenant_context(alpha.isp):
        hold = dunning.add_hold(overdue, "exempt", None, "", actor="test")
    assert client.post(f"/billing/dunning/holds/{hold.pk}/end/").status_code == 403
    with tenant_context(alpha.isp):
        hold.refresh_from_db()
        assert hold.ended_at is None


@pytest_urls
def test_a_hold_form_with_an_unknown_account_or_no_date_is_refused(alpha, overdue):
    client = alpha.client(alpha.finance)
    response = client.post("/billing/dunning/holds/", {"customer": "NOPE99", "kind": "exempt"})
    assert response.status_code == 400
    assert "no customer with account NOPE99" in response.content.decode()
    response = client.post(
        "/billing/dunning/holds/", {"customer": overdue.account, "kind": "promise"}
    )
    assert response.status_code == 400
    assert "needs the date" in response.content.decode()
    with tenant_context(alpha.isp):
        assert not DunningHold.objects.exists()


@pytest_urls
def test_finance_ends_a_hold(alpha, overdue):
    with tenant_context(alpha.isp):
        hold = dunning.add_hold(overdue, "exempt", None, "VIP", actor="test")
    response = alpha.client(alpha.finance).post(f"/billing/dunning/holds/{hold.pk}/end/")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        hold.refresh_from_db()
        assert hold.ended_at is not None


@pytest_urls
def test_a_hold_of_another_isp_is_not_found(alpha, beta):
    with tenant_context(beta.isp):
        customer, _ = make_subscriber(make_plan())
        hold = dunning.add_hold(customer, "exempt", None, "", actor="test")
    assert (
        alpha.client(alpha.owner).post(f"/billing/dunning/holds/{hold.pk}/end/").status_code == 404
    )


@pytest_urls
def test_the_page_costs_a_fixed_number_of_queries(alpha, django_assert_max_num_queries):
    with tenant_context(alpha.isp):
        for n in range(6):
            customer, _, _ = postpaid_customer(f"Debtor {n}")
            if n % 2:
                dunning.add_hold(customer, "exempt", None, "", actor="test")
    client = alpha.client(alpha.owner)
    with at(date(2026, 3, 10), hour=10), django_assert_max_num_queries(25):
        response = client.get("/billing/dunning/")
    assert response.content.decode().count("Debtor ") >= 6


@pytest_urls
def test_branch_staff_see_and_hold_only_their_branch(alpha):
    from ispops.staff.models import Branch, User

    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="Dunning east", code="dun-e")
        theirs = Branch.objects.create(name="Dunning west", code="dun-w")
        local_customer, _, _ = postpaid_customer("Esther Local")
        far_customer, _, _ = postpaid_customer("Faraji Far")
        subscribers.update_customer(local_customer, actor="test", branch=mine)
        subscribers.update_customer(far_customer, actor="test", branch=theirs)
        clerk = User.objects.create_user("dunning-clerk@alpha.test", "pw-123456789", role="finance")
        clerk.branches.add(mine)
        far_hold = dunning.add_hold(far_customer, "exempt", None, "", actor="test")
    client = alpha.client(clerk)
    with at(date(2026, 3, 9), hour=10):
        page = client.get("/billing/dunning/").content.decode()
        refused = client.post(
            "/billing/dunning/holds/", {"customer": far_customer.account, "kind": "exempt"}
        )
        not_found = client.post(f"/billing/dunning/holds/{far_hold.pk}/end/")
    assert "Esther Local" in page and "Faraji Far" not in page
    assert refused.status_code == 400
    assert not_found.status_code == 404
