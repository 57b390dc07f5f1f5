"""Tickets: a customer's support request with its SLA clocks, who works on it, and its
history (status and assignment changes, comments, attachments, SLA warnings).

State changes go through tickets.services, which writes a TicketEvent for each one, so
the ticket's timeline is the full history: who did what, and when.
"""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.settingsrow import SettingsRow


class Category(models.TextChoices):
    NO_CONNECTION = "no_connection", "No connection"
    SLOW_SPEED = "slow_speed", "Slow speed"
    BILLING = "billing", "Billing"
    RELOCATION = "relocation", "Relocation"
    INSTALLATION = "installation", "Installation"
    OTHER = "other", "Other"


class Priority(models.TextChoices):
    URGENT = "urgent", "Urgent"
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"


class Status(models.TextChoices):
    NEW = "new", "New"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    WAITING = "waiting", "Waiting on customer"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


# Statuses in which the SLA clocks run (a resolved ticket is done unless reopened).
OPEN_STATUSES = (Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING)
DONE_STATUSES = (Status.RESOLVED, Status.CLOSED)


class TicketSettings(SettingsRow):
    """One row per ISP (pk=1): when to warn, and who is told when a ticket breaches."""

    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Gets escalated tickets; blank: every owner and admin.",
    )
    warn_percent = models.PositiveSmallIntegerField(
        "Warn at (% of the target)",
        default=75,
        help_text="The assignee (or the supervisor) is warned when this much of a target "
        "has passed.",
    )

    class Meta:
        verbose_name_plural = "ticket settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(warn_percent__gte=1, warn_percent__lte=99),
                name="ticketsettings_warn_percent_range",
            )
        ]

    def __str__(self):
        return "Ticket settings"


class SlaTarget(models.Model):
    """How fast a ticket of this category and priority is answered and resolved.
    services.sla_targets() fills in the defaults the first time it is asked."""

    category = models.CharField(max_length=16, choices=Category.choices)
    priority = models.CharField(max_length=8, choices=Priority.choices)
    first_response_minutes = models.PositiveIntegerField()
    resolution_minutes = models.PositiveIntegerField()

    class Meta:
        ordering = ["category", "priority"]
        constraints = [
            # One target per pair: services.sla_targets() reads them into a dict.
            models.UniqueConstraint(fields=["category", "priority"], name="slatarget_pair"),
            models.CheckConstraint(
                condition=Q(first_response_minutes__gte=1, resolution_minutes__gte=1),
                name="slatarget_positive",
            ),
        ]

    def __str__(self):
        return f"{self.get_category_display()} / {self.get_priority_display()}"


class TicketQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Tickets of the customers this staff member may see; an outage ticket (no
        customer) by its site's branch."""
        allowed = user.branch_ids()
        if allowed is None:
            return self
        return self.filter(
            Q(customer__branch_id__in=allowed)
            | Q(customer__isnull=True, site__branch_id__in=allowed)
        )

    def for_list(self):
        return self.select_related("customer", "assignee", "site")

    def open(self):
        return self.filter(status__in=OPEN_STATUSES)


class Ticket(models.Model):
    Category = Category
    Priority = Priority
    Status = Status

    # Blank only for an outage's parent ticket, which belongs to a site instead.
    customer = models.ForeignKey(
        "subscribers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tickets",
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tickets",
    )
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.OTHER)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_tickets",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Outages: the parent is on a site and has one child ticket per customer under it.
    site = models.ForeignKey(
        "subscribers.NetworkSite",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tickets",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    is_outage = models.BooleanField(default=False)

    # SLA clocks, set from the SlaTarget when the ticket is opened. Time "waiting on
    # customer" pushes the resolution due time (and its warning) back by as long.
    first_response_due = models.DateTimeField()
    response_warn_at = models.DateTimeField()
    resolution_due = models.DateTimeField()
    resolution_warn_at = models.DateTimeField()
    first_response_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    response_warned_at = models.DateTimeField(null=True, blank=True)
    resolution_warned_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TicketQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Every ticket is about a customer, except an outage's parent (a site).
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | Q(is_outage=True, site__isnull=False),
                name="ticket_customer_or_outage_site",
            ),
        ]
        indexes = [
            # The queue: open tickets by status and age; "my tickets" by assignee.
            models.Index(fields=["status", "-created_at"], name="ticket_status_created"),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_status"),
            models.Index(fields=["customer", "-created_at"], name="ticket_customer"),
            # The SLA check (services.check_slas) reads only open tickets.
            models.Index(
                fields=["resolution_due"],
                name="ticket_open_due",
                condition=Q(status__in=["new", "assigned", "in_progress", "waiting"]),
            ),
        ]

    def __str__(self):
        return f"{self.number} {self.subject}"

    @property
    def number(self) -> str:
        return f"T-{self.pk:05d}" if self.pk else "T-new"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def sla_state(self, now=None) -> str:
        """ "breached", "at_risk" or "ok" for an open ticket; "" when done or paused."""
        if not self.is_open:
            return ""
        now = now or timezone.now()
        if self.escalated_at or (self.first_response_at is None and self.first_response_due <= now):
            return "breached"
        if self.paused_at is None and self.resolution_due <= now:
            return "breached"
        if (self.first_response_at is None and self.response_warn_at <= now) or (
            self.paused_at is None and self.resolution_warn_at <= now
        ):
            return "at_risk"
        return "ok"


class TicketEvent(models.Model):
    """One line of a ticket's history."""

    class Kind(models.TextChoices):
        CREATED = "created", "Opened"
        STATUS = "status", "Status"
        ASSIGNED = "assigned", "Assigned"
        PRIORITY = "priority", "Priority"
        COMMENT = "comment", "Comment"
        ATTACHMENT = "attachment", "Photo"
        WARNING = "warning", "SLA warning"
        ESCALATED = "escalated", "Escalated"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    from_value = models.CharField(max_length=200, blank=True)
    to_value = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    # A comment only staff see; False for one sent to the customer.
    internal = models.BooleanField(default=True)
    # How a customer-facing comment went out: "sms", "email", "sms,email".
    sent_by = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["ticket", "at"], name="ticketevent_ticket_at")]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.ticket_id}"


def attachment_path(instance, filename: str) -> str:
    """tickets/<schema>/<ticket id>/<random>.<ext>: one folder per ISP, a name nobody
    can guess (and the folder is never served directly: views.attachment checks)."""
    suffix = PurePosixPath(filename).suffix.lower()[:8]
    return f"tickets/{connection.schema_name}/{instance.ticket_id}/{uuid.uuid4().hex}{suffix}"


class Attachment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=255)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    original_name = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at", "id"]

    def __str__(self):
        return self.original_name or self.file.name
