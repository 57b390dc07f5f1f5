"""The customer page's equipment card:
{% load inventory_tags %}{% installed_equipment customer installations as equipment %}.
The query lives here so the customer page's view need not know about inventory."""

from django import template

from inventory import services
from ispops.staff.models import Role

register = template.Library()

READERS = {Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.TECHNICIAN}
OPENERS = {Role.OWNER, Role.ADMIN, Role.SUPPORT}


@register.simple_tag(takes_context=True)
def installed_equipment(context, customer, installations=()) -> dict:
    """The items installed at the customer's service accounts (one query), and the
    serials their installations list that are not among them (allocated but not yet
    installed, or recorded before the ISP kept inventory). Staff who do not see
    inventory (finance) get the installations' serials only, and no query."""
    role = getattr(context.get("user"), "role", None)
    items = list(services.installed_at_customer(customer)) if role in READERS else []
    tracked = {item.serial for item in items}
    untracked = [
        (serial, inst.service_account)
        for inst in installations or ()
        for serial in inst.equipment_serials
        if serial not in tracked
    ]
    return {
        "items": items,
        "untracked": untracked,
        "can_read": role in READERS,
        "can_open": role in OPENERS,
    }
