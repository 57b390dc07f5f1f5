"""Ticket pages: the queue (by status, assignee and SLA risk), a ticket with its timeline
and actions, new tickets and outages, the technician's phone page, photos (served only
to staff who may see the ticket) and the SLA settings.

Every staff member sees the tickets of the customers in their branches; resolving or
closing someone else's ticket needs support or a manager (services.may_finish).
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from ispops import audit
from ispops.lib.htmx import render_partial
from ispops.lib.uploads import private_file_response
from ispops.staff.access import any_staff, roles
from ispops.staff.models import Role
from subscribers.views.customers import get_customer_for
from tickets import services
from tickets.forms import (
    AssignForm,
    CommentForm,
    OutageForm,
    PhotoForm,
    SlaTableForm,
    StatusForm,
    TicketFilterForm,
    TicketForm,
    TicketSettingsForm,
)
from tickets.models import Attachment, Ticket, TicketSettings

DISPATCHERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)


# --- fetch and authorise ------------------------------------------------------------


def get_ticket_for(request, pk) -> Ticket:
    """The ticket, if its customer (or an outage's site) is in this staff member's
    branches; else 404."""
    queryset = Ticket.objects.visible_to(request.user).select_related(
        "customer", "service_account__plan", "assignee", "site", "parent", "escalated_to"
    )
    return get_object_or_404(queryset, pk=pk)


def get_attachment_for(request, pk) -> Attachment:
    visible = Ticket.objects.visible_to(request.user)
    return get_object_or_404(Attachment.objects.filter(ticket__in=visible), pk=pk)


# --- the queue ----------------------------------------------------------------------


def filtered_tickets(request, form: TicketFilterForm):
    """The queue as filtered. An outage's customers' tickets are one line, the outage's
    (with how many customers it holds), unless asked for or searched for by name."""
    tickets = Ticket.objects.visible_to(request.user)
    if not form.is_valid():
        return tickets.none() if form.is_bound else tickets.open().filter(parent__isnull=True)
    data = form.cleaned_data
    if data["outages"] != "each" and not data["q"].strip():
        tickets = tickets.filter(parent__isnull=True)
    if data["status"] == "":
        tickets = tickets.open()
    elif data["status"] != "all":
        tickets = tickets.filter(status=data["status"])
    if term := data["q"].strip():
        number = term.upper().removeprefix("T-").lstrip("0")
        match = Q(subject__icontains=term) | Q(customer__account__iexact=term)
        match |= Q(customer__name__icontains=term)
        if number.isascii() and number.isdecimal():
            match |= Q(pk=int(number))
        tickets = tickets.filter(match)
    if data["assignee"] == "me":
        tickets = tickets.filter(assignee=request.user)
    elif data["assignee"] == "none":
        tickets = tickets.filter(assignee__isnull=True)
    elif data["assignee"]:
        tickets = tickets.filter(assignee_id=int(data["assignee"]))
    if data["risk"]:
        tickets = tickets.filter(services.risk_filter(data["risk"]))
    if data["category"]:
        tickets = tickets.filter(category=data["category"])
    if data["priority"]:
        tickets = tickets.filter(priority=data["priority"])
    return tickets


@any_staff
@require_GET
def ticket_list(request):
    form = TicketFilterForm(request.GET or None, user=request.user)
    tickets = _with_linked_customers(filtered_tickets(request, form), request.user)
    tickets = tickets.for_list().order_by("resolution_due", "id")
    page = Paginator(tickets, 25).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "can_dispatch": request.user.role in DISPATCHERS}
    return render_partial(request, "tickets/list.html", "results", context)


def _with_linked_customers(tickets, user):
    """`linked_customers`: an outage's child tickets this staff member may see."""
    allowed = user.branch_ids()
    if allowed is None:
        return tickets.annotate(linked_customers=Count("children"))
    mine = Q(children__customer__branch_id__in=allowed)
    return tickets.annotate(linked_customers=Count("children", filter=mine))


@any_staff
@require_GET
def my_tickets(request):
    """The technician's phone page: the open tickets assigned to them."""
    return render(request, "tickets/mine.html", {"tickets": services.tickets_for(request.user)})


# --- one ticket ---------------------------------------------------------------------


def _detail(request, ticket, *, status=200, refusal="", **forms):
    user = request.user
    children = (
        Ticket.objects.visible_to(user).filter(parent=ticket)
        if ticket.is_outage
        else Ticket.objects.none()
    )
    context = {
        "ticket": ticket,
        "events": services.timeline(ticket),
        "attachments": ticket.attachments.all(),
        # Only the customers this staff member may see (an outage may cross branches).
        "children": children.select_related("customer").order_by("id")[:50],
        "child_count": children.count(),
        "status_form": forms.get("status_form") or StatusForm(ticket=ticket, user=user),
        "assign_form": forms.get("assign_form")
        or (
            AssignForm(initial={"assignee": ticket.assignee}, user=user)
            if user.role in DISPATCHERS
            else None
        ),
        "comment_form": forms.get("comment_form") or CommentForm(),
        "photo_form": forms.get("photo_form") or PhotoForm(),
        "can_finish": services.may_finish(user, ticket),
        "refusal": refusal,
    }
    return render(request, "tickets/detail.html", context, status=status)


@any_staff
@require_GET
def ticket_detail(request, pk):
    return _detail(request, get_ticket_for(request, pk))


def _back(request, ticket):
    if request.POST.get("next") == "mine":
        return redirect("tickets:mine")
    return redirect("tickets:detail", ticket.pk)


@any_staff
@require_POST
def ticket_status(request, pk):
    ticket = get_ticket_for(request, pk)
    form = StatusForm(request.POST, ticket=ticket, user=request.user)
    wanted = request.POST.get("to", "")
    if wanted in ("resolved", "closed") and not services.may_finish(request.user, ticket):
        # Checked before the form: the choice is not offered, and the answer is a 403.
        return _detail(
            request,
            ticket,
            status=403,
            refusal="Only the assignee, support or a manager may resolve or close this ticket.",
        )
    if not form.is_valid():
        return _detail(request, ticket, status=400, status_form=form)
    try:
        services.change_status(
            ticket, form.cleaned_data["to"], actor=request.user, note=form.cleaned_data["note"]
        )
    except services.NotAllowed as exc:
        return _detail(request, ticket, status=403, refusal=str(exc).capitalize() + ".")
    except services.TicketError as exc:
        return _detail(request, ticket, status=400, refusal=str(exc).capitalize() + ".")
    ticket.refresh_from_db(fields=["status"])
    messages.success(request, f"{ticket.number} is now {ticket.get_status_display().lower()}.")
    return _back(request, ticket)


@roles(*DISPATCHERS)
@require_POST
def ticket_assign(request, pk):
    ticket = get_ticket_for(request, pk)
    form = AssignForm(request.POST, user=request.user)
    if not form.is_valid():
        return _detail(request, ticket, status=400, assign_form=form)
    try:
        services.assign(ticket, form.cleaned_data["assignee"], actor=request.user)
    except services.TicketError as exc:
        return _detail(request, ticket, status=400, refusal=str(exc).capitalize() + ".")
    messages.success(request, "Assignment saved.")
    return redirect("tickets:detail", ticket.pk)


@any_staff
@require_POST
def ticket_comment(request, pk):
    ticket = get_ticket_for(request, pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        return _detail(request, ticket, status=400, comment_form=form)
    try:
        services.add_comment(
            ticket, form.cleaned_data["body"], actor=request.user, channels=form.channels()
        )
    except services.TicketError as exc:
        form.add_error(None, str(exc).capitalize() + ".")
        return _detail(request, ticket, status=400, comment_form=form)
    messages.success(request, "Sent to the customer." if form.channels() else "Note added.")
    return _back(request, ticket)


@any_staff
@require_POST
def ticket_photo(request, pk):
    ticket = get_ticket_for(request, pk)
    form = PhotoForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail(request, ticket, status=400, photo_form=form)
    try:
        services.add_attachment(ticket, form.cleaned_data["photo"], actor=request.user)
    except services.TicketError as exc:
        form.add_error("photo", str(exc).capitalize() + ".")
        return _detail(request, ticket, status=400, photo_form=form)
    messages.success(request, "Photo added.")
    return _back(request, ticket)


@any_staff
@require_GET
def attachment(request, pk):
    """A ticket's photo, to staff who may see the ticket (the media folder itself is
    never served)."""
    item = get_attachment_for(request, pk)
    return private_file_response(item.file, item.content_type)


# --- new tickets --------------------------------------------------------------------


@any_staff
def ticket_new(request):
    customer = None
    wanted = request.GET.get("customer", "")
    if request.method == "GET" and wanted.isascii() and wanted.isdecimal():
        customer = get_customer_for(request, int(request.GET["customer"]))
    form = TicketForm(request.POST or None, user=request.user, customer=customer)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = services.open_ticket(
                customer=form.customer,
                service_account=data["service_account"],
                subject=data["subject"],
                description=data["description"],
                category=data["category"],
                priority=data["priority"],
                assignee=data["assignee"],
                tell_customer=data["tell_customer"],
                actor=request.user,
            )
        except services.TicketError as exc:
            form.add_error(None, str(exc).capitalize() + ".")
        else:
            messages.success(request, f"Ticket {ticket.number} opened.")
            return redirect("tickets:detail", ticket.pk)
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request,
        "tickets/form.html",
        {"form": form, "title": "New ticket", "button": "Open the ticket", "customer": customer},
        status=status,
    )


@roles(*DISPATCHERS)
def outage_new(request):
    form = OutageForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            outage = services.open_outage(
                data["site"],
                subject=data["subject"],
                description=data["description"],
                priority=data["priority"],
                actor=request.user,
            )
        except services.TicketError as exc:
            form.add_error(None, str(exc).capitalize() + ".")
        else:
            messages.success(
                request,
                f"Outage {outage.parent.number} opened: {outage.children} customer"
                f"{'s' if outage.children != 1 else ''} told.",
            )
            return redirect("tickets:detail", outage.parent.pk)
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request,
        "tickets/form.html",
        {"form": form, "title": "Report an outage", "button": "Open the outage"},
        status=status,
    )


# --- settings -----------------------------------------------------------------------


@roles(*MANAGERS)
def ticket_settings(request):
    settings_obj = TicketSettings.load()
    targets = services.sla_targets()
    posted = request.method == "POST"
    form = TicketSettingsForm(request.POST if posted else None, instance=settings_obj)
    table = SlaTableForm(request.POST if posted else None, targets=targets)
    if posted and form.is_valid() and table.is_valid():
        with audit.acting_as(request.user):
            form.save()
        changed = services.save_sla_targets(table.values(), actor=request.user)
        messages.success(request, f"Saved ({changed} target{'s' if changed != 1 else ''} changed).")
        return redirect("tickets:settings")
    return render(
        request,
        "tickets/settings.html",
        {"form": form, "table": table},
        status=400 if posted else 200,
    )


urls = [
    path("tickets/", ticket_list, name="list"),
    path("tickets/mine/", my_tickets, name="mine"),
    path("tickets/new/", ticket_new, name="new"),
    path("tickets/outage/", outage_new, name="outage"),
    path("tickets/settings/", ticket_settings, name="settings"),
    path("tickets/<int:pk>/", ticket_detail, name="detail"),
    path("tickets/<int:pk>/status/", ticket_status, name="status"),
    path("tickets/<int:pk>/assign/", ticket_assign, name="assign"),
    path("tickets/<int:pk>/comment/", ticket_comment, name="comment"),
    path("tickets/<int:pk>/photo/", ticket_photo, name="photo"),
    path("tickets/photos/<int:pk>/", attachment, name="attachment"),
]
