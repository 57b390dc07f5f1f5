"""The portal's help pages: the customer's tickets, a new one (with a phone photo), one
ticket with the replies meant for the customer, a reply, and the customer's own photos.
Every ticket and photo is looked up among the visiting customer's own: any other id is a
404."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from ispops.lib.uploads import private_file_response
from portal import tickets
from portal.forms_tickets import NewTicketForm, ReplyForm
from portal.pages import customer_page, render_page
from tickets import services as ticket_services
from tickets.models import Attachment, Status

PER_PAGE = 10


# --- fetch and authorise ------------------------------------------------------------


def get_ticket_for(request, pk):
    """One of the visiting customer's tickets, else 404."""
    queryset = tickets.tickets_of(request.visit.customer).select_related("customer")
    return get_object_or_404(queryset, pk=pk)


def get_photo_for(request, pk) -> Attachment:
    """A photo the visiting customer attached to one of their tickets, else 404."""
    own = tickets.tickets_of(request.visit.customer)
    photos = Attachment.objects.filter(ticket__in=own, uploaded_by__isnull=True)
    return get_object_or_404(photos, pk=pk)


# --- pages --------------------------------------------------------------------------


@customer_page
@require_GET
def ticket_list(request):
    page = Paginator(tickets.tickets_of(request.visit.customer), PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = [{"ticket": t, "status": tickets.PLAIN_STATUS[t.status]} for t in page]
    return render_page(request, "portal/tickets.html", {"page": page, "rows": rows})


@customer_page
def ticket_new(request):
    form = NewTicketForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = tickets.open_request(
                request.visit.customer,
                category=data["category"],
                description=data["description"],
                photo=data["photo"],
            )
        except tickets.TooMany:
            form.add_error(
                None,
                "You have opened several requests today. Reply to one of them and we "
                "will see it, or call us if it is urgent.",
            )
            return render_page(request, "portal/ticket_new.html", {"form": form}, status=429)
        messages.success(request, f"Thank you. Your request {ticket.number} is with our team.")
        return redirect("portal:ticket", ticket.pk)
    status = 400 if form.is_bound else 200
    return render_page(request, "portal/ticket_new.html", {"form": form}, status=status)


def _detail(request, ticket, *, form=None, status=200):
    events = [{"event": e, "mine": tickets.from_customer(e)} for e in tickets.replies(ticket)]
    context = {
        "ticket": ticket,
        "status": tickets.PLAIN_STATUS[ticket.status],
        "events": events,
        "photos": tickets.customer_photos(ticket),
        "form": form or ReplyForm(),
        "closed": ticket.status == Status.CLOSED,
        "by_customer": tickets.opened_by_customer(ticket),
    }
    return render_page(request, "portal/ticket.html", context, status=status)


@customer_page
@require_GET
def ticket_detail(request, pk):
    return _detail(request, get_ticket_for(request, pk))


@customer_page
@require_POST
def ticket_reply(request, pk):
    ticket = get_ticket_for(request, pk)
    form = ReplyForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail(request, ticket, form=form, status=400)
    try:
        tickets.reply(ticket, body=form.cleaned_data["body"], photo=form.cleaned_data["photo"])
    except ticket_services.TicketError as exc:
        form.add_error(None, str(exc).capitalize() + ".")
        return _detail(request, ticket, form=form, status=400)
    # `ticket` is as it was before the reply: a resolved one is open again now.
    if ticket.status == Status.RESOLVED:
        messages.success(request, "Your reply is sent, and the request is open again.")
    else:
        messages.success(request, "Your reply is sent.")
    return redirect("portal:ticket", ticket.pk)


@customer_page
@require_GET
def ticket_photo(request, pk):
    """A photo the customer attached, to that customer only (and staff viewing as them);
    never a staff photo, never another customer's."""
    photo = get_photo_for(request, pk)
    return private_file_response(photo.file, photo.content_type)


urls = [
    path("my/tickets/", ticket_list, name="tickets"),
    path("my/tickets/new/", ticket_new, name="ticket_new"),
    path("my/tickets/<int:pk>/", ticket_detail, name="ticket"),
    path("my/tickets/<int:pk>/reply/", ticket_reply, name="ticket_reply"),
    path("my/tickets/photos/<int:pk>/", ticket_photo, name="ticket_photo"),
]
