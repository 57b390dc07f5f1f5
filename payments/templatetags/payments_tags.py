"""The customer page's payments card:
{% load payments_tags %}{% recent_payments customer as recent %}. The query lives here
so the customer page's view need not know about payments."""

from django import template

from ispops.staff.models import Role
from payments.models import Payment

register = template.Library()

READERS = {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}
RECORDERS = {Role.OWNER, Role.ADMIN, Role.FINANCE}


@register.simple_tag(takes_context=True)
def recent_payments(context, customer, limit=5) -> dict:
    """The customer's latest payments, and what the viewer may do with them. The
    customer page has authorised the customer already; staff who may not read
    payments get nothing (and no query)."""
    user = context.get("user")
    role = getattr(user, "role", None)
    if customer is None or role not in READERS:
        return {"rows": [], "can_read": False, "can_record": False}
    rows = list(Payment.objects.filter(customer=customer).order_by("-received_at", "-id")[:limit])
    return {"rows": rows, "can_read": True, "can_record": role in RECORDERS}
