"""MRR movement: the one home of its rules (issue 15; /work/shared/hotspot.md C.2).

A customer's MRR on a day is the sum of its snapshot rows' mrr that day, a service
suspended for ReportSettings.churn_after_days or more (counted from suspended_since)
counting as 0; a terminated service has no row. For a period [first, last] (a calendar
month, or an ISO week Monday..Sunday; Africa/Nairobi dates) the start MRR is the
customers' MRR on the day before `first`, the end MRR on `last` (or `today` while the
period is still running). Each customer's change is one event:

- new: 0 -> >0, and no MRR on any day within reactivation_days before `first`;
- reactivation: 0 -> >0, with MRR on some day within reactivation_days before `first`;
- expansion: up; contraction: down and still > 0; churn: >0 -> 0.

so start + new + expansion - contraction - churn + reactivation = end holds to the cent
by construction; `Movement.check` raises if it does not.

Branches: a branch's figures are its customers' rows in it (a customer who moves
branch leaves one and joins the other); several branches' figures are their sum.

Speed: the figures of any number of periods are worked out by one SQL statement that
groups the rows of the periods' boundary days by customer (a 12-month report reads 13
days of rows and classifies in SQL), for the whole ISP or for every branch at once, and
kept in MovementFigures: they read only immutable snapshot rows, so a period's figures
to a given end day never change (a day filled in later deletes those that read it). A
report is then one lookup of 12 rows; the nightly run works out the current periods
(`work_out_current`) so the owner's first look is fast too. Only the drill-down returns
per-customer lines, worked out each time.
"""

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection

from reports.models import MovementFigures, ReportSettings, Snapshot, SnapshotDay
from subscribers.models import Customer

ZERO = Decimal("0.00")
MONTH, WEEK = "month", "week"
KINDS = (MONTH, WEEK)
EVENTS = ("new", "expansion", "contraction", "churn", "reactivation")
EVENT_LABELS = {
    "new": "New",
    "expansion": "Expansion",
    "contraction": "Contraction",
    "churn": "Churn",
    "reactivation": "Reactivation",
}


class MovementError(ArithmeticError):
    """The movement identity failed: a bug, never a figure to show."""


@dataclass(frozen=True)
class Period:
    kind: str  # MONTH or WEEK
    first: date
    last: date

    @property
    def key(self) -> str:
        """'2026-05' for a month, '2026-W19' for an ISO week (the URL's form)."""
        if self.kind == MONTH:
            return f"{self.first:%Y-%m}"
        year, week, _ = self.first.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def before(self) -> date:
        """The day whose snapshot is the period's start."""
        return self.first - timedelta(days=1)

    def end_day(self, today: date) -> date:
        """The day whose snapshot is the period's end: its last day, or today."""
        return min(self.last, today)

    def __str__(self):
        return self.key


def period_of(kind: str, day: date) -> Period:
    """The month or ISO week holding `day`."""
    if kind == MONTH:
        first = day.replace(day=1)
        return Period(MONTH, first, first.replace(day=monthrange(first.year, first.month)[1]))
    if kind == WEEK:
        first = day - timedelta(days=day.weekday())
        return Period(WEEK, first, first + timedelta(days=6))
    raise ValueError(f"unknown period kind {kind!r}")


def parse_period(key: str) -> Period:
    """The period named by `key` ('2026-05' or '2026-W19'); ValueError if none."""
    try:
        if "-W" in key:
            year, week = key.split("-W")
            return period_of(WEEK, date.fromisocalendar(int(year), int(week), 1))
        year, month = key.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(key)
        return period_of(MONTH, date(int(year), int(month), 1))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a period: {key!r}") from exc


def periods(kind: str, last: date, count: int = 12) -> list[Period]:
    """`count` consecutive periods of `kind`, oldest first, ending with the one holding
    `last`."""
    out = [period_of(kind, last)]
    while len(out) < count:
        out.append(period_of(kind, out[-1].first - timedelta(days=1)))
    return out[::-1]


@dataclass
class Movement:
    period: Period
    start: Decimal = ZERO
    new: Decimal = ZERO
    expansion: Decimal = ZERO
    contraction: Decimal = ZERO
    churn: Decimal = ZERO
    reactivation: Decimal = ZERO
    end: Decimal = ZERO
    counts: dict = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    customers_start: int = 0  # customers with MRR at the start
    customers_end: int = 0  # paying customers at the end

    def check(self) -> "Movement":
        moved = (
            self.start
            + self.new
            + self.expansion
            - self.contraction
            - self.churn
            + self.reactivation
        )
        if moved != self.end:
            raise MovementError(f"{self.period}: {moved} != end {self.end}")
        return self

    def figure(self, event: str) -> Decimal:
        return getattr(self, event)


@dataclass(frozen=True)
class Line:
    customer_id: int
    customer: str
    old: Decimal
    new: Decimal
    event: str


def last_day(today: date) -> date | None:
    """The last day with a snapshot up to `today`: where a running period ends (None
    before the first snapshot)."""
    days = SnapshotDay.objects.filter(day__lte=today).order_by("-day")
    return days.values_list("day", flat=True).first()


def _rules() -> tuple[int, int]:
    rules = ReportSettings.load()
    return rules.churn_after_days, rules.reactivation_days


# Per unit and period: MRR on the day before the period and on its end day, and the
# event. A unit is a customer (the whole ISP), or a customer in a branch (by branch:
# {unit} is s.branch_id, {hunit} ties the look-back to the same branch), so that a
# branch's figures are its own and several branches' figures are their sum.
# `periods` is (key, before, end_day, first).
_LINES_SQL = """
WITH periods(key, before, end_day, first) AS (
    SELECT * FROM unnest(%(keys)s::text[], %(befores)s::date[], %(ends)s::date[],
                         %(firsts)s::date[])
),
per_day AS (
    SELECT s.customer_id, {unit} AS scope, s.day,
           SUM(CASE WHEN s.suspended_since IS NOT NULL
                         AND s.day - s.suspended_since >= %(churn_after)s
                    THEN 0 ELSE s.mrr END) AS mrr
    FROM {snapshot} s
    WHERE s.day = ANY(%(days)s::date[]) {branch}
    GROUP BY 1, 2, 3
),
pairs AS (
    SELECT key, first, customer_id, scope, SUM(old) AS old, SUM(new) AS new
    FROM (
        SELECT p.key, p.first, d.customer_id, d.scope, d.mrr AS old, 0 AS new
        FROM periods p JOIN per_day d ON d.day = p.before
        UNION ALL
        SELECT p.key, p.first, d.customer_id, d.scope, 0, d.mrr
        FROM periods p JOIN per_day d ON d.day = p.end_day
    ) both_ends
    GROUP BY key, first, customer_id, scope
),
lines AS MATERIALIZED (  -- each line's event worked out once, not once per figure
    SELECT key, customer_id, scope, old, new,
           CASE WHEN old = 0 AND new > 0 THEN
                    CASE WHEN EXISTS (
                        SELECT 1 FROM {snapshot} h
                        WHERE h.customer_id = pairs.customer_id
                          AND h.day < pairs.first
                          AND h.day >= pairs.first - %(reactivation)s::int
                          AND h.mrr > 0
                          AND (h.suspended_since IS NULL
                               OR h.day - h.suspended_since < %(churn_after)s) {hunit}
                    ) THEN 'reactivation' ELSE 'new' END
                WHEN old > 0 AND new = 0 THEN 'churn'
                WHEN new > old THEN 'expansion'
                WHEN new < old THEN 'contraction'
           END AS event
    FROM pairs
)
"""

_TOTALS_SQL = """
SELECT key, scope,
       COALESCE(SUM(old), 0), COALESCE(SUM(new), 0),
       COALESCE(SUM(new) FILTER (WHERE event = 'new'), 0),
       COALESCE(SUM(new - old) FILTER (WHERE event = 'expansion'), 0),
       COALESCE(SUM(old - new) FILTER (WHERE event = 'contraction'), 0),
       COALESCE(SUM(old) FILTER (WHERE event = 'churn'), 0),
       COALESCE(SUM(new) FILTER (WHERE event = 'reactivation'), 0),
       COUNT(*) FILTER (WHERE event = 'new'),
       COUNT(*) FILTER (WHERE event = 'expansion'),
       COUNT(*) FILTER (WHERE event = 'contraction'),
       COUNT(*) FILTER (WHERE event = 'churn'),
       COUNT(*) FILTER (WHERE event = 'reactivation'),
       COUNT(*) FILTER (WHERE old > 0), COUNT(*) FILTER (WHERE new > 0)
FROM lines GROUP BY key, scope
"""

WHOLE_ISP, EVERY_BRANCH = MovementFigures.WHOLE_ISP, MovementFigures.EVERY_BRANCH
FIGURE_FIELDS = ("start", "end", "new", "expansion", "contraction", "churn", "reactivation")


def _query(tail: str, spans: list[Period], today: date, rules, by_branch: bool, extra=None):
    """Run _LINES_SQL + `tail` over `spans`: per customer (by_branch False) or per
    customer in each branch (by_branch True; `extra` may limit to "branches")."""
    churn_after, reactivation = rules
    unit, hunit, branch = str(WHOLE_ISP), "", ""
    if by_branch:
        unit, hunit = "s.branch_id", "AND h.branch_id = pairs.scope"
        branch = "AND s.branch_id IS NOT NULL"
        if extra and extra.get("branches") is not None:
            branch = "AND s.branch_id = ANY(%(branches)s::bigint[])"
    sql = _LINES_SQL.format(
        snapshot=Snapshot._meta.db_table, unit=unit, hunit=hunit, branch=branch
    ) + tail.format(customer=Customer._meta.db_table)
    befores = [p.before for p in spans]
    ends = [p.end_day(today) for p in spans]
    params = {
        "keys": [p.key for p in spans],
        "befores": befores,
        "ends": ends,
        "firsts": [p.first for p in spans],
        "days": sorted(set(befores) | set(ends)),
        "churn_after": churn_after,
        "reactivation": reactivation,
        **(extra or {}),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _work_out(spans: list[Period], today: date, rules, by_branch: bool) -> None:
    """Work out and keep the figures of `spans`: for the whole ISP, or for every branch
    (one query either way). Two at once keep one row each (the unique key)."""
    by_key = {p.key: p for p in spans}
    rows = _query(_TOTALS_SQL, spans, today, rules, by_branch)
    kept = []
    for key, scope, start, end, new, exp, con, churn, react, *n in rows:
        span = by_key[key]
        figures = Movement(
            span, start=start, end=end, new=new, expansion=exp, contraction=con, churn=churn,
            reactivation=react, counts=dict(zip(EVENTS, n[:5], strict=True)),
            customers_start=n[5], customers_end=n[6],
        ).check()  # fmt: skip
        kept.append(_row(figures, today, scope, rules))
    # The marker of each period (the whole ISP's row, zeros if it had no rows; or "every
    # branch kept"), written last in the same statement: it says the period is done.
    marker = EVERY_BRANCH if by_branch else WHOLE_ISP
    found = {row.period for row in kept if row.scope == marker}
    kept += [_row(Movement(p), today, marker, rules) for p in spans if p.key not in found]
    MovementFigures.objects.bulk_create(kept, ignore_conflicts=True)


def _row(m: "Movement", today: date, scope: int, rules) -> MovementFigures:
    churn_after, reactivation = rules
    return MovementFigures(
        kind=m.period.kind, period=m.period.key, end_day=m.period.end_day(today), scope=scope,
        churn_after_days=churn_after, reactivation_days=reactivation,
        reads_from=m.period.first - timedelta(days=reactivation),
        counts=m.counts, customers_start=m.customers_start, customers_end=m.customers_end,
        **{name: getattr(m, name) for name in FIGURE_FIELDS},
    )  # fmt: skip


def _kept(spans: list[Period], today: date, rules, scopes: list[int]) -> list[MovementFigures]:
    churn_after, reactivation = rules
    keys = {(p.kind, p.key, p.end_day(today)) for p in spans}
    rows = MovementFigures.objects.filter(
        kind__in={p.kind for p in spans},
        period__in=[p.key for p in spans],
        end_day__in={p.end_day(today) for p in spans},
        scope__in=scopes,
        churn_after_days=churn_after,
        reactivation_days=reactivation,
    )
    return [r for r in rows if (r.kind, r.period, r.end_day) in keys]


def movements(spans: list[Period], *, today: date, branch_ids=None) -> list[Movement]:
    """The movement of each period in `spans`, identity checked. `today`: the last day
    with a snapshot (a running period ends there); `branch_ids`: None for the whole
    ISP, else the sum of those branches' own figures.

    Figures are read from MovementFigures; periods not kept yet are worked out (one
    query over the periods' boundary days, for the whole ISP or for every branch at
    once) and kept: a report asked again, or after the nightly run worked it out, is
    one lookup."""
    if not spans:
        return []
    rules = _rules()
    by_branch = branch_ids is not None
    scopes = sorted(set(branch_ids)) if by_branch else [WHOLE_ISP]
    # Which periods are kept: the whole ISP's row, or for branches the marker row saying
    # every branch's rows were kept (a branch with no MRR in the period has none).
    marker = EVERY_BRANCH if by_branch else WHOLE_ISP
    kept = _kept(spans, today, rules, [*scopes, marker])
    done = {(r.period, r.end_day) for r in kept if r.scope == marker}
    missing = [p for p in spans if (p.key, p.end_day(today)) not in done]
    if missing:
        _work_out(missing, today, rules, by_branch)
        kept = _kept(spans, today, rules, [*scopes, marker])
    return [
        _sum(span, [r for r in kept if r.period == span.key and r.scope in scopes])
        for span in spans
    ]


def work_out_current(today: date, count: int = 12) -> None:
    """Keep the figures of the last `count` months and ISO weeks up to `today` for the
    whole ISP and every branch (the nightly run, after the day's snapshot)."""
    for kind in KINDS:
        spans = periods(kind, today, count)
        movements(spans, today=today)
        movements(spans, today=today, branch_ids=[])


def _sum(span: Period, rows: list[MovementFigures]) -> Movement:
    """One period's movement from its kept rows (one per scope asked for)."""
    m = Movement(span)
    for row in rows:
        for name in FIGURE_FIELDS:
            setattr(m, name, getattr(m, name) + getattr(row, name))
        for event in EVENTS:
            m.counts[event] += row.counts.get(event, 0)
        m.customers_start += row.customers_start
        m.customers_end += row.customers_end
    return m.check()


def movement(span: Period, *, today: date, branch_ids=None) -> Movement:
    return movements([span], today=today, branch_ids=branch_ids)[0]


def lines(span: Period, *, today: date, branch_ids=None, event: str | None = None) -> list[Line]:
    """The customers behind the period's figures (one event, or every changed one):
    old and new MRR and the event, by customer name; for branches, a customer per
    branch, as their figures count them. Worked out from the snapshot rows each time."""
    if event is not None and event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    tail = """
        SELECT l.customer_id, COALESCE(c.name, ''), l.old, l.new, l.event
        FROM lines l LEFT JOIN {customer} c ON c.id = l.customer_id
        WHERE l.event IS NOT NULL AND (%(event)s::text IS NULL OR l.event = %(event)s::text)
        ORDER BY c.name, l.customer_id
    """
    extra = {"event": event}
    if branch_ids is not None:
        extra["branches"] = list(branch_ids)
    rows = _query(tail, [span], today, _rules(), branch_ids is not None, extra)
    return [Line(cid, name, Decimal(old), Decimal(new), ev) for cid, name, old, new, ev in rows]
