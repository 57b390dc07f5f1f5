"""Staff's way into a customer's portal: "view as customer" from the 360 page. Read-only
(portal.pages refuses every change) and recorded in the portal's event log."""

from django.http import Http404
from django.shortcuts import redirect
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
