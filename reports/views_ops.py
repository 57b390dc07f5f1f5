"""/reports/operations/: installations per technician, lead -> activation time, repeat
visits, tickets and their SLA by category (reports.operations), with CSV/XLSX."""

from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from ispops.staff.access import roles
from reports import export, operations
from reports.access import READERS

CHART_WIDTH = 330


def tables(data: dict) -> dict[str, export.Table]:
    return {
        "technicians": export.Table(
            "Installations per technician",
            [
                ("technician", "Technician"),
                ("installations", "Installations"),
                ("repeat_visits", "Repeat visits within 30 days"),
            ],
            data["technicians"],
        ),
        "tickets": export.Table(
            "Tickets by category",
            [
                ("category", "Category"),
                ("opened", "Opened"),
                ("resolved", "Resolved"),
                ("sla_met", "Resolved within SLA"),
                ("sla_met_pct", "SLA met %"),
            ],
            data["categories"],
        ),
    }


def bars(rows: list[dict]) -> list[dict]:
    top = max((r["installations"] for r in rows), default=0) or 1
    return [
        {**r, "y": 34 * i, "width": round(CHART_WIDTH * r["installations"] / top)}
        for i, r in enumerate(rows)
    ]


@roles(*READERS)
def operations_report(request):
    period = operations.period_from(request.GET, timezone.localdate())
    data = operations.report(period, request.user)
    found = tables(data)
    fmt = export.wanted_format(request)
    if fmt:
        table = found.get(request.GET.get("table", "technicians"), found["technicians"])
        return export.download(table, fmt)
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    context = {
        **data,
        "bars": bars(data["technicians"]),
        "chart_height": max(34 * len(data["technicians"]), 34),
        "query": query.urlencode(),
        "params": request.GET,
    }
    return render(request, "reports/operations.html", context)


urls = [path("reports/operations/", operations_report, name="operations")]
