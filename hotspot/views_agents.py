"""Voucher agents: the list of agents with their balances and the ledger of each (float
given, payouts recorded by owners, admins and finance), and an agent's own page (their
batches, cards held and sold, their ledger). An agent sees nothing of anyone else."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from hotspot import agents
from hotspot.forms import EntryForm
from hotspot.models import AgentEntry, Voucher
from hotspot.views import ISSUERS, PER_PAGE, batches_for
from ispops.staff.access import roles
from ispops.staff.models import Role
from ispops.staff.scoping import staff_of_branches_of


def agents_for(user):
    """Agents this staff member may see: all, or those working in their branches."""
    return staff_of_branches_of(user, agents.agents())


def get_agent_for(request, pk):
    return get_object_or_404(agents_for(request.user), pk=pk)


def _ledger_page(request, agent):
    entries = AgentEntry.objects.filter(agent=agent).select_related("batch__package", "voucher")
    return Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))


@roles(*ISSUERS)
def agent_list(request):
    listed = agents.with_figures(agents_for(request.user)).order_by("-is_active", "full_name")
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "hotspot/agents.html", {"page": page})


@roles(*ISSUERS)
def agent_detail(request, pk):
    agent = get_agent_for(request, pk)
    form = EntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        record = (
            agents.give_float if data["kind"] == AgentEntry.Kind.FLOAT else agents.record_payout
        )
        try:
            record(agent, data["amount"], note=data["note"], actor=request.user)
        except agents.AgentError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Recorded.")
            return redirect("hotspot:agent", agent.pk)
    context = {
        "agent": agent,
        "balance": agents.balance(agent),
        "form": form,
        "ledger": _ledger_page(request, agent),
        "batches": _batch_figures(batches_for(request.user).filter(agent=agent))[:20],
    }
    return render(request, "hotspot/agent.html", context)


def _batch_figures(batches):
    return batches.annotate(
        held=Count("vouchers", filter=Q(vouchers__state=Voucher.State.ASSIGNED)),
        sold=Count("vouchers", filter=Q(vouchers__state__in=["sold", "redeemed"])),
    ).order_by("-created_at", "-id")


@roles(Role.AGENT)
def my_page(request):
    agent = request.user
    batches = _batch_figures(batches_for(agent))
    context = {
        "agent": agent,
        "balance": agents.balance(agent),
        "batches": batches[:20],
        "ledger": _ledger_page(request, agent),
    }
    return render(request, "hotspot/my.html", context)


urls = [
    path("hotspot/agents/", agent_list, name="agents"),
    path("hotspot/agents/<int:pk>/", agent_detail, name="agent"),
    path("hotspot/my/", my_page, name="my"),
]
