"""Which messages a customer may refuse, and their choices: the one place the send path
(services.notify, services.notify_many) and any later sender (a campaign) ask whether a
message may go to a customer on a channel.

Every message template belongs to one kind. The Kenya Data Protection Act 2019 gives a
customer the right to refuse direct marketing (s. 26, and the 2021 General Regulations
ask for consent before it), and reminders that only nudge are optional; messages the
service depends on (sign-in codes, receipts, invoices, suspension and outage notices,
answers to the customer's own requests) are always sent, whatever is stored.

A refused message is not sent but still written to the message log as "skipped", with
the choice that stopped it, so staff answering "why did I get no reminder?" see why.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ispops import audit
from ispops.messaging.models import Channel, NotificationPreference


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    # Why it is optional or not, in the customer's words (the settings page shows it).
    why: str
    optional: bool
    # Sent when the customer has made no choice (marketing waits for a yes).
    default: bool = True
    template_keys: tuple[str, ...] = ()


# Customer ids per query when a whole dunning day is checked at once.
CHUNK = 5000

REMINDERS = "reminders"
MARKETING = "marketing"

KINDS: tuple[Kind, ...] = (
    Kind(
        key=REMINDERS,
        label="Payment and renewal reminders",
        why="Reminders before a bill is due or a package expires. The bill, and any "
        "notice before your service is limited, are still sent.",
        optional=True,
        template_keys=("payment_reminder_before", "payment_reminder_after", "expiry_reminder"),
    ),
    Kind(
        key=MARKETING,
        label="Offers and news",
        why="New packages and promotions. Sent only if you say yes, and you can stop "
        "them at any time (Data Protection Act 2019).",
        optional=True,
        default=False,
        template_keys=(),  # campaigns name this kind when they send (services.notify kind=)
    ),
    Kind(
        key="sign_in",
        label="Sign-in codes and account security",
        why="You ask for codes; they prove it is you. A change to who may sign in is "
        "always told to your main phone.",
        optional=False,
        template_keys=("portal_code", "portal_contact_changed", "hotspot_phone_code"),
    ),
    Kind(
        key="money",
        label="Invoices and payment receipts",
        why="Records of what you owe and what you paid; you need them to check your account.",
        optional=False,
        template_keys=("invoice_issued", "payment_received", "service_restored", "welcome"),
    ),
    Kind(
        key="vouchers",
        label="Wi-Fi vouchers",
        why="A Wi-Fi voucher bought from us or our agent: the code is what you paid for.",
        optional=False,
        template_keys=("hotspot_voucher",),
    ),
    Kind(
        key="service",
        label="Suspension and outage notices",
        why="Your service changes: we must tell you before or when it is limited, "
        "disconnected or interrupted.",
        optional=False,
        template_keys=("suspended_soft", "suspended_hard", "outage_opened", "outage_resolved"),
    ),
    Kind(
        key="hotspot",
        label="Wi-Fi hotspot data notices",
        why="The data of a Wi-Fi package you bought is running low or used up: you need "
        "to know before you are cut off.",
        optional=False,
        template_keys=("hotspot_data_warning", "hotspot_data_used_up"),
    ),
    Kind(
        key="data_cap",
        label="Data allowance notices",
        why="The data of your plan is running low or used up, and your speed is about to "
        "change: you need to know before it does.",
        optional=False,
        template_keys=("data_cap_warning", "data_cap_used_up"),
    ),
    Kind(
        key="support",
        label="Answers to your requests",
        why="Replies about the tickets you opened.",
        optional=False,
        template_keys=("ticket_opened", "ticket_comment", "ticket_resolved"),
    ),
)

BY_KEY = {kind.key: kind for kind in KINDS}
OPTIONAL = tuple(kind for kind in KINDS if kind.optional)
_KIND_OF_TEMPLATE = {key: kind.key for kind in KINDS for key in kind.template_keys}


class PreferenceError(ValueError):
    """A choice that cannot be stored (a kind that cannot be refused); str() says why."""


def kind_of(template_key: str) -> Kind | None:
    """The kind a template belongs to; None for a template no kind lists (sent, like a
    mandatory one: tests check every template is listed)."""
    key = _KIND_OF_TEMPLATE.get(template_key)
    return BY_KEY[key] if key else None


def refused(customer_ids, kind: str | None, channel: str) -> set[int]:
    """The customers among `customer_ids` who will not get messages of `kind` on
    `channel`. No query for a kind that cannot be refused; LookupError for a kind
    nobody registered (a campaign naming a kind that does not exist must not send)."""
    if kind is None:
        return set()
    if kind not in BY_KEY:
        raise LookupError(f"no kind of message {kind!r}")
    found = BY_KEY[kind]
    if not found.optional:
        return set()
    ids = sorted({pk for pk in customer_ids if pk is not None})
    choices: dict[int, bool] = {}
    for start in range(0, len(ids), CHUNK):
        choices.update(
            NotificationPreference.objects.filter(
                customer_id__in=ids[start : start + CHUNK], kind=found.key, channel=channel
            ).values_list("customer_id", "allowed")
        )
    return {pk for pk in ids if not choices.get(pk, found.default)}


def allows(customer, kind: str | None, channel: str) -> bool:
    """Whether `customer` gets messages of `kind` on `channel`."""
    return customer.pk not in refused([customer.pk], kind, channel)


def allows_phone(customer, kind: str | None, channel: str) -> bool:
    """Whether a message of `kind` may go to a phone number (services.notify_phone): as
    allows() when the number is a customer's; a number that is nobody's customer record
    has made no choice, so the kind's default holds (marketing waits for a yes)."""
    if customer is not None:
        return allows(customer, kind, channel)
    if kind is None:
        return True
    if kind not in BY_KEY:
        raise LookupError(f"no kind of message {kind!r}")
    found = BY_KEY[kind]
    return found.default or not found.optional


def choices_for(customer) -> dict[tuple[str, str], bool]:
    """{(kind, channel): allowed} for every optional kind and channel, defaults filled."""
    stored = {
        (p.kind, p.channel): p.allowed
        for p in NotificationPreference.objects.filter(customer=customer)
    }
    return {
        (kind.key, channel): stored.get((kind.key, channel), kind.default)
        for kind in OPTIONAL
        for channel in Channel.values
    }


def set_preferences(customer, wanted: dict[tuple[str, str], bool], *, actor) -> int:
    """Store the customer's choices {(kind, channel): allowed}; PreferenceError (and
    nothing stored) for a kind that cannot be refused or an unknown one. Returns how
    many choices changed; each change is audited."""
    for kind, channel in wanted:
        if kind not in BY_KEY or channel not in Channel.values:
            raise PreferenceError(f"unknown kind of message {kind!r} by {channel!r}")
        if not BY_KEY[kind].optional:
            raise PreferenceError(f"{BY_KEY[kind].label.lower()} are always sent")
    current = choices_for(customer)
    changes = {key: allowed for key, allowed in wanted.items() if current[key] != allowed}
    if not changes:
        return 0
    now = timezone.now()
    with transaction.atomic(), audit.acting_as(actor):
        for (kind, channel), allowed in changes.items():
            NotificationPreference.objects.update_or_create(
                customer=customer,
                kind=kind,
                channel=channel,
                defaults={"allowed": allowed, "updated_at": now},
            )
        audit.record(
            customer,
            "update",
            {
                f"notifications:{kind}:{channel}": [current[(kind, channel)], allowed]
                for (kind, channel), allowed in changes.items()
            },
        )
    return len(changes)


def skip_reason(kind: str, channel: str, *, customer=True) -> str:
    label = BY_KEY[kind].label.lower()
    if not customer:
        return f"not sent: {label} wait for a yes, and this number is nobody's customer"
    return f"not sent: the customer turned off {label} by {Channel(channel).label}"
