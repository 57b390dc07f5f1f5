"""The portal's identity in the Django session, under its own key (never Django's auth
keys): {"phone": the proven phone, "customer": the chosen customer's id or None}.

Every read re-checks that the chosen customer still has that phone, so a stale or
forged id shows nothing."""

from django.middleware.csrf import rotate_token

from ispops.staff.access import PORTAL_SESSION_KEY
from portal import services

PENDING_KEY = "portal_pending"  # the phone a code was asked for, before sign-in


def sign_in(request, phone: str) -> list:
    """Start a portal session for `phone` (new session key and CSRF token, so a key
    planted before sign-in is worthless) and return its customers; with exactly one,
    it is chosen at once."""
    customers = list(services.customers_for_phone(phone))
    request.session.cycle_key()
    rotate_token(request)
    request.session.pop(PENDING_KEY, None)
    chosen = customers[0].pk if len(customers) == 1 else None
    request.session[PORTAL_SESSION_KEY] = {"phone": phone, "customer": chosen}
    return customers


def sign_out(request) -> None:
    request.session.pop(PORTAL_SESSION_KEY, None)
    request.session.pop(PENDING_KEY, None)
    request.session.cycle_key()


def phone(request) -> str | None:
    data = request.session.get(PORTAL_SESSION_KEY)
    return data.get("phone") if isinstance(data, dict) else None


def choose(request, customer_id) -> bool:
    """Choose one of the phone's customers; False (nothing changes) for any other id."""
    proven = phone(request)
    if proven is None or customer_for(proven, customer_id) is None:
        return False
    request.session[PORTAL_SESSION_KEY] = {"phone": proven, "customer": int(customer_id)}
    return True


def chosen_customer(request):
    """The chosen customer, if the proven phone still belongs to them; else None."""
    proven = phone(request)
    data = request.session.get(PORTAL_SESSION_KEY) or {}
    if proven is None or not data.get("customer"):
        return None
    return customer_for(proven, data["customer"])


def customer_for(proven: str, customer_id):
    try:
        pk = int(customer_id)
    except (TypeError, ValueError):
        return None
    return services.customers_for_phone(proven).filter(pk=pk).first()
