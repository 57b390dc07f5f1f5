"""The owner's home (owners, admins, finance): this month's MRR and its change, the
collection rate, subscribers and net adds, what is overdue, churn, tickets breaching
their SLA and routers down, each linking to its report; a branch-limited user's figures
cover their branches only.

Every figure is one aggregate query on indexed columns: MRR comes from the days'
SnapshotDay totals (or, for a branch-limited user, their branch totals), never from
100,000 rows when a summary row answers.

The collection rate is reports.collections' (summary of the month, its "rate").
Definitions kept here:
- subscribers: active service accounts; net adds: accounts that became active this
  month less those that stopped being active (the subscribers' StatusChange timeline);
  for a past month the active count now is taken back by the changes since;
- churn: the customers the month's MRR movement counts as churned so far (one rule,
  reports.movement's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import number_format

from billing import services as billing
from ispops.lib.money import format_kes
from network.models import Router
from reports import collections, movement
from reports.access import branch_ids
from reports.models import SnapshotDay
from subscribers.models import AccountStatus, Customer, ServiceAccount, StatusChange
from tickets import services as tickets
from tickets.models import Ticket

ZERO = Decimal("0.00")


def link(name: str, query: str = "", args=()) -> str | None:
    """The URL of a report, or None while it does not exist yet (its figure shows
    without a link)."""
    try:
        return reverse(name, args=args) + (f"?{query}" if query else "")
    except NoReverseMatch:
        return None


def month_start(day: date) -> date:
    return day.replace(day=1)


def _aware(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


@dataclass(frozen=True)
class Scope:
    """Whose figures: all of the ISP's (branches None) or some branches'."""

    branches: list[int] | None

    @classmethod
    def of(cls, user) -> Scope:
        return cls(branch_ids(user))

    def customers(self):
        qs = Customer.objects.all()
        return qs if self.branches is None else qs.filter(branch_id__in=self.branches)

    def narrow(self, qs, customer: str = "customer"):
        """`qs` limited to the scope's customers (by the path to the customer), or as
        it is for the whole ISP (no filter over every customer)."""
        if self.branches is None:
            return qs
        return qs.filter(**{f"{customer}__branch_id__in": self.branches})


# --- MRR ---------------------------------------------------------------------------


def mrr_on(days: list[date], scope: Scope) -> dict[date, Decimal]:
    """The MRR of each snapshot day in `days` for the scope (one query of the days'
    summary rows: their total, or their branch totals)."""
    if not days:
        return {}
    if scope.branches is None:
        return dict(SnapshotDay.objects.filter(day__in=days).values_list("day", "mrr"))
    found = dict(SnapshotDay.objects.filter(day__in=days).values_list("day", "by_branch"))
    keys = [str(branch) for branch in scope.branches]
    return {
        day: sum((Decimal(found.get(day, {}).get(key, "0")) for key in keys), ZERO) for day in days
    }


def month_ends(today: date, months: int = 12) -> list[date]:
    """The last snapshot day of each of the last `months` months up to `today`."""
    since = month_start(today.replace(day=1) - timedelta(days=31 * (months - 1)))
    last: dict[tuple[int, int], date] = {}
    for day in SnapshotDay.objects.filter(day__gte=since, day__lte=today).values_list(
        "day", flat=True
    ):
        key = (day.year, day.month)
        last[key] = max(day, last.get(key, day))
    return sorted(last.values())


def mrr_figures(today: date, scope: Scope) -> tuple[dict, list[tuple[date, Decimal]]]:
    """This month's MRR figure and the 12-month series for the sparkline."""
    ends = month_ends(today)
    mrr_link = link("reports:mrr") or link("reports:index")
    this_start = month_start(today)
    current = [d for d in ends if d >= this_start]
    if not current:
        figure = {"label": "MRR this month", "value": "no snapshot yet", "url": mrr_link}
        return figure, []
    series = sorted(mrr_on(ends, scope).items())
    values = dict(series)
    now_mrr = values[current[-1]]
    before = [d for d in ends if d < this_start]
    figure = {"label": "MRR this month", "value": format_kes(now_mrr), "url": mrr_link}
    if before:
        change = now_mrr - values[before[-1]]
        figure["change"] = ("+" if change >= 0 else "-") + format_kes(abs(change))
        figure["change_up"] = change >= 0
    return figure, series


def sparkline(series: list[tuple[date, Decimal]], width: int = 120, height: int = 28) -> str:
    """SVG polyline points for the series (empty with fewer than two points)."""
    if len(series) < 2:
        return ""
    values = [v for _, v in series]
    low, high = min(values), max(values)
    span = (high - low) or Decimal(1)
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - float((v - low) / span) * (height - 2) - 1:.1f}"
        for i, v in enumerate(values)
    )


# --- money -------------------------------------------------------------------------


def overdue(today: date, scope: Scope) -> Decimal:
    """What is owed past its due date (billing.services.overdue_invoices), in total."""
    left = F("total") - F("amount_paid") - F("amount_credited")
    row = scope.narrow(billing.overdue_invoices(today)).aggregate(s=Sum(left))
    return row["s"] or ZERO


# --- subscribers -------------------------------------------------------------------


def subscriber_counts(today: date, scope: Scope) -> tuple[int, int]:
    """Active services at the end of `today`, and net adds from the start of its month
    to then (one count, one aggregate over the month's and later status changes)."""
    active = scope.narrow(ServiceAccount.objects.filter(status=AccountStatus.ACTIVE)).count()
    end = _aware(today + timedelta(days=1))
    became = Q(to_status=AccountStatus.ACTIVE) & ~Q(from_status=AccountStatus.ACTIVE)
    left = Q(from_status=AccountStatus.ACTIVE) & ~Q(to_status=AccountStatus.ACTIVE)
    moves = scope.narrow(
        StatusChange.objects.filter(at__gte=_aware(month_start(today))),
        "service_account__customer",
    ).aggregate(
        up=Count("id", filter=became & Q(at__lt=end)),
        down=Count("id", filter=left & Q(at__lt=end)),
        up_after=Count("id", filter=became & Q(at__gte=end)),
        down_after=Count("id", filter=left & Q(at__gte=end)),
    )
    then = active - moves["up_after"] + moves["down_after"]
    return then, moves["up"] - moves["down"]


def churned(today: date, scope: Scope) -> tuple[int, str | None]:
    """Customers churned this month so far, by the MRR movement's rule (reports.movement:
    MRR down to nothing, a long suspension counting as nothing), and the link to them."""
    last = movement.last_day(today)
    if last is None or last < month_start(today):
        return 0, None
    span = movement.period_of(movement.MONTH, last)
    found = movement.movement(span, today=last, branch_ids=scope.branches)
    return found.counts["churn"], link("reports:mrr_lines", args=[span.key, "churn"])


# --- the home ----------------------------------------------------------------------


def figures(user, *, today: date, now: datetime) -> list[dict]:
    """The owner's home figures for `user`'s branches: dicts with label, value, url
    (None: no link yet), and for MRR its change and the 12-month sparkline points."""
    scope = Scope.of(user)
    customers = scope.customers()
    mrr, series = mrr_figures(today, scope)
    if series:
        mrr["spark"] = sparkline(series)
    money = collections.summary(
        collections.month_of(today),
        None if scope.branches is None else customers,
        vouchers=False,
        channels=False,
    )
    rate = money["rate"]
    active, net = subscriber_counts(today, scope)
    churn, churn_link = churned(today, scope)
    breaching = Ticket.objects.visible_to(user).filter(tickets.risk_filter("breached", now)).count()
    routers = Router.objects.filter(status=Router.Status.OFFLINE)
    if scope.branches is not None:
        routers = routers.filter(branch_id__in=scope.branches)
    return [
        mrr,
        {
            "label": "Collection rate this month",
            "value": "—" if rate is None else f"{rate}%",
            "detail": f"{format_kes(money['settled'])} of {format_kes(money['billed'])}",
            "url": link("reports:collections"),
        },
        {
            "label": "Active subscribers",
            "value": number_format(active, force_grouping=True),
            "change": f"{net:+d} this month",
            "change_up": net >= 0,
            "url": link("subscribers:list", "status=active"),
        },
        {
            "label": "Overdue",
            "value": format_kes(overdue(today, scope)),
            "url": link("reports:aging") or link("billing:aged_debt"),
        },
        {
            "label": "Churned this month",
            "value": churn,
            "url": churn_link or link("reports:mrr"),
        },
        {
            "label": "Tickets breaching SLA",
            "value": breaching,
            "url": link("tickets:list", "risk=breached"),
        },
        {
            "label": "Routers down",
            "value": routers.count(),
            "url": link("network:routers"),
        },
    ]


def month_figures(user) -> list[dict]:
    """The owner's month on the staff home (ispops.staff.home), as of now."""
    return figures(user, today=timezone.localdate(), now=timezone.now())
