"""A plan change priced before it is made (billing.preview): the preview runs the real
change and rolls it back, so at a frozen moment it equals, to the cent, what the same
change then puts on the ledger, and it leaves no trace.

Plans: Pre5 1,000/month and Pre10 2,000/month prepaid; Home5 1,550/month and Home10
3,100/month postpaid; VAT 16 % inclusive; anniversary billing. April has 30 days,
January 31.
"""

import threading
import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import preview
from billing import services as billing
from billing.models import BillingSettings, Invoice, LedgerEntry, PrepaidTerm, TimelineEntry
from ispops.audit.models import AuditEntry
from ispops.messaging.models import Message
from ispops.tenancy.models import Isp
from network.models import RouterJob
from network.services import add_router
from subscribers import services as subscribers
from subscribers.models import Customer, Plan, PlanChange, ServiceAccount
from tests.billing.test_money_cases import activate, at, bill, moment

D = Decimal


@pytest.fixture
def plans(in_alpha):
    def plan(name, price, mode):
        return Plan.objects.create(
            name=name, price=D(price), billing=mode, download_kbps=5_000, upload_kbps=2_000
        )

    return {
        "pre5": plan("Pre5", "1000", "prepaid"),
        "pre10": plan("Pre10", "2000", "prepaid"),
        "home5": plan("Home5", "1550", "postpaid"),
        "home10": plan("Home10", "3100", "postpaid"),
    }


@pytest.fixture
def router(in_alpha):
    return add_router(
        actor="t", name="preview-r1", host="127.0.0.1", port=8728, username="api", password="pw"
    )


def on_router(account, router):
    ServiceAccount.objects.filter(pk=account.pk).update(router=router)
    account.refresh_from_db()
    return account


def prepaid_paid_april(plan, router=None):
    """Activated 1 April 09:00 and paid for one month: a term to 1 May 09:00."""
    account = activate(plan, date(2026, 4, 1))
    with at(date(2026, 4, 1), 9):
        billing.record_payment(account.customer, plan.price, actor="t", reference="APR")
    if router is not None:
        on_router(account, router)
    return account


def postpaid_billed_january(plan):
    account = activate(plan, date(2026, 1, 1))
    bill(date(2026, 1, 1))
    account.refresh_from_db()
    return account


def change(account, plan, when):
    return lambda: subscribers.change_plan(
        ServiceAccount.objects.get(pk=account.pk), plan, actor="t", at=when
    )


def trace(account) -> dict:
    """Everything a plan change can leave behind, counted."""
    return {
        "invoices": Invoice.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "balance": LedgerEntry.objects.aggregate(s=Sum("amount"))["s"],
        "router jobs": RouterJob.objects.count(),
        "messages": Message.objects.count(),
        "audit": AuditEntry.objects.count(),
        "timeline": TimelineEntry.objects.count(),
        "terms": list(PrepaidTerm.objects.values_list("id", "plan_id", "price", "ends_at")),
        "plan changes": list(PlanChange.objects.values_list("id", "state")),
        "account": ServiceAccount.objects.filter(pk=account.pk).values("plan", "expires_at")[0],
        "numbers": BillingSettings.objects.values_list(
            "next_invoice_number", "next_credit_note_number"
        )[0],
    }


def ledger_after(account, plan, when) -> tuple[Decimal, list]:
    """Make the change for real: what the ledger moved, and the documents issued."""
    last_entry = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    last_doc = Invoice.objects.order_by("-id").values_list("id", flat=True).first() or 0
    change(account, plan, when)()
    moved = LedgerEntry.objects.filter(customer=account.customer, id__gt=last_entry).aggregate(
        s=Sum("amount")
    )["s"] or D("0.00")
    docs = [
        (d.kind, d.total, [(ln.description, ln.amount) for ln in d.lines.all()])
        for d in Invoice.objects.filter(id__gt=last_doc).order_by("id")
    ]
    return moved, docs


def assert_preview_is_the_change(account, plan, when, django_capture_on_commit_callbacks):
    before = trace(account)
    with django_capture_on_commit_callbacks() as callbacks:
        seen = preview.preview(account, change(account, plan, when), at=when)
    assert callbacks == [], "a preview must not leave work for after the commit"
    assert trace(account) == before
    moved, docs = ledger_after(account, plan, when)
    assert seen.net == moved
    assert [(d.kind, d.total, d.lines) for d in seen.documents] == docs
    assert seen.balance_after == billing.customer_balance(account.customer)
    account.refresh_from_db()
    assert seen.expires_after == account.expires_at
    return seen


def test_a_prepaid_upgrade_preview_is_the_charge_for_the_rest_of_the_term(
    plans, router, django_capture_on_commit_callbacks
):
    account = prepaid_paid_april(plans["pre5"], router)
    when = moment(date(2026, 4, 16), 9)
    seen = assert_preview_is_the_change(
        account, plans["pre10"], when, django_capture_on_commit_callbacks
    )
    # 15 of 30 days left: half of the 1,000 difference.
    assert (seen.charged, seen.credited, seen.net) == (D("500.00"), D("0.00"), D("500.00"))
    assert seen.owed_after == D("500.00")
    assert seen.expires_before == seen.expires_after == moment(date(2026, 5, 1), 9)
    assert seen.next_bill.on == moment(date(2026, 5, 1), 9)
    assert seen.next_bill.amount == D("2000.00")
    assert RouterJob.objects.filter(service_account=account).count() == 1


def test_a_prepaid_downgrade_preview_is_the_credit_for_the_unused_days(
    plans, router, django_capture_on_commit_callbacks
):
    account = prepaid_paid_april(plans["pre10"], router)
    when = moment(date(2026, 4, 22), 15, 17)  # an odd moment: the share is not round
    seen = assert_preview_is_the_change(
        account, plans["pre5"], when, django_capture_on_commit_callbacks
    )
    assert seen.charged == D("0.00") and seen.credited > 0
    assert seen.net == -seen.credited
    # 8 days 17 h 43 min of 30 days left, of the 1,000 difference.
    assert seen.credited == D("291.27")
    assert seen.next_bill.amount == D("1000.00")


def test_a_postpaid_upgrade_preview_credits_the_old_plan_and_charges_the_new(
    plans, django_capture_on_commit_callbacks
):
    account = postpaid_billed_january(plans["home5"])
    when = moment(date(2026, 1, 16), 10)
    seen = assert_preview_is_the_change(
        account, plans["home10"], when, django_capture_on_commit_callbacks
    )
    # Home5 for 15 of 31 days (750), Home10 for 16 (1,600): 800 credited on the
    # January invoice, 1,600 charged.
    assert (seen.credited, seen.charged, seen.net) == (D("800.00"), D("1600.00"), D("800.00"))
    assert seen.next_bill.on == moment(date(2026, 2, 1), 0)
    assert seen.next_bill.amount == D("3100.00")
    assert seen.expires_after is None


def test_a_postpaid_downgrade_preview_gives_back_the_difference(
    plans, django_capture_on_commit_callbacks
):
    account = postpaid_billed_january(plans["home10"])
    when = moment(date(2026, 1, 16), 10)
    seen = assert_preview_is_the_change(
        account, plans["home5"], when, django_capture_on_commit_callbacks
    )
    assert seen.net == D("-800.00")
    assert seen.next_bill.amount == D("1550.00")


def test_where_prices_exclude_vat_the_preview_adds_it_as_the_invoice_does(
    plans, django_capture_on_commit_callbacks
):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(vat_inclusive=False)
    account = activate(plans["pre5"], date(2026, 4, 1))
    with at(date(2026, 4, 1), 9):
        billing.record_payment(account.customer, D("1160"), actor="t", reference="APR")
    when = moment(date(2026, 4, 16), 9)
    seen = assert_preview_is_the_change(
        account, plans["pre10"], when, django_capture_on_commit_callbacks
    )
    assert (seen.charged, seen.vat, seen.net) == (D("500.00"), D("80.00"), D("580.00"))


def test_a_refused_change_raises_from_the_preview_and_leaves_nothing(plans):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(prepaid_upgrade="renewal")
    account = prepaid_paid_april(plans["pre5"])
    before = trace(account)
    when = moment(date(2026, 4, 16), 9)
    with pytest.raises(subscribers.SubscriberError, match="renewal"):
        preview.preview(account, change(account, plans["pre10"], when), at=when)
    assert trace(account) == before


def test_a_preview_inside_a_transaction_is_a_savepoint_that_keeps_what_came_before(plans):
    account = prepaid_paid_april(plans["pre5"])
    assert connection.in_atomic_block  # the test's own transaction
    when = moment(date(2026, 4, 16), 9)
    kept = billing.charge_once(account.customer, "100", actor="t", reason="call-out", at=when)
    preview.preview(account, change(account, plans["pre10"], when), at=when)
    assert Invoice.objects.filter(pk=kept.pk).exists()
    assert billing.customer_balance(account.customer) == D("100.00")


def test_the_paid_period_ends_at_the_term_end_or_the_next_postpaid_period(plans):
    prepaid_account = prepaid_paid_april(plans["pre5"])
    assert preview.paid_until(prepaid_account, moment(date(2026, 4, 16))) == moment(
        date(2026, 5, 1), 9
    )
    # Past the term: nothing is paid for.
    assert preview.paid_until(prepaid_account, moment(date(2026, 5, 2))) is None
    postpaid_account = postpaid_billed_january(plans["home5"])
    assert preview.paid_until(postpaid_account, moment(date(2026, 1, 16))) == moment(
        date(2026, 2, 1), 0
    )


def test_upgrades_are_dearer_per_day(plans):
    day = date(2026, 4, 1)
    assert preview.is_upgrade(plans["pre5"], plans["pre10"], day)
    assert not preview.is_upgrade(plans["pre10"], plans["pre5"], day)
    assert not preview.is_upgrade(plans["pre5"], plans["pre5"], day)


def test_the_plan_change_policy_is_set_on_the_billing_settings_page(alpha):
    from tests.billing.test_pages import _settings_post

    client = alpha.client(alpha.owner)
    page = client.get("/billing/settings/").content.decode()
    assert "Upgrades subscribers make in the portal" in page
    data = _settings_post(portal_upgrade="renewal", portal_downgrade="at_once")
    assert client.post("/billing/settings/", data).status_code == 302
    with tenant_context(alpha.isp):
        cfg = BillingSettings.objects.get(pk=1)
        assert (cfg.portal_upgrade, cfg.portal_downgrade) == ("renewal", "at_once")
        assert cfg.prepaid_upgrade == "prorate"
    # A post without them (a form from before they existed) keeps them.
    assert client.post("/billing/settings/", _settings_post()).status_code == 302
    with tenant_context(alpha.isp):
        cfg = BillingSettings.objects.get(pk=1)
        assert (cfg.portal_upgrade, cfg.portal_downgrade) == ("renewal", "at_once")
    refused = client.post("/billing/settings/", _settings_post(portal_upgrade="whenever"))
    assert refused.status_code == 200 and "portal_upgrade" in refused.context["form"].errors


def _lockable_elsewhere(isp, customer_id: int) -> bool:
    """Can another connection take the customer's row lock right now?"""
    found = {}

    def probe():  # in a thread of its own: its own database connection
        try:
            connection.set_tenant(isp)
            with transaction.atomic():
                rows = Customer.objects.select_for_update(no_key=True, nowait=True).filter(
                    pk=customer_id
                )
                found["ok"] = list(rows.values_list("id", flat=True)) == [customer_id]
        except OperationalError:
            found["ok"] = False
        finally:
            connection.close()

    worker = threading.Thread(target=probe)
    worker.start()
    worker.join(10)
    return found.get("ok", False)


@pytest.mark.committed
def test_a_preview_in_the_callers_transaction_gives_the_customer_lock_back(
    django_db_setup, django_db_blocker
):
    """The savepoint's rollback releases the row locks the change took: a caller that
    previews inside its own transaction does not hold the customer against payments."""
    tag = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock():
        isp = Isp.objects.get(schema_name="demo")
        with tenant_context(isp):
            old, new = (
                Plan.objects.create(
                    name=f"Lock {n} {tag}", price=D(price), download_kbps=1, upload_kbps=1
                )
                for n, price in (("A", "1000"), ("B", "2000"))
            )
            customer = subscribers.create_customer(
                actor="t", name=f"Lock Test {tag}", phone=f"0747{int(tag, 16) % 10**6:06d}"
            )
            account = subscribers.create_service_account(
                actor="t", customer=customer, plan=old, username=f"lock-{tag}", status="active"
            )
            try:
                now = timezone.now()
                with transaction.atomic():  # the caller's own transaction
                    preview.preview(account, change(account, new, now), at=now)
                    assert _lockable_elsewhere(isp, customer.pk)
                    # Whereas a lock the caller takes itself is held to its end.
                    billing.lock_customer(customer.pk)
                    assert not _lockable_elsewhere(isp, customer.pk)
                assert ServiceAccount.objects.get(pk=account.pk).plan_id == old.pk
            finally:
                subscribers.change_status(
                    ServiceAccount.objects.get(pk=account.pk), "terminated", actor="t", reason="t"
                )
                Plan.objects.filter(pk__in=[old.pk, new.pk]).update(is_active=False)
        connection.set_schema_to_public()
