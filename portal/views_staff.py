"""Staff's side of the portal: "view as customer" from the 360 page (read-only: portal.pages
refuses every change; recorded in the portal's event log), and that log on the 360
page (sign-ins, sign-outs, passwords set, staff views)."""

from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ispops.staff.access import any_staff
from ispops.staff.forms import client_ip
from portal import services, sessions


@require_POST
@any_staff
def view_as(request, pk):
    customer = sessions.viewable_customers(request.user).filter(pk=pk).first()
    if customer is None:
        raise Http404
    sessions.view_as(request, customer)
    services.record_event(
        services.PortalEvent.Kind.VIEWED_BY_STAFF,
        customer=customer,
        staff=request.user,
        ip=client_ip(request),
    )
    return redirect("portal:home")


@any_staff
def activity(request, pk):
    """The customer's last portal events: a card on the 360 page (htmx), or a page."""
    customer = sessions.viewable_customers(request.user).filter(pk=pk).first()
    if customer is None:
        raise Http404
    events = services.events_for(customer)[:15]
    template = "portal/staff_activity.html"
    if getattr(request, "htmx", False):
        template += "#events"
    return render(request, template, {"customer": customer, "events": events})
