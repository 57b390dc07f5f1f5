"""Router pages: the list of MikroTik routers, adding one, and its record (details, edit
form and history). The API password is write-only everywhere."""

import copy

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from ispops.staff.access import roles
from ispops.staff.models import Role
from network import services
from network.forms import RouterForm, RouterNewForm
from network.models import Router, visible
from subscribers.models import NetworkSite, ServiceAccount

VIEWERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
EDITORS = (Role.OWNER, Role.ADMIN)


def get_router_for(request, pk) -> Router:
    routers = visible(Router.objects.select_related("branch", "site"), request.user)
    return get_object_or_404(routers, pk=pk)


@roles(*VIEWERS)
def router_list(request):
    routers = visible(Router.objects.select_related("branch", "site"), request.user).annotate(
        accounts=Count(
            "service_accounts",
            filter=~Q(service_accounts__status=ServiceAccount.Status.TERMINATED),
        )
    )
    context = {"routers": routers, "can_edit": request.user.role in EDITORS}
    return render(request, "network/routers/list.html", context)


@roles(*EDITORS)
def router_new(request):
    sites = visible(NetworkSite.objects.all(), request.user)
    form = RouterNewForm(request.POST or None, user=request.user, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            router = services.add_router(actor=request.user, **form.cleaned_data)
        except services.RouterError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Router {router} added.")
            return redirect("network:router", pk=router.pk)
    return render(request, "network/routers/new.html", {"form": form})


@roles(*VIEWERS)
def router_detail(request, pk):
    router = get_router_for(request, pk)
    can_edit = request.user.role in EDITORS
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("Only owners and admins change routers.")
    form = None
    if can_edit:
        sites = visible(NetworkSite.objects.all(), request.user)
        # A copy, so a refused edit does not show its values as the stored record's.
        form = RouterForm(
            request.POST or None, instance=copy.copy(router), user=request.user, sites=sites
        )
        if request.method == "POST" and form.is_valid():
            try:
                services.update_router(router, actor=request.user, **form.cleaned_data)
            except services.RouterError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Saved.")
                return redirect("network:router", pk=router.pk)
    accounts = router.service_accounts.exclude(status=ServiceAccount.Status.TERMINATED).count()
    context = {
        "router": router,
        "form": form,
        "can_edit": can_edit,
        "password_set": bool(router.password),
        "accounts": accounts,
    }
    return render(request, "network/routers/detail.html", context)


urls = [
    path("routers/", router_list, name="routers"),
    path("routers/new/", router_new, name="router_new"),
    path("routers/<int:pk>/", router_detail, name="router"),
]
