"""Router job logs (per router, per subscriber) with retry; drift (what differs between a
router and the database, with the money at stake) with check and fix; test connection."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from ispops.staff.access import roles
from ispops.staff.models import Role
from network import routeros, services, tasks
from network.models import DriftItem, RouterJob
from network.views import get_router_for
from subscribers.models import Customer
from subscribers.views.customers import get_account_for

OPERATORS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)


@roles(*OPERATORS)
def router_jobs(request, pk):
    router = get_router_for(request, pk)
    jobs = router.jobs.select_related("service_account__customer", "plan")
    state = request.GET.get("state", "")
    if state in RouterJob.State.values:
        jobs = jobs.filter(state=state)
    counts = dict(router.jobs.values_list("state").annotate(n=Count("id")).order_by())
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "network/jobs/router_jobs.html",
        {
            "router": router,
            "page": page,
            "state": state,
            "counts": counts,
            "states": RouterJob.State.choices,
        },
    )


@roles(*OPERATORS)
def account_jobs(request, pk):
    account = get_account_for(request, pk)
    page = Paginator(account.router_jobs.select_related("router"), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "network/jobs/account_jobs.html", {"account": account, "page": page})


@roles(*OPERATORS)
def job_retry(request, pk):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    job = get_object_or_404(RouterJob.objects.select_related("router"), pk=pk)
    get_router_for(request, job.router_id)  # branch visibility
    services.retry_job(job, actor=request.user)
    messages.success(request, "The job will run again in a moment.")
    return redirect(_next_or(request, "network:jobs", job.router_id))


def _next_or(request, fallback: str, *args) -> str:
    """The page a form asked to go back to (`next`), if it is a path on this site;
    otherwise `fallback` reversed with `args`. Never another host: a link with
    next=http://evil.example would otherwise bounce staff there from a trusted page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(fallback, args=args)


@roles(*OPERATORS)
def router_test(request, pk):
    """Connect now and show identity, version and uptime (a few seconds at most)."""
    router = get_router_for(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        with routeros.connect(router, timeout=5) as api:
            facts = routeros.identify(api)
    except routeros.RouterError as exc:
        return render(request, "network/jobs/_test_result.html", {"error": str(exc)})
    return render(request, "network/jobs/_test_result.html", {"facts": facts})


def visible_drift(router, user):
    """The router's drift that this staff member may see: rows of their branches'
    customers, and rows of no account (found on the router, billed to nobody). A shared
    router serves several branches, so the router alone does not decide."""
    if user.branch_ids() is None:
        return router.drift.all()
    return router.drift.filter(
        Q(service_account__isnull=True)
        | Q(service_account__customer__in=Customer.objects.visible_to(user))
    )


@roles(*MANAGERS)
def drift(request, pk):
    router = get_router_for(request, pk)
    drift = visible_drift(router, request.user)
    items = drift.select_related("service_account__customer")
    kind = request.GET.get("kind", "")
    if kind in DriftItem.Kind.values:
        items = items.filter(kind=kind)
    totals = {
        row["kind"]: row
        for row in drift.values("kind")
        .annotate(n=Count("id"), value=Sum("monthly_value"))
        .order_by()
    }
    page = Paginator(items, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "network/jobs/drift.html",
        {
            "router": router,
            "page": page,
            "kind": kind,
            "kinds": DriftItem.Kind.choices,
            "totals": totals,
            "at_stake": sum((t["value"] for t in totals.values()), 0),
        },
    )


@roles(*MANAGERS)
def drift_check(request, pk):
    router = get_router_for(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        report = services.check_drift(router)
    except routeros.RouterError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Checked {report.checked} items on the router in "
            f"{report.seconds:.1f} s: {len(report.items)} differences.",
        )
    return redirect("network:drift", router.pk)


@roles(*MANAGERS)
def drift_fix(request, pk):
    router = get_router_for(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    label = request.user.email
    transaction.on_commit(lambda: tasks.fix_drift.delay(router.pk, label))
    messages.success(
        request,
        "Fixing: the router gets the billed state and unbilled logins "
        "are disabled. Check again in a minute.",
    )
    return redirect("network:drift", router.pk)


urls = [
    path("routers/<int:pk>/jobs/", router_jobs, name="jobs"),
    path("routers/<int:pk>/test/", router_test, name="router_test"),
    path("routers/<int:pk>/drift/", drift, name="drift"),
    path("routers/<int:pk>/drift/check/", drift_check, name="drift_check"),
    path("routers/<int:pk>/drift/fix/", drift_fix, name="drift_fix"),
    path("router-jobs/<int:pk>/retry/", job_retry, name="job_retry"),
    path("accounts/<int:pk>/router-jobs/", account_jobs, name="account_jobs"),
]
