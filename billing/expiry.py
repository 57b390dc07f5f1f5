"""Prepaid expiry, enforced within minutes of the moment: a frequent task (beat, every
minute) suspends (walled garden) every active prepaid account whose paid time and grace
are over (grace in hours for hourly and daily plans, in days for the others; see
billing.prepaid.grace). Accounts are suspended a small batch per transaction
(subscribers.bulk.suspend_many), so the first router jobs leave at once while the rest
are written; the daily dunning run calls the same function as a backstop.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from billing.ledger import lock_customers
from billing.models import BillingSettings, DunningAction, TimelineEntry
from billing.prepaid import SUB_DAY, to_pay_many
from ispops.messaging import services as messaging
from subscribers.bulk import suspend_many
from subscribers.models import Billing, ServiceAccount

log = logging.getLogger(__name__)
# Accounts suspended per transaction: small, so the first router jobs leave at once.
BATCH = 25


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


def episodes(account_ids) -> dict[int, int]:
    """Each account's present stretch of service (the id of its latest timeline entry;
    none yet: left out, read as 0): dunning steps are taken once per stretch, so a
    customer restored and unpaid again is suspended again."""
    return dict(
        TimelineEntry.objects.filter(service_account_id__in=list(account_ids))
        .values_list("service_account_id")
        .annotate(m=Max("id"))
        .order_by()
    )


def enforce_expiry(at: datetime, *, actor, held_customers=frozenset()) -> ExpiryReport:
    """Suspend every expired prepaid account (past its grace) as of `at`, except those
    of `held_customers` (a dunning hold): soonest expired first, BATCH accounts per
    transaction, so the first router jobs leave while the rest are written."""
    cfg = BillingSettings.load()
    report = ExpiryReport()
    rows = list(
        expired_accounts(at, cfg).order_by("expires_at", "id").values_list("id", "customer_id")
    )
    todo = [account_id for account_id, customer_id in rows if customer_id not in held_customers]
    report.held = len(rows) - len(todo)
    for offset in range(0, len(todo), BATCH):
        batch = todo[offset : offset + BATCH]
        try:
            report.suspended += suspend_expired(batch, at, cfg, actor=actor)
        except Exception as exc:
            log.exception("expiry: suspending accounts %s..%s failed", batch[0], batch[-1])
            report.errors.append(f"accounts {batch[0]}..{batch[-1]}: {exc}"[:300])
    return report


def suspend_expired(account_ids, at, cfg, *, actor) -> int:
    """Suspend those of `account_ids` still expired once their customers are locked (a
    payment that came meanwhile wins), each step logged once per stretch of service."""
    with transaction.atomic():
        lock_customers(
            ServiceAccount.objects.filter(pk__in=account_ids).values_list("customer_id", flat=True)
        )
        still = list(
            expired_accounts(at, cfg)
            .filter(pk__in=account_ids)
            .values_list("id", "expires_at", flat=False)
        )
        if not still:
            return 0
        stretch = episodes(i for i, _ in still)
        reasons = {
            account_id: f"Prepaid period ended {timezone.localtime(expiry):%d %b %Y %H:%M}"
            for account_id, expiry in still
        }
        accounts = suspend_many(list(reasons), actor=actor, reasons=reasons, at=at)
        DunningAction.objects.bulk_create(
            [
                DunningAction(
                    customer_id=a.customer_id,
                    service_account=a,
                    step=DunningAction.Step.SOFT_SUSPEND,
                    key=f"acct{a.pk}:soft:exp"
                    f"{timezone.localtime(a.expires_at):%Y%m%d%H%M}:e{stretch.get(a.pk, 0)}",
                    on_date=timezone.localdate(at),
                    detail=reasons[a.pk],
                )
                for a in accounts
            ],
            ignore_conflicts=True,
        )
        notify_soft_suspended(accounts, at, cfg)
    return len(accounts)


def notify_soft_suspended(accounts, at, cfg: BillingSettings) -> None:
    """An SMS to the customer of each account just put in the walled garden, with what
    they must pay at `at` to be settled (billing.prepaid.to_pay_many)."""
    owed = to_pay_many({a.customer_id for a in accounts}, at)
    messaging.notify_many(
        (
            a.customer,
            "suspended_soft",
            {"amount": owed[a.customer_id], "paybill": cfg.paybill},
            f"account:{a.pk}",
        )
        for a in accounts
    )
