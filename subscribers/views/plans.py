"""Plans pages: the price list with how many live accounts each plan carries, and the
form that creates or changes a plan (owners, admins and finance only: prices are money)."""

from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from billing import services as billing_services
from ispops import audit
from ispops.staff.access import ALL_STAFF, roles
from ispops.staff.models import Role
from subscribers.forms_plans import PlanForm
from subscribers.models import Plan, ServiceAccount

# Accounts that hold a plan, a site or a router port: everything not a lead or gone.
LIVE_STATUSES = (
    ServiceAccount.Status.ACTIVE,
    ServiceAccount.Status.SUSPENDED,
    ServiceAccount.Status.INSTALLING,
)
VIEWERS = ALL_STAFF - {Role.TECHNICIAN}
EDITORS = (Role.OWNER, Role.ADMIN, Role.FINANCE)


def get_plan_for(request, pk) -> Plan:
    """Plans belong to the whole ISP; the role decorator already said who may see them."""
    return get_object_or_404(Plan, pk=pk)


@roles(*VIEWERS)
def plan_list(request):
    plans = Plan.objects.annotate(
        live_accounts=Count(
            "service_accounts", filter=Q(service_accounts__status__in=LIVE_STATUSES)
        )
    ).order_by("-is_active", "price", "name")
    can_edit = request.user.role in EDITORS
    return render(request, "subscribers/plans/list.html", {"plans": plans, "can_edit": can_edit})


@roles(*EDITORS)
def plan_new(request):
    form = PlanForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        plan = _save(request, form)
        messages.success(request, f"Plan {plan} added.")
        return redirect("subscribers:plans")
    return render(request, "subscribers/plans/form.html", {"form": form, "plan": None})


@roles(*EDITORS)
def plan_edit(request, pk):
    plan = get_plan_for(request, pk)
    form = PlanForm(request.POST or None, instance=plan)
    if request.method == "POST" and form.is_valid():
        _save(request, form)
        messages.success(request, f"Plan {plan} saved.")
        return redirect("subscribers:plans")
    return render(request, "subscribers/plans/form.html", {"form": form, "plan": plan})


def _save(request, form) -> Plan:
    # A changed price goes into the plan's price history from tomorrow: a period keeps
    # the price it began with (billing.services.set_plan_price).
    before = Plan.objects.filter(pk=form.instance.pk).values_list("price", flat=True).first()
    with transaction.atomic(), audit.acting_as(request.user):
        plan = form.save()
        if before is not None and before != plan.price:
            billing_services.set_plan_price(
                plan,
                plan.price,
                effective_on=timezone.localdate() + timedelta(days=1),
                actor=request.user,
                before=before,
            )
    return plan


urls = [
    path("plans/", plan_list, name="plans"),
    path("plans/new/", plan_new, name="plan_new"),
    path("plans/<int:pk>/edit/", plan_edit, name="plan_edit"),
]
