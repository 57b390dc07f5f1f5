"""My plan in the portal: the moves a service may make, a priced preview from the billing
engine, confirming it (charged exactly the preview, or scheduled for the end of the paid
period under the ISP's policy), cancelling a scheduled change, the periodic task that
applies it once, and every way in that is not the subscriber's own refused.

The subscriber is on Home 10M, 2,500/month prepaid, activated and paid on 1 April
09:00 (a term to 1 May 09:00); 16 April 09:00 is half-way through it."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.db.models import Sum
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import BillingSettings, Invoice, LedgerEntry, TimelineEntry
from billing.tasks import apply_plan_changes
from ispops.audit.models import AuditEntry
from subscribers import plan_changes
from subscribers import services as subscribers
from subscribers.models import Plan, PlanChange, ServiceAccount
from tests.billing.test_money_cases import at, moment
from tests.portal.conftest import sign_in

D = Decimal
APRIL_1, APRIL_16 = date(2026, 4, 1), date(2026, 4, 16)
PHONE = "254712300001"
# The plan page: session, customer, accounts, scheduled changes, settings, plans and
# their prices, the paid period, refused changes, dues, branding (15 today, whatever
# the plan count).
QUERY_BUDGET = 16


def _plan(name, price, **fields):
    fields = {"download_kbps": 20_000, "upload_kbps": 10_000, **fields}
    return Plan.objects.create(name=name, price=D(price), **fields)


@pytest.fixture
def catalogue(in_alpha, plan):
    return {
        "current": plan,
        "up": _plan("Home 20M", "4000"),
        "down": _plan("Home 5M", "1500", download_kbps=5_000),
        # None of these is a move a subscriber makes alone.
        "hotspot": _plan("Hotspot Day", "50", service="hotspot", cycle="daily"),
        "postpaid": _plan("Business 20M", "6000", billing="postpaid"),
        "weekly": _plan("Home Week", "700", cycle="weekly"),
        "retired": _plan("Old 8M", "2000", is_active=False),
    }


def policy(**fields):
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(**fields)


@pytest.fixture
def paid(alpha, make_customer, catalogue):
    """A prepaid subscriber who paid April, and a stranger with their own service."""
    with tenant_context(alpha.isp), at(APRIL_1, 9):
        customer = make_customer("0712300001")
        billing.record_payment(customer, "2500", actor="t", reference="APR-1")
        stranger = make_customer("0712300002", name="Stranger Person")
        billing.record_payment(stranger, "2500", actor="t", reference="APR-2")
        account = customer.service_accounts.get()
        other = stranger.service_accounts.get()
    return account, other


def signed_in(alpha, phone=PHONE):
    client = alpha.client()
    with at(APRIL_16, 8):
        sign_in(alpha, client, phone)
    return client


def preview_url(account, plan):
    return f"/my/plan/{account.pk}/to/{plan.pk}/"


def shown(page: str) -> tuple[Decimal, str]:
    """The net amount the preview shows, and its signed quote."""
    amount = re.search(r'data-amount="(-?[\d.]+)"', page).group(1)
    quote = re.search(r'name="quote" value="([^"]+)"', page).group(1)
    return D(amount), quote


def ledger_total(alpha, customer_id) -> Decimal:
    with tenant_context(alpha.isp):
        return LedgerEntry.objects.filter(customer_id=customer_id).aggregate(s=Sum("amount"))[
            "s"
        ] or D("0.00")


def plan_of(alpha, account) -> str:
    with tenant_context(alpha.isp):
        return ServiceAccount.objects.get(pk=account.pk).plan.name


def test_the_plan_page_lists_only_the_moves_a_subscriber_may_make(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once", portal_downgrade="renewal")
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        page = client.get("/my/plan/").content.decode()
    assert "Home 20M" in page and "Home 5M" in page
    for name in ("Hotspot Day", "Business 20M", "Home Week", "Old 8M", "Stranger Person"):
        assert name not in page
    account, _ = paid
    assert preview_url(account, catalogue["up"]) in page
    assert "upgrade · at once" in page
    assert "downgrade · from 1 May 2026" in page


def test_an_upgrade_at_once_is_charged_exactly_what_the_preview_showed(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once")
    account, _ = paid
    client = signed_in(alpha)
    before = ledger_total(alpha, account.customer_id)
    with at(APRIL_16, 9):
        page = client.get(preview_url(account, catalogue["up"])).content.decode()
    net, quote = shown(page)
    # Half the 1,500 difference, from the engine.
    assert net == D("750.00")
    assert "Credit for unused days" in page and "Takes effect <b>now</b>" in page
    assert ledger_total(alpha, account.customer_id) == before  # the preview left nothing
    with at(APRIL_16, 9, 3):
        response = client.post(preview_url(account, catalogue["up"]), {"quote": quote})
    assert response.status_code == 302 and response["Location"] == "/my/plan/"
    assert ledger_total(alpha, account.customer_id) - before == net
    assert plan_of(alpha, account) == "Home 20M"
    with at(APRIL_16, 9, 4):
        page = client.get("/my/plan/").content.decode()
    assert "KES 750.00 was added to your bill" in page
    assert "Amount due now: KES 750.00" in page


def test_a_downgrade_at_renewal_is_scheduled_shown_and_cancellable(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_downgrade="renewal")
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        page = client.get(preview_url(account, catalogue["down"])).content.decode()
        net, quote = shown(page)
        assert "at the end of your paid period" in page and "1 May 2026" in page
        assert net == D("0.00")
        response = client.post(preview_url(account, catalogue["down"]), {"quote": quote})
        assert response.status_code == 302
        page = client.get("/my/plan/").content.decode()
    assert "Changing to <b>Home 5M</b> on 1 May 2026, 09:00" in page
    assert plan_of(alpha, account) == "Home 10M"
    with tenant_context(alpha.isp):
        change = PlanChange.objects.get(service_account=account)
        assert change.state == "pending" and change.at == moment(date(2026, 5, 1), 9)
        # Staff see it in the account's history (the 360 page's timeline).
        assert AuditEntry.objects.filter(
            model="subscribers.serviceaccount",
            object_id=str(account.pk),
            changes__has_key="scheduled plan change",
        ).exists()
    with at(APRIL_16, 10):
        response = client.post(f"/my/plan/scheduled/{change.pk}/cancel/")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        change.refresh_from_db()
        assert change.state == "cancelled"
    with at(APRIL_16, 10, 1):
        page = client.get("/my/plan/")
    assert page.status_code == 200 and "Changing to" not in page.content.decode()


def test_a_new_change_replaces_the_scheduled_one(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once", portal_downgrade="renewal")
        cheaper = _plan("Home 3M", "1000", download_kbps=3_000)
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        for target in (catalogue["down"], cheaper):
            _, quote = shown(client.get(preview_url(account, target)).content.decode())
            client.post(preview_url(account, target), {"quote": quote})
    with tenant_context(alpha.isp):
        rows = list(PlanChange.objects.filter(service_account=account).order_by("id"))
        assert [(r.plan.name, r.state) for r in rows] == [
            ("Home 5M", "cancelled"),
            ("Home 3M", "pending"),
        ]
    # An upgrade made at once replaces it too.
    with at(APRIL_16, 11):
        page = client.get(preview_url(account, catalogue["up"])).content.decode()
        assert "replaces your scheduled change to Home 3M" in page
        _, quote = shown(page)
        client.post(preview_url(account, catalogue["up"]), {"quote": quote})
    with tenant_context(alpha.isp):
        assert not PlanChange.objects.filter(service_account=account, state="pending").exists()
    assert plan_of(alpha, account) == "Home 20M"


def test_the_task_applies_a_due_change_once_when_run_twice(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_downgrade="renewal")
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        _, quote = shown(client.get(preview_url(account, catalogue["down"])).content.decode())
        client.post(preview_url(account, catalogue["down"]), {"quote": quote})
    with tenant_context(alpha.isp):
        with at(date(2026, 4, 30), 23):
            assert apply_plan_changes() == "0 done, 0 failed, 0 skipped"  # not due yet
        assert plan_of(alpha, account) == "Home 10M"
        with at(date(2026, 5, 1), 9, 1):
            assert apply_plan_changes() == "1 done, 0 failed, 0 skipped"
            assert apply_plan_changes() == "0 done, 0 failed, 0 skipped"
        assert plan_of(alpha, account) == "Home 5M"
        may = TimelineEntry.objects.filter(service_account=account, starts_on=date(2026, 5, 1))
        assert may.count() == 1
        change = PlanChange.objects.get(service_account=account)
        assert change.state == "done"
        # Applied at the moment it was due, not when the worker came by.
        latest = TimelineEntry.objects.filter(service_account=account).latest("id")
        assert latest.at == moment(date(2026, 5, 1), 9)
        # The next term is bought at the new price.
        billing.record_payment(
            account.customer, "1500", actor="t", reference="MAY-1", at=moment(date(2026, 5, 1), 10)
        )
        newest = Invoice.objects.filter(service_account=account).order_by("-id").first()
        assert newest.total == D("1500.00")


def test_a_scheduled_change_is_not_applied_over_a_staff_change(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_downgrade="renewal")
        account, _ = paid
        with at(APRIL_16, 9):
            change = plan_changes.schedule(
                account,
                catalogue["down"],
                at=moment(date(2026, 5, 1), 9),
                actor="t",
                now=moment(APRIL_16, 9),
            )
        # Staff move the account meanwhile: that cancels the scheduled change.
        with at(date(2026, 4, 20), 9):
            subscribers.change_plan(account, catalogue["up"], actor="staff")
        change.refresh_from_db()
        assert change.state == "cancelled" and "Home 20M" in change.note
        with at(date(2026, 5, 1), 9, 1):
            assert apply_plan_changes() == "0 done, 0 failed, 0 skipped"
        assert plan_of(alpha, account) == "Home 20M"


def test_a_postpaid_downgrade_at_renewal_applies_at_the_next_period(alpha, make_customer):
    with tenant_context(alpha.isp):
        policy(portal_downgrade="renewal")
        big = _plan("Office 20M", "3100", billing="postpaid")
        small = _plan("Office 10M", "1550", billing="postpaid")
        with at(date(2026, 1, 1), 9):
            customer = subscribers.create_customer(
                actor="t", name="Office Owner", phone="0712300003"
            )
            account = subscribers.create_service_account(
                actor="t", customer=customer, plan=big, username="office1", status="active"
            )
        with at(date(2026, 1, 1), 10):
            billing.run_billing(date(2026, 1, 1), actor="t")
    client = alpha.client()
    with at(date(2026, 1, 16), 8):
        sign_in(alpha, client, "254712300003")
        page = client.get(preview_url(account, small)).content.decode()
        net, quote = shown(page)
        assert net == D("0.00") and "1 Feb 2026" in page
        assert "Next bill, 1 Feb 2026</dt><dd>KES 1,550.00</dd>" in page
        client.post(preview_url(account, small), {"quote": quote})
    with tenant_context(alpha.isp):
        with at(date(2026, 2, 1), 0, 1):
            assert apply_plan_changes() == "1 done, 0 failed, 0 skipped"
        with at(date(2026, 2, 1), 1):
            billing.run_billing(date(2026, 2, 1), actor="t")
        february = Invoice.objects.get(service_account=account, period_start=date(2026, 2, 1))
        assert february.total == D("1550.00")


def test_staff_viewing_as_the_customer_cannot_change_or_cancel(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once")
    account, _ = paid
    staff = alpha.client(alpha.owner)
    assert staff.post(f"/my/as/{account.customer_id}/").status_code == 302
    with at(APRIL_16, 9):
        page = staff.get(preview_url(account, catalogue["up"]))
        assert page.status_code == 200
        _, quote = shown(page.content.decode())
        before = ledger_total(alpha, account.customer_id)
        refused = staff.post(preview_url(account, catalogue["up"]), {"quote": quote})
    assert refused.status_code == 403
    assert ledger_total(alpha, account.customer_id) == before
    assert plan_of(alpha, account) == "Home 10M"
    with tenant_context(alpha.isp), at(APRIL_16, 9):
        change = plan_changes.schedule(
            account,
            catalogue["down"],
            at=moment(date(2026, 5, 1), 9),
            actor="t",
            now=moment(APRIL_16, 9),
        )
    assert staff.post(f"/my/plan/scheduled/{change.pk}/cancel/").status_code == 403
    with tenant_context(alpha.isp):
        change.refresh_from_db()
        assert change.state == "pending"


def test_another_customers_account_or_a_plan_not_offered_is_not_found(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once")
    account, other = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        _, quote = shown(client.get(preview_url(account, catalogue["up"])).content.decode())
        before = (ledger_total(alpha, account.customer_id), ledger_total(alpha, other.customer_id))
        for target in (other, account):
            for plan in ("hotspot", "postpaid", "weekly", "retired", "current"):
                url = preview_url(target, catalogue[plan])
                assert client.get(url).status_code == 404, url
                assert client.post(url, {"quote": quote}).status_code == 404, url
        url = preview_url(other, catalogue["up"])
        assert client.get(url).status_code == 404
        assert client.post(url, {"quote": quote}).status_code == 404
        assert client.get("/my/plan/999999/to/1/").status_code == 404
    with tenant_context(alpha.isp), at(APRIL_16, 9):
        theirs = plan_changes.schedule(
            other,
            catalogue["down"],
            at=moment(date(2026, 5, 1), 9),
            actor="t",
            now=moment(APRIL_16, 9),
        )
    with at(APRIL_16, 9, 5):
        assert client.post(f"/my/plan/scheduled/{theirs.pk}/cancel/").status_code == 404
    after = (ledger_total(alpha, account.customer_id), ledger_total(alpha, other.customer_id))
    assert after == before
    assert plan_of(alpha, account) == "Home 10M" and plan_of(alpha, other) == "Home 10M"
    with tenant_context(alpha.isp):
        theirs.refresh_from_db()
        assert theirs.state == "pending"


def test_an_altered_old_or_moved_quote_changes_nothing_and_is_priced_again(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once")
    account, _ = paid
    client = signed_in(alpha)
    url = preview_url(account, catalogue["up"])
    before = ledger_total(alpha, account.customer_id)
    with at(APRIL_16, 9):
        _, quote = shown(client.get(url).content.decode())
        altered = client.post(url, {"quote": quote[:-2] + "xx"})
        assert altered.status_code == 400 and "not one we gave" in altered.content.decode()
        # A quote for another plan does not confirm this one.
        _, down_quote = shown(client.get(preview_url(account, catalogue["down"])).content.decode())
        assert client.post(url, {"quote": down_quote}).status_code == 400
        assert client.post(url, {}).status_code == 400
    with at(APRIL_16, 9, 16):
        old = client.post(url, {"quote": quote})
    assert old.status_code == 400 and "15 minutes old" in old.content.decode()
    # The ISP moved upgrades to renewal after the quote: nothing is charged.
    with tenant_context(alpha.isp):
        policy(portal_upgrade="renewal")
    with at(APRIL_16, 9, 20):
        _, fresh = shown(client.get(url).content.decode())
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once")
    with at(APRIL_16, 9, 21):
        moved = client.post(url, {"quote": fresh})
    assert moved.status_code == 409 and "terms changed" in moved.content.decode()
    assert ledger_total(alpha, account.customer_id) == before
    assert plan_of(alpha, account) == "Home 10M"


def test_a_prepaid_isp_that_refuses_mid_term_upgrades_schedules_them(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once", prepaid_upgrade="renewal")
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        page = client.get(preview_url(account, catalogue["up"])).content.decode()
    assert "at the end of your paid period" in page
    _, quote = shown(page)
    with at(APRIL_16, 9, 1):
        assert (
            client.post(preview_url(account, catalogue["up"]), {"quote": quote}).status_code == 302
        )
    with tenant_context(alpha.isp):
        assert PlanChange.objects.get(service_account=account).plan == catalogue["up"]


def test_a_scheduled_upgrade_applies_at_renewal_even_with_the_next_term_paid(
    alpha, paid, catalogue
):
    """Under "upgrades at renewal" the change made the moment the paid term begins is
    not mid-term: it is charged the difference for the new term, not refused."""
    with tenant_context(alpha.isp):
        policy(portal_upgrade="at_once", prepaid_upgrade="renewal")
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        _, quote = shown(client.get(preview_url(account, catalogue["up"])).content.decode())
        client.post(preview_url(account, catalogue["up"]), {"quote": quote})
    with tenant_context(alpha.isp):
        # The next term is paid ahead, on the old plan.
        billing.record_payment(
            account.customer, "2500", actor="t", reference="APR-2", at=moment(APRIL_16, 10)
        )
        due = PlanChange.objects.get(service_account=account).at
        with at(date(2026, 5, 1), 9, 1):
            assert apply_plan_changes() == "1 done, 0 failed, 0 skipped"
        assert plan_of(alpha, account) == "Home 20M"
        newest = Invoice.objects.filter(service_account=account).order_by("-id").first()
        assert newest.total == D("1500.00")  # 4,000 - 2,500 for the term that began
        assert newest.created_at == due


def test_staff_refused_upgrade_is_a_message_not_an_error(alpha, paid, catalogue):
    with tenant_context(alpha.isp):
        policy(prepaid_upgrade="renewal")
    account, _ = paid
    staff = alpha.client(alpha.support)
    with at(APRIL_16, 9):
        response = staff.post(f"/accounts/{account.pk}/plan/", {"plan": catalogue["up"].pk})
        assert response.status_code == 302
        page = staff.get(response["Location"], follow=True).content.decode()
    assert "The plan was not changed" in page and "renewal" in page
    assert plan_of(alpha, account) == "Home 10M"


def test_beat_applies_scheduled_changes_every_minute_in_every_isp():
    from django.conf import settings

    from ispops.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["apply-plan-changes"]
    assert entry["task"] == "ispops.tasks.fan_out"
    assert entry["args"] == ["billing.tasks.apply_plan_changes"]
    assert entry["schedule"] == 60.0
    assert "billing.tasks.apply_plan_changes" in app.tasks


def test_the_plan_page_costs_a_fixed_handful_of_queries(
    alpha, paid, catalogue, django_assert_max_num_queries
):
    with tenant_context(alpha.isp):
        policy(portal_upgrade="renewal", portal_downgrade="renewal")
        for n in range(8):
            _plan(f"Extra {n}", str(1000 + 100 * n))
    client = signed_in(alpha)
    with at(APRIL_16, 9), django_assert_max_num_queries(QUERY_BUDGET):
        page = client.get("/my/plan/")
    assert page.status_code == 200 and "Extra 7" in page.content.decode()


def test_a_scheduled_change_that_cannot_be_made_is_refused_and_the_subscriber_told(
    alpha, paid, catalogue
):
    with tenant_context(alpha.isp):
        policy(portal_downgrade="renewal")
    account, _ = paid
    client = signed_in(alpha)
    with at(APRIL_16, 9):
        _, quote = shown(client.get(preview_url(account, catalogue["down"])).content.decode())
        client.post(preview_url(account, catalogue["down"]), {"quote": quote})
    with tenant_context(alpha.isp):
        Plan.objects.filter(pk=catalogue["down"].pk).update(is_active=False)
        with at(date(2026, 5, 1), 9, 1):
            assert apply_plan_changes() == "0 done, 1 failed, 0 skipped"
            assert apply_plan_changes() == "0 done, 0 failed, 0 skipped"
        change = PlanChange.objects.get(service_account=account)
        assert change.state == "failed" and "no longer offered" in change.note
    assert plan_of(alpha, account) == "Home 10M"
    with at(date(2026, 5, 1), 9, 5):
        sign_in(alpha, client, PHONE)  # a fortnight on: the April sign-in has lapsed
        page = client.get("/my/plan/").content.decode()
    assert "Your change to <b>Home 5M</b> on 1 May 2026 could not be made" in page
    # A change made since puts the refusal behind it.
    with at(date(2026, 5, 1), 9, 6):
        _, quote = shown(client.get(preview_url(account, catalogue["up"])).content.decode())
        client.post(preview_url(account, catalogue["up"]), {"quote": quote})
        assert "could not be made" not in client.get("/my/plan/").content.decode()
