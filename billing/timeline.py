"""What a postpaid billing period should cost: pure functions of a service account's
timeline, its add-ons and discounts and the plans' price history. No database, no clock.

The timeline is a list of entries, each saying "from this day on, the account is in this
status on this plan, billed this way, and these days are (not) billable". A day's state
is the state at the end of that day: an account suspended or terminated on the 12th is
not charged for the 12th; one activated or restored on the 15th is charged for the 15th.

Periods exist only while an account is in service (active or suspended) on a postpaid
plan. A *regime* is an unbroken run of such days on one cycle; its first day is the
anchor of its periods (anniversary billing) or, with fixed-day billing, monthly periods
fall on the fixed day and the regime's first period is partial. A change of cycle or of
billing mode ends one regime and starts another on the day of the change, so the old
plan's period is cut short there (and prorated against its full length) and the new
plan's periods start that day.

Every line of a period is price x (billable days of the line in the period) / (days in
the whole period), summed per line and rounded half-up to the cent once, per line:
- the plan: priced at the plan's price in force on the first day of the period, or on
  the day the plan began within the period if later;
- each add-on: its own price, on the days from its start to its end (inclusive) that
  are billable;
- each discount, on the days from its start to its end (inclusive) that are billable:
  a percentage of the plan's amount on those days, or a fixed amount prorated like a
  plan; discounts together never take more than the plan's amount on a day (the
  oldest first, a later one gets what is left).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing import periods

CENT = periods.CENT
IN_SERVICE = frozenset({"active", "suspended"})
POSTPAID = "postpaid"


@dataclass(frozen=True)
class Entry:
    """One timeline row (billing.models.TimelineEntry), as the engine needs it."""

    starts_on: date
    status: str
    plan_id: int
    plan_name: str
    mode: str
    cycle: str
    billable: bool


@dataclass(frozen=True)
class Segment:
    """Days [start, end) in one state; `end` None: until further notice."""

    start: date
    end: date | None
    status: str
    plan_id: int
    plan_name: str
    mode: str
    cycle: str
    billable: bool

    def overlap(self, start: date, end: date) -> tuple[date, date] | None:
        lo = max(self.start, start)
        hi = end if self.end is None else min(self.end, end)
        return (lo, hi) if lo < hi else None


@dataclass(frozen=True)
class Period:
    """A billing period [start, end) of a postpaid regime. `days` is the length of the
    whole period it belongs to (a period cut short by a change, or a fixed-day first
    period, is prorated against that)."""

    start: date
    end: date
    days: int
    cycle: str


@dataclass(frozen=True)
class AddOnTerm:
    id: int
    name: str
    price: Decimal
    starts_on: date
    ends_on: date | None


@dataclass(frozen=True)
class DiscountTerm:
    id: int
    reason: str
    kind: str  # "percent" or "fixed"
    value: Decimal
    starts_on: date
    ends_on: date


@dataclass
class Line:
    """One line of what a period should cost (or of a difference to post)."""

    key: str
    kind: str  # an InvoiceLine.Kind value
    name: str
    amount: Decimal
    first: date | None = None
    last: date | None = None  # inclusive
    days: int = 0
    exact: Decimal = field(default=Decimal(0), repr=False)


# --- segments -------------------------------------------------------------------------


def segments(entries: Iterable[Entry], waived: Iterable[tuple[date, date]] = ()) -> list[Segment]:
    """The timeline as consecutive segments. `entries` in the order they were made;
    several on one day: the last is the day's state. `waived` day ranges [start, end)
    are cut out as not billable (what a void leaves)."""
    by_day: dict[date, Entry] = {}
    for entry in entries:
        by_day[entry.starts_on] = entry
    days = sorted(by_day)
    out: list[Segment] = []
    for i, day in enumerate(days):
        e = by_day[day]
        end = days[i + 1] if i + 1 < len(days) else None
        out.append(Segment(day, end, e.status, e.plan_id, e.plan_name, e.mode, e.cycle, e.billable))
    for start, end in sorted(waived):
        out = _cut(out, start, end)
    return out


def _cut(segs: list[Segment], start: date, end: date) -> list[Segment]:
    """Mark [start, end) not billable, splitting the segments it crosses."""
    out = []
    for s in segs:
        hit = s.overlap(start, end)
        if hit is None or not s.billable:
            out.append(s)
            continue
        lo, hi = hit
        if s.start < lo:
            out.append(_slice(s, s.start, lo, s.billable))
        out.append(_slice(s, lo, hi, False))
        if s.end is None or hi < s.end:
            out.append(_slice(s, hi, s.end, s.billable))
    return out


def _slice(s: Segment, start: date, end: date | None, billable: bool) -> Segment:
    return Segment(start, end, s.status, s.plan_id, s.plan_name, s.mode, s.cycle, billable)


# --- periods --------------------------------------------------------------------------


def regimes(segs: list[Segment]) -> list[tuple[date, date | None, str]]:
    """Unbroken runs of in-service postpaid days on one cycle: (start, end, cycle)."""
    found: list[list] = []
    for s in segs:
        if s.status not in IN_SERVICE or s.mode != POSTPAID:
            continue
        last = found[-1] if found else None
        if last is not None and last[1] == s.start and last[2] == s.cycle:
            last[1] = s.end
        else:
            found.append([s.start, s.end, s.cycle])
    return [(a, b, c) for a, b, c in found]


def periods_until(segs: list[Segment], until: date, fixed_day: int | None) -> list[Period]:
    """Every period of the timeline that starts on or before `until`, oldest first."""
    out = []
    for start, end, cycle in regimes(segs):
        if cycle == "hourly":
            raise ValueError("hourly plans are prepaid only")
        fixed = fixed_day if cycle == "monthly" else None
        day = start
        while day <= until and (end is None or day < end):
            natural_start, natural_end = periods.period_containing(cycle, start, day, fixed)
            period_start = max(natural_start, start)
            full = periods.full_period_days(cycle, period_start, start, fixed)
            period_end = natural_end if end is None else min(natural_end, end)
            out.append(Period(period_start, period_end, full, cycle))
            day = period_end
    return out


# --- what a period costs --------------------------------------------------------------


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _span(first: date, last: date) -> str:
    return f"{first:%d %b %Y} to {last:%d %b %Y}"


def _days_note(days: int, full: int) -> str:
    return "" if days == full else f" ({days} of {full} days)"


def period_lines(
    segs: list[Segment],
    period: Period,
    price_of: Callable[[int, date], Decimal],
    addons: Iterable[AddOnTerm] = (),
    discounts: Iterable[DiscountTerm] = (),
) -> dict[str, Line]:
    """What `period` should cost, line by line (keyed "plan:<id>", "addon:<id>",
    "discount:<id>"); lines worth nothing are left out."""
    since = _plan_since(segs)
    pieces = [
        (s, hit, since[i])
        for i, s in enumerate(segs)
        if s.billable and (hit := s.overlap(period.start, period.end)) is not None
    ]
    lines: dict[str, Line] = {}
    # The plan's amount per billable day range, for percentage discounts.
    plan_days: list[tuple[date, date, Decimal]] = []
    for s, (lo, hi), plan_began in pieces:
        price = Decimal(price_of(s.plan_id, max(period.start, plan_began)))
        per_day = price / period.days
        plan_days.append((lo, hi, per_day))
        _add(lines, f"plan:{s.plan_id}", "plan", s.plan_name, lo, hi, per_day)
    for addon in addons:
        last = addon.ends_on or date.max - timedelta(days=1)
        for _, (lo, hi), _ in pieces:
            hit = _clip(lo, hi, addon.starts_on, last + timedelta(days=1))
            if hit:
                _add(
                    lines, f"addon:{addon.id}", "addon", addon.name, *hit, addon.price / period.days
                )
    _discounts(lines, discounts, plan_days, period)
    out = {}
    for key, line in lines.items():
        line.amount = _round(line.exact)
        if line.amount == 0:
            continue
        full = line.days >= period.days
        if line.kind == "plan":
            line.kind = "plan" if full else "proration"
            line.name = f"{line.name}, {_span(line.first, line.last)}"
            line.name += _days_note(line.days, period.days)
        elif line.kind == "addon":
            line.name = f"{line.name}, {_span(line.first, line.last)}"
            line.name += _days_note(line.days, period.days)
        out[key] = line
    return out


def _plan_since(segs: list[Segment]) -> list[date]:
    """For each segment, the day its plan began: a status change (a suspension, a
    restoration) does not start the plan again, a plan change does."""
    out: list[date] = []
    for i, s in enumerate(segs):
        prev = segs[i - 1] if i else None
        same = prev is not None and prev.plan_id == s.plan_id and prev.end == s.start
        out.append(out[-1] if same else s.start)
    return out


def _clip(lo: date, hi: date, start: date, end: date) -> tuple[date, date] | None:
    a, b = max(lo, start), min(hi, end)
    return (a, b) if a < b else None


def _add(lines, key, kind, name, lo: date, hi: date, per_day: Decimal) -> None:
    line = lines.get(key)
    if line is None:
        line = lines[key] = Line(key=key, kind=kind, name=name, amount=Decimal(0))
    days = (hi - lo).days
    line.exact += per_day * days
    line.days += days
    last = hi - timedelta(days=1)
    line.first = lo if line.first is None else min(line.first, lo)
    line.last = last if line.last is None else max(line.last, last)


def _discounts(lines, discounts, plan_days, period: Period) -> None:
    """Each discount on its billable days, oldest first: a percentage of the plan's
    amount that day, or a fixed amount spread over the period's days. Together they
    never take more than the plan's amount on a day: a later one gets what is left."""
    discounts = sorted(discounts, key=lambda d: d.id)
    if not discounts:
        return
    plan: dict[date, Decimal] = {}
    for lo, hi, per_day in plan_days:
        for n in range((hi - lo).days):
            plan[lo + timedelta(days=n)] = per_day
    left = dict(plan)
    for discount in discounts:
        value, days = Decimal(0), 0
        for day, per_day in plan.items():
            if not discount.starts_on <= day <= discount.ends_on:
                continue
            if discount.kind == "percent":
                wanted = per_day * Decimal(discount.value) / 100
            else:
                wanted = Decimal(discount.value) / period.days
            take = min(wanted, left[day])
            left[day] -= take
            value += take
            days += 1
        if days:
            lines[f"discount:{discount.id}"] = Line(
                key=f"discount:{discount.id}",
                kind="discount",
                name=f"Discount: {discount.reason}",
                amount=Decimal(0),
                days=days,
                exact=-value,
            )


def difference(expected: dict[str, Line], charged: dict[str, tuple[Decimal, str]]) -> list[Line]:
    """The lines to post so that what was charged (key -> (amount, the name of the line
    first charged)) becomes what is expected: per key, expected minus charged. A
    negative plan or add-on line is a credit for days no longer billable; a positive one
    a charge for days that became billable."""
    out = []
    for key in sorted(set(expected) | set(charged)):
        want = expected[key].amount if key in expected else Decimal("0.00")
        have, first_name = charged.get(key, (Decimal("0.00"), ""))
        diff = want - have
        if diff == 0:
            continue
        template = expected.get(key)
        kind = template.kind if template else _kind_of(key)
        if template is None:
            name = f"{first_name.partition(',')[0]}: no days charged in this period"
        elif have:
            head, _, rest = template.name.partition(",")
            name = f"{head}: now{rest}" if rest else f"{head}: adjusted"
        else:
            name = template.name
        if diff < 0 and kind in ("plan", "proration", "addon"):
            kind, name = "credit", f"Credit: {name}"
        out.append(Line(key=key, kind=kind, name=name[:255], amount=diff))
    return out


def _kind_of(key: str) -> str:
    prefix = key.split(":", 1)[0]
    return {"plan": "plan", "addon": "addon", "discount": "discount"}.get(prefix, "other")
