"""Voucher agents and their ledger (AgentEntry): float given (+), cards taken at their
price (-), cards returned when revoked or expired unsold (+), commission on each card
sold (+), payouts (-). The balance is the sum of the rows, never a stored figure:
positive, the ISP owes the agent; negative, the agent owes the ISP.

The voucher service (hotspot.vouchers) writes the card rows inside its own
transactions; staff write float and payouts here.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from hotspot.models import AgentEntry, Voucher, VoucherBatch
from ispops import audit
from ispops.lib.money import CENT, ZERO, to_money
from ispops.staff.models import Role, User

Kind = AgentEntry.Kind


class AgentError(ValueError):
    """A ledger entry that cannot be made; str() says why."""


def agents():
    return User.objects.filter(role=Role.AGENT)


def check_agent(user) -> None:
    if user is None or user.role != Role.AGENT or not user.is_active:
        raise AgentError(f"{user} is not an active voucher agent")


def balance(agent) -> Decimal:
    total = AgentEntry.objects.filter(agent=agent).aggregate(s=Sum("amount"))["s"]
    return to_money(total or ZERO)


def with_figures(queryset):
    """Agents with their balance, cards held and cards sold: one query, by subqueries
    (joining entries and cards together would multiply the sums)."""
    entries = AgentEntry.objects.filter(agent=OuterRef("pk")).values("agent")
    cards = Voucher.objects.filter(batch__agent=OuterRef("pk")).values("batch__agent")
    held = cards.filter(state=Voucher.State.ASSIGNED)
    sold = cards.filter(state__in=(Voucher.State.SOLD, Voucher.State.REDEEMED))
    return queryset.annotate(
        balance=Coalesce(Subquery(entries.annotate(s=Sum("amount")).values("s")), ZERO),
        held=Coalesce(Subquery(held.annotate(n=Count("id")).values("n")), 0),
        sold=Coalesce(Subquery(sold.annotate(n=Count("id")).values("n")), 0),
    )


def commission_on(batch: VoucherBatch) -> Decimal:
    rate = Decimal(batch.commission_percent) / 100
    return (batch.price * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def _entry(agent, kind, amount, *, actor, batch=None, voucher=None, note="") -> AgentEntry:
    return AgentEntry.objects.create(
        agent=agent,
        kind=kind,
        amount=to_money(amount),
        batch=batch,
        voucher=voucher,
        note=note[:200],
        recorded_by=audit.describe_actor(actor)[1],
    )


def charge_cards(agent, batch: VoucherBatch, count: int, *, actor) -> AgentEntry:
    return _entry(
        agent,
        Kind.CARDS,
        -(batch.price * count),
        batch=batch,
        actor=actor,
        note=f"{count} x {batch.package} at {batch.price}",
    )


def return_cards(agent, batch: VoucherBatch, count: int, *, why: str, actor) -> AgentEntry:
    return _entry(
        agent,
        Kind.CARDS,
        batch.price * count,
        batch=batch,
        actor=actor,
        note=f"{count} returned: {why}",
    )


def earn_commission(agent, voucher: Voucher, batch: VoucherBatch, *, actor) -> AgentEntry | None:
    amount = commission_on(batch)
    if amount <= 0:
        return None
    return _entry(agent, Kind.COMMISSION, amount, batch=batch, voucher=voucher, actor=actor)


@transaction.atomic
def give_float(agent, amount, *, note: str = "", actor) -> AgentEntry:
    """Money the agent paid in (or credit given) to take cards against."""
    check_agent(agent)
    amount = _positive(amount)
    entry = _entry(agent, Kind.FLOAT, amount, note=note, actor=actor)
    audit.record(agent, "update", {"agent float": str(amount)}, actor=actor)
    return entry


@transaction.atomic
def record_payout(agent, amount, *, note: str = "", actor) -> AgentEntry:
    """Money paid to the agent (their commission, or float returned)."""
    check_agent(agent)
    amount = _positive(amount)
    entry = _entry(agent, Kind.PAYOUT, -amount, note=note, actor=actor)
    audit.record(agent, "update", {"agent payout": str(amount)}, actor=actor)
    return entry


def _positive(amount) -> Decimal:
    try:
        value = to_money(amount)
    except (TypeError, ValueError):
        raise AgentError(f"not an amount: {amount!r}") from None
    if value <= 0:
        raise AgentError("the amount must be more than zero")
    return value
