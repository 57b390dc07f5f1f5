"""A plan's fair-usage ladder page (issue 14): the steps (after N GB -> slower speeds,
or blocked until a top-up), how many accounts are on each now, and the form that
changes them. Plans are the whole ISP's (no branch limit); who may edit them is who may
edit plans (subscribers.views.plans.EDITORS: prices and what they buy)."""

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone

from ispops.staff.access import roles
from ispops.staff.models import Role
from network import fup
from network.forms import FupLadderForm
from network.models import UsageMeter
from subscribers.models import Plan, ServiceAccount

EDITORS = (Role.OWNER, Role.ADMIN, Role.FINANCE)


def get_plan_for(request, pk) -> Plan:
    """Plans belong to the whole ISP; the role decorator already said who may see them."""
    return get_object_or_404(Plan, pk=pk)


@roles(*EDITORS)
def plan_fair_use(request, pk):
    plan = get_plan_for(request, pk)
    # Bound on every POST, an empty one too: it is told to add a step, never saved.
    form = FupLadderForm(request.POST if request.method == "POST" else None, plan=plan)
    if request.method == "POST":
        steps = [] if "use_plan_fields" in request.POST else None
        if steps is None and form.is_valid():
            steps = form.steps
        if steps is not None:
            try:
                fup.save_ladder(plan, steps, actor=request.user, now=timezone.now())
            except fup.LadderError as exc:
                for problem in exc.problems:
                    form.add_error(None, problem)
            else:
                messages.success(request, f"Fair-use ladder of {plan} saved.")
                return redirect("network:plan_fair_use", pk=plan.pk)
    on_step = dict(
        UsageMeter.objects.filter(service_account__plan=plan)
        .exclude(service_account__status=ServiceAccount.Status.TERMINATED)
        .values_list("fup_step")
        .annotate(n=Count("id"))
        .order_by()
    )
    ladder = [(step, on_step.get(step.number, 0)) for step in fup.ladder(plan)]
    return render(
        request,
        "network/fup/plan_ladder.html",
        {
            "plan": plan,
            "form": form,
            "ladder": ladder,
            "own_steps": plan.fup_steps.exists(),
            "at_full_speed": on_step.get(0, 0),
        },
    )


urls = [path("plans/<int:pk>/fair-use/", plan_fair_use, name="plan_fair_use")]
