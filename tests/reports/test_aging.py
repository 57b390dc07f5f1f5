"""Aged receivables at any date (reports.aging over billing.services.outstanding_on) and
the bucket actions, on the scripted January of tests/reports/money_history.py."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import Invoice
from ispops.messaging import preferences
from ispops.messaging.models import Message
from payments import services as payments
from payments.models import Payment
from reports import aging, tasks_money
from reports.models import BucketClaim
from tests.reports import money_history
from tests.reports.money_history import at

D = Decimal
history = money_history.history  # the fixture


def totals(day):
    return {k: v for k, v in aging.report(day)["totals"].items() if v}


def test_aging_on_past_days_follows_the_ledger_of_those_days(history):
    # 6 Jan: Akinyi's cash settled the 3,100, the 2,000 fee is due 10 Jan; Baraka's
    # 1,550 is due 8 Jan: nothing is late yet.
    assert totals(date(2026, 1, 6)) == {"current": D("3550.00")}
    # 15 Jan: both late (5 and 7 days); Baraka's credit note took 550 off.
    assert totals(date(2026, 1, 15)) == {"1-30": D("3000.00")}
    # 25 Jan: Baraka paid 500 on 20 Jan.
    assert totals(date(2026, 1, 25)) == {"1-30": D("2500.00")}
    assert totals(date(2026, 2, 15)) == {"31-60": D("2500.00")}
    assert totals(date(2026, 3, 15)) == {"61-90": D("2500.00")}
    # 15 Apr: 95 and 97 days; 20 May: 130 and 132.
    assert totals(date(2026, 4, 15)) == {"91-120": D("2500.00")}
    assert totals(date(2026, 5, 20)) == {"120+": D("2500.00")}


def owed_by(customer, day):
    return {k: v for k, v in aging.by_customer(day).get(customer.pk, aging.empty()).items() if v}


def test_a_credit_note_on_a_newer_invoice_leaves_the_older_one_owed_on_past_days(history):
    # 12 Jan: a 1,000 call-out fee (due 19 Jan), credited in full on 13 Jan. Akinyi's
    # 2,000 installation fee (due 10 Jan) is what she still owes, 5 days late on 15 Jan,
    # not 1,000 of it "not yet due" on the fee that was credited.
    with at(date(2026, 1, 12)):
        fee = billing.charge_once(history.akinyi, D("1000"), actor="t", reason="Call-out")
    with at(date(2026, 1, 13)):
        billing.issue_credit_note(
            history.akinyi, D("1000"), actor="t", reason="Waived", invoice=fee
        )
    assert owed_by(history.akinyi, date(2026, 1, 12)) == {
        "current": D("1000.00"),
        "1-30": D("2000.00"),
    }
    assert owed_by(history.akinyi, date(2026, 1, 15)) == {"1-30": D("2000.00")}
    assert totals(date(2026, 1, 15)) == {"1-30": D("3000.00")}


def test_money_paid_or_taken_back_after_a_day_does_not_change_that_day(history):
    # 20 Feb: Akinyi pays her 2,000 fee; 5 Feb: Baraka's 500 bank payment of 20 Jan
    # bounces and is reversed.
    with at(date(2026, 2, 5)):
        payments.reverse_payment(
            Payment.objects.get(reference="SLIP-1"), actor="t", reason="Bounced"
        )
    with at(date(2026, 2, 20)):
        payments.record_manual_payment(
            history.akinyi, method="cash", amount="2000", reference="CASH-2", actor="t"
        )
    # Before: as it was then, though both invoices' state today says otherwise.
    assert owed_by(history.akinyi, date(2026, 2, 19)) == {"31-60": D("2000.00")}
    assert owed_by(history.baraka, date(2026, 1, 25)) == {"1-30": D("500.00")}
    assert owed_by(history.baraka, date(2026, 2, 4)) == {"1-30": D("500.00")}
    # After: Akinyi owes nothing; Baraka owes the 500 again.
    assert owed_by(history.akinyi, date(2026, 2, 20)) == {}
    assert owed_by(history.baraka, date(2026, 2, 5)) == {"1-30": D("1000.00")}
    assert totals(date(2026, 2, 20)) == {"31-60": D("1000.00")}


def test_on_the_last_day_it_is_exactly_what_the_invoices_still_want(history):
    """After a month of every kind of movement, the day's figures worked out from the
    ledger equal the invoices' own state (which is today's truth), invoice by invoice."""
    akinyi, baraka = history.akinyi, history.baraka
    with at(date(2026, 2, 1), 1):
        billing.run_billing(date(2026, 2, 1), actor="t")
    with at(date(2026, 2, 3)):
        extra = billing.charge_once(baraka, D("400"), actor="t", reason="Call-out")
    with at(date(2026, 2, 4)):
        feb = akinyi.invoices.get(kind="invoice", issued_on=date(2026, 2, 1))
        billing.issue_credit_note(akinyi, D("1000"), actor="t", reason="Outage", invoice=feb)
    with at(date(2026, 2, 5)):
        payments.record_manual_payment(
            akinyi, method="cash", amount="2500", reference="CASH-3", actor="t"
        )
    with at(date(2026, 2, 6)):
        billing.void_invoice(extra, actor="t", reason="Sent in error")
    with at(date(2026, 2, 7)):
        slip = payments.record_manual_payment(
            baraka, method="bank", amount="300", reference="SLIP-2", actor="t"
        )
    with at(date(2026, 2, 9)):
        payments.reverse_payment(slip, actor="t", reason="Bounced")
    with at(date(2026, 2, 12)):
        billing.issue_credit_note(baraka, D("200"), actor="t", reason="Goodwill")
    truth = sorted(
        (i.customer_id, i.due_on, i.outstanding)
        for i in Invoice.objects.unpaid()
        if i.outstanding > 0
    )
    assert sorted(billing.outstanding_on(date(2026, 2, 15))) == truth
    # Akinyi: February's 3,100 less 1,000 credited and 500 of her 2,500; Baraka: 300 of
    # January's (the 200 credit went to the oldest) and February's 1,550.
    assert len(truth) == 3


def test_aging_today_agrees_with_billings_aged_debt(history):
    day = date(2026, 2, 15)
    old = billing.aged_debt(day)
    assert sum(old.values()) == aging.report(day)["total"] == D("2500.00")
    assert old["31-60"] == aging.report(day)["totals"]["31-60"]


def test_by_customer_branch_and_site(history):
    report = aging.report(date(2026, 2, 15))
    assert [(r["name"], r["31-60"]) for r in report["customers"]] == [
        ("Akinyi", D("2000.00")),
        ("Baraka", D("500.00")),
    ]
    assert {r["name"]: r["total"] for r in report["branches"]} == {
        "North": D("2000.00"),
        "South": D("500.00"),
    }
    assert {r["name"]: r["total"] for r in report["sites"]} == {
        "Pop": D("2500.00"),
        "Tower": D("2000.00"),
    }


def test_a_branch_limited_reader_sees_their_branch_only(alpha, history):
    with tenant_context(alpha.isp):
        alpha.finance.branches.add(history.south)
    with at(date(2026, 2, 15)):
        limited = alpha.client(alpha.finance).get("/reports/aging/").context["data"]
        everyone = alpha.client(alpha.owner).get("/reports/aging/").context["data"]
    assert (limited["total"], everyone["total"]) == (D("500.00"), D("2500.00"))


def test_a_past_day_is_chosen_in_the_url(alpha, history):
    with at(date(2026, 2, 15)):
        page = alpha.client(alpha.owner).get("/reports/aging/?on=2026-01-06&by=site")
    assert page.context["data"]["totals"]["current"] == D("3550.00")
    assert b"<svg" in page.content


def test_a_reminder_goes_once_to_each_customer_of_the_bucket_and_honours_opt_outs(
    alpha, history, django_capture_on_commit_callbacks, monkeypatch
):
    # The worker's part, run at once: the task as queued, in the request's schema.
    monkeypatch.setattr(tasks_money.act_on_bucket, "delay", tasks_money.act_on_bucket)
    with tenant_context(alpha.isp):
        preferences.set_preferences(history.baraka, {("reminders", "sms"): False}, actor="t")
    client = alpha.client(alpha.finance)
    with at(date(2026, 2, 15), 10):
        confirm = client.get("/reports/aging/act/?bucket=31-60&action=reminder")
        assert confirm.status_code == 200 and confirm.context["count"] == 2
        with tenant_context(alpha.isp):
            before = set(Message.objects.values_list("id", flat=True))
            assert not BucketClaim.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                client.post("/reports/aging/act/?bucket=31-60&action=reminder").status_code == 302
            )
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/reports/aging/act/?bucket=31-60&action=reminder")  # a second click
        assert client.get("/reports/aging/act/?bucket=31-60&action=reminder").context["count"] == 0
    with tenant_context(alpha.isp):
        new = Message.objects.exclude(id__in=before)
        sent = sorted(new.values_list("customer__name", "state"))
        assert sent == [("Akinyi", "queued"), ("Baraka", "skipped")]
        assert "2,000" in new.get(customer=history.akinyi).body
        assert BucketClaim.objects.count() == 2


def test_an_stk_prompt_is_not_sent_without_m_pesa_and_nothing_on_get(alpha, history):
    client = alpha.client(alpha.owner)
    with at(date(2026, 2, 15), 10):
        assert client.get("/reports/aging/act/?bucket=31-60&action=stk").context["count"] == 2
        with tenant_context(alpha.isp):
            result = aging.act_on_bucket(
                "31-60", "stk", actor="t", at=billing.day_start(date(2026, 2, 15))
            )
    # M-Pesa is not set up for this ISP: the claims are taken, no prompt goes.
    assert result == {"sent": 0, "skipped": 2}


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("finance", 200),
                                         ("support", 403), ("technician", 403)])  # fmt: skip
def test_aging_and_its_actions_are_for_owners_admins_and_finance(alpha, role, status):
    client = alpha.client(alpha.people[role])
    assert client.get("/reports/aging/").status_code == status
    assert client.get("/reports/aging/act/?bucket=1-30&action=reminder").status_code == status
    assert client.post("/reports/aging/act/?bucket=1-30&action=reminder").status_code == (
        302 if status == 200 else status
    )


def test_an_unknown_bucket_or_action_is_a_bad_request_naming_it(alpha):
    client = alpha.client(alpha.owner)
    bucket = client.get("/reports/aging/act/?bucket=9000&action=reminder")
    action = client.post("/reports/aging/act/?bucket=1-30&action=call")
    assert (bucket.status_code, action.status_code) == (400, 400)
    assert b"bucket" in bucket.content and b"action" in action.content


def test_tables_download_and_queries_stay_bounded(alpha, history):
    client = alpha.client(alpha.owner)
    with at(date(2026, 2, 15)):
        csv = client.get("/reports/aging/?table=customers&format=csv").content.decode()
        assert "Akinyi" in csv and "2000.00" in csv
        xlsx = client.get("/reports/aging/?table=sites&format=xlsx")
        assert xlsx.content[:2] == b"PK"
        with CaptureQueriesContext(connection) as queries:
            client.get("/reports/aging/")
    assert len(queries) < 40
