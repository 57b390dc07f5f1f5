"""What every page's shell needs: the ISP's name and the navigation for this user."""

from django.db import connection
from django.urls import NoReverseMatch, reverse

from ispops.staff.access import ALL_STAFF, MANAGERS
from ispops.staff.models import Role

# (label, url name, roles that see it). Apps add their entry here when they land;
# an entry whose URL does not exist yet is simply not shown.
NAVIGATION = [
    ("Home", "home", ALL_STAFF),
    ("Subscribers", "subscribers:list", ALL_STAFF),
    ("Pipeline", "subscribers:pipeline", {Role.OWNER, Role.ADMIN, Role.SUPPORT}),
    ("My jobs", "subscribers:my_jobs", {Role.TECHNICIAN}),
    ("My tickets", "tickets:mine", {Role.TECHNICIAN}),
    ("Plans", "subscribers:plans", ALL_STAFF - {Role.TECHNICIAN}),
    ("Network map", "subscribers:sites", ALL_STAFF),
    ("Billing", "billing:invoices", {Role.OWNER, Role.ADMIN, Role.FINANCE}),
    ("Reports", "reports:index", {Role.OWNER, Role.ADMIN, Role.FINANCE}),
    ("Payments", "payments:list", {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}),
    ("Routers", "network:routers", {Role.OWNER, Role.ADMIN, Role.SUPPORT}),
    ("Alerts", "network:alerts", {Role.OWNER, Role.ADMIN, Role.SUPPORT}),
    ("Tickets", "tickets:list", ALL_STAFF),
    ("Hotspot", "hotspot:batches", {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}),
    ("My cards", "hotspot:my", {Role.AGENT}),
    ("Inventory", "inventory:items", ALL_STAFF - {Role.FINANCE}),
    ("Imports", "subscribers:import", {Role.OWNER, Role.ADMIN}),
    ("Messages", "messaging:log", {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}),
    ("Branches", "branches", MANAGERS),
    ("Settings", "settings", MANAGERS),
    ("Staff", "staff_list", {Role.OWNER}),
]


def _link(name):
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def shell(request):
    tenant = getattr(connection, "tenant", None)
    on_platform = connection.schema_name == "public"
    user = getattr(request, "user", None)
    nav = []
    if user is not None and user.is_authenticated:
        if on_platform:
            if user.is_superuser:
                nav = [("ISPs", _link("platform:isps"))]
        else:
            nav = [
                (label, url)
                for label, name, allowed in NAVIGATION
                if user.role in allowed and (url := _link(name))
            ]
    current = request.path
    return {
        "site_name": "ispops platform" if on_platform else getattr(tenant, "name", "ispops"),
        "on_platform": on_platform,
        "nav": [
            {
                "label": label,
                "url": url,
                "active": current == url or (url != "/" and current.startswith(url)),
            }
            for label, url in nav
        ],
    }
