"""Campaigns: one SMS or email, written by staff, to every customer of a saved filter of
the subscribers list (status, plan, branch, site, overdue, search) or to customers
picked on it.

- `preview` says before anything is sent how many match, how many have no phone or
  email, how many turned this kind of message off (ispops.messaging.preferences, the
  choices the portal stores), and shows the text as one of them would get it.
- `start` moves a draft to "sending" once (a conditional update) and hands it to a
  worker; `send` (the task's body) writes the recipients, then claims them a batch at a
  time (rows locked, skipping those another worker holds) and writes each one's message
  in the same transaction. Messages then go through the notify queue like any other
  (services.queue_messages), so a retried or duplicated task never sends twice.
- `progress` counts the campaign's messages by state (Message.related) for its page.

The filter is read with the branches of whoever created the campaign: a branch-limited
clerk's campaign never reaches another branch's customers.
"""

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.template import TemplateSyntaxError
from django.utils import timezone

from ispops import audit
from ispops.messaging import preferences, sandbox, services
from ispops.messaging.models import Campaign, CampaignRecipient, Channel, Message

BATCH = 500
TEMPLATE_KEY = "campaign"
# The kinds a campaign may be (whose opt-outs apply): offers wait for a yes; reminders
# go unless refused; a service notice (maintenance, an outage) goes to everyone.
KINDS = (preferences.MARKETING, preferences.REMINDERS, "service")
VARIABLES = (
    "customer.name",
    "customer.first_name",
    "customer.account",
    "customer.phone",
    "customer.email",
    "isp_name",
    "paybill",
)


class CampaignError(ValueError):
    """A campaign that cannot be saved or sent as asked; str() says why."""


def kind_choices() -> list[tuple[str, str]]:
    return [(key, preferences.BY_KEY[key].label) for key in KINDS]


# --- who it goes to ---------------------------------------------------------------------


def clean_filters(params) -> dict:
    """The subscribers list's filter out of `params` (a QueryDict or dict), only the
    keys the list knows and only those set; or {"ids": [...]} for customers picked."""
    from subscribers.listing import LIST_FILTERS

    ids = params.get("ids")
    if ids:
        if isinstance(ids, str):
            ids = ids.split(",")
        try:
            picked = sorted({int(pk) for pk in ids})
        except (TypeError, ValueError):
            raise CampaignError("ids: not a list of customers") from None
        return {"ids": picked}
    return {key: str(params.get(key)) for key in LIST_FILTERS if params.get(key)}


def audience(filters: dict, user):
    """The customers a campaign of `filters` goes to, as `user` sees them (nobody when
    the user is gone). CampaignError for a filter the list would refuse."""
    from subscribers.listing import customers_matching
    from subscribers.models import Customer
    from subscribers.services import SubscriberError

    if user is None or not user.is_active:
        return Customer.objects.none()
    if "ids" in filters:
        return Customer.objects.visible_to(user).filter(pk__in=filters["ids"])
    try:
        return customers_matching(user, filters)
    except SubscriberError as exc:
        raise CampaignError(str(exc)) from None


def describe(filters: dict) -> str:
    """The filter in words, for the campaign's page."""
    from ispops.staff.models import Branch
    from subscribers.models import Customer, NetworkSite, Plan

    if "ids" in filters:
        n = len(filters["ids"])
        return f"{n} customer{'s' if n != 1 else ''} picked on the subscribers list"
    parts = []
    names = {"plan": Plan, "branch": Branch, "site": NetworkSite}
    for key, value in filters.items():
        if key in names:
            found = names[key].objects.filter(pk=value).first() if value.isdigit() else None
            parts.append(f"{key} {found or value}")
        elif key == "status":
            labels = dict(Customer.Status.choices)
            parts.append(f"status {labels.get(value, value)}")
        elif key == "overdue":
            parts.append("with an overdue invoice")
        elif key == "q":
            parts.append(f'matching "{value}"')
    return ", ".join(parts) or "every customer"


# --- drafts ----------------------------------------------------------------------------


def _check(channel: str, kind: str, subject: str, body: str) -> None:
    if channel not in Channel.values:
        raise CampaignError(f"unknown channel {channel!r}")
    if kind not in KINDS:
        raise CampaignError(f"a campaign cannot be of kind {kind!r}")
    if not body.strip():
        raise CampaignError("the message cannot be empty")
    if channel == Channel.EMAIL and not subject.strip():
        raise CampaignError("an email needs a subject")
    try:
        services.check_template(subject)
        services.check_template(body)
    except services.MessagingError as exc:
        raise CampaignError(str(exc)) from None


def create(
    *, actor, name: str, channel: str, kind: str, subject: str, body: str, filters: dict
) -> Campaign:
    _check(channel, kind, subject, body)
    with transaction.atomic(), audit.acting_as(actor):
        campaign = Campaign.objects.create(
            name=name.strip()[:120] or "Campaign",
            channel=channel,
            kind=kind,
            subject=subject if channel == Channel.EMAIL else "",
            body=body,
            filters=filters,
            created_by=actor,
        )
        audit.record(campaign, "create", {"name": campaign.name, "filters": filters})
    return campaign


def update(
    campaign: Campaign, *, actor, name: str, channel: str, kind: str, subject: str, body: str
) -> Campaign:
    """Change a draft's text; CampaignError once it has started."""
    _check(channel, kind, subject, body)
    with transaction.atomic(), audit.acting_as(actor):
        changed = Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.DRAFT).update(
            name=name.strip()[:120] or "Campaign",
            channel=channel,
            kind=kind,
            subject=subject if channel == Channel.EMAIL else "",
            body=body,
        )
        if not changed:
            raise CampaignError("the campaign has started; it can no longer change")
        audit.record(campaign, "update", {"text": "edited"})
    campaign.refresh_from_db()
    return campaign


# --- preview ---------------------------------------------------------------------------


@dataclass
class Preview:
    matching: int = 0
    no_address: int = 0
    refused: int = 0
    recipients: int = 0
    sample: object = None
    subject: str = ""
    body: str = ""
    error: str = ""
    # Why customers are left out, in words, for the page.
    notes: list[str] = field(default_factory=list)


def base_context() -> dict:
    """What every recipient's message may say besides `customer`."""
    from billing.models import BillingSettings

    return {"isp_name": services._isp_name(), "paybill": BillingSettings.load().paybill}


def _addresses(customers, channel: str) -> list[tuple[int, str]]:
    column = "phone" if channel == Channel.SMS else "email"
    return list(customers.order_by("id").values_list("id", column))


def preview(campaign: Campaign) -> Preview:
    """Who the campaign would reach now, and its text for the first of them."""
    try:
        customers = audience(campaign.filters, campaign.created_by)
    except CampaignError as exc:
        return Preview(error=str(exc))
    rows = _addresses(customers, campaign.channel)
    reachable = [pk for pk, address in rows if address]
    refused = preferences.refused(reachable, campaign.kind, campaign.channel)
    going = [pk for pk in reachable if pk not in refused]
    result = Preview(
        matching=len(rows),
        no_address=len(rows) - len(reachable),
        refused=len(refused),
        recipients=len(going),
    )
    kind = preferences.BY_KEY[campaign.kind]
    if result.no_address:
        what = "phone number" if campaign.channel == Channel.SMS else "email address"
        result.notes.append(f"{result.no_address} with no {what}")
    if result.refused:
        said = "have not said yes to" if not kind.default else "turned off"
        result.notes.append(f"{result.refused} {said} {kind.label.lower()}")
    if going:
        from subscribers.models import Customer

        result.sample = Customer.objects.get(pk=going[0])
        try:
            result.subject, result.body = _render(
                _compile(campaign), campaign, result.sample, base_context()
            )
        except (TemplateSyntaxError, sandbox.TemplateRefused) as exc:
            result.error = f"template error: {exc}"
    return result


def _compile(campaign: Campaign):
    return sandbox.compile_template(campaign.subject), sandbox.compile_template(campaign.body)


def _render(compiled, campaign, customer, context: dict) -> tuple[str, str]:
    values = services._prepare({**context, "customer": services.customer_context(customer)})
    subject, body = compiled
    return " ".join(sandbox.render(subject, values).split()), sandbox.render(body, values).strip()


# --- sending ---------------------------------------------------------------------------


def start(campaign: Campaign, *, actor) -> bool:
    """Send a draft: it moves to "sending" once (False if it already had) and a worker
    takes it after the transaction commits."""
    with transaction.atomic(), audit.acting_as(actor):
        moved = Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.DRAFT).update(
            state=Campaign.State.SENDING, started_at=timezone.now()
        )
        if not moved:
            return False
        audit.record(campaign, "update", {"state": ["draft", "sending"]})
        transaction.on_commit(lambda: send_soon(campaign.pk))
    campaign.refresh_from_db()
    return True


def send_soon(campaign_id: int) -> bool:
    from ispops.messaging.tasks import send_campaign
    from ispops.tasks import hand_to_worker

    return hand_to_worker(send_campaign, campaign_id, what=f"campaign {campaign_id}")


# A campaign still "sending" this long after it started lost its task (the broker was
# down, a worker died mid-way); the message sweep hands it to a worker again.
STALLED_AFTER = timedelta(minutes=10)


def resume_stalled(now=None) -> list[int]:
    """Hand campaigns whose task was lost to a worker again (safe: `send` claims each
    recipient once, so a campaign still being sent only gets a second pair of hands).
    Returns their ids."""
    now = now or timezone.now()
    stalled = (
        Campaign.objects.filter(state=Campaign.State.SENDING, started_at__lt=now - STALLED_AFTER)
        .filter(Q(recipient_count=0) | Q(recipients__state=CampaignRecipient.State.PENDING))
        .values_list("id", flat=True)
        .distinct()
    )
    resumed = []
    for campaign_id in stalled:
        if not send_soon(campaign_id):
            break  # the broker is still down: the next sweep tries again
        resumed.append(campaign_id)
    return resumed


def write_recipients(campaign: Campaign) -> int:
    """Write the campaign's recipients from its filter, as its creator sees it now; a
    second call adds nobody twice (campaignrecipient_once). Returns how many it has."""
    customers = audience(campaign.filters, campaign.created_by)
    ids = list(customers.order_by("id").values_list("id", flat=True))
    for start_at in range(0, len(ids), 5000):
        CampaignRecipient.objects.bulk_create(
            [
                CampaignRecipient(campaign=campaign, customer_id=pk)
                for pk in ids[start_at : start_at + 5000]
            ],
            ignore_conflicts=True,
        )
    count = campaign.recipients.count()
    Campaign.objects.filter(pk=campaign.pk).update(recipient_count=count)
    return count


def send(campaign_id: int, batch: int = BATCH) -> dict:
    """The worker's part: write the recipients once, then each pending recipient's
    message, a batch per transaction. Safe to run twice at once or again later."""
    campaign = (
        Campaign.objects.select_related("created_by")
        .filter(pk=campaign_id, state=Campaign.State.SENDING)
        .first()
    )
    if campaign is None:
        return {"state": "nothing to do"}
    if not campaign.recipient_count:
        # A filter that no longer stands (a plan deleted) leaves nobody to send to.
        with suppress(CampaignError):
            write_recipients(campaign)
    compiled = _compile(campaign)
    context = base_context()
    written = 0
    while True:
        with transaction.atomic():
            claimed = list(
                campaign.recipients.filter(state=CampaignRecipient.State.PENDING)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("customer")
                .order_by("id")[:batch]
            )
            if not claimed:
                break
            written += _write_messages(campaign, claimed, compiled, context)
    # Done only when no recipient is left pending (another worker may still hold some).
    if not campaign.recipients.filter(state=CampaignRecipient.State.PENDING).exists():
        Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.SENDING).update(
            state=Campaign.State.DONE, finished_at=timezone.now()
        )
    return {"written": written}


def _write_messages(campaign, recipients, compiled, context) -> int:
    refused = preferences.refused(
        [r.customer_id for r in recipients], campaign.kind, campaign.channel
    )
    rows, owners = [], []
    for recipient in recipients:
        customer = recipient.customer
        to, error = services._recipient(customer, campaign.channel)
        if to is None:
            recipient.state = CampaignRecipient.State.SKIPPED
            recipient.note = (
                "no phone number" if campaign.channel == Channel.SMS else "no email address"
            )
            continue
        state = Message.State.FAILED if error else Message.State.QUEUED
        if not error and customer.pk in refused:
            state = Message.State.SKIPPED
            error = preferences.skip_reason(campaign.kind, campaign.channel)
        try:
            subject, body = _render(compiled, campaign, customer, context)
        except Exception as exc:  # the sandbox refused this one customer's render
            subject, body = "", ""
            state, error = Message.State.FAILED, f"template error: {exc}"[:1000]
        rows.append(
            Message(
                customer=customer,
                channel=campaign.channel,
                to=to,
                subject=subject[:200],
                body=body,
                template_key=TEMPLATE_KEY,
                related=campaign.related,
                state=state,
                error=error,
            )
        )
        owners.append(recipient)
    services.queue_messages(rows)
    for recipient, message in zip(owners, rows, strict=True):
        recipient.state = CampaignRecipient.State.QUEUED
        recipient.message = message
    CampaignRecipient.objects.bulk_update(recipients, ["state", "message", "note"])
    return len(rows)


# --- progress --------------------------------------------------------------------------


def progress(campaign: Campaign) -> dict:
    """The campaign's recipients and messages by state, for its page (two queries)."""
    recipients = dict(campaign.recipients.values_list("state").annotate(n=Count("id")).order_by())
    messages = dict(
        Message.objects.filter(related=campaign.related)
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    waiting = messages.get(Message.State.QUEUED, 0) + messages.get(Message.State.SENDING, 0)
    return {
        "recipients": sum(recipients.values()),
        "pending": recipients.get(CampaignRecipient.State.PENDING, 0),
        "no_address": recipients.get(CampaignRecipient.State.SKIPPED, 0),
        "queued": waiting,
        "sent": messages.get(Message.State.SENT, 0),
        "failed": messages.get(Message.State.FAILED, 0),
        "skipped": messages.get(Message.State.SKIPPED, 0),
        # Handed to a stand-in gateway that only logs (no provider set up).
        "logged": messages.get("logged", 0),
        "written": sum(messages.values()),
        "busy": campaign.state == Campaign.State.SENDING or waiting > 0,
    }
