"""Prepaid expiry, enforced within minutes of the moment: a frequent task (beat, every
minute) suspends (walled garden) every active prepaid account whose paid time and grace
are over (grace in hours for hourly and daily plans, in days for the others; see
billing.prepaid.grace). Each account is suspended in its own short transaction, so its
router job leaves at once instead of after the whole batch; the daily dunning run calls
the same function as a backstop.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.ledger import dues, lock_customer
from billing.models import BillingSettings, DunningAction, TimelineEntry
from billing.prepaid import SUB_DAY
from ispops.messaging import services as messaging
from subscribers.models import Billing, ServiceAccount

log = logging.getLogger(__name__)


@dataclass
class ExpiryReport:
    suspended: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


def expired_accounts(at: datetime, cfg: BillingSettings):
    """Active prepaid accounts whose expiry plus grace is before `at`."""
    hours = at - timedelta(hours=cfg.grace_hours)
    days = at - timedelta(days=cfg.grace_days)
    return ServiceAccount.objects.filter(
        Q(plan__cycle__in=SUB_DAY, expires_at__lt=hours)
        | (~Q(plan__cycle__in=SUB_DAY) & Q(expires_at__lt=days)),
        status=ServiceAccount.Status.ACTIVE,
        plan__billing=Billing.PREPAID,
    )


def episode(account_id: int) -> int:
    """The account's present stretch of service (the id of its latest timeline entry):
    dunning steps are taken once per stretch, so a customer restored and unpaid again
    is suspended again."""
    return (
        TimelineEntry.objects.filter(service_account_id=account_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
        or 0
    )


def enforce_expiry(at: datetime, *, actor, held_customers=frozenset()) -> ExpiryReport:
    """Suspend every expired prepaid account (past its grace) as of `at`, except those
    of `held_customers` (a dunning hold)."""
    cfg = BillingSettings.load()
    report = ExpiryReport()
    rows = list(
        expired_accounts(at, cfg).order_by("expires_at", "id").values_list("id", "customer_id")
    )
    for account_id, customer_id in rows:
        if customer_id in held_customers:
            report.held += 1
            continue
        try:
            if suspend_expired(account_id, customer_id, at, cfg, actor=actor):
                report.suspended += 1
        except Exception as exc:
            log.exception("expiry: suspending account %s failed", account_id)
            report.errors.append(f"account {account_id}: {exc}"[:300])
    return report


def suspend_expired(account_id, customer_id, at, cfg, *, actor) -> bool:
    from subscribers import services as subscribers

    with transaction.atomic():
        customer = lock_customer(customer_id)
        account = expired_accounts(at, cfg).select_for_update(of=("self",)).filter(pk=account_id)
        account = account.select_related("plan").first()
        if account is None:
            return False  # paid or changed meanwhile
        ended = timezone.localtime(account.expires_at)
        reason = f"Prepaid period ended {ended:%d %b %Y %H:%M}"
        DunningAction.objects.create(
            customer=customer,
            service_account=account,
            step=DunningAction.Step.SOFT_SUSPEND,
            key=f"acct{account.pk}:soft:exp{ended:%Y%m%d%H%M}:e{episode(account.pk)}",
            on_date=timezone.localdate(at),
            detail=reason,
        )
        subscribers.change_status(
            account, "suspended", actor=actor, reason=reason, suspension="soft", at=at
        )
        owed = dues(customer, timezone.localdate(at)).owed
        messaging.notify(
            customer,
            "suspended_soft",
            {"amount": max(owed, account.plan.price), "paybill": cfg.paybill},
            related=f"account:{account.pk}",
        )
    return True
