"""Ticket operations: opening tickets (one, or one per customer for an outage), status
and assignment changes, comments and photos, SLA targets, and the periodic SLA check
that warns and escalates.

Every change is one transaction that writes the ticket, a TicketEvent (the ticket's
history) and the messages it causes; messages go out after the commit (messaging).
"""

import datetime
import logging
from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from ispops import audit
from ispops.messaging import services as messaging
from ispops.messaging.models import Channel, Message
from ispops.staff.models import Role, User
from subscribers.models import AccountStatus, Customer, NetworkSite
from subscribers.services import site_subtree_ids
from tickets.models import (
    DONE_STATUSES,
    OPEN_STATUSES,
    Attachment,
    Category,
    Priority,
    SlaTarget,
    Status,
    Ticket,
    TicketEvent,
    TicketSettings,
)

log = logging.getLogger(__name__)
Kind = TicketEvent.Kind

# Roles that may resolve or close any ticket; others only the tickets assigned to them.
FINISHERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
SUPERVISOR_ROLES = (Role.OWNER, Role.ADMIN)
# Customers an outage reaches: those with a service that can be out.
OUTAGE_STATUSES = (AccountStatus.ACTIVE, AccountStatus.SUSPENDED)

MAX_PHOTO_BYTES = 8 * 1024 * 1024
PHOTO_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}

_H = 60
# (first response, resolution) in minutes, by priority.
DEFAULT_SLA = {
    Priority.URGENT: (15, 4 * _H),
    Priority.HIGH: (30, 8 * _H),
    Priority.NORMAL: (2 * _H, 24 * _H),
    Priority.LOW: (8 * _H, 72 * _H),
}
# A visit has to be booked for these: three times as long to resolve.
SLOW_CATEGORIES = {Category.RELOCATION, Category.INSTALLATION}


class TicketError(Exception):
    """A change that cannot be made; str() says why."""


class NotAllowed(TicketError):
    """The actor's role does not allow this change (views answer 403)."""


# --- SLA targets ---------------------------------------------------------------------


def default_target(category: str, priority: str) -> tuple[int, int]:
    response, resolution = DEFAULT_SLA[priority]
    if category in SLOW_CATEGORIES:
        resolution *= 3
    return response, resolution


def sla_targets() -> dict[tuple[str, str], SlaTarget]:
    """Every (category, priority) target, creating the defaults the ISP lacks."""
    rows = {(t.category, t.priority): t for t in SlaTarget.objects.all()}
    missing = [
        SlaTarget(
            category=c,
            priority=p,
            first_response_minutes=default_target(c, p)[0],
            resolution_minutes=default_target(c, p)[1],
        )
        for c in Category.values
        for p in Priority.values
        if (c, p) not in rows
    ]
    if missing:
        SlaTarget.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {(t.category, t.priority): t for t in SlaTarget.objects.all()}
    return rows


def save_sla_targets(values: dict, *, actor) -> int:
    """values: {(category, priority): (response minutes, resolution minutes)}. Applies
    to tickets opened from now on. Returns how many targets changed."""
    changed = 0
    with transaction.atomic(), audit.acting_as(actor):
        targets = sla_targets()
        for key, (response, resolution) in values.items():
            if response < 1 or resolution < 1:
                raise TicketError("targets must be at least one minute")
            target = targets[key]
            if (target.first_response_minutes, target.resolution_minutes) != (response, resolution):
                target.first_response_minutes, target.resolution_minutes = response, resolution
                target.save(update_fields=["first_response_minutes", "resolution_minutes"])
                changed += 1
    return changed


def _clocks(category, priority, start, target=None, warn_percent=None) -> dict:
    if target is None:
        target = sla_targets()[(category, priority)]
    if warn_percent is None:
        warn_percent = TicketSettings.load().warn_percent
    response = datetime.timedelta(minutes=target.first_response_minutes)
    resolution = datetime.timedelta(minutes=target.resolution_minutes)
    return {
        "first_response_due": start + response,
        "response_warn_at": start + response * warn_percent / 100,
        "resolution_due": start + resolution,
        "resolution_warn_at": start + resolution * warn_percent / 100,
    }


# --- opening tickets ----------------------------------------------------------------


def open_ticket(
    *,
    customer: Customer,
    subject: str,
    actor,
    description: str = "",
    category: str = Category.OTHER,
    priority: str = Priority.NORMAL,
    service_account=None,
    assignee: User | None = None,
    tell_customer: bool = True,
) -> Ticket:
    subject = subject.strip()
    if not subject:
        raise TicketError("a ticket needs a subject")
    if service_account is not None and service_account.customer_id != customer.pk:
        raise TicketError("that service account is not the customer's")
    if assignee is not None:
        _check_assignee(assignee, customer)
    now = timezone.now()
    with transaction.atomic(), audit.acting_as(actor):
        ticket = Ticket.objects.create(
            customer=customer,
            service_account=service_account,
            subject=subject[:200],
            description=description.strip(),
            category=category,
            priority=priority,
            status=Status.ASSIGNED if assignee else Status.NEW,
            assignee=assignee,
            created_by=_user(actor),
            created_at=now,
            **_clocks(category, priority, now),
        )
        _event(ticket, Kind.CREATED, actor, to_value=ticket.get_status_display(), at=now)
        if assignee is not None:
            _event(ticket, Kind.ASSIGNED, actor, to_value=str(assignee), at=now)
            _tell_assignee(ticket, assignee, actor)
        if tell_customer:
            tell_customers([(customer, "ticket_opened", _context(ticket), _related(ticket))])
    return ticket


@dataclass
class Outage:
    parent: Ticket
    children: int


def open_outage(
    site: NetworkSite,
    *,
    subject: str,
    actor,
    description: str = "",
    priority: str = Priority.HIGH,
    category: str = Category.NO_CONNECTION,
) -> Outage:
    """A parent ticket on `site` and a linked child ticket for every customer served
    from it or from any site below it (their own site, or a service account's), each
    told by SMS."""
    subject = subject.strip()
    if not subject:
        raise TicketError("an outage needs a subject")
    now = timezone.now()
    with transaction.atomic(), audit.acting_as(actor):
        clocks = _clocks(category, priority, now)
        parent = Ticket.objects.create(
            site=site,
            is_outage=True,
            subject=subject[:200],
            description=description.strip(),
            category=category,
            priority=priority,
            created_by=_user(actor),
            created_at=now,
            **clocks,
        )
        customers = list(
            Customer.objects.at_sites(site_subtree_ids(site.pk))
            .filter(status__in=OUTAGE_STATUSES)
            .order_by("id")
        )
        children = Ticket.objects.bulk_create(
            [
                Ticket(
                    customer=c,
                    parent=parent,
                    subject=subject[:200],
                    description=description.strip(),
                    category=category,
                    priority=priority,
                    created_by=_user(actor),
                    created_at=now,
                    # The outage SMS answers them; the parent carries the SLA (the
                    # check leaves children alone, or one outage would mail thousands).
                    first_response_at=now,
                    **clocks,
                )
                for c in customers
            ],
            batch_size=1000,
        )
        who, label = audit.describe_actor(actor)
        TicketEvent.objects.bulk_create(
            [
                TicketEvent(
                    ticket=t,
                    kind=Kind.CREATED,
                    at=now,
                    actor=who,
                    actor_label=label,
                    body=f"Outage at {site.name} ({parent.number})",
                )
                for t in [parent, *children]
            ],
            batch_size=1000,
        )
        audit.record(parent, "create", {"outage_tickets": len(children), "site": site.name})
        context = _context(parent)
        tell_customers([(t.customer, "outage_opened", {**context}, _related(t)) for t in children])
    return Outage(parent=parent, children=len(children))


# --- changes ------------------------------------------------------------------------


def may_finish(user, ticket: Ticket) -> bool:
    """Resolving or closing: support and managers always, anyone else only their own."""
    if not getattr(user, "is_authenticated", False):
        return True  # a system job
    return user.role in FINISHERS or (
        ticket.assignee_id is not None and ticket.assignee_id == user.pk
    )


def allowed_moves(ticket: Ticket, user) -> list[str]:
    if ticket.status == Status.CLOSED:
        return []
    moves = [s for s in Status.values if s != ticket.status]
    if not ticket.assignee_id:
        moves.remove(Status.ASSIGNED)
    if not may_finish(user, ticket):
        moves = [s for s in moves if s not in DONE_STATUSES]
    return moves


def change_status(ticket: Ticket, to: str, *, actor, note: str = "") -> Ticket:
    """Move a ticket; NotAllowed if the actor may not, TicketError if the move is not
    possible. Resolving or closing an outage's parent does the same to its children
    and tells their customers."""
    if to not in Status.values:
        raise TicketError(f"unknown status {to!r}")
    with transaction.atomic(), audit.acting_as(actor):
        ticket = _locked(ticket)
        if to in DONE_STATUSES and not may_finish(actor, ticket):
            raise NotAllowed("only the assignee, support or a manager may resolve or close it")
        if ticket.status == Status.CLOSED:
            raise TicketError("a closed ticket cannot change; open a new one")
        if to == ticket.status:
            raise TicketError(f"the ticket is already {ticket.get_status_display().lower()}")
        if to == Status.ASSIGNED and ticket.assignee_id is None:
            raise TicketError("assign someone first")
        now = timezone.now()
        before = ticket.status
        fields = _apply_status(ticket, to, now)
        ticket.save(update_fields=fields)
        _event(
            ticket,
            Kind.STATUS,
            actor,
            from_value=Status(before).label,
            to_value=ticket.get_status_display(),
            body=note.strip(),
            at=now,
        )
        finishing = before in OPEN_STATUSES and to in DONE_STATUSES
        if finishing and ticket.customer_id:
            tell_customers(
                [(ticket.customer, "ticket_resolved", _context(ticket), _related(ticket))]
            )
        if ticket.is_outage and to in DONE_STATUSES:
            _finish_children(ticket, to, actor, now)
    return ticket


def _apply_status(ticket: Ticket, to: str, now) -> list[str]:
    """Set the status and the clocks that go with it; returns the changed fields."""
    fields = ["status"]
    if ticket.paused_at is not None and to != Status.WAITING:
        # The time spent waiting on the customer does not count against resolution.
        waited = now - ticket.paused_at
        ticket.resolution_due += waited
        ticket.resolution_warn_at += waited
        ticket.paused_at = None
        fields += ["resolution_due", "resolution_warn_at", "paused_at"]
    if to == Status.WAITING and ticket.paused_at is None:
        ticket.paused_at = now
        fields.append("paused_at")
    if to in (Status.IN_PROGRESS, Status.WAITING, *DONE_STATUSES) and not ticket.first_response_at:
        ticket.first_response_at = now
        fields.append("first_response_at")
    if to == Status.RESOLVED:
        ticket.resolved_at = now
        fields.append("resolved_at")
    elif to == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
        fields += ["closed_at", "resolved_at"]
    elif ticket.resolved_at:
        # Reopened: the resolution clock starts again, with its warning and escalation.
        clocks = _clocks(ticket.category, ticket.priority, now)
        ticket.resolution_due = clocks["resolution_due"]
        ticket.resolution_warn_at = clocks["resolution_warn_at"]
        ticket.resolved_at = ticket.closed_at = None
        ticket.resolution_warned_at = ticket.escalated_at = None
        fields += [
            "resolved_at",
            "closed_at",
            "resolution_due",
            "resolution_warn_at",
            "resolution_warned_at",
            "escalated_at",
        ]
    ticket.status = to
    return fields


def _finish_children(parent: Ticket, to: str, actor, now) -> None:
    children = parent.children.exclude(status=Status.CLOSED).exclude(status=to)
    children = list(children.select_related("customer").select_for_update(of=("self",)))
    if not children:
        return
    who, label = audit.describe_actor(actor)
    events, notices = [], []
    for child in children:
        before = child.status
        _apply_status(child, to, now)
        events.append(
            TicketEvent(
                ticket=child,
                kind=Kind.STATUS,
                at=now,
                actor=who,
                actor_label=label,
                from_value=Status(before).label,
                to_value=child.get_status_display(),
                body=f"With the outage {parent.number}",
            )
        )
        if before in OPEN_STATUSES:
            notices.append((child.customer, "outage_resolved", _context(parent), _related(child)))
    Ticket.objects.bulk_update(
        children,
        [
            "status",
            "resolved_at",
            "closed_at",
            "first_response_at",
            "paused_at",
            "resolution_due",
            "resolution_warn_at",
        ],
        batch_size=1000,
    )
    TicketEvent.objects.bulk_create(events, batch_size=1000)
    audit.record(parent, "update", {"outage_children": [len(children), to]})
    tell_customers(notices)


def assign(ticket: Ticket, assignee: User | None, *, actor) -> Ticket:
    """Give the ticket to a staff member (or take it back); a new ticket becomes
    assigned, and the assignee is told by email."""
    if assignee is not None:
        _check_assignee(assignee, ticket.customer)
    with transaction.atomic(), audit.acting_as(actor):
        ticket = _locked(ticket)
        if ticket.status == Status.CLOSED:
            raise TicketError("a closed ticket cannot change; open a new one")
        if ticket.assignee_id == (assignee.pk if assignee else None):
            raise TicketError("the ticket is already theirs")
        before = ticket.assignee
        ticket.assignee = assignee
        fields = ["assignee"]
        if assignee is not None and ticket.status == Status.NEW:
            ticket.status = Status.ASSIGNED
            fields.append("status")
        elif assignee is None and ticket.status == Status.ASSIGNED:
            ticket.status = Status.NEW
            fields.append("status")
        ticket.save(update_fields=fields)
        _event(
            ticket,
            Kind.ASSIGNED,
            actor,
            from_value=str(before or ""),
            to_value=str(assignee or "nobody"),
        )
        if assignee is not None and assignee != _user(actor):
            _tell_assignee(ticket, assignee, actor)
    return ticket


def add_comment(ticket: Ticket, body: str, *, actor, channels=()) -> TicketEvent:
    """A note on the ticket: internal (staff only) when `channels` is empty, otherwise
    sent to the customer on those channels ("sms", "email"), which counts as the first
    response."""
    body = body.strip()
    if not body:
        raise TicketError("the comment is empty")
    channels = tuple(channels)
    if set(channels) - set(Channel.values):
        raise TicketError("unknown channel")
    with transaction.atomic(), audit.acting_as(actor):
        ticket = _locked(ticket)
        if channels and ticket.customer_id is None:
            raise TicketError("an outage ticket has no customer to write to")
        now = timezone.now()
        event = _event(
            ticket,
            Kind.COMMENT,
            actor,
            body=body,
            internal=not channels,
            sent_by=",".join(channels),
            at=now,
        )
        if channels:
            if ticket.first_response_at is None:
                ticket.first_response_at = now
                ticket.save(update_fields=["first_response_at"])
            context = {**_context(ticket), "comment": body}
            sent = tell_customers(
                [(ticket.customer, "ticket_comment", context, _related(ticket))], channels=channels
            )
            if not sent:
                raise TicketError("the customer has no phone or email for that; nothing was sent")
    return event


CUSTOMER_CHANNEL = "portal"  # TicketEvent.sent_by of a comment the customer wrote


def add_customer_reply(ticket: Ticket, body: str, *, actor) -> TicketEvent:
    """The customer's own reply (from the portal): a comment staff and customer both
    see, told to the assignee by email. It reopens a resolved ticket (the resolution
    clock starts again) and takes one "waiting on customer" back into progress (the
    paused clock runs again); a closed ticket takes no replies."""
    body = body.strip()
    if not body:
        raise TicketError("the reply is empty")
    with transaction.atomic(), audit.acting_as(actor):
        ticket = _locked(ticket)
        if ticket.status == Status.CLOSED:
            raise TicketError("this request is closed; open a new one")
        now = timezone.now()
        event = _event(
            ticket, Kind.COMMENT, actor, body=body, internal=False, sent_by=CUSTOMER_CHANNEL, at=now
        )
        wakes = {Status.RESOLVED: Status.ASSIGNED if ticket.assignee_id else Status.NEW}
        wakes[Status.WAITING] = Status.IN_PROGRESS
        if ticket.status in wakes:
            before = ticket.status
            ticket.save(update_fields=_apply_status(ticket, wakes[before], now))
            _event(
                ticket,
                Kind.STATUS,
                actor,
                from_value=Status(before).label,
                to_value=ticket.get_status_display(),
                body="The customer replied",
                at=now,
            )
        if ticket.assignee is not None:
            tell_staff(
                [ticket.assignee],
                f"{ticket.number}: the customer replied",
                f"{ticket.number} {ticket.subject}\n{_about(ticket)}\n"
                f"Status: {ticket.get_status_display()}\n\n{body}",
                ticket,
            )
    return event


def check_photo(upload: UploadedFile) -> str:
    """The photo's content type, or TicketError: only real images, at most 8 MB (the
    file's bytes are checked, not its name or the type the browser claims)."""
    if upload.size > MAX_PHOTO_BYTES:
        raise TicketError(f"the photo is too big: at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise TicketError("that file is not a photo (JPEG, PNG, WebP or GIF)") from None
    finally:
        upload.seek(0)
    if kind not in PHOTO_TYPES:
        raise TicketError("that file is not a photo (JPEG, PNG, WebP or GIF)")
    return PHOTO_TYPES[kind]


def add_attachment(ticket: Ticket, upload: UploadedFile, *, actor) -> Attachment:
    content_type = check_photo(upload)
    with transaction.atomic(), audit.acting_as(actor):
        ticket = _locked(ticket)
        attachment = Attachment(
            ticket=ticket,
            content_type=content_type,
            size=upload.size,
            original_name=(upload.name or "")[:200],
            uploaded_by=_user(actor),
        )
        attachment.file.save(upload.name or "photo", upload, save=False)
        try:
            attachment.save()
            _event(ticket, Kind.ATTACHMENT, actor, body=attachment.original_name)
        except Exception:
            attachment.file.delete(save=False)
            raise
    return attachment


# --- the SLA check ------------------------------------------------------------------


def check_slas(now=None, limit: int = 500) -> dict[str, int]:
    """Warn about tickets near a target and escalate those past one. Each step is
    claimed with a conditional UPDATE, so it happens once per ticket however often
    (or however concurrently) this runs. Returns how many of each it did."""
    now = now or timezone.now()
    done = {"escalated": 0, "warned": 0}
    live = Ticket.objects.filter(
        status__in=OPEN_STATUSES, escalated_at__isnull=True, parent__isnull=True
    )
    breached = live.filter(_breached(now))
    supervisors = _supervisors()
    for ticket_id in list(breached.order_by("id").values_list("id", flat=True)[:limit]):
        done["escalated"] += _escalate(ticket_id, now, supervisors)
    warn_response = live.filter(
        first_response_at__isnull=True,
        response_warned_at__isnull=True,
        response_warn_at__lte=now,
    )
    for ticket_id in list(warn_response.order_by("id").values_list("id", flat=True)[:limit]):
        done["warned"] += _warn(ticket_id, "response", now, supervisors)
    warn_resolution = live.filter(
        paused_at__isnull=True,
        resolution_warned_at__isnull=True,
        resolution_warn_at__lte=now,
    )
    for ticket_id in list(warn_resolution.order_by("id").values_list("id", flat=True)[:limit]):
        done["warned"] += _warn(ticket_id, "resolution", now, supervisors)
    return done


def _breached(now) -> Q:
    return Q(first_response_at__isnull=True, first_response_due__lte=now) | Q(
        paused_at__isnull=True, resolution_due__lte=now
    )


def _escalate(ticket_id: int, now, supervisors: list[User]) -> int:
    supervisor = supervisors[0] if supervisors else None
    with transaction.atomic(), audit.acting_as("SLA check"):
        claimed = (
            Ticket.objects.filter(pk=ticket_id, status__in=OPEN_STATUSES, escalated_at__isnull=True)
            .filter(_breached(now))  # still breached: not answered or paused meanwhile
            .update(escalated_at=now, escalated_to=supervisor)
        )
        if not claimed:
            return 0
        ticket = Ticket.objects.select_related("customer", "assignee").get(pk=ticket_id)
        which = (
            "first response"
            if ticket.first_response_at is None and ticket.first_response_due <= now
            else "resolution"
        )
        names = ", ".join(str(s) for s in supervisors) or "nobody (no owner or admin)"
        _event(ticket, Kind.ESCALATED, "SLA check", to_value=names, body=f"{which} target missed")
        audit.record(ticket, "update", {"escalated_at": [None, now.isoformat()], "missed": which})
        tell_staff(
            supervisors,
            f"Escalated: {ticket.number} missed its {which} target",
            f"{ticket.number} {ticket.subject}\n{_about(ticket)}\n"
            f"Priority: {ticket.get_priority_display()} · Status: {ticket.get_status_display()}"
            f" · Assigned to: {ticket.assignee or 'nobody'}\n"
            f"The {which} target was {_due(ticket, which):%d %b %Y %H:%M}.",
            ticket,
        )
    return 1


def _warn(ticket_id: int, which: str, now, supervisors: list[User]) -> int:
    field = f"{which}_warned_at"
    with transaction.atomic(), audit.acting_as("SLA check"):
        still_due = (
            Q(first_response_at__isnull=True, response_warn_at__lte=now)
            if which == "response"
            else Q(paused_at__isnull=True, resolution_warn_at__lte=now)
        )
        claimed = (
            Ticket.objects.filter(
                pk=ticket_id,
                status__in=OPEN_STATUSES,
                escalated_at__isnull=True,
                **{f"{field}__isnull": True},
            )
            .filter(still_due)
            .update(**{field: now})
        )
        if not claimed:
            return 0
        ticket = Ticket.objects.select_related("customer", "assignee").get(pk=ticket_id)
        label = "first response" if which == "response" else "resolution"
        due = _due(ticket, label)
        _event(ticket, Kind.WARNING, "SLA check", body=f"{label} due {due:%d %b %H:%M}")
        recipients = [ticket.assignee] if ticket.assignee else supervisors
        tell_staff(
            recipients,
            f"{ticket.number}: {label} due {due:%H:%M}",
            f"{ticket.number} {ticket.subject}\n{_about(ticket)}\n"
            f"Its {label} target is {due:%d %b %Y %H:%M}.",
            ticket,
        )
    return 1


def _due(ticket, which: str):
    moment = ticket.first_response_due if which == "first response" else ticket.resolution_due
    return timezone.localtime(moment)


def _supervisors() -> list[User]:
    chosen = TicketSettings.load().supervisor
    if chosen is not None and chosen.is_active:
        return [chosen]
    return list(
        User.objects.filter(role__in=SUPERVISOR_ROLES, is_active=True).order_by("role", "id")
    )


# --- queries the pages use --------------------------------------------------------------


def risk_filter(risk: str, now=None) -> Q:
    """Q for the queue's breach-risk filter: "breached", "at_risk" or "ok" (open only)."""
    now = now or timezone.now()
    breached = (
        Q(escalated_at__isnull=False)
        | Q(first_response_at__isnull=True, first_response_due__lte=now)
        | Q(paused_at__isnull=True, resolution_due__lte=now)
    )
    at_risk = Q(first_response_at__isnull=True, response_warn_at__lte=now) | Q(
        paused_at__isnull=True, resolution_warn_at__lte=now
    )
    open_ = Q(status__in=OPEN_STATUSES)
    if risk == "breached":
        return open_ & breached
    if risk == "at_risk":
        return open_ & at_risk & ~breached
    return open_ & ~breached & ~at_risk


def tickets_for(user):
    """The open tickets assigned to `user`, most urgent first (phone page, my jobs)."""
    return (
        Ticket.objects.filter(assignee=user, status__in=OPEN_STATUSES)
        .select_related("customer", "service_account")
        .order_by("resolution_due", "id")
    )


def timeline(ticket: Ticket):
    return ticket.events.select_related("actor").order_by("at", "id")


# --- messages -------------------------------------------------------------------------


def tell_customers(items, *, channels=(Channel.SMS,)) -> list[Message]:
    """Queue (customer, key, context, related) messages in the ISP's wording (messaging
    templates), sent after the commit. Items without a customer are skipped."""
    items = [i for i in items if i[0] is not None]
    return messaging.notify_many(items, channels=channels) if items else []


def tell_staff(users, subject: str, body: str, ticket: Ticket) -> list[Message]:
    """Email staff (warnings, escalations) through the messaging queue."""
    rows = [
        Message(
            channel=Channel.EMAIL,
            to=user.email,
            subject=subject[:200],
            body=body,
            template_key="ticket_staff",
            related=_related(ticket),
        )
        for user in users
        if user is not None and user.email
    ]
    return messaging.queue_messages(rows)


def _tell_assignee(ticket: Ticket, assignee: User, actor) -> None:
    tell_staff(
        [assignee],
        f"{ticket.number} is assigned to you",
        f"{ticket.number} {ticket.subject}\n{_about(ticket)}\n"
        f"Priority: {ticket.get_priority_display()}. Assigned by {audit.describe_actor(actor)[1]}.",
        ticket,
    )


# --- small helpers --------------------------------------------------------------------


def _locked(ticket: Ticket) -> Ticket:
    return (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("customer", "assignee", "site")
        .get(pk=ticket.pk)
    )


def _user(actor):
    return audit.describe_actor(actor)[0]


def _event(ticket, kind, actor, *, at=None, **fields) -> TicketEvent:
    who, label = audit.describe_actor(actor)
    return TicketEvent.objects.create(
        ticket=ticket, kind=kind, actor=who, actor_label=label, at=at or timezone.now(), **fields
    )


def _check_assignee(user: User, customer: Customer | None) -> None:
    if not user.is_active or not user.role:
        raise TicketError("tickets go to active staff of this ISP")
    # Staff limited to some branches could not open a ticket of another branch's customer.
    allowed = user.branch_ids()
    if customer is not None and allowed is not None and customer.branch_id not in allowed:
        raise TicketError(f"{user} works for other branches than this customer's")


def _context(ticket: Ticket) -> dict:
    return {
        "ticket": ticket.number,
        "subject": ticket.subject,
        "site": ticket.site.name if ticket.site_id else "",
    }


def _related(ticket: Ticket) -> str:
    return f"ticket:{ticket.pk}"


def _about(ticket: Ticket) -> str:
    if ticket.customer_id:
        return f"Customer: {ticket.customer.name} ({ticket.customer.account})"
    return f"Outage at {ticket.site.name}"
