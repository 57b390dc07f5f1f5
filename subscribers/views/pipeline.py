"""The lead-to-activation pipeline: the board, a new lead, one lead and its next step.

The office moves a lead through STAGE_ORDER one stage at a time; each move is a call to
subscribers.services.advance_installation, which refuses illegal moves (IllegalTransition,
answered here with 400 and the reason) and records who moved it and when.
"""

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers import services
from subscribers.forms_pipeline import (
    STAGE_FORMS,
    CancelForm,
    LeadForm,
    PipelineFilterForm,
    RescheduleForm,
)
from subscribers.models import Customer, Installation

Stage = Installation.Stage
OFFICE = (Role.OWNER, Role.ADMIN, Role.SUPPORT)

# The board shows at most this many cards per column (longest waiting first), so a
# pile of leads in one stage cannot make the page slow; the column says how many more
# and links to itself shown whole (?all=STAGE, one stage at a time).
COLUMN_LIMIT = 50
# Confirmed installations leave the board after this long.
CONFIRMED_SHOWN = timedelta(days=14)
# Waiting in one stage longer than these many days earns a warning, then an alarm.
WAIT_WARN_DAYS, WAIT_BAD_DAYS = 3, 7
# No alarm for the end of the road.
_NO_WAIT_BADGE = {Stage.CONFIRMED}
_RESCHEDULABLE = {Stage.SCHEDULED, Stage.EQUIPPED}
_CANCELLABLE = set(services.STAGE_ORDER) - {Stage.ACTIVATED, Stage.CONFIRMED}


def installations_for(user):
    """Installations of the customers this staff member may see, with what cards show."""
    return Installation.objects.select_related(
        "service_account__customer__branch",
        "service_account__plan",
        "technician",
    ).filter(service_account__customer__in=Customer.objects.visible_to(user))


def get_installation_for(request, pk) -> Installation:
    """One lead (by Installation pk) the requester may see, or 404."""
    return get_object_or_404(installations_for(request.user), pk=pk)


def waited(inst: Installation, now) -> tuple[str, str]:
    """How long it has waited in its stage ("3 days"), and the badge level for that."""
    elapsed = now - inst.stage_since
    days = elapsed.days
    if days >= 1:
        label = ngettext("%(n)d day", "%(n)d days", days) % {"n": days}
    else:
        label = timesince(inst.stage_since, now, depth=1)
    if inst.stage in _NO_WAIT_BADGE:
        level = ""
    elif elapsed > timedelta(days=WAIT_BAD_DAYS):
        level = "bad"
    elif elapsed > timedelta(days=WAIT_WARN_DAYS):
        level = "warn"
    else:
        level = ""
    return label, level


# --- the board -------------------------------------------------------------------------


@roles(*OFFICE)
@require_GET
def pipeline(request):
    now = timezone.now()
    whole = request.GET.get("all", "")
    if whole and whole not in services.STAGE_ORDER:
        return HttpResponseBadRequest("all= names a stage of the pipeline")
    form = PipelineFilterForm(request.GET or None, user=request.user)
    board = installations_for(request.user).filter(
        Q(stage__in=services.STAGE_ORDER) & ~Q(stage=Stage.CONFIRMED)
        | Q(stage=Stage.CONFIRMED, stage_since__gte=now - CONFIRMED_SHOWN)
    )
    if form.is_valid():
        if branch := form.cleaned_data["branch"]:
            board = board.filter(service_account__customer__branch=branch)
        if technician := form.cleaned_data["technician"]:
            board = board.filter(technician=technician)

    totals = dict(board.order_by().values_list("stage").annotate(n=Count("id")))
    cards = board.annotate(
        place=Window(
            RowNumber(), partition_by=[F("stage")], order_by=[F("stage_since").asc(), F("id")]
        )
    ).filter(Q(place__lte=COLUMN_LIMIT) | Q(stage=whole))
    columns = {stage: [] for stage in services.STAGE_ORDER}
    for inst in cards.order_by("stage_since", "id"):
        inst.waited, inst.wait_level = waited(inst, now)
        columns[inst.stage].append(inst)
    context = {
        "form": form,
        "columns": [
            {
                "stage": stage,
                "label": Stage(stage).label,
                "cards": columns[stage],
                "total": totals.get(stage, 0),
                "more": totals.get(stage, 0) - len(columns[stage]),
                "show_all": _with(request, all=stage),
            }
            for stage in services.STAGE_ORDER
        ],
    }
    return render_partial(request, "subscribers/pipeline/board.html", "board", context)


@roles(*OFFICE)
def lead_new(request):
    form = LeadForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            inst = services.create_lead(form.details(), actor=request.user)
        except services.SubscriberError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Lead recorded for {inst.service_account.customer.name}.")
            return redirect("subscribers:lead", pk=inst.pk)
    return render(request, "subscribers/pipeline/lead_new.html", {"form": form})


def _with(request, **params) -> str:
    """The board's address with its filters and `params`."""
    query = request.GET.copy()
    for key, value in params.items():
        query[key] = value
    return f"?{query.urlencode()}"


# --- one lead --------------------------------------------------------------------------


def _advance_form(inst, user):
    """The form for the lead's next stage (None once confirmed or cancelled)."""
    to = services.next_stage(inst.stage)
    return STAGE_FORMS[to](user=user) if to else None


def _lead_page(
    request,
    inst,
    *,
    advance_form=None,
    reschedule_form=None,
    cancel_form=None,
    refusal="",
    status=200,
):
    account = inst.service_account
    steps = list(inst.steps.all())
    current = next((s for s in reversed(steps) if s.stage == inst.stage), None)
    if advance_form is None:
        advance_form = _advance_form(inst, request.user)
    if reschedule_form is None and inst.stage in _RESCHEDULABLE:
        reschedule_form = RescheduleForm(
            initial={"technician": inst.technician_id, "scheduled_for": inst.scheduled_for},
            user=request.user,
        )
    if cancel_form is None and inst.stage in _CANCELLABLE:
        cancel_form = CancelForm()
    activated = inst.stage in (Stage.ACTIVATED, Stage.CONFIRMED)
    now = timezone.now()
    inst.waited, inst.wait_level = waited(inst, now)
    context = {
        "inst": inst,
        "account": account,
        "customer": account.customer,
        "steps": steps,
        "current": current,
        "next_stage": services.next_stage(inst.stage) if advance_form else None,
        "advance_form": advance_form,
        "reschedule_form": reschedule_form if inst.stage in _RESCHEDULABLE else None,
        "cancel_form": cancel_form if inst.stage in _CANCELLABLE else None,
        "intents": [] if activated else None,
        "router_jobs": list(account.router_jobs.select_related("router")[:5])
        if activated
        else None,
        "refusal": refusal,
    }
    return render(request, "subscribers/pipeline/lead.html", context, status=status)


@roles(*OFFICE)
@require_GET
def lead(request, pk):
    return _lead_page(request, get_installation_for(request, pk))


@roles(*OFFICE)
@require_POST
def lead_advance(request, pk):
    inst = get_installation_for(request, pk)
    to = request.POST.get("to", "")
    if to not in STAGE_FORMS:
        return _lead_page(request, inst, refusal=f"unknown stage {to!r}", status=400)
    form = STAGE_FORMS[to](request.POST, user=request.user)
    expected = to == services.next_stage(inst.stage)
    if not form.is_valid() and expected:
        return _lead_page(request, inst, advance_form=form)
    # Any other move goes to the service, which refuses it with the reason.
    try:
        services.advance_installation(inst, to, actor=request.user, **form.service_kwargs())
    except services.IllegalTransition as exc:
        return _lead_page(request, inst, refusal=str(exc), status=400)
    except services.SubscriberError as exc:
        if not expected:
            return _lead_page(request, inst, refusal=str(exc), status=400)
        form.add_error(None, str(exc))
        return _lead_page(request, inst, advance_form=form)
    messages.success(request, f"Moved to {Stage(to).label}.")
    return redirect("subscribers:lead", pk=inst.pk)


@roles(*OFFICE)
@require_POST
def lead_reschedule(request, pk):
    inst = get_installation_for(request, pk)
    form = RescheduleForm(request.POST, user=request.user)
    if inst.stage not in _RESCHEDULABLE:
        return _lead_page(
            request, inst, refusal="only a scheduled installation can be rescheduled", status=400
        )
    if not form.is_valid():
        return _lead_page(request, inst, reschedule_form=form)
    data = form.cleaned_data
    try:
        services.reschedule(
            inst,
            actor=request.user,
            technician=data["technician"],
            scheduled_for=data["scheduled_for"],
            note=data["note"],
        )
    except services.SubscriberError as exc:
        form.add_error(None, str(exc))
        return _lead_page(request, inst, reschedule_form=form)
    messages.success(request, "Rescheduled.")
    return redirect("subscribers:lead", pk=inst.pk)


@roles(*OFFICE)
@require_POST
def lead_cancel(request, pk):
    inst = get_installation_for(request, pk)
    form = CancelForm(request.POST)
    valid = form.is_valid()
    if inst.stage in _CANCELLABLE and not valid:
        return _lead_page(request, inst, cancel_form=form)
    # Past activation the service refuses, whatever the reason says.
    reason = form.cleaned_data["reason"] if valid else ""
    try:
        services.advance_installation(inst, Stage.CANCELLED, actor=request.user, note=reason)
    except services.SubscriberError as exc:
        return _lead_page(request, inst, refusal=str(exc), status=400)
    messages.success(request, "Lead cancelled.")
    return redirect("subscribers:lead", pk=inst.pk)


urls = [
    path("pipeline/", pipeline, name="pipeline"),
    path("pipeline/new/", lead_new, name="lead_new"),
    path("pipeline/<int:pk>/", lead, name="lead"),
    path("pipeline/<int:pk>/advance/", lead_advance, name="lead_advance"),
    path("pipeline/<int:pk>/reschedule/", lead_reschedule, name="lead_reschedule"),
    path("pipeline/<int:pk>/cancel/", lead_cancel, name="lead_cancel"),
]
