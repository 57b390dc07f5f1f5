"""Messaging operations other apps call: notify() a customer by SMS and/or email from a
template, notify_phone() a bare phone number by SMS, and the worker side that delivers
the queued messages.

notify() only writes rows and registers an on-commit hook, so billing, dunning and
payments call it inside their transactions: a rolled-back payment sends nothing, and
no gateway call ever happens inside a transaction or on a request.

Templates are Django template text rendered without HTML escaping (SMS is plain
text), in the sandbox of ispops.messaging.sandbox: a whitelist of tags and filters and a
bound on the work one render may do. The context has `customer` (name, first_name,
account, phone, email), `isp_name` and whatever the caller passes; Decimal values at the
top level are shown as money ("KES 2,500.00"). A variable the template names but the
context lacks renders empty.

Before a message is queued, the customer's choices are asked (ispops.messaging
.preferences): a kind of message they turned off on a channel is written to the log as
"skipped" and never handed to a worker.
"""

import datetime
import logging
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Q
from django.template import TemplateSyntaxError
from django.utils import timezone

from ispops import audit
from ispops.lib.money import format_kes
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.messaging import backends, preferences, sandbox
from ispops.messaging.defaults import DEFAULT_TEMPLATES
from ispops.messaging.models import Channel, Message, MessageTemplate

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Wait after the 1st, 2nd, 3rd and 4th failed attempt; the 5th failure is final.
BACKOFF = (
    datetime.timedelta(minutes=1),
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=15),
    datetime.timedelta(minutes=60),
)
# A message "sending" this long lost its worker (a send gives up after 10 s).
STUCK_AFTER = datetime.timedelta(minutes=10)
# A new message's task was sent when it was committed; the sweep only steps in for
# those that still wait after this long (the broker was down, or lost the task).
FRESH_GRACE = datetime.timedelta(minutes=2)


# Why a message is LOGGED, shown in the message log beside "Not sent: no provider".
NO_PROVIDER = {
    Channel.SMS: "No SMS provider is set up, so it was written to the server log only. "
    "Choose one under Settings, SMS and email.",
    Channel.EMAIL: "No email server is set up (EMAIL_BACKEND prints mail), so it was "
    "written to the server log only.",
}


class MessagingError(Exception):
    """A template or settings change that cannot be made; str() says why."""


# --- rendering ----------------------------------------------------------------------


def template_text(key: str, channel: str) -> tuple[str, str]:
    """The default (subject, body) of a template; LookupError if no such template."""
    if key not in DEFAULT_TEMPLATES or channel not in Channel.values:
        raise LookupError(f"no message template {key!r} for {channel!r}")
    return DEFAULT_TEMPLATES[key].text(channel)


def check_template(text: str) -> None:
    """Raise MessagingError if `text` is not a valid template."""
    try:
        sandbox.compile_template(text)
    except TemplateSyntaxError as exc:
        raise MessagingError(f"template error: {exc}") from None


def render_text(subject: str, body: str, context: dict) -> tuple[str, str]:
    """Render a (subject, body) pair; raises TemplateSyntaxError on a broken one, or one
    the sandbox refuses (sandbox.TemplateRefused)."""
    values = _prepare(context)
    subject_text = sandbox.render(sandbox.compile_template(subject), values)
    body_text = sandbox.render(sandbox.compile_template(body), values)
    return " ".join(subject_text.split()), body_text.strip()


def render(key: str, channel: str, context: dict) -> tuple[str, str]:
    """(subject, body) of message `key`: the ISP's active edited template, or the
    default. An edited template that fails to render falls back to the default."""
    return render_cached({}, key, channel, context)


def _prepare(context: dict) -> dict:
    return {
        name: format_kes(value) if isinstance(value, Decimal) else value
        for name, value in context.items()
    }


def _isp_name() -> str:
    """The current ISP's name (tasks and requests both run with the tenant set)."""
    return getattr(getattr(connection, "tenant", None), "name", "")


def customer_context(customer) -> dict:
    """What a template may know of the customer (a plain dict: an editable template must
    not reach into related records such as service logins)."""
    return {
        "name": customer.name,
        "first_name": customer.name.split()[0] if customer.name.split() else "",
        "account": customer.account,
        "phone": customer.phone,
        "email": customer.email,
    }


def sample_context() -> dict:
    """Made-up values for the template editor's preview."""
    now = timezone.localtime()
    return {
        "customer": {
            "name": "Wanjiru Kamau",
            "first_name": "Wanjiru",
            "account": "00042",
            "phone": "254712345678",
            "email": "wanjiru@example.com",
        },
        "isp_name": _isp_name() or "Your ISP",
        "invoice": {"number": "INV-00042"},
        "amount": Decimal("2500.00"),
        "balance": Decimal("0.00"),
        "due_on": (now + datetime.timedelta(days=5)).date(),
        "expires_at": now + datetime.timedelta(days=2),
        "paybill": "247247",
        # As long as a real signed document link (billing.links), so previews show
        # how long the SMS gets.
        "link": "https://isp.example.co.ke/d/i2x.t9q3kbd.Xy3kQp9Rt2Lm8Vn4/",
        "receipt": "SBK4XYZ12Q",
        "plan": "Home 10M",
        "validity": "1 hour",
        "ticket": "T-00042",
        "subject": "No connection since morning",
        "comment": "A technician will visit you tomorrow between 9 and 11.",
        "site": "Kitengela tower",
        "code": "482913",
        "changes": "other phone now 0722•••002",
        "minutes": 10,
        "why": "start your free trial",
        "package": "Daily 1 GB",
        "percent": 80,
        "left": "200 MB",
    }


# --- the ISP's templates ------------------------------------------------------------


def template_overview() -> list[dict]:
    """Every template with, per channel, the ISP's edited text if it has one."""
    edited = {(t.key, t.channel): t for t in MessageTemplate.objects.all()}
    return [
        {
            "key": key,
            "label": default.label,
            "channels": [
                {"channel": channel, "label": label, "edited": edited.get((key, channel))}
                for channel, label in Channel.choices
            ],
        }
        for key, default in DEFAULT_TEMPLATES.items()
    ]


def save_template(
    key: str, channel: str, *, subject: str, body: str, is_active: bool, actor
) -> MessageTemplate:
    template_text(key, channel)  # a known template, or LookupError
    check_template(subject)
    check_template(body)
    if not body.strip():
        raise MessagingError("the message cannot be empty")
    with transaction.atomic(), audit.acting_as(actor):
        template = MessageTemplate.objects.filter(key=key, channel=channel).first()
        if template is None:
            template = MessageTemplate(key=key, channel=channel)
        template.subject = subject if channel == Channel.EMAIL else ""
        template.body = body
        template.is_active = is_active
        template.save()
    return template


def reset_template(key: str, channel: str, *, actor) -> bool:
    """Go back to the default text. True if there was an edited one to remove."""
    with transaction.atomic(), audit.acting_as(actor):
        template = MessageTemplate.objects.filter(key=key, channel=channel).first()
        if template is None:
            return False
        template.delete()
    return True


# --- sending --------------------------------------------------------------------------


def notify(
    customer,
    key: str,
    context: dict | None = None,
    *,
    channels=("sms",),
    related: str = "",
    kind: str | None = None,
) -> list[Message]:
    """Queue message `key` to `customer` on each of `channels` ("sms", "email") and send
    it after the current transaction commits. A channel the customer has no phone or
    email for is skipped; a phone number that cannot be used is logged as failed; a
    kind of message the customer turned off on a channel is logged as skipped
    (preferences; `kind` defaults to the template's own)."""
    kind = kind or _kind_key(key)
    full = {**(context or {}), "customer": customer_context(customer)}
    full.setdefault("isp_name", _isp_name())
    created = []
    for channel in channels:
        to, error = _recipient(customer, channel)
        if to is None:
            continue
        subject, body = render(key, channel, full)
        state = Message.State.FAILED if error else Message.State.QUEUED
        if not error and customer.pk in preferences.refused([customer.pk], kind, channel):
            state, error = Message.State.SKIPPED, preferences.skip_reason(kind, channel)
        message = Message.objects.create(
            customer=customer,
            channel=channel,
            to=to,
            subject=subject[:200],
            body=body,
            template_key=key,
            related=related[:64],
            # A number no gateway can use is logged, not sent.
            state=state,
            error=error,
        )
        if state == Message.State.QUEUED:
            transaction.on_commit(lambda pk=message.pk: send_soon(pk))
        created.append(message)
    return created


def sms_text(key: str, context: dict, *, customer=None, keep=()) -> str:
    """The SMS text of message `key`, rendered as render() does, with `customer` and
    `isp_name` in the context. An edited template whose text lost one of `keep` (the
    code a message exists to carry) gives way to the default text."""
    full = dict(context)
    if customer is not None:
        full["customer"] = customer_context(customer)
    full.setdefault("isp_name", _isp_name())
    _, body = render(key, Channel.SMS, full)
    if any(str(value) not in body for value in keep):
        _, body = render_text(*template_text(key, Channel.SMS), full)
    return body


def notify_phone(
    phone: str,
    key: str,
    context: dict | None = None,
    *,
    customer=None,
    related: str = "",
    kind: str | None = None,
    keep=(),
) -> Message:
    """Queue SMS `key` to `phone`, sent after the current transaction commits: for a
    number that is nobody's customer record (a Wi-Fi buyer) or that is not the
    customer's main phone (a code asked for their other phone), where notify() cannot
    go. `customer`, when the number is one's, is named in the text and the log, and
    their choices apply; a number with no customer has made none, so a kind that waits
    for a yes (marketing) is logged as skipped. A number no gateway can use is logged
    as failed."""
    kind = kind or _kind_key(key)
    body = sms_text(key, context or {}, customer=customer, keep=keep)
    state, error = Message.State.QUEUED, ""
    try:
        to = normalise_phone(phone)
    except InvalidPhone as exc:
        to, state, error = phone, Message.State.FAILED, str(exc)
    if state == Message.State.QUEUED and not preferences.allows_phone(customer, kind, Channel.SMS):
        reason = preferences.skip_reason(kind, Channel.SMS, customer=customer is not None)
        state, error = Message.State.SKIPPED, reason
    (message,) = queue_messages(
        [
            Message(
                customer=customer,
                channel=Channel.SMS,
                to=to,
                body=body,
                template_key=key,
                related=related[:64],
                state=state,
                error=error,
            )
        ]
    )
    return message


def notify_many(items, *, channels=("sms",), kind: str | None = None) -> list[Message]:
    """notify() for many customers at once (a dunning day, a billing run): `items` are
    (customer, key, context, related) tuples. Each template is looked up and compiled
    once, the customers' choices are read once per kind and channel, the messages are
    inserted in bulk, and workers get them in batches after the transaction commits."""
    items = list(items)
    isp_name = _isp_name()
    compiled: dict = {}
    refusals = _refusals(items, channels, kind)
    rows = []
    for customer, key, context, related in items:
        full = {**(context or {}), "customer": customer_context(customer)}
        full.setdefault("isp_name", isp_name)
        item_kind = kind or _kind_key(key)
        for channel in channels:
            to, error = _recipient(customer, channel)
            if to is None:
                continue
            subject, body = render_cached(compiled, key, channel, full)
            state = Message.State.FAILED if error else Message.State.QUEUED
            if not error and customer.pk in refusals.get((item_kind, channel), ()):
                state, error = Message.State.SKIPPED, preferences.skip_reason(item_kind, channel)
            rows.append(
                Message(
                    customer=customer,
                    channel=channel,
                    to=to,
                    subject=subject[:200],
                    body=body,
                    template_key=key,
                    related=(related or "")[:64],
                    state=state,
                    error=error,
                )
            )
    return queue_messages(rows)


def _kind_key(template_key: str) -> str | None:
    found = preferences.kind_of(template_key)
    return found.key if found else None


def _refusals(items, channels, kind: str | None) -> dict[tuple[str, str], set[int]]:
    """{(kind, channel): customer ids who turned it off} for the kinds among `items`:
    one query per optional kind and channel, none for mandatory messages."""
    wanted: dict[str, set[int]] = {}
    for customer, key, _context, _related in items:
        item_kind = kind or _kind_key(key)
        if item_kind is not None:
            wanted.setdefault(item_kind, set()).add(customer.pk)
    return {
        (item_kind, channel): preferences.refused(ids, item_kind, channel)
        for item_kind, ids in wanted.items()
        for channel in channels
    }


def queue_messages(rows: list[Message]) -> list[Message]:
    """Insert unsaved messages in bulk; workers get the queued ones in batches after the
    transaction commits (for senders that build their own, e.g. staff emails)."""
    Message.objects.bulk_create(rows, batch_size=1000)
    queued = [m.pk for m in rows if m.state == Message.State.QUEUED]
    if queued:
        transaction.on_commit(lambda: send_batches_soon(queued))
    return rows


def _recipient(customer, channel: str) -> tuple[str | None, str]:
    """(address, error) for a channel; (None, "") when the customer has none."""
    if channel == Channel.SMS:
        if not customer.phone:
            return None, ""
        try:
            return normalise_phone(customer.phone), ""
        except InvalidPhone as exc:
            return customer.phone, str(exc)
    if channel == Channel.EMAIL:
        return (customer.email or None), ""
    raise ValueError(f"unknown channel {channel!r}")


def render_cached(cache: dict, key: str, channel: str, context: dict) -> tuple[str, str]:
    """render(), with each (key, channel)'s templates looked up and compiled once per
    `cache` (one dict per batch of messages)."""
    if (key, channel) not in cache:
        default = template_text(key, channel)
        edited = MessageTemplate.objects.filter(key=key, channel=channel, is_active=True).first()
        texts = [(edited.subject, edited.body)] if edited is not None else []
        compiled = []
        for subject, body in [*texts, default]:
            try:
                compiled.append((sandbox.compile_template(subject), sandbox.compile_template(body)))
            except TemplateSyntaxError:
                log.exception(
                    "message template %s/%s of %s is broken; sending the default text",
                    key,
                    channel,
                    connection.schema_name,
                )
        cache[(key, channel)] = compiled
    values = _prepare(context)
    for subject_template, body_template in cache[(key, channel)]:
        try:
            return (
                " ".join(sandbox.render(subject_template, values).split()),
                sandbox.render(body_template, values).strip(),
            )
        except Exception:
            log.exception(
                "message template %s/%s of %s failed to render; trying the default",
                key,
                channel,
                connection.schema_name,
            )
    # Only a broken default gets here: render it plainly and let the error show.
    return render_text(*template_text(key, channel), context)


def send_batches_soon(message_ids, size: int = 200) -> None:
    """Hand messages to workers in batches (one task per `size`), never failing the
    caller: what the broker does not take, the sweep sends later."""
    from ispops.messaging.tasks import send_messages
    from ispops.tasks import hand_to_worker

    for start in range(0, len(message_ids), size):
        batch = list(message_ids[start : start + size])
        if not hand_to_worker(send_messages, batch, what=f"{len(batch)} messages"):
            return


def send_soon(message_id: int) -> bool:
    """Hand a message to a worker. If the broker is down the message stays queued and
    the sweep sends it later; the caller never fails for it."""
    from ispops.messaging.tasks import send_message
    from ispops.tasks import hand_to_worker

    return hand_to_worker(send_message, message_id, what=f"message {message_id}")


def deliver(message_id: int) -> str:
    """Send one queued message through its gateway and record the outcome. A message
    that is not queued and due (already sent, taken by another worker, waiting to
    retry) is left alone, so a duplicate task does nothing."""
    now = timezone.now()
    claimed = Message.objects.filter(
        pk=message_id, state=Message.State.QUEUED, next_attempt_at__lte=now
    ).update(state=Message.State.SENDING, claimed_at=now)
    if not claimed:
        return "not due"
    message = Message.objects.get(pk=message_id)
    try:
        if message.channel == Channel.SMS:
            backend = backends.sms_backend()
            provider_id = backend.send(message.to, message.body)
            delivered = getattr(backend, "delivers", True)
        else:
            provider_id = backends.send_email(
                message.to, message.subject, message.body, from_name=_isp_name()
            )
            delivered = backends.email_delivers()
    except Exception as exc:
        # Whatever went wrong is written on the row, so the message is never stuck.
        return _record_failure(message, exc)
    if not delivered:
        # Only written to the server's log: saying "Sent" would tell staff the customer
        # has it. Final, not retried: setting up a provider later does not resend it.
        Message.objects.filter(pk=message.pk, state=Message.State.SENDING).update(
            state=Message.State.LOGGED,
            provider_id=str(provider_id or "")[:100],
            attempts=F("attempts") + 1,
            error=NO_PROVIDER[message.channel],
        )
        return "logged"
    Message.objects.filter(pk=message.pk, state=Message.State.SENDING).update(
        state=Message.State.SENT,
        provider_id=str(provider_id or "")[:100],
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
        error="",
    )
    return "sent"


def _record_failure(message: Message, exc: Exception) -> str:
    attempts = message.attempts + 1
    error = (str(exc) or exc.__class__.__name__)[:1000]
    final = attempts >= MAX_ATTEMPTS or getattr(exc, "permanent", False)
    if final:
        changes = {"state": Message.State.FAILED}
        outcome = f"failed: {error}"
    else:
        wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
        changes = {"state": Message.State.QUEUED, "next_attempt_at": timezone.now() + wait}
        outcome = f"retry in {int(wait.total_seconds() // 60)} min: {error}"
    Message.objects.filter(pk=message.pk, state=Message.State.SENDING).update(
        attempts=attempts, error=error, **changes
    )
    log.warning("message %s (%s to %s): %s", message.pk, message.channel, message.to, outcome)
    return outcome


def sweep_messages(limit: int = 5000) -> list[int]:
    """Send again what was lost: messages stuck "sending" (their worker died) and queued
    messages whose time has come (retries, and tasks the broker lost). Returns the ids
    handed to workers."""
    now = timezone.now()
    stuck = Message.objects.filter(state=Message.State.SENDING, claimed_at__lt=now - STUCK_AFTER)
    stuck.filter(attempts__gte=MAX_ATTEMPTS - 1).update(
        state=Message.State.FAILED,
        attempts=F("attempts") + 1,
        error="the worker sending this stopped, too many times",
    )
    stuck.update(
        state=Message.State.QUEUED,
        next_attempt_at=now,
        attempts=F("attempts") + 1,
        error="the worker sending this stopped; sending again",
    )
    due = (
        Message.objects.filter(state=Message.State.QUEUED)
        .filter(
            Q(attempts=0, next_attempt_at__lte=now - FRESH_GRACE)
            | Q(attempts__gt=0, next_attempt_at__lte=now)
        )
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    sent = []
    for message_id in due:
        if not send_soon(message_id):
            break  # the broker is down: the next sweep tries again
        sent.append(message_id)
    return sent


def recent_for(customer, limit: int = 20) -> list[Message]:
    """The customer's latest messages, newest first (the customer page's list)."""
    return list(customer.messages.order_by("-created_at", "-id")[:limit])
