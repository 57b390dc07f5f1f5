"""The ticket cards other apps' pages show: {% load tickets_tags %}.
{% customer_tickets customer as recent %} on the customer page and
{% my_open_tickets user as tickets %} on the technician's jobs page. The queries live
here so those views need not know about tickets (one query each)."""

from django import template

from tickets import services

register = template.Library()


@register.simple_tag
def customer_tickets(customer, limit=8) -> dict:
    """The customer's latest tickets (the page has authorised the customer already)."""
    if customer is None:
        return {"rows": [], "more": False}
    rows = list(
        customer.tickets.select_related("assignee").order_by("-created_at", "-id")[: limit + 1]
    )
    return {"rows": rows[:limit], "more": len(rows) > limit}


@register.simple_tag
def my_open_tickets(user, limit=30) -> list:
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    return list(services.tickets_for(user)[:limit])
