"""Prepaid expiry in bulk: many accounts expiring together are suspended a small batch
per transaction with a bounded number of statements, each with its history, timeline,
router job, dunning step and message, and a payment that came first wins."""

from datetime import date, datetime, time
from decimal import Decimal

import time_machine
from django.utils import timezone

from billing import expiry
from billing import services as billing
from billing.models import DunningAction, TimelineEntry
from ispops.messaging.models import Message
from network.models import Router, RouterJob
from subscribers import services as subscribers
from subscribers.models import Plan, StatusChange

D = Decimal
COUNT = 60


def moment(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def test_sixty_accounts_expiring_together_are_suspended_in_batches(
    in_alpha, django_assert_max_num_queries
):
    router = Router.objects.create(name="r1", host="127.0.0.1", port=1, username="u")
    plan = Plan.objects.create(
        name="Pre5", price=D("1000"), billing="prepaid", download_kbps=1, upload_kbps=1
    )
    with time_machine.travel(moment(date(2026, 3, 1), 9), tick=False):
        accounts = []
        for n in range(COUNT):
            customer = subscribers.create_customer(actor="t", name=f"E{n}", phone=f"07140{n:05d}")
            accounts.append(
                subscribers.create_service_account(
                    actor="t",
                    customer=customer,
                    plan=plan,
                    username=f"e{n}",
                    router=router,
                    status="active",
                )
            )
    paid = accounts[7]
    with time_machine.travel(moment(date(2026, 3, 2), 9), tick=False):
        billing.record_payment(paid.customer, D("1000"), actor="t", reference="EARLY")
    RouterJob.objects.all().delete()
    at = moment(date(2026, 3, 4), 10)
    # Three batches of at most 25: a few dozen statements each, not ~40 per account.
    with django_assert_max_num_queries(3 * 30 + 5):
        report = expiry.enforce_expiry(at, actor="expiry")
    assert (report.suspended, report.errors) == (COUNT - 1, [])
    paid.refresh_from_db()
    assert paid.status == "active"
    suspended = [a for a in accounts if a.pk != paid.pk]
    ids = [a.pk for a in suspended]
    assert StatusChange.objects.filter(service_account__in=ids, to_status="suspended").count() == (
        COUNT - 1
    )
    assert TimelineEntry.objects.filter(service_account__in=ids, status="suspended").count() == (
        COUNT - 1
    )
    assert RouterJob.objects.filter(service_account__in=ids, action="suspend").count() == COUNT - 1
    assert DunningAction.objects.filter(service_account__in=ids, step="soft").count() == COUNT - 1
    assert Message.objects.filter(template_key="suspended_soft").count() >= COUNT - 1
    # Run again: nothing more to do.
    assert expiry.enforce_expiry(at, actor="expiry").suspended == 0
