"""A subscriber changing their own contact details in the portal. The other phone is a
key to the account (it may sign in), so every change is told to the main phone: a
phone taken over cannot quietly add itself."""

from django.db import transaction

from ispops.messaging import services as messaging
from subscribers import services as subscribers

TEMPLATE = "portal_contact_changed"
LABELS = {"alt_phone": "other phone", "email": "email"}


def change_contacts(customer, changes: dict, *, actor) -> None:
    """Save `changes` (email, alt_phone) through update_customer (audited) and tell the
    main phone what changed, once the change is committed."""
    if not changes:
        return
    with transaction.atomic():
        subscribers.update_customer(customer, actor=actor, **changes)
        what = ", ".join(f"{LABELS[name]} {_shown(name, value)}" for name, value in changes.items())
        messaging.notify(customer, TEMPLATE, {"changes": what}, related="portal contacts")


def _shown(name: str, value: str) -> str:
    if not value:
        return "removed"
    if name == "alt_phone" and len(value) == 12:
        return f"now 0{value[3:6]}•••{value[-3:]}"
    return "changed"
