"""The money reports' pages: /reports/collections/, /reports/aging/ (with its bucket
actions) and /reports/revenue/. Filters live in the URL (`Filters`: a bad value is a 400
naming it, never a default taken silently); `?format=csv|xlsx` downloads the table named
by `?table=` (reports.export). Branch-limited staff see their branches; `?branch=`
narrows to one of them."""

from datetime import date, timedelta
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ispops.staff.access import roles
from ispops.staff.models import Branch
from reports import aging, collections, export, revenue
from reports.access import READERS, branch_ids
from reports.models import BucketClaim
from reports.tasks_money import act_on_bucket
from subscribers.models import Customer

PER_PAGE = 50  # table rows a page (the downloads hold them all)

MAX_PERIODS = 24
BAR_HEIGHT = 160
# Days the reports take: well inside what date arithmetic can go (24 periods back, a
# day on), and a custom period of at most two years.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
MAX_SPAN = timedelta(days=731)


class BadFilters(Exception):
    """The query string holds a value the page cannot use; str() says which."""


def _day_field():
    return forms.DateField(
        required=False,
        validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)],
    )


class Filters(forms.Form):
    """A money page's query string. `by`: the page's choices (none: any value refused)."""

    since = _day_field()
    until = _day_field()
    on = _day_field()
    count = forms.IntegerField(required=False, min_value=1, max_value=MAX_PERIODS)
    by = forms.ChoiceField(required=False, choices=())
    branch = forms.ModelChoiceField(required=False, queryset=Branch.objects.none())
    format = forms.ChoiceField(required=False, choices=[(f, f) for f in ("", *export.FORMATS)])
    table = forms.CharField(required=False, max_length=20)

    def __init__(self, data, *, user, by=()):
        super().__init__(data)
        self.fields["by"].choices = [("", ""), *((b, b) for b in by)]
        self.fields["branch"].queryset = Branch.objects.visible_to(user)

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and abs(until - since) > MAX_SPAN:
            self.add_error("since", "a period is at most two years long")
        return data


def _filters(request, *, by=()) -> dict:
    """The page's filters, cleaned, or BadFilters naming what is wrong."""
    form = Filters(request.GET, user=request.user, by=by)
    if not form.is_valid():
        raise BadFilters(
            "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        )
    return form.cleaned_data


def _bad(exc: BadFilters):
    return HttpResponseBadRequest(f"Bad filter: {exc}", content_type="text/plain; charset=utf-8")


def _customers(user, branch=None):
    """None (every customer: the ISP's figures) for a reader of all branches with no
    branch chosen; else the customers the figures are limited to."""
    if branch is None:
        return None if branch_ids(user) is None else Customer.objects.visible_to(user)
    return Customer.objects.visible_to(user).filter(branch=branch)


def _branch_choice(request, f: dict) -> dict:
    """The branch filter's choices (the reader's branches; read by the page only, not by
    a download) and the one chosen."""
    return {"branches": Branch.objects.visible_to(request.user), "branch": f["branch"]}


def _period(f: dict, today: date) -> collections.Period:
    """?since=&until= (a custom period), else the month holding `until` (default today)."""
    until = f["until"] or today
    since = f["since"]
    if since:
        since, until = min(since, until), max(since, until)
        return collections.Period(since, until, f"{since:%d %b %Y} to {until:%d %b %Y}")
    return collections.month_of(until)


def _respond(request, tables: dict, template: str, context: dict):
    fmt = export.wanted_format(request)
    if fmt:
        wanted = request.GET.get("table", "")
        if wanted and wanted not in tables:
            return _bad(BadFilters(f"table: choose one of {', '.join(tables)}"))
        return export.download(tables.get(wanted) or next(iter(tables.values())), fmt)
    shown = []
    for key, table in tables.items():
        headings = [label for _, label in table.columns]
        page = Paginator(table.rows, PER_PAGE).get_page(request.GET.get(f"{key}_page"))
        rows = [list(zip(headings, map(_shown, table.values(row)), strict=True)) for row in page]
        shown.append({"key": key, "title": table.title, "headings": headings, "rows": rows,
                      "page": page, "page_param": f"{key}_page"})  # fmt: skip
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return render(request, template, {**context, "tables": shown, "query": query.urlencode()})


def _shown(value) -> str:
    """A table cell on the page: amounts with thousands separators, '-' for none (the
    downloads keep plain numbers)."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


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
    try:
        f = _filters(request, by=("month", "week"))
    except BadFilters as exc:
        return _bad(exc)
    customers = _customers(request.user, f["branch"])
    by = f["by"] or "month"
    count = f["count"] or 6
    if f["since"]:
        wanted = [_period(f, today)]
    else:
        wanted = collections.periods(by, f["until"] or today, count)
    rows = collections.summaries(wanted, customers)
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
        **_branch_choice(request, f),
    }
    return _respond(request, tables, "reports/collections.html", context)


# --- aging -----------------------------------------------------------------------------------


def _bucket_cols():
    return [(key, label) for key, label in aging.BUCKETS] + [("total", "Total")]


@roles(*READERS)
def aging_report(request):
    today = timezone.localdate()
    try:
        f = _filters(request, by=("branch", "site"))
    except BadFilters as exc:
        return _bad(exc)
    day = min(f["on"] or today, today)
    data = aging.report(day, _customers(request.user, f["branch"]))
    by = f["by"] or "branch"
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
        **_branch_choice(request, f),
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
    if bucket not in dict(aging.BUCKETS):
        return _bad(BadFilters(f"bucket: choose one of {', '.join(dict(aging.BUCKETS))}"))
    if action not in BucketClaim.Action.values:
        return _bad(BadFilters(f"action: choose one of {', '.join(BucketClaim.Action.values)}"))
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
    try:
        f = _filters(request)
    except BadFilters as exc:
        return _bad(exc)
    period = _period(f, today)
    data = revenue.report(period, _customers(request.user, f["branch"]))
    cols = [("name", "Name"), ("recurring", "Recurring"), ("one_off", "One-off"),
            ("total", "Total")]  # fmt: skip
    tables = {
        key: export.Table(f"Revenue by {key[:-1]}, {period.label}", cols, data[key])
        for key in ("plans", "sites", "branches", "routers")
    }
    chart = _bars([(r["name"], [r["recurring"], r["one_off"]]) for r in data["plans"][:12]])
    prev = collections.month_of(period.since - timedelta(days=1))
    context = {
        "data": data,
        "period": period,
        "chart": chart,
        "previous": prev,
        **_branch_choice(request, f),
    }
    return _respond(request, tables, "reports/revenue.html", context)


urls = [
    path("reports/collections/", collections_report, name="collections"),
    path("reports/aging/", aging_report, name="aging"),
    path("reports/aging/act/", aging_action, name="aging_action"),
    path("reports/revenue/", revenue_report, name="revenue"),
]
