"""/reports/: the list of reports. Each report's page lives in its own views_*.py with
its own `urls`, included by reports/urls.py."""

from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse

from ispops.staff.access import MANAGERS, roles
from reports.access import READERS

# (title, url name, what it answers): a report shows here once its URL exists.
REPORTS = [
    ("MRR movement", "reports:mrr", "Start, new, expansion, contraction, churn, reactivation, end"),
    ("Rates", "reports:rates", "Churn, net revenue retention, ARPU"),
    ("Collections", "reports:collections", "Billed against collected, by channel and place"),
    ("Aged receivables", "reports:aging", "What is owed, by age, at any date"),
    ("Revenue", "reports:revenue", "By plan, site, branch and router"),
    ("Operations", "reports:operations", "Installations per technician, tickets and SLA"),
]


def available() -> list[dict]:
    out = []
    for title, name, about in REPORTS:
        try:
            out.append({"title": title, "url": reverse(name), "about": about})
        except NoReverseMatch:
            continue
    return out


@roles(*READERS)
def index(request):
    rules = request.user.role in MANAGERS and request.user.branch_ids() is None
    return render(request, "reports/index.html", {"reports": available(), "rules": rules})


urls = [path("reports/", index, name="index")]
