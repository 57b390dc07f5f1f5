"""Hotspot staff pages for the day's work: who is online now per router (time and data
left, end one now) and what the hotspot sold (per day with a chart, by package, by
agent, as CSV). Queries live in hotspot.reports; ending one in hotspot.entitlements.

Staff of every role but agents see the live list of their branches' routers; owners,
admins and support may end an entitlement; owners, admins and finance see sales."""

import csv
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from hotspot import entitlements, reports
from hotspot.views import batches_for
from ispops.lib.csvexport import row as csv_row
from ispops.staff.access import any_staff, roles
from ispops.staff.models import Role
from ispops.staff.scoping import in_branches_of
from network.models import Router

ENDERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
MONEY = (Role.OWNER, Role.ADMIN, Role.FINANCE)
PER_PAGE = 50
CHART_WIDTH, CHART_HEIGHT = 640, 160
CSV_HEADER = [
    "day",
    "cards",
    "cards_kes",
    "purchases",
    "purchases_kes",
    "total_kes",
    "devices",  # after the total: the columns before keep their places
    "devices_kes",
]


def routers_for(user):
    return in_branches_of(user, Router.objects.all())


class RouterFilter(forms.Form):
    router = forms.ModelChoiceField(queryset=Router.objects.none(), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["router"].queryset = routers_for(user).order_by("name")


@any_staff
def live(request):
    form = RouterFilter(request.GET or None, user=request.user)
    routers = routers_for(request.user)
    if form.is_valid() and form.cleaned_data["router"]:
        routers = routers.filter(pk=form.cleaned_data["router"].pk)
    page = Paginator(reports.live(routers), PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [_row(e, now) for e in page.object_list]
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "can_end": request.user.role in ENDERS,
    }
    return render(request, "hotspot/live.html", context)


def _row(entitlement, now) -> dict:
    limit = entitlement.data_limit_bytes
    used = entitlement.used_bytes
    return {
        "e": entitlement,
        "minutes_left": (
            max(0, int((entitlement.ends_at - now).total_seconds() // 60))
            if entitlement.ends_at
            else None
        ),
        "used_percent": min(100, round(used * 100 / limit)) if limit else None,
    }


@require_POST
@roles(*ENDERS)
def end_now(request, pk):
    entitlement = reports.live(routers_for(request.user)).filter(pk=pk).select_related(None).first()
    if entitlement is None:
        raise Http404
    entitlements.revoke(entitlement, actor=request.user, now=timezone.now())
    messages.success(request, f"{entitlement.login} is ended; the router drops it within a minute.")
    return redirect("hotspot:live")


class Period(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days")], coerce=int, required=False
    )


@roles(*MONEY)
def sales(request):
    form = Period(request.GET or None)
    days = (form.cleaned_data.get("days") if form.is_valid() else None) or 30
    until = timezone.localdate()
    since = until - timedelta(days=days - 1)
    found = reports.sales(
        since=since,
        until=until,
        routers=routers_for(request.user),
        batches=batches_for(request.user),
    )
    if request.GET.get("format") == "csv":
        return _csv(found, since, until)
    context = {"form": form, "sales": found, "days": days, "chart": _chart(found)}
    return render(request, "hotspot/sales.html", context)


def _chart(found: reports.Sales) -> dict:
    """Bars per day, cards under purchases, scaled to the best day (SVG units)."""
    top = found.best_day or 1
    step = CHART_WIDTH / max(1, len(found.days))
    bars = []
    for i, day in enumerate(found.days):
        cards_h = float(day.card_amount / top) * CHART_HEIGHT
        buys_h = float(day.purchase_amount / top) * CHART_HEIGHT
        devices_h = float(day.device_amount / top) * CHART_HEIGHT
        bars.append(
            {
                "x": round(i * step + 1, 1),
                "w": round(max(1.0, step - 2), 1),
                "cards_y": round(CHART_HEIGHT - cards_h, 1),
                "cards_h": round(cards_h, 1),
                "buys_y": round(CHART_HEIGHT - cards_h - buys_h, 1),
                "buys_h": round(buys_h, 1),
                "devices_y": round(CHART_HEIGHT - cards_h - buys_h - devices_h, 1),
                "devices_h": round(devices_h, 1),
                "day": day,
            }
        )
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT}


def _csv(found: reports.Sales, since, until) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="hotspot-sales-{since}-{until}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for d in found.days:
        row = [d.day, d.cards, d.card_amount, d.purchases, d.purchase_amount]
        writer.writerow(csv_row([*row, d.amount, d.devices, d.device_amount]))
    return response


urls = [
    path("hotspot/live/", live, name="live"),
    path("hotspot/live/<int:pk>/end/", end_now, name="end_now"),
    path("hotspot/sales/", sales, name="sales"),
]
