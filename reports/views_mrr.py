"""The MRR movement and rates pages: /reports/mrr/ (per month or ISO week, each figure
opening the customers behind it), /reports/rates/, their charts (server-rendered SVG
geometry worked out here, drawn by reports/templates/reports/_charts.html) and their
downloads (?format=csv|xlsx through reports.export). Figures come from
reports.movement and reports.rates; branch-limited staff get their branches' only."""

from datetime import date
from decimal import Decimal

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone

from ispops.staff.access import roles
from reports import export, movement
from reports.access import READERS, branch_ids
from reports.rates import hotspot_sales, percent, rates

MAX_PERIODS = 24
PER_PAGE = 50
FIGURES = (
    [("start", "Start")]
    + [(e, movement.EVENT_LABELS[e]) for e in movement.EVENTS]
    + [("end", "End")]
)


def _today() -> date:
    """The last day with a snapshot (a running period ends there), else today."""
    local = timezone.localdate()
    return movement.last_day(local) or local


def _spans(request, today: date) -> tuple[str, list[movement.Period]]:
    """The periods the URL asks for: ?kind=month|week&until=<period>&count=N."""
    kind = request.GET.get("kind", movement.MONTH)
    if kind not in movement.KINDS:
        kind = movement.MONTH
    try:
        until = movement.parse_period(request.GET.get("until", ""))
        last = until.last if until.kind == kind else until.first
    except ValueError:
        last = today
    try:
        count = min(max(int(request.GET.get("count", 12)), 1), MAX_PERIODS)
    except ValueError:
        count = 12
    return kind, movement.periods(kind, min(last, today), count)


# --- charts: geometry for _charts.html --------------------------------------------------

# 360 units across, as a phone is: 12-unit text stays ~12 px on a 360 px screen (and
# the chart is kept to 28rem on a wide one, so the text does not grow past ~19 px).
W, H, LEFT, RIGHT, TOP, BOTTOM = 360, 220, 44, 318, 12, 190
WATERFALL_LABELS = {"Start": "Start", "New": "New", "Expansion": "Exp.", "Reactivation": "React.",
                    "Contraction": "Contr.", "Churn": "Churn", "End": "End"}  # fmt: skip


def _y(value, low, high) -> float:
    span = (high - low) or 1
    return round(BOTTOM - float((Decimal(value) - low) / span) * (BOTTOM - TOP), 1)


def line_chart(labels: list[str], series: list[dict], *, shared: bool = False) -> dict:
    """series: {label, css, values, fmt}; each line on its own scale from 0 (or its
    minimum, if negative) to its maximum (the first line's scale is the left axis, the
    second's the right), or with `shared` all on one scale."""
    n = len(labels)
    step = (RIGHT - LEFT) / max(n - 1, 1)
    xs = [round(LEFT + i * step, 1) for i in range(n)]
    lines = []
    every_value = [v for s in series for v in s["values"] if v is not None]
    for s in series:
        values = every_value if shared else [v for v in s["values"] if v is not None]
        low = min([Decimal(0), *values])
        high = max([Decimal(0), *values])
        points = " ".join(
            f"{x},{_y(v, low, high)}" for x, v in zip(xs, s["values"], strict=True) if v is not None
        )
        lines.append({**s, "points": points, "low": s["fmt"](low), "high": s["fmt"](high)})
    every = max(1, -(-n // 6))  # at most six labels: readable at 360 px
    return {
        "width": W,
        "height": H,
        "left": LEFT,
        "right": RIGHT,
        "top": TOP,
        "bottom": BOTTOM,
        "label_y": BOTTOM + 18,
        "lines": lines,
        "x_labels": [
            {"x": x, "label": lab}
            for i, (x, lab) in enumerate(zip(xs, labels, strict=True))
            if i % every == 0
        ],
    }


def waterfall(m: movement.Movement) -> dict:
    """Bars from the start MRR through each movement to the end."""
    steps = [("Start", m.start, "total")]
    steps += [
        (movement.EVENT_LABELS[e], m.figure(e), "up") for e in ("new", "expansion", "reactivation")
    ]
    steps += [(movement.EVENT_LABELS[e], -m.figure(e), "down") for e in ("contraction", "churn")]
    levels, level = [], Decimal(0)
    for label, delta, css in steps:
        low, high = (Decimal(0), delta) if css == "total" else sorted((level, level + delta))
        level = delta if css == "total" else level + delta
        levels.append((label, low, high, css, delta))
    levels.append(("End", Decimal(0), m.end, "total", m.end))
    top = max([high for _, _, high, _, _ in levels] + [Decimal(1)])
    width = (RIGHT - LEFT) / len(levels)
    bars = []
    for i, (label, low, high, css, delta) in enumerate(levels):
        y_high, y_low = _y(high, Decimal(0), top), _y(low, Decimal(0), top)
        bars.append(
            {
                "x": round(LEFT + i * width + 2, 1),
                "y": y_high,
                "w": round(width - 4, 1),
                "h": max(round(y_low - y_high, 1), 1),
                "cx": round(LEFT + (i + 0.5) * width, 1),
                "label": label,
                "short": WATERFALL_LABELS[label],
                "css": css,
                "amount": delta,
            }
        )
    return {"width": W, "height": H, "bars": bars, "label_y": BOTTOM + 18, "top": _money(top),
            "left": LEFT, "ytop": TOP, "bottom": BOTTOM, "right": RIGHT}  # fmt: skip


def _compact(value) -> str:
    """An axis label that fits 40 units: 950, 14.3k, 2.5M."""
    value = float(value)
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".removesuffix(".0") + unit
    return f"{value:.0f}"


def _money(value) -> str:
    return _compact(value)


def _count(value) -> str:
    return _compact(int(value))


def _label(period: movement.Period) -> str:
    """An x-axis label: 'May' (and 'Jan 26' for a January), or 'W19'."""
    if period.kind == movement.MONTH:
        return f"{period.first:%b %y}" if period.first.month == 1 else f"{period.first:%b}"
    return period.key.split("-")[1]


# --- pages ------------------------------------------------------------------------------


def movement_table(found: list[movement.Movement]) -> export.Table:
    columns = [("period", "Period"), *FIGURES, ("subscribers", "Paying customers at end")]
    rows = []
    for m in found:
        row = {"period": m.period.key, "subscribers": m.customers_end}
        row.update({key: m.figure(key) for key, _ in FIGURES})
        rows.append(row)
    return export.Table("MRR movement", columns, rows)


@roles(*READERS)
def mrr(request):
    today = _today()
    kind, spans = _spans(request, today)
    found = movement.movements(spans, today=today, branch_ids=branch_ids(request.user))
    table = movement_table(found)
    fmt = export.wanted_format(request)
    if fmt:
        return export.download(table, fmt, filename=f"mrr-movement-{kind}")
    chosen = next((m for m in found if m.period.key == request.GET.get("period")), found[-1])
    rows = [
        {
            "movement": m,
            "cells": [
                {
                    "value": m.figure(key),
                    "url": reverse("reports:mrr_lines", args=[m.period.key, key])
                    if key in movement.EVENTS
                    else None,
                }
                for key, _ in FIGURES
            ],
        }
        for m in found
    ]
    labels = [_label(m.period) for m in found]
    trend = line_chart(
        labels,
        [
            {"label": "MRR", "css": "mrr", "values": [m.end for m in found], "fmt": _money},
            {"label": "Paying customers", "css": "subs",
             "values": [Decimal(m.customers_end) for m in found], "fmt": _count},
        ],
    )  # fmt: skip
    return render(
        request,
        "reports/mrr.html",
        {
            "kind": kind,
            "spans": spans,
            "figures": FIGURES,
            "rows": rows,
            "chosen": chosen,
            "waterfall": waterfall(chosen),
            "trend": trend,
            "limited": branch_ids(request.user) is not None,
        },
    )


@roles(*READERS)
def mrr_lines(request, period, event):
    try:
        span = movement.parse_period(period)
    except ValueError:
        raise Http404("no such period") from None
    if event not in movement.EVENTS:
        raise Http404("no such figure")
    today = _today()
    if span.first > today:
        raise Http404("a period still to come")
    limit = branch_ids(request.user)
    found = movement.lines(span, today=today, branch_ids=limit, event=event)
    label = movement.EVENT_LABELS[event]
    table = export.Table(
        f"{label} {span.key}",
        [("customer", "Customer"), ("old", "Old MRR"), ("new", "New MRR"), ("event", "Event")],
        [
            {"customer": ln.customer, "old": ln.old, "new": ln.new, "event": ln.event}
            for ln in found
        ],
    )
    fmt = export.wanted_format(request)
    if fmt:
        return export.download(table, fmt, filename=f"mrr-{span.key}-{event}")
    page = Paginator(found, PER_PAGE).get_page(request.GET.get("page"))
    total = movement.movement(span, today=today, branch_ids=limit).figure(event)
    return render(
        request,
        "reports/mrr_lines.html",
        {"span": span, "event": event, "label": label, "page": page, "total": total},
    )


def rates_table(found) -> export.Table:
    columns = [
        ("period", "Period"),
        ("logo_churn", "Logo churn"),
        ("gross_mrr_churn", "Gross MRR churn"),
        ("net_mrr_churn", "Net MRR churn"),
        ("nrr", "Net revenue retention"),
        ("arpu", "ARPU"),
        ("hotspot_revenue", "Hotspot revenue"),
        ("hotspot_buyers", "Hotspot buyers"),
        ("hotspot_arpu", "Hotspot ARPU"),
    ]
    rows = []
    for r in found:
        rows.append(
            {
                "period": r.period.key,
                "logo_churn": percent(r.logo_churn),
                "gross_mrr_churn": percent(r.gross_mrr_churn),
                "net_mrr_churn": percent(r.net_mrr_churn),
                "nrr": percent(r.net_revenue_retention),
                "arpu": None if r.arpu is None else r.arpu.quantize(Decimal("0.01")),
                "hotspot_revenue": r.hotspot_revenue,
                "hotspot_buyers": r.hotspot_buyers,
                "hotspot_arpu": None
                if r.hotspot_arpu is None
                else r.hotspot_arpu.quantize(Decimal("0.01")),
            }
        )
    return export.Table("Rates", columns, rows)


@roles(*READERS)
def rates_page(request):
    today = _today()
    kind, spans = _spans(request, today)
    limit = branch_ids(request.user)
    found = [
        rates(m, hotspot=hotspot_sales(m.period.first, m.period.end_day(today), branch_ids=limit))
        for m in movement.movements(spans, today=today, branch_ids=limit)
    ]
    table = rates_table(found)
    fmt = export.wanted_format(request)
    if fmt:
        return export.download(table, fmt, filename=f"rates-{kind}")

    def pct(value):
        return f"{value * 100:.0f}%"

    chart = line_chart(
        [_label(r.period) for r in found],
        [
            {"label": "Logo churn", "css": "logo", "values": [r.logo_churn for r in found],
             "fmt": pct},
            {"label": "Gross MRR churn", "css": "gross",
             "values": [r.gross_mrr_churn for r in found], "fmt": pct},
            {"label": "Net MRR churn", "css": "net", "values": [r.net_mrr_churn for r in found],
             "fmt": pct},
        ],
        shared=True,
    )  # fmt: skip
    return render(
        request,
        "reports/rates.html",
        {"kind": kind, "spans": spans, "table": table, "chart": chart},
    )


urls = [
    path("reports/mrr/", mrr, name="mrr"),
    path("reports/mrr/<str:period>/<str:event>/", mrr_lines, name="mrr_lines"),
    path("reports/rates/", rates_page, name="rates"),
]
