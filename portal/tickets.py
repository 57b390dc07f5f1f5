"""The customer's side of support tickets: their own tickets, what of a ticket they may
read (replies meant for them and their own photos, never staff notes or staff photos),
opening one with a phone photo, and replying. The ticket rules themselves (clocks,
status moves, telling the assignee) are tickets.services'."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from subscribers.models import Customer
from tickets import services as tickets
from tickets.models import Category, Status, Ticket, TicketEvent

# What a subscriber reads for each status: where their request is, in plain words.
PLAIN_STATUS = {
    Status.NEW: "Received, waiting for our team",
    Status.ASSIGNED: "With our team",
    Status.IN_PROGRESS: "Being worked on",
    Status.WAITING: "Waiting for your reply",
    Status.RESOLVED: "Resolved",
    Status.CLOSED: "Closed",
}
SUBJECT_WORDS = 80  # characters of the description that make the ticket's subject
# Requests one customer may open from the portal in 24 hours: enough for real trouble,
# not a way to flood the queue (replies to an open request are not limited).
OPENS_PER_DAY = 5


class TooMany(Exception):
    """The customer opened OPENS_PER_DAY requests in the last 24 hours."""


def customer_actor(customer) -> str:
    """How a subscriber acting in the portal is named in ticket histories and in the
    audit log (staff see "Wanjiru Kamau (customer 00042)")."""
    return f"{customer.name}{_actor_suffix(customer)}"


def _actor_suffix(customer) -> str:
    # The account, not the name, identifies them: a renamed customer is still them.
    return f" (customer {customer.account})"


def tickets_of(customer):
    """The customer's tickets, newest first."""
    return Ticket.objects.filter(customer=customer).order_by("-created_at", "-id")


def customer_photos(ticket: Ticket):
    """The photos the customer attached: staff uploads always carry their user, a
    customer's never (tickets.services.add_attachment with the customer as actor)."""
    return ticket.attachments.filter(uploaded_by__isnull=True).order_by("uploaded_at", "id")


def replies(ticket: Ticket):
    """What the customer reads of the history: comments sent to them and their own
    replies. Internal notes, status notes and SLA lines stay with staff."""
    return ticket.events.filter(kind=TicketEvent.Kind.COMMENT, internal=False).order_by("at", "id")


def from_customer(event: TicketEvent) -> bool:
    return event.actor_id is None and event.sent_by == tickets.CUSTOMER_CHANNEL


def opened_by_customer(ticket: Ticket) -> bool:
    """Whether the customer opened the ticket from the portal, and so wrote its
    description; staff write theirs for staff, and an outage's is the outage's. Only
    then does the portal show the description."""
    return ticket.events.filter(
        kind=TicketEvent.Kind.CREATED,
        actor__isnull=True,
        actor_label__endswith=_actor_suffix(ticket.customer),
    ).exists()


def subject_for(category: str, description: str) -> str:
    """A subject staff can scan in the queue: the category and the first words."""
    first = " ".join(description.split())
    if len(first) > SUBJECT_WORDS:
        first = first[: SUBJECT_WORDS - 1].rstrip() + "…"
    return f"{Category(category).label}: {first}"


def open_request(customer, *, category: str, description: str, photo=None) -> Ticket:
    """Open a ticket for the customer, with their photo if any, in one transaction (a
    photo that fails leaves no ticket). The customer gets the usual "received" SMS."""
    accounts = list(customer.service_accounts.all()[:2])
    actor = customer_actor(customer)
    with transaction.atomic():
        # One customer's requests one at a time, so two at once cannot both slip under
        # the cap (no key: inserts that refer to the customer are not held up).
        Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).first()
        if _opened_since(customer, timezone.now() - timedelta(hours=24)) >= OPENS_PER_DAY:
            raise TooMany
        ticket = tickets.open_ticket(
            customer=customer,
            subject=subject_for(category, description),
            description=description,
            category=category,
            # With one service there is no doubt which one it is about.
            service_account=accounts[0] if len(accounts) == 1 else None,
            actor=actor,
        )
        if photo is not None:
            tickets.add_attachment(ticket, photo, actor=actor)
    return ticket


def _opened_since(customer, since) -> int:
    return (
        tickets_of(customer)
        .filter(
            created_at__gt=since,
            events__kind=TicketEvent.Kind.CREATED,
            events__actor__isnull=True,
            events__actor_label__endswith=_actor_suffix(customer),
        )
        .count()
    )


def reply(ticket: Ticket, *, body: str, photo=None) -> TicketEvent:
    """The customer's reply (tickets.services.add_customer_reply), with a photo if any."""
    actor = customer_actor(ticket.customer)
    with transaction.atomic():
        event = tickets.add_customer_reply(ticket, body, actor=actor)
        if photo is not None:
            tickets.add_attachment(ticket, photo, actor=actor)
    return event
