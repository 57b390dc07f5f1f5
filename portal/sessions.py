"""The portal's identity in the Django session, under its own key (never Django's auth
keys): {"phone": the proven phone, "customer": the chosen customer's id or None}, or,
for staff viewing as a customer, {"phone": "", "customer": id, "viewer": staff user id}.

Every read re-checks: that the chosen customer still has that phone, or that the viewer
is still the logged-in staff member and may still see that customer; a stale or forged
id shows nothing."""

from dataclasses import dataclass

from django.middleware.csrf import rotate_token

from ispops.staff.access import PORTAL_SESSION_KEY
from portal import services
from subscribers.models import Customer

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
    return (data.get("phone") or None) if isinstance(data, dict) else None


@dataclass(frozen=True)
class Visit:
    """Who a portal page is for; `viewer` is the staff member viewing as the customer."""

    customer: Customer
    phone: str = ""
    viewer: object = None

    @property
    def read_only(self) -> bool:
        return self.viewer is not None


def visit(request) -> Visit | None:
    """The checked visit of this request, or None (nobody, or nothing chosen yet)."""
    data = request.session.get(PORTAL_SESSION_KEY)
    if not isinstance(data, dict):
        return None
    if data.get("viewer"):
        customer = _viewable(request, data["viewer"], data.get("customer"))
        return Visit(customer=customer, viewer=request.user) if customer else None
    customer = chosen_customer(request)
    return Visit(customer=customer, phone=data["phone"]) if customer else None


def view_as(request, customer) -> None:
    """Staff open `customer`'s portal, read-only; any portal sign-in in this browser
    ends (the two must not mix)."""
    request.session.pop(PENDING_KEY, None)
    request.session[PORTAL_SESSION_KEY] = {
        "phone": "",
        "customer": customer.pk,
        "viewer": request.user.pk,
    }


def viewable_customers(user):
    """The customers a staff member may view as: those of their branches."""
    return Customer.objects.visible_to(user)


def _viewable(request, viewer_id, customer_id):
    user = request.user
    if not (user.is_authenticated and user.is_active and user.pk == viewer_id):
        return None
    try:
        return viewable_customers(user).filter(pk=int(customer_id)).first()
    except (TypeError, ValueError):
        return None


def choose(request, customer_id) -> bool:
    """Choose one of the phone's customers; False (nothing changes) for any other id."""
    proven = phone(request)
    if not proven or customer_for(proven, customer_id) is None:
        return False
    request.session[PORTAL_SESSION_KEY] = {"phone": proven, "customer": int(customer_id)}
    return True


def chosen_customer(request):
    """The chosen customer, if the proven phone still belongs to them; else None."""
    proven = phone(request)
    data = request.session.get(PORTAL_SESSION_KEY) or {}
    if not proven or not data.get("customer"):
        return None
    return customer_for(proven, data["customer"])


def customer_for(proven: str, customer_id):
    try:
        pk = int(customer_id)
    except (TypeError, ValueError):
        return None
    return services.customers_for_phone(proven).filter(pk=pk).first()
