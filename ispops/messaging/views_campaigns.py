"""Campaign pages: the list, a new campaign from the subscribers list's filter (or the
customers picked on it), its preview (who gets it, who is left out and why, the text
as one of them gets it), sending, and its progress (polled by htmx while it sends)."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from ispops.lib.htmx import render_partial
from ispops.messaging import campaigns
from ispops.messaging.forms import CampaignForm
from ispops.messaging.models import Campaign
from ispops.staff.access import roles
from ispops.staff.models import Role

SENDERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.FINANCE)


def campaigns_visible_to(user):
    """Every campaign for staff of every branch; a branch-limited one sees their own
    (another's filter may reach branches they cannot see)."""
    queryset = Campaign.objects.select_related("created_by")
    if user.branch_ids() is None:
        return queryset
    return queryset.filter(created_by=user)


def get_campaign_for(request, pk) -> Campaign:
    return get_object_or_404(campaigns_visible_to(request.user), pk=pk)


@roles(*SENDERS)
def campaign_list(request):
    page = Paginator(campaigns_visible_to(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "messaging/campaigns.html", {"page": page})


@roles(*SENDERS)
def campaign_new(request):
    """GET: the form, for the filter in the URL (the subscribers list's own query, or
    ?ids= of customers picked on it). POST: a draft, then its preview."""
    source = request.POST if request.method == "POST" else request.GET
    try:
        filters = campaigns.clean_filters(source)
        campaigns.audience(filters, request.user)  # the list would refuse it: so do we
    except campaigns.CampaignError as exc:
        return render(
            request, "messaging/campaign_bad_filter.html", {"error": str(exc)}, status=400
        )
    form = CampaignForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = campaigns.create(actor=request.user, filters=filters, **form.cleaned_data)
        except campaigns.CampaignError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("messaging:campaign", campaign.pk)
    context = {
        "form": form,
        "filters": filters,
        "described": campaigns.describe(filters),
        "matching": campaigns.audience(filters, request.user).count(),
        "variables": campaigns.VARIABLES,
    }
    return render(
        request,
        "messaging/campaign_new.html",
        context,
        status=400 if request.method == "POST" else 200,
    )


@roles(*SENDERS)
def campaign_detail(request, pk):
    campaign = get_campaign_for(request, pk)
    form = None
    if campaign.state == Campaign.State.DRAFT:
        initial = {
            "name": campaign.name,
            "channel": campaign.channel,
            "kind": campaign.kind,
            "subject": campaign.subject,
            "body": campaign.body,
        }
        form = CampaignForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                campaigns.update(campaign, actor=request.user, **form.cleaned_data)
            except campaigns.CampaignError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Campaign saved; check the preview before sending.")
                return redirect("messaging:campaign", campaign.pk)
    context = {
        "campaign": campaign,
        "form": form,
        "described": campaigns.describe(campaign.filters),
        "kind_label": dict(campaigns.kind_choices()).get(campaign.kind, campaign.kind),
        "variables": campaigns.VARIABLES,
    }
    if campaign.state == Campaign.State.DRAFT:
        context["preview"] = campaigns.preview(campaign)
    else:
        context["progress"] = campaigns.progress(campaign)
    status = 400 if form is not None and form.is_bound and form.errors else 200
    return render_partial(request, "messaging/campaign.html", "progress", context, status=status)


@roles(*SENDERS)
def campaign_send(request, pk):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    campaign = get_campaign_for(request, pk)
    if campaigns.start(campaign, actor=request.user):
        messages.success(request, f"“{campaign.name}” is being sent.")
    else:
        messages.info(request, f"“{campaign.name}” was already sent.")
    return redirect("messaging:campaign", campaign.pk)


urls = [
    path("messages/campaigns/", campaign_list, name="campaigns"),
    path("messages/campaigns/new/", campaign_new, name="campaign_new"),
    path("messages/campaigns/<int:pk>/", campaign_detail, name="campaign"),
    path("messages/campaigns/<int:pk>/send/", campaign_send, name="campaign_send"),
]
