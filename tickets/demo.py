"""Demo tickets (seed_demo): a dozen tickets over every category, priority and status,
some assigned to the technician, two overdue so the breach-risk queue has something,
and an outage on one sector with a ticket for each customer under it. Deterministic;
run once."""

import random
from datetime import timedelta

from django.db.models import F

from ispops.staff.models import Role, User
from subscribers.models import Customer, NetworkSite
from tickets import services
from tickets.models import Category, Priority, Status, Ticket, TicketEvent

# Clock fields moved back with the ticket, so its SLA state is as if opened back then.
CLOCKS = (
    "created_at",
    "first_response_due",
    "response_warn_at",
    "resolution_due",
    "resolution_warn_at",
    "first_response_at",
    "paused_at",
    "resolved_at",
    "closed_at",
)

TICKETS = [
    ("No internet since the power cut", Category.NO_CONNECTION, Priority.URGENT, Status.NEW, 30),
    ("Speed drops every evening", Category.SLOW_SPEED, Priority.NORMAL, Status.IN_PROGRESS, 20),
    ("Charged twice this month", Category.BILLING, Priority.HIGH, Status.ASSIGNED, 6),
    ("Moving to a new house in Syokimau", Category.RELOCATION, Priority.LOW, Status.WAITING, 50),
    ("Router lights off after storm", Category.NO_CONNECTION, Priority.HIGH, Status.ASSIGNED, 3),
    (
        "Wants the cable run through the ceiling",
        Category.INSTALLATION,
        Priority.NORMAL,
        Status.NEW,
        2,
    ),
    ("Cannot reach the M-Pesa pay page", Category.BILLING, Priority.NORMAL, Status.RESOLVED, 28),
    ("Wi-Fi does not reach the bedrooms", Category.SLOW_SPEED, Priority.LOW, Status.CLOSED, 90),
    ("Asks for a static IP", Category.OTHER, Priority.LOW, Status.NEW, 1),
    (
        "Intermittent drops on the radio link",
        Category.NO_CONNECTION,
        Priority.NORMAL,
        Status.IN_PROGRESS,
        8,
    ),
]


def seed(out=None) -> None:
    say = out or (lambda text: None)
    if Ticket.objects.exists():
        return
    rng = random.Random(2029)
    office = User.objects.filter(role=Role.SUPPORT, is_active=True).first()
    technician = User.objects.filter(role=Role.TECHNICIAN, is_active=True).first()
    customers = list(Customer.objects.filter(status="active").order_by("id")[:200])
    if office is None or not customers:
        return
    # A field job goes to the technician, so its customer is in the technician's branches.
    branches = set(technician.branches.values_list("id", flat=True)) if technician else set()
    local = [c for c in customers if not branches or c.branch_id in branches] or customers
    for subject, category, priority, status, hours_ago in TICKETS:
        field_job = category in (Category.NO_CONNECTION, Category.INSTALLATION)
        customer = rng.choice(local if field_job and technician else customers)
        ticket = services.open_ticket(
            customer=customer,
            subject=subject,
            actor=office,
            category=category,
            priority=priority,
            service_account=customer.service_accounts.first(),
            tell_customer=False,
        )
        if status != Status.NEW:
            services.assign(ticket, technician if field_job else office, actor=office)
        if status in (Status.IN_PROGRESS, Status.WAITING, Status.RESOLVED, Status.CLOSED):
            services.change_status(ticket, Status.IN_PROGRESS, actor=office)
            services.add_comment(
                ticket, "Checked the line from the office; looking into it.", actor=office
            )
        if status in (Status.WAITING, Status.RESOLVED, Status.CLOSED):
            services.change_status(ticket, status, actor=office)
        # Opened hours ago: clocks have run, and some targets are already missed.
        _move_back(ticket, timedelta(hours=hours_ago))
    sector = NetworkSite.objects.filter(kind="sector", customers__isnull=False).first()
    outage = None
    if sector is not None:
        outage = services.open_outage(
            sector, subject="Sector radio down after lightning", actor=office
        )
    say(
        f"  {Ticket.objects.count()} tickets"
        + (f" (an outage on {sector.name} for {outage.children} customers)" if outage else "")
    )


def _move_back(ticket: Ticket, delta: timedelta) -> None:
    """As if everything on the ticket happened `delta` earlier (SLA clocks included)."""
    Ticket.objects.filter(pk=ticket.pk).update(**{f: F(f) - delta for f in CLOCKS})
    TicketEvent.objects.filter(ticket=ticket).update(at=F("at") - delta)
