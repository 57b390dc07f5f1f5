"""The dunning queue: who is about to be suspended in the next days, and why, for the
page staff check each morning (billing.views_dunning). Read-only: billing.dunning
takes the steps."""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from billing import prepaid
from billing.dunning import Step, active_holds, open_with_balance, soft_suspended_due
from billing.ledger import dues_many
from billing.models import BillingSettings, DunningHold
from billing.services import day_start
from subscribers.models import Billing, ServiceAccount

QUEUE_DAYS = 7


def upcoming(day: date, *, customers=None, days: int = QUEUE_DAYS) -> list[dict]:
    """Who is about to be suspended in the `days` days from `day`, and why: rows of
    customer, account, step ("soft" / "hard"), reason, amount, the date it will happen
    (None while an exemption holds) and the hold in force, soonest first. `customers`
    (a queryset) limits it to those customers."""
    cfg = BillingSettings.load()
    horizon = day + timedelta(days=days)
    grace = timedelta(days=max(cfg.grace_days, 1))
    accounts = ServiceAccount.objects.select_related("customer", "plan")
    invoices = open_with_balance()
    if customers is not None:
        accounts = accounts.filter(customer__in=customers)
        invoices = invoices.filter(customer__in=customers)
    rows = []

    # Postpaid: the oldest unpaid invoice of each active account (or, for an invoice
    # of no account, of each active postpaid account of its customer).
    due = invoices.filter(due_on__lte=horizon - grace).order_by("due_on", "id")
    due = list(
        due.values_list(
            "id", "number", "due_on", "total", "amount_paid", "customer_id", "service_account_id"
        )
    )
    active_postpaid = accounts.filter(
        status=ServiceAccount.Status.ACTIVE, plan__billing=Billing.POSTPAID
    )
    wanted_accounts = {r[6] for r in due if r[6]}
    loose_customers = {r[5] for r in due if not r[6]}
    live = {
        a.pk: a
        for a in active_postpaid.filter(
            Q(pk__in=wanted_accounts) | Q(customer_id__in=loose_customers)
        )
    }
    by_customer = defaultdict(list)
    for account in live.values():
        by_customer[account.customer_id].append(account)
    seen = set()
    for _, number, due_on, total, paid, customer_id, account_id in due:
        targets = [live[account_id]] if account_id in live else []
        if not account_id:
            targets = by_customer.get(customer_id, [])
        for account in targets:
            if account.pk in seen:
                continue
            seen.add(account.pk)
            rows.append(
                {
                    "customer": account.customer,
                    "account": account,
                    "step": Step.SOFT_SUSPEND,
                    "reason": f"Invoice {number} overdue since {due_on + timedelta(1):%d %b %Y}",
                    "amount": total - paid,
                    "on": max(due_on + grace, day),
                }
            )

    # Prepaid: active accounts whose paid period has ended or ends soon.
    latest_expiry = day_start(horizon - timedelta(days=cfg.grace_days))
    for account in accounts.filter(
        status=ServiceAccount.Status.ACTIVE,
        plan__billing=Billing.PREPAID,
        expires_at__lt=latest_expiry,
    ).order_by("expires_at", "id"):
        ended = timezone.localtime(account.expires_at).date()
        verb = "ended" if account.expires_at <= day_start(day) else "ends"
        rows.append(
            {
                "customer": account.customer,
                "account": account,
                "step": Step.SOFT_SUSPEND,
                "reason": f"Prepaid period {verb} on {ended:%d %b %Y}",
                "amount": prepaid.term_cost(account.plan, day, cfg),
                "on": max(ended + timedelta(days=cfg.grace_days + 1), day),
            }
        )

    # Hard: soft-suspended accounts still unsettled.
    hard = soft_suspended_due(day, cfg, horizon).select_related("customer", "plan")
    if customers is not None:
        hard = hard.filter(customer__in=customers)
    for account in hard.order_by("suspended_at", "id"):
        since = timezone.localtime(account.suspended_at).date()
        rows.append(
            {
                "customer": account.customer,
                "account": account,
                "step": Step.HARD_SUSPEND,
                "reason": f"Soft-suspended since {since:%d %b %Y}, still unpaid",
                "amount": prepaid.term_cost(account.plan, day, cfg)
                if account.plan.billing == "prepaid"
                else None,
                "on": max(since + timedelta(days=cfg.hard_suspend_after_days), day),
            }
        )

    holds: dict[int, DunningHold] = {}
    for hold in (
        active_holds(day)
        .filter(customer_id__in={r["customer"].pk for r in rows})
        .order_by("created_at")
    ):
        # An exemption outranks a promise; else the latest promise.
        current = holds.get(hold.customer_id)
        if current is None or current.kind != DunningHold.Kind.EXEMPT:
            holds[hold.customer_id] = hold
    owed = {
        cid: d.owed
        for cid, d in dues_many(
            {r["customer"].pk for r in rows if r["amount"] is None}, day
        ).items()
    }
    for row in rows:
        hold = holds.get(row["customer"].pk)
        row["hold"] = hold
        if row["amount"] is None:
            row["amount"] = owed.get(row["customer"].pk, Decimal("0.00"))
        if hold is not None:
            if hold.until is None:
                row["on"] = None
            elif hold.until >= row["on"]:
                row["on"] = hold.until + timedelta(days=1)
    rows.sort(key=lambda r: (r["on"] or date.max, r["customer"].name, r["account"].pk))
    return rows
