"""The frame every signed-in portal page shares: which customer the visit is for
(`request.visit`), staff's read-only "view as customer" mode, and rendering with the
ISP's name and logo. Portal views are decorated with `customer_page` and never look
at the session themselves."""

from functools import wraps

from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from billing.models import BillingSettings
from ispops.staff.access import subscriber
from portal import sessions

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The portal's menu, in the order a subscriber looks for things. Each page module names
# its main page with these URL names.
TABS = (
    ("portal:pay", "Pay"),
    ("portal:invoices", "Bills"),
    ("portal:plan", "My plan"),
    ("portal:claim", "I already paid"),
    ("portal:tickets", "Help"),
    ("portal:profile", "Settings"),
)


def tabs() -> list[dict]:
    found = []
    for name, label in TABS:
        try:
            found.append({"url": reverse(name), "label": label})
        except NoReverseMatch:
            continue
    return found


def render_page(request, template: str, context: dict | None = None, status: int = 200):
    """Render a portal template with the ISP's branding and the visit in the context."""
    cfg = BillingSettings.load()
    visit = getattr(request, "visit", None)
    base = {"has_logo": bool(cfg.logo), "visit": visit, "portal_tabs": tabs() if visit else []}
    return render(request, template, {**base, **(context or {})}, status=status)


def customer_page(view):
    """A portal page about the chosen customer. Not signed in: the sign-in page; signed
    in with several accounts and none chosen: the choice. Staff viewing as the customer
    may look but not change anything: every unsafe method is refused with a page that
    says so, before the view runs."""

    @subscriber
    @wraps(view)
    def page(request, *args, **kwargs):
        visit = sessions.visit(request)
        if visit is None:
            return redirect("portal:choose" if sessions.phone(request) else "portal:home")
        request.visit = visit
        if visit.read_only and request.method not in SAFE_METHODS:
            return render_page(request, "portal/read_only.html", status=403)
        return view(request, *args, **kwargs)

    return page
