"""Monitoring pages: a router's charts (an htmx fragment the router page loads, or a page
of its own) and the alerts list. Charts are inline SVG drawn here, no JavaScript."""

import math
from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import F, Q
from django.urls import path
from django.utils import dateformat, timezone

from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from network import monitoring
from network.models import Alert, Router, RouterSample, visible
from network.views import get_router_for

VIEWERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
HOURS = (6, 24, 168)
RECENTLY_RESOLVED = timedelta(days=7)

# Chart geometry in viewBox units. The SVG is drawn 100% wide, so a unit is about a
# pixel on a 360 px phone (the card is ~295 px there): 13-unit labels stay readable.
WIDTH, HEIGHT = 340, 150
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 22
# hours shown -> (time between x labels, label format)
TIME_TICKS = {6: (timedelta(hours=2), "H:i"), 24: (timedelta(hours=6), "H:i")}
WEEK_TICKS = (timedelta(days=2), "D j")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is >= value (axis maxima)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power:
            return factor * power
    return 10 * power


def _number(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def _time_ticks(since, until, hours):
    every, fmt = TIME_TICKS.get(hours, WEEK_TICKS)
    local = timezone.localtime(since)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    tick = midnight + math.ceil((local - midnight) / every) * every
    while tick <= until:
        yield tick, dateformat.format(tick, fmt)
        tick += every


def chart(data: dict, lines, *, y_max: float, rule: float | None = None) -> dict:
    """Geometry for one SVG chart: `lines` are (css class, label, [(at, value)]), drawn
    as polylines broken where points are missing (router away); `rule` is a dashed
    horizontal line (the uplink capacity)."""
    since, until = data["since"], data["until"]
    span = (until - since).total_seconds() or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    gap = max(3 * (data["step"] or timedelta(0)), timedelta(minutes=5))

    def x(at):
        return round(LEFT + plot_w * (at - since).total_seconds() / span, 1)

    def y(value):
        return round(TOP + plot_h * (1 - min(max(value, 0), y_max) / y_max), 1)

    drawn = []
    for css, label, points in lines:
        segments, current, last = [], [], None
        for at, value in points:
            if last is not None and at - last > gap:
                segments.append(current)
                current = []
            current.append(f"{x(at)},{y(value)}")
            last = at
        if current:
            segments.append(current)
        # A lone point is drawn as a zero-length round-capped line: a dot.
        polylines = [" ".join(s if len(s) > 1 else s * 2) for s in segments]
        drawn.append({"css": css, "label": label, "polylines": polylines})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "label_y": HEIGHT - 6,
        "axis_x": LEFT - 5,
        "middle_x": LEFT + plot_w / 2,
        "middle_y": TOP + plot_h / 2,
        "lines": drawn,
        "y_ticks": [{"y": y(v), "label": _number(v)} for v in (0, y_max / 2, y_max)],
        "x_ticks": [
            {"x": x(at), "label": label}
            for at, label in _time_ticks(since, until, data["hours"])
            if LEFT + 12 <= x(at) <= WIDTH - RIGHT - 12
        ],
        "rule": {"y": y(rule), "label": _number(rule)} if rule else None,
        "empty": not any(points for _, _, points in lines),
    }


def duration(seconds: int | None) -> str:
    """1 day 2 h, 3 h 4 min, 5 min."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _charts(router: Router, hours: int) -> dict:
    data = monitoring.series(router, hours=hours)
    mbit = 1_000_000
    capacity = router.uplink_capacity_mbps
    traffic_top = max([value / mbit for _, value in data["rx"] + data["tx"]] + [capacity or 0, 1])
    sessions_top = max([value for _, value in data["sessions"]] + [5])
    return {
        "cpu": chart(data, [("cpu", "CPU load %", data["cpu"])], y_max=100),
        "uplink": chart(
            data,
            [
                ("rx", "Download (rx)", [(at, v / mbit) for at, v in data["rx"]]),
                ("tx", "Upload (tx)", [(at, v / mbit) for at, v in data["tx"]]),
            ],
            y_max=nice_ceiling(traffic_top * 1.05),
            rule=capacity,
        ),
        "sessions": chart(
            data,
            [("sessions", "Sessions", data["sessions"])],
            y_max=nice_ceiling(sessions_top),
        ),
    }


@roles(*VIEWERS)
def router_charts(request, pk):
    router = get_router_for(request, pk)
    try:
        hours = int(request.GET.get("hours", 24))
    except ValueError:
        hours = 24
    if hours not in HOURS:
        hours = 24
    latest = RouterSample.objects.filter(router=router).order_by("-at").first()
    memory_used = None
    if latest and latest.total_memory:
        memory_used = round(100 * (latest.total_memory - latest.free_memory) / latest.total_memory)
    context = {
        "router": router,
        "hours": hours,
        "choices": HOURS,
        "latest": latest,
        "uptime": duration(latest.uptime_seconds) if latest else "",
        "memory_used": memory_used,
        "charts": _charts(router, hours),
        "alerts": router.alerts.filter(resolved_at__isnull=True).order_by("-opened_at"),
    }
    return render_partial(request, "network/monitoring/charts.html", "charts", context)


@roles(*VIEWERS)
def alert_list(request):
    routers = visible(Router.objects.all(), request.user)
    alerts = Alert.objects.filter(router__in=routers).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=timezone.now() - RECENTLY_RESOLVED)
    )
    router = None
    if request.GET.get("router", "").isdigit():
        router = routers.filter(pk=request.GET["router"]).first()
        if router:
            alerts = alerts.filter(router=router)
    alerts = alerts.select_related("router").order_by(
        F("resolved_at").desc(nulls_first=True), "router__name", "-opened_at"
    )
    page = Paginator(alerts, 25).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "router": router,
        "open_count": alerts.filter(resolved_at__isnull=True).count(),
        "resolved_days": RECENTLY_RESOLVED.days,
    }
    return render_partial(request, "network/monitoring/alerts.html", "alert-table", context)


urls = [
    path("routers/<int:pk>/charts/", router_charts, name="router_charts"),
    path("alerts/", alert_list, name="alerts"),
]
