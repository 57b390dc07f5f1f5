"""Plan changes subscribers make themselves (the portal's "My plan"): which plans a
service may move to, what a move costs and when it takes effect under the ISP's policy,
making it at once or scheduling it for the end of the paid period, cancelling a
scheduled one, and applying those that are due (a periodic task).

Which moves are self-service: to an active plan for the same kind of service (a PPPoE
login does not become a hotspot voucher without a technician), billed the same way and
on the same cycle. Prepaid <-> postpaid is a credit decision (postpaid means the ISP
lends a month of service), so staff make it. A change of cycle ends a prepaid term at
once and starts a new chain (billing.prepaid), and cuts a postpaid period short, so
"upgrade" and "at renewal" stop meaning one plain thing: staff make those too.

Every figure comes from the billing engine by running the real change and rolling it
back (billing.preview); confirming runs the same change at the moment that was quoted,
and keeps it only if the ledger moves by exactly what the subscriber was shown.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import preview as billing_preview
from billing import services as billing_services
from billing.engine import PriceBook
from billing.models import BillingSettings
from ispops import audit
from subscribers import services
from subscribers.models import Plan, PlanChange, ServiceAccount

log = logging.getLogger(__name__)
LIVE = services.LIVE
State = PlanChange.State
RENEWAL = BillingSettings.PlanMove.AT_RENEWAL


class PriceMoved(services.SubscriberError):
    """What was quoted is no longer what the change would do: quote again."""


@dataclass(frozen=True)
class Quote:
    account: ServiceAccount
    plan: Plan
    upgrade: bool | None  # None: the same price per day
    at: datetime  # when the change takes effect
    scheduled: bool  # at the end of the paid period, not at once
    preview: billing_preview.Preview  # what it does at `at`


def live_accounts(customer):
    return (
        ServiceAccount.objects.filter(customer=customer, status__in=LIVE)
        .select_related("plan", "customer")
        .order_by("id")
    )


def plans_for(account: ServiceAccount):
    """The plans `account` may move to by itself (the module docstring says why)."""
    current = account.plan
    return (
        Plan.objects.filter(
            is_active=True, service=current.service, billing=current.billing, cycle=current.cycle
        )
        .exclude(pk=current.pk)
        .order_by("price", "name")
    )


def direction(account: ServiceAccount, plan: Plan, day, book=None) -> bool | None:
    """True for an upgrade, False for a downgrade, None for neither (the same price
    per day)."""
    if billing_preview.is_upgrade(account.plan, plan, day, book):
        return True
    if billing_preview.is_upgrade(plan, account.plan, day, book):
        return False
    return None


def _waits(account: ServiceAccount, upgrade: bool | None, cfg: BillingSettings) -> bool:
    """Does the ISP's policy make this move wait for renewal? A prepaid ISP that
    refuses upgrades mid-term (prepaid_upgrade) has its subscribers' upgrades wait."""
    if upgrade is None:
        return False  # no money moves either way
    if upgrade:
        return cfg.portal_upgrade == RENEWAL or (
            account.plan.billing == "prepaid"
            and cfg.prepaid_upgrade == BillingSettings.Upgrade.RENEWAL
        )
    return cfg.portal_downgrade == RENEWAL


def when(account: ServiceAccount, plan: Plan, now: datetime):
    """(upgrade?, the moment the change takes effect, or None for at once). A move
    that waits, with nothing paid for now (a lapsed prepaid term), is made at once:
    no money moves either way."""
    cfg = BillingSettings.load()
    upgrade = direction(account, plan, timezone.localdate(now))
    later = billing_preview.paid_until(account, now) if _waits(account, upgrade, cfg) else None
    return upgrade, later


@dataclass(frozen=True)
class Option:
    plan: Plan
    upgrade: bool | None
    at: datetime | None  # None: at once


def options(account: ServiceAccount, now: datetime) -> list[Option]:
    """`plans_for` with each move's direction and moment, in a few queries."""
    cfg = BillingSettings.load()
    plans = list(plans_for(account))
    book = PriceBook({p.pk: p.price for p in [account.plan, *plans]})
    day = timezone.localdate(now)
    end, found = None, False
    out = []
    for plan in plans:
        upgrade = direction(account, plan, day, book)
        at = None
        if _waits(account, upgrade, cfg):
            if not found:
                end, found = billing_preview.paid_until(account, now), True
            at = end
        out.append(Option(plan, upgrade, at))
    return out


def _change(account_id: int, plan: Plan, *, actor, at: datetime):
    # A fresh copy: change_plan refreshes the object it is given, and what a preview
    # did must not stay on the caller's account once it is rolled back.
    def run():
        fresh = ServiceAccount.objects.get(pk=account_id)
        services.change_plan(fresh, plan, actor=actor, at=at)

    return run


def quote(account: ServiceAccount, plan: Plan, *, now: datetime, actor) -> Quote:
    """What moving `account` to `plan` does, at once or at renewal (the policy), priced
    by the engine. Raises SubscriberError if billing refuses the change."""
    upgrade, later = when(account, plan, now)
    at = later or now
    try:
        result = billing_preview.preview(
            account, _change(account.pk, plan, actor=actor, at=at), at=at
        )
    except billing_services.BillingError as exc:
        raise services.SubscriberError(str(exc)) from None
    return Quote(account, plan, upgrade, at, later is not None, result)


def confirm(
    account: ServiceAccount,
    plan: Plan,
    *,
    actor,
    now: datetime,
    quoted_at: datetime,
    quoted_net: Decimal,
    scheduled: bool,
):
    """Make the change the subscriber was quoted: at once, at the quote's moment (so
    the proration is the one shown, to the cent), kept only if the ledger moves by
    `quoted_net`; or scheduled for the end of the paid period. Returns the Preview of
    what was done, or the PlanChange scheduled. Raises PriceMoved when things changed
    since the quote (the policy, the paid period, a payment), and nothing is done."""
    _, later = when(account, plan, now)
    if (later is not None) != scheduled or (scheduled and later != quoted_at):
        raise PriceMoved("the terms changed since you looked")
    if later is not None:
        return schedule(account, plan, at=later, actor=actor, now=now)
    with transaction.atomic():
        done = billing_preview.measure(
            account, _change(account.pk, plan, actor=actor, at=quoted_at), at=quoted_at
        )
        if done.net != quoted_net:
            raise PriceMoved(f"the price changed since you looked (now KES {done.net})")
    return done


def _describe(change: PlanChange) -> str:
    return f"{change.plan.name} from {timezone.localtime(change.at):%d %b %Y %H:%M}"


def schedule(
    account: ServiceAccount, plan: Plan, *, at: datetime, actor, now: datetime
) -> PlanChange:
    """Schedule the move to `plan` at `at`, replacing any change already waiting. The
    account's history (audit) says so, for staff."""
    _, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        billing_services.lock_customer(account.customer_id)
        locked = (
            ServiceAccount.objects.select_for_update(of=("self",), no_key=True)
            .select_related("plan")
            .get(pk=account.pk)
        )
        if locked.status not in LIVE:
            raise services.SubscriberError("this service is not in use")
        _close(locked, State.CANCELLED, by=label, at=now, note=f"replaced by {plan.name}")
        change = PlanChange.objects.create(
            service_account=locked,
            from_plan=locked.plan,
            plan=plan,
            at=at,
            asked_by=label,
            asked_at=now,
        )
        audit.record(
            locked, "update", {"scheduled plan change": [locked.plan.name, _describe(change)]}
        )
    return change


def _close(account, state, *, by: str, at: datetime, note: str) -> int:
    return PlanChange.objects.filter(service_account=account, state=State.PENDING).update(
        state=state, closed_at=at, closed_by=by[:200], note=note[:255]
    )


def pending_for(accounts) -> dict[int, PlanChange]:
    """The change waiting for each of these accounts, by account id."""
    rows = PlanChange.objects.filter(
        service_account__in=list(accounts), state=State.PENDING
    ).select_related("plan")
    return {row.service_account_id: row for row in rows}


def refused_for(accounts, now: datetime, *, days: int = 14) -> dict[int, PlanChange]:
    """The newest scheduled change of each account, when it could not be made in the
    last `days` days (and the account has not changed plan or asked again since), to
    tell the subscriber why."""
    accounts = list(accounts)
    plans = {a.pk: a.plan_id for a in accounts}
    found: dict[int, PlanChange] = {}
    rows = (
        PlanChange.objects.filter(service_account__in=accounts)
        .filter(Q(state=State.PENDING) | Q(closed_at__gte=now - timedelta(days=days)))
        .select_related("plan")
        .order_by("service_account_id", "-asked_at", "-id")
    )
    for row in rows:
        if row.service_account_id not in found:
            found[row.service_account_id] = row
    return {
        pk: row
        for pk, row in found.items()
        if row.state == State.FAILED and row.from_plan_id == plans[pk]
    }


def cancel(change: PlanChange, *, actor, now: datetime) -> bool:
    """Cancel a scheduled change (False if it was no longer waiting)."""
    _, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        billing_services.lock_customer(change.service_account.customer_id)
        done = PlanChange.objects.filter(pk=change.pk, state=State.PENDING).update(
            state=State.CANCELLED, closed_at=now, closed_by=label, note="cancelled"
        )
        if done:
            audit.record(
                change.service_account,
                "update",
                {"scheduled plan change": [_describe(change), "cancelled"]},
            )
    return bool(done)


# --- the periodic task's side ------------------------------------------------------------


def apply_due(now: datetime, *, limit: int = 500) -> dict[str, int]:
    """Apply the scheduled changes that are due at `now`, each once. Returns counts by
    outcome."""
    ids = list(
        PlanChange.objects.filter(state=State.PENDING, at__lte=now)
        .order_by("at", "id")
        .values_list("id", flat=True)[:limit]
    )
    counts = {"done": 0, "failed": 0, "skipped": 0}
    for change_id in ids:
        counts[apply(change_id, now)] += 1
    return counts


def apply(change_id: int, now: datetime) -> str:
    """Apply one scheduled change through change_plan at its moment: "done", "failed"
    (refused, with the reason on the row) or "skipped" (not pending or not due: a
    duplicate delivery, a cancellation that came first).

    Claimed by a conditional UPDATE in the transaction that makes the change, after
    the customer lock (the order schedule and cancel take): a second worker waits,
    then finds the row no longer pending. Nothing is left half-claimed by a crash."""
    change = (
        PlanChange.objects.select_related("service_account", "plan", "from_plan")
        .filter(pk=change_id, state=State.PENDING, at__lte=now)
        .first()
    )
    if change is None:
        return "skipped"
    actor = f"scheduled plan change ({change.asked_by})"[:200]
    try:
        with transaction.atomic():
            billing_services.lock_customer(change.service_account.customer_id)
            claimed = PlanChange.objects.filter(
                pk=change.pk, state=State.PENDING, at__lte=now
            ).update(state=State.DONE, closed_at=now, closed_by=actor)
            if claimed != 1:
                return "skipped"
            account = ServiceAccount.objects.select_related("plan").get(
                pk=change.service_account_id
            )
            problem = _why_not(change, account)
            if problem:
                PlanChange.objects.filter(pk=change.pk).update(state=State.FAILED, note=problem)
                return "failed"
            services.change_plan(account, change.plan, actor=actor, at=change.at)
    except services.SubscriberError as exc:
        log.warning("scheduled plan change %s refused: %s", change.pk, exc)
        PlanChange.objects.filter(pk=change.pk, state=State.PENDING).update(
            state=State.FAILED, closed_at=now, closed_by=actor, note=str(exc)[:255]
        )
        return "failed"
    return "done"


def _why_not(change: PlanChange, account: ServiceAccount) -> str:
    if account.status not in LIVE:
        return "the service is no longer in use"
    if account.plan_id != change.from_plan_id:
        return f"the plan was changed to {account.plan.name} meanwhile"
    if not change.plan.is_active:
        return f"{change.plan.name} is no longer offered"
    return ""
