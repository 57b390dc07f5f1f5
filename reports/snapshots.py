"""The daily subscription snapshot, and the one home of the normalised-MRR rule.

`monthly_value` says what a recurring service is worth a month on a day: the period
amount billing would charge for that plan on that day (billing.timeline.period_lines:
the plan's price in force that day from PlanPrice, the add-ons and discounts in force
that day, discounts capped as billing caps them), normalised to a month (a monthly plan
as is; a plan of N days x 30.4375 / N: weekly 7, daily 1, hourly 1/24), then the VAT
taken out with billing's own split where the ISP's prices include it. Decimal, to the
cent, half-up.

`take(day)` writes one Snapshot row per service account in service (active or
suspended) at the end of `day`, read from the billing timeline (billing.engine.load,
so a past day is right), with its site, branch (the customer's) and router as the
account has them now. A day is taken once: the SnapshotDay row is claimed first (its
unique day), so a second take, or two at once, write nothing more. A day taken later
than the morning after it (the beat was down) is marked estimated; the nightly run for
yesterday is not. SnapshotDay.mrr is the sum over the day's rows (active and
suspended; each row's status says which).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from billing import engine, periods, timeline
from billing.models import BillingSettings, TimelineEntry
from reports.models import MovementFigures, Snapshot, SnapshotDay
from subscribers.models import AccountStatus, Plan, ServiceAccount

CENT = periods.CENT
MONTH_DAYS = Decimal("30.4375")
# Days in one period of each non-monthly cycle (Plan.Cycle).
PERIOD_DAYS = {
    Plan.Cycle.WEEKLY: Decimal(7),
    Plan.Cycle.DAILY: Decimal(1),
    Plan.Cycle.HOURLY: Decimal(1) / 24,
}
IN_SERVICE = (AccountStatus.ACTIVE, AccountStatus.SUSPENDED)
# fill_missing never looks further back than this.
MAX_FILL_DAYS = 400
COLUMNS = (
    "day", "service_account_id", "customer_id", "plan_id", "site_id", "branch_id",
    "router_id", "status", "suspended_since", "mrr", "estimated",
)  # fmt: skip


class SnapshotError(ValueError):
    """A day that cannot be taken (not over yet)."""


def monthly_value(
    plan_id: int,
    cycle: str,
    day: date,
    *,
    price_of: Callable[[int, date], Decimal],
    vat_rate: Decimal,
    vat_inclusive: bool,
    addons: Iterable[timeline.AddOnTerm] = (),
    discounts: Iterable[timeline.DiscountTerm] = (),
) -> Decimal:
    """The normalised monthly recurring revenue, VAT excluded, of a service on `plan_id`
    billed in periods of `cycle` on `day` (see the module docstring). `price_of` is
    billing's (engine.PriceBook.price_of)."""
    # One whole period priced as billing prices it, with the terms in force on `day`:
    # a one-day slice of a one-day period is the full period's amount.
    seg = timeline.Segment(day, day + timedelta(days=1), "active", plan_id, "", "postpaid",
                           cycle, True)  # fmt: skip
    period = timeline.Period(day, day + timedelta(days=1), 1, cycle)
    lines = timeline.period_lines([seg], period, price_of, addons, discounts)
    amount = sum((line.amount for line in lines.values()), Decimal(0))
    if cycle != Plan.Cycle.MONTHLY:
        amount = amount * MONTH_DAYS / PERIOD_DAYS[cycle]
    amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return periods.split_vat(amount, vat_rate, vat_inclusive)[0]


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _in_force(segs: list[timeline.Segment], day: date) -> int | None:
    """Index of the segment holding `day`, or None."""
    for i in range(len(segs) - 1, -1, -1):
        s = segs[i]
        if s.start <= day:
            return i if s.end is None or day < s.end else None
    return None


def _suspended_since(segs: list[timeline.Segment], i: int) -> date:
    """The first day of the unbroken suspension that segment `i` is part of."""
    while (
        i > 0 and segs[i - 1].status == AccountStatus.SUSPENDED and segs[i - 1].end == segs[i].start
    ):
        i -= 1
    return segs[i].start


@dataclass
class Loaded:
    """What the rows of some days are read from: the accounts that may be in service on
    them, each as (id, customer, site, branch, router, timeline segments, add-ons,
    discounts), with the billing settings and the engine's prices."""

    cfg: BillingSettings
    accounts: list[tuple]
    prices: engine.PriceBook
    values: dict = field(default_factory=dict)  # (plan, cycle, day) -> MRR without terms


@dataclass(frozen=True)
class _Account:
    """What engine.load reads of an account (its implied timeline when it has none) and
    where it is: read as plain values, not model objects (100,000 of them), and no
    password is ever decrypted for a snapshot."""

    pk: int
    customer_id: int
    site_id: int | None
    router_id: int | None
    branch_of: int | None
    status: str
    activated_at: datetime | None
    suspended_at: datetime | None
    terminated_at: datetime | None
    created_at: datetime
    plan: Plan


FIELDS = (
    "pk", "customer_id", "site_id", "router_id", "customer__branch_id", "status",
    "activated_at", "suspended_at", "terminated_at", "created_at", "plan_id",
)  # fmt: skip


def load(since: date) -> Loaded:
    """Everything the rows of days from `since` on need, in a handful of queries."""
    cfg = BillingSettings.load()
    plans = {plan.pk: plan for plan in Plan.objects.all()}
    wanted = ServiceAccount.objects.filter(
        Q(activated_at__isnull=False) | Q(status__in=[*IN_SERVICE, AccountStatus.TERMINATED])
    ).exclude(status=AccountStatus.TERMINATED, terminated_at__lt=_start_of(since))
    accounts = [
        _Account(*row[:-1], plans[row[-1]]) for row in wanted.order_by().values_list(*FIELDS)
    ]
    book = engine.load(accounts, cfg, among=wanted.values("pk"))
    rows = [
        (a.pk, a.customer_id, a.site_id, a.branch_of, a.router_id, book.segments[a.pk],
         book.addons.get(a.pk, ()), book.discounts.get(a.pk, ()))
        for a in accounts
    ]  # fmt: skip
    return Loaded(cfg, rows, book.prices)


def rows_for(loaded: Loaded, day: date, *, estimated: bool) -> list[tuple]:
    """The snapshot rows of `day` (COLUMNS order); no query."""
    cfg, values = loaded.cfg, loaded.values
    terms = dict(
        price_of=loaded.prices.price_of, vat_rate=cfg.vat_rate, vat_inclusive=cfg.vat_inclusive
    )
    rows = []
    for pk, customer, site, branch, router, segs, addons, discounts in loaded.accounts:
        i = _in_force(segs, day)
        if i is None or segs[i].status not in IN_SERVICE:
            continue
        seg = segs[i]
        if addons or discounts:
            mrr = monthly_value(
                seg.plan_id, seg.cycle, day, addons=addons, discounts=discounts, **terms
            )
        else:
            key = (seg.plan_id, seg.cycle, day)
            if key not in values:
                values[key] = monthly_value(seg.plan_id, seg.cycle, day, **terms)
            mrr = values[key]
        since = _suspended_since(segs, i) if seg.status == AccountStatus.SUSPENDED else None
        rows.append((day, pk, customer, seg.plan_id, site, branch, router, seg.status, since,
                     mrr, estimated))  # fmt: skip
    return rows


def _copy(rows: list[tuple]) -> None:
    """Write the rows with one COPY (psycopg), in the ISP's schema."""
    table = Snapshot._meta.db_table
    sql = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _by_branch(rows: list[tuple]) -> dict[str, str]:
    """The rows' MRR by branch (SnapshotDay.by_branch)."""
    totals: dict[int, Decimal] = {}
    for row in rows:
        if row[5] is not None:
            totals[row[5]] = totals.get(row[5], Decimal(0)) + row[9]
    return {str(branch): str(total) for branch, total in sorted(totals.items())}


def take(day: date, *, as_of: datetime | None = None) -> SnapshotDay:
    """The snapshot of `day` (see the module docstring): taken now if it has not been,
    else the one already taken, unchanged. `as_of` (default now) is when it is taken."""
    return take_days([day], as_of=as_of)[0]


def take_days(days: list[date], *, as_of: datetime | None = None) -> list[SnapshotDay]:
    """`take` for several days, the accounts and timelines read once for all of them;
    each day in its own transaction (claimed, written, summed)."""
    as_of = as_of or timezone.now()
    today = timezone.localdate(as_of)
    for day in days:
        if day >= today:
            raise SnapshotError(f"{day} is not over yet: a day is taken once it has ended")
    loaded = None
    out = []
    for day in days:
        estimated = today > day + timedelta(days=1)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    snap = SnapshotDay.objects.create(day=day, estimated=estimated, taken_at=as_of)
            except IntegrityError:
                out.append(SnapshotDay.objects.get(day=day))
                continue
            loaded = loaded or load(min(days))
            rows = rows_for(loaded, day, estimated=estimated)
            _copy(rows)
            snap.services = len(rows)
            snap.mrr = sum((r[9] for r in rows), Decimal(0))
            snap.by_branch = _by_branch(rows)
            snap.save(update_fields=["services", "mrr", "by_branch"])
            # Movement figures worked out while this day was missing read it as empty.
            MovementFigures.objects.filter(reads_from__lte=day, end_day__gte=day).delete()
        out.append(snap)
    return out


def first_day() -> date | None:
    """The first day history can start: the first snapshot, else the ISP's first day
    in service on the timeline (or first activation)."""
    first = SnapshotDay.objects.aggregate(d=Min("day"))["d"]
    if first is not None:
        return first
    starts = TimelineEntry.objects.filter(status__in=IN_SERVICE).aggregate(d=Min("starts_on"))["d"]
    activated = ServiceAccount.objects.aggregate(d=Min("activated_at"))["d"]
    days = [d for d in (starts, activated and timezone.localdate(activated)) if d]
    return min(days) if days else None


def fill_missing(until: date, *, as_of: datetime) -> list[SnapshotDay]:
    """Take every day up to `until` that has no snapshot, from the first day history can
    start (at most MAX_FILL_DAYS back): estimated from the timeline. Oldest first."""
    first = first_day()
    if first is None:
        return []
    start = max(first, until - timedelta(days=MAX_FILL_DAYS))
    have = set(
        SnapshotDay.objects.filter(day__gte=start, day__lte=until).values_list("day", flat=True)
    )
    days = [start + timedelta(days=n) for n in range((until - start).days + 1)]
    return take_days([d for d in days if d not in have], as_of=as_of)
