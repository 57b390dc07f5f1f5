"""The customer and account pages read as people read: one "Messages" card, a
timeline and history naming plans and people (not ids) at Nairobi times (not UTC),
and no empty "Router" heading."""

import datetime

from django_tenants.utils import tenant_context

from ispops import audit
from subscribers import services
from subscribers.models import Plan


def test_customer_page_has_one_messages_card(alpha, make_customer):
    customer = make_customer(name="One Messages")
    page = alpha.client(alpha.support).get(f"/subscribers/{customer.pk}/").content.decode()
    assert page.count("<h2>Messages</h2>") == 1
    assert page.count('id="messages"') == 1


def _changed_account(alpha, make_customer):
    with tenant_context(alpha.isp):
        customer = make_customer(name="Readable Timeline")
        account = customer.service_accounts.get()
        faster = Plan.objects.create(
            name="Faster 20M", price="3500.00", download_kbps=20_000, upload_kbps=10_000
        )
        services.change_plan(account, faster, actor=alpha.owner)
        account.refresh_from_db()
        with audit.acting_as(alpha.owner):
            account.expires_at = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
            account.save(update_fields=["expires_at"])
    return customer, account, faster


def test_timeline_names_plans_and_people_at_nairobi_times(alpha, make_customer):
    customer, account, _faster = _changed_account(alpha, make_customer)
    page = alpha.client(alpha.support).get(f"/subscribers/{customer.pk}/").content.decode()
    timeline = page[page.index('id="timeline"') :]
    assert "Plan: Home 10M &rarr; Faster 20M" in timeline
    # 09:00 UTC is 12:00 in Nairobi; the stored ISO string is not shown.
    assert "2 Mar 2026 12:00" in timeline and "2026-03-02T09:00:00" not in timeline
    assert f"service account {account.username}" in timeline
    assert str(alpha.owner) in timeline and alpha.owner.email not in timeline


def test_account_history_is_readable_too(alpha, make_customer):
    _customer, account, _faster = _changed_account(alpha, make_customer)
    page = alpha.client(alpha.support).get(f"/accounts/{account.pk}/").content
    history = page.decode()[page.decode().index('id="history"') :]
    assert "Plan:" in history and "Home 10M &rarr; Faster 20M" in history
    assert "2 Mar 2026 12:00" in history


def test_account_without_a_router_has_no_empty_router_heading(alpha, make_customer):
    customer = make_customer(name="No Router")
    with tenant_context(alpha.isp):
        account = customer.service_accounts.get()
        assert account.router_id is None
    page = alpha.client(alpha.support).get(f"/accounts/{account.pk}/").content.decode()
    assert "<h3>Router</h3>" not in page
    assert "none serves this account" in page
