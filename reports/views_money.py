"""The money reports' pages: /reports/collections/, /reports/aging/ (with its bucket
actions) and /reports/revenue/. Filters live in the URL; `?format=csv|xlsx` downloads
the table named by `?table=` (reports.export). Branch-limited staff see their branches."""

from datetime import date, timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ispops.staff.access import roles
from reports import aging, collections, export, revenue
from reports.access import READERS, branch_ids
from reports.models import BucketClaim
from reports.tasks_money import act_on_bucket
from subscribers.models import Customer

MAX_PERIODS = 24
BAR_HEIGHT = 160


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _customers(user):
    return None if branch_ids(user) is None else Customer.objects.visible_to(user)


def _period(request, today: date) -> collections.Period:
    """?since=&until= (a custom period), else the month (?month=YYYY-MM) holding `until`."""
    until = _day(request.GET.get("until"), today)
    since = request.GET.get("since")
    if since:
        since = _day(since, until)
        since, until = min(since, until), max(since, until)
        return collections.Period(since, until, f"{since:%d %b %Y} to {until:%d %b %Y}")
    return collections.month_of(until)


def _respond(request, tables: dict, template: str, context: dict):
    fmt = export.wanted_format(request)
    if fmt:
        table = tables.get(request.GET.get("table", ""), next(iter(tables.values())))
        return export.download(table, fmt)
    shown = [
        {
            "key": key,
            "title": table.title,
            "headings": [label for _, label in table.columns],
            "rows": [table.values(row) for row in table.rows],
        }
        for key, table in tables.items()
    ]
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return render(request, template, {**context, "tables": shown, "query": query.urlencode()})


def _bars(values: list[tuple[str, list]], height: int = BAR_HEIGHT) -> dict:
    """Bar heights (px) for grouped bars: each item (label, [amounts])."""
    top = max((v for _, amounts in values for v in amounts), default=0) or 1
    return {
        "groups": [
            {
                "label": label,
                "x": i * 60,
                "bars": [
                    {
                        "amount": v,
                        "h": round(float(v / top) * height, 1) if v > 0 else 0,
                        "y": height - (round(float(v / top) * height, 1) if v > 0 else 0),
                        "x": i * 60 + 8 + j * 22,
                    }
                    for j, v in enumerate(amounts)
                ],
            }
            for i, (label, amounts) in enumerate(values)
        ],
        "width": max(len(values), 1) * 60,
        "height": height,
    }


# --- collections -----------------------------------------------------------------------------


@roles(*READERS)
def collections_report(request):
    today = timezone.localdate()
    customers = _customers(request.user)
    by = "week" if request.GET.get("by") == "week" else "month"
    try:
        count = min(max(int(request.GET.get("count", 6)), 1), MAX_PERIODS)
    except ValueError:
        count = 6
    if request.GET.get("since"):
        wanted = [_period(request, today)]
    else:
        wanted = collections.periods(by, _day(request.GET.get("until"), today), count)
    rows = [collections.summary(p, customers) for p in wanted]
    channel_cols = [(f"ch_{key}", label) for key, label in collections.CHANNELS]
    periods = export.Table(
        "Collections by period",
        [
            ("period", "Period"),
            ("billed", "Billed"),
            ("credit_notes", "Credit notes"),
            ("collected", "Collected"),
            *channel_cols,
            ("settled", "Settled of the period's bills"),
            ("rate", "Collection rate %"),
        ],
        [
            {
                "period": r["period"].label,
                **{k: r[k] for k in ("billed", "credit_notes", "collected", "settled", "rate")},
                **{f"ch_{key}": amount for key, amount in r["by_channel"].items()},
            }
            for r in rows
        ],
    )
    last = wanted[-1]
    places = collections.by_place(last, customers)
    place_cols = [("name", "Name"), ("billed", "Billed"), ("collected", "Collected")]
    tables = {
        "periods": periods,
        "branches": export.Table(f"By branch, {last.label}", place_cols, places["branches"]),
        "sites": export.Table(f"By site, {last.label}", place_cols, places["sites"]),
    }
    chart = _bars([(r["period"].label, [r["billed"], r["collected"]]) for r in rows])
    context = {
        "rows": rows,
        "current": rows[-1],
        "last": last,
        "chart": chart,
        "by": by,
        "count": count,
        "unallocated": collections.unallocated(customers),
        "channels": collections.CHANNELS,
    }
    return _respond(request, tables, "reports/collections.html", context)


# --- aging -----------------------------------------------------------------------------------


def _bucket_cols():
    return [(key, label) for key, label in aging.BUCKETS] + [("total", "Total")]


@roles(*READERS)
def aging_report(request):
    today = timezone.localdate()
    day = min(_day(request.GET.get("on"), today), today)
    data = aging.report(day, _customers(request.user))
    by = "site" if request.GET.get("by") == "site" else "branch"
    tables = {
        "customers": export.Table(
            f"Aged receivables by customer on {day}",
            [("name", "Customer"), ("account", "Account"), *_bucket_cols()],
            data["customers"],
        ),
        "branches": export.Table(
            f"Aged receivables by branch on {day}",
            [("name", "Branch"), *_bucket_cols()],
            data["branches"],
        ),
        "sites": export.Table(
            f"Aged receivables by site on {day}",
            [("name", "Site"), *_bucket_cols()],
            data["sites"],
        ),
    }
    places = data["sites" if by == "site" else "branches"]
    top = max((r["total"] for r in places), default=0) or 1
    stacks = []
    for i, place in enumerate(places[:20]):
        x, parts = 0.0, []
        for n, (key, _) in enumerate(aging.BUCKETS):
            w = round(float(place[key] / top) * 400, 1) if place[key] > 0 else 0
            if w:
                parts.append({"key": key, "n": n, "x": 150 + x, "w": w})
            x += w
        stacks.append({"name": place["name"], "y": i * 30, "parts": parts, "total": place["total"]})
    context = {
        "data": data,
        "day": day,
        "today": today,
        "by": by,
        "stacks": stacks,
        "chart_height": max(len(stacks), 1) * 30 + 30,
        "buckets": [
            {"key": k, "label": label, "amount": data["totals"][k]} for k, label in aging.BUCKETS
        ],
        "may_act": may_act(request.user),
    }
    return _respond(request, tables, "reports/aging.html", context)


def may_act(user) -> bool:
    return user.role in READERS


@roles(*READERS)
@require_http_methods(["GET", "POST"])
def aging_action(request):
    """The confirmation page (GET: how many customers, what will happen) and the queued
    action (POST), for `?bucket=` and `?action=`. Only on today's figures."""
    bucket, action = request.GET.get("bucket", ""), request.GET.get("action", "")
    if bucket not in dict(aging.BUCKETS) or action not in BucketClaim.Action.values:
        raise Http404
    if not may_act(request.user):
        raise PermissionDenied
    now = timezone.now()
    today = timezone.localdate(now)
    customers = _customers(request.user)
    owing = aging.in_bucket(today, bucket, customers)
    done = set(
        BucketClaim.objects.filter(
            customer_id__in=list(owing), action=action, on_date=today
        ).values_list("customer_id", flat=True)
    )
    if request.method == "POST":
        branches = branch_ids(request.user)
        label = request.user.email
        transaction.on_commit(lambda: act_on_bucket.delay(bucket, action, label, branches))
        messages.success(
            request,
            f"Queued: {BucketClaim.Action(action).label.lower()} to {len(owing) - len(done)} "
            "customers. Those already sent one today get nothing new.",
        )
        return redirect("reports:aging")
    return render(
        request,
        "reports/aging_confirm.html",
        {
            "bucket": bucket,
            "bucket_label": dict(aging.BUCKETS)[bucket],
            "action": BucketClaim.Action(action),
            "count": len(owing) - len(done),
            "already": len(done),
            "amount": sum((v for k, v in owing.items() if k not in done), aging.ZERO),
        },
    )


# --- revenue ---------------------------------------------------------------------------------


@roles(*READERS)
def revenue_report(request):
    today = timezone.localdate()
    period = _period(request, today)
    data = revenue.report(period, _customers(request.user))
    cols = [("name", "Name"), ("recurring", "Recurring"), ("one_off", "One-off"),
            ("total", "Total")]  # fmt: skip
    tables = {
        key: export.Table(f"Revenue by {key[:-1]}, {period.label}", cols, data[key])
        for key in ("plans", "sites", "branches", "routers")
    }
    chart = _bars([(r["name"][:10], [r["recurring"], r["one_off"]]) for r in data["plans"][:12]])
    prev = collections.month_of(period.since - timedelta(days=1))
    context = {"data": data, "period": period, "chart": chart, "previous": prev}
    return _respond(request, tables, "reports/revenue.html", context)


urls = [
    path("reports/collections/", collections_report, name="collections"),
    path("reports/aging/", aging_report, name="aging"),
    path("reports/aging/act/", aging_action, name="aging_action"),
    path("reports/revenue/", revenue_report, name="revenue"),
]
