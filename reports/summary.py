"""The monthly summary owners get by email: last month's home figures (reports.home,
for the owner's branches) with the month's billed and collected totals, as a PDF made
the way billing makes its documents (billing.pdf.render_pdf: WeasyPrint, no external
resources, the ISP's own logo at most)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.template.loader import render_to_string
from django.utils import timezone

from billing.pdf import identity, render_pdf
from reports import collections, home


def last_month(today: date) -> tuple[date, date]:
    """The first and last day of the month before `today`'s."""
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def summary_html(user, today: date) -> str:
    """The summary of the month before `today` for `user` (an owner) as HTML."""
    start, end = last_month(today)
    at_end = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    scope = home.Scope.of(user)
    money = collections.summary(
        collections.month_of(start),
        None if scope.branches is None else scope.customers(),
        vouchers=False,
    )
    context = {
        "isp": identity(),
        "start": start,
        "end": end,
        "figures": [f for f in home.figures(user, today=end, now=at_end) if "value" in f],
        "billed": money["billed"],
        "collected": money["collected"],
        "owner": user,
    }
    return render_to_string("reports/summary_pdf.html", context)


def summary_pdf(user, today: date) -> bytes:
    return render_pdf(summary_html(user, today), files=_logo())


def _logo() -> tuple[str, ...]:
    logo = identity()["logo"]
    return (logo,) if logo else ()
