"""The operations report: installations per technician, lead -> activation time, repeat
visits, and tickets opened/resolved with their SLA, for a period of Nairobi days.

Definitions (from the fields the apps keep):
- An installation is completed in the period when its `Installation.completed_at` (set
  when it reaches "Installed") falls in it; it counts for `Installation.technician`.
- Lead -> activation time: from `Installation.created_at` (the lead recorded) to the
  service account's `activated_at`, for accounts with an installation activated in the
  period; the report gives the median in hours.
- A repeat visit: an installation completed in the period after which, within 30 days of
  its completion, the same customer opened a ticket in a field category (no connection,
  slow speed, installation) or had another installation completed.
- Tickets: opened in the period by `created_at`, resolved by `resolved_at`. A resolved
  ticket met its SLA when it was not escalated, its first response came by
  `first_response_due` and it was resolved by `resolution_due` (both already moved on by
  any time spent waiting on the customer).
A branch-limited user sees only their branches' customers (and outage tickets of their
branches' sites).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, Q
from django.utils import timezone

from ispops.staff.models import User
from subscribers.models import Customer, Installation
from tickets.models import Category, Ticket

REPEAT_WINDOW = timedelta(days=30)
FIELD_CATEGORIES = (Category.NO_CONNECTION, Category.SLOW_SPEED, Category.INSTALLATION)


@dataclass(frozen=True)
class Period:
    """Nairobi days `start`..`end` inclusive."""

    kind: str
    start: date
    end: date

    @property
    def since(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def until(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    @property
    def label(self) -> str:
        return f"{self.start:%d %b %Y} to {self.end:%d %b %Y}"


def month_of(day: date) -> Period:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return Period("month", start, end)


def period_from(params, today: date) -> Period:
    """The period the URL asks for: ?period=month&month=YYYY-MM, ?period=week&week=
    YYYY-MM-DD (any day of it; weeks start on Monday) or ?period=custom&start=&end=.
    Anything unreadable falls back to the month of `today`."""
    kind = params.get("period", "month")
    try:
        if kind == "week":
            day = date.fromisoformat(params.get("week") or today.isoformat())
            start = day - timedelta(days=day.weekday())
            return Period("week", start, start + timedelta(days=6))
        if kind == "custom":
            start = date.fromisoformat(params.get("start", ""))
            end = date.fromisoformat(params.get("end", ""))
            if start <= end and (end - start).days <= 366:
                return Period("custom", start, end)
        if kind == "month" and params.get("month"):
            return month_of(date.fromisoformat(params["month"] + "-01"))
    except ValueError:
        pass
    return month_of(today)


def _customers(user):
    return Customer.objects.visible_to(user) if user is not None else Customer.objects.all()


def installations_by_technician(period: Period, user=None) -> list[dict]:
    """Installations completed in the period per technician, and how many of them had a
    repeat visit (see the module docstring), most installations first."""
    done = list(
        Installation.objects.filter(
            completed_at__gte=period.since,
            completed_at__lt=period.until,
            service_account__customer__in=_customers(user),
        ).values("pk", "technician_id", "completed_at", "service_account__customer_id")
    )
    repeats = _repeated(done)
    names = dict(
        User.objects.filter(pk__in={d["technician_id"] for d in done}).values_list(
            "pk", "full_name"
        )
    )
    rows: dict[int | None, dict] = {}
    for d in done:
        tech = d["technician_id"]
        row = rows.setdefault(
            tech,
            {"technician": names.get(tech) or "(none)", "installations": 0, "repeat_visits": 0},
        )
        row["installations"] += 1
        row["repeat_visits"] += d["pk"] in repeats
    return sorted(rows.values(), key=lambda r: (-r["installations"], r["technician"]))


def _repeated(done: list[dict]) -> set[int]:
    """The installations (of `done`) followed within 30 days by a field ticket or another
    completed installation of the same customer."""
    if not done:
        return set()
    customer_ids = {d["service_account__customer_id"] for d in done}
    first = min(d["completed_at"] for d in done)
    last = max(d["completed_at"] for d in done) + REPEAT_WINDOW
    later: dict[int, list[datetime]] = {}
    tickets = Ticket.objects.filter(
        customer_id__in=customer_ids,
        category__in=FIELD_CATEGORIES,
        created_at__gt=first,
        created_at__lte=last,
    ).values_list("customer_id", "created_at")
    visits = Installation.objects.filter(
        service_account__customer_id__in=customer_ids,
        completed_at__gt=first,
        completed_at__lte=last,
    ).values_list("service_account__customer_id", "completed_at")
    for customer_id, at in [*tickets, *visits]:
        later.setdefault(customer_id, []).append(at)
    found = set()
    for d in done:
        start, customer = d["completed_at"], d["service_account__customer_id"]
        if any(start < at <= start + REPEAT_WINDOW for at in later.get(customer, [])):
            found.add(d["pk"])
    return found


def lead_to_activation_hours(period: Period, user=None) -> float | None:
    """Median hours from lead recorded to activation, over the accounts with an
    installation activated in the period; None when there are none."""
    pairs = Installation.objects.filter(
        service_account__activated_at__gte=period.since,
        service_account__activated_at__lt=period.until,
        service_account__customer__in=_customers(user),
    ).values_list("created_at", "service_account__activated_at")
    hours = [(activated - created).total_seconds() / 3600 for created, activated in pairs]
    return round(statistics.median(hours), 1) if hours else None


def tickets_by_category(period: Period, user=None) -> list[dict]:
    """Per category: tickets opened and resolved in the period, resolved within SLA and
    the SLA met % (None with nothing resolved)."""
    tickets = Ticket.objects.visible_to(user) if user is not None else Ticket.objects.all()
    opened = dict(
        tickets.filter(created_at__gte=period.since, created_at__lt=period.until)
        .values_list("category")
        .annotate(n=Count("id"))
        .order_by()
    )
    met = Q(
        escalated_at__isnull=True,
        first_response_at__lte=F("first_response_due"),
        resolved_at__lte=F("resolution_due"),
    )
    done = tickets.filter(resolved_at__gte=period.since, resolved_at__lt=period.until)
    resolved = {
        cat: (n, ok)
        for cat, n, ok in done.values_list("category")
        .annotate(n=Count("id"), ok=Count("id", filter=met))
        .order_by()
        .values_list("category", "n", "ok")
    }
    rows = []
    for value, label in Category.choices:
        n, ok = resolved.get(value, (0, 0))
        if opened.get(value, 0) or n:
            rows.append(
                {
                    "category": label,
                    "opened": opened.get(value, 0),
                    "resolved": n,
                    "sla_met": ok,
                    "sla_met_pct": round(100 * ok / n, 1) if n else None,
                }
            )
    return rows


def report(period: Period, user=None) -> dict:
    technicians = installations_by_technician(period, user)
    categories = tickets_by_category(period, user)
    resolved = sum(r["resolved"] for r in categories)
    met = sum(r["sla_met"] for r in categories)
    return {
        "period": period,
        "technicians": technicians,
        "installations": sum(r["installations"] for r in technicians),
        "repeat_visits": sum(r["repeat_visits"] for r in technicians),
        "median_hours": lead_to_activation_hours(period, user),
        "categories": categories,
        "opened": sum(r["opened"] for r in categories),
        "resolved": resolved,
        "sla_met_pct": round(100 * met / resolved, 1) if resolved else None,
    }
