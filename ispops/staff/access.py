"""Who may open which view.

Every view declares its audience with one of the decorators below; the
RoleRequiredMiddleware enforces it and refuses any view that declares nothing
(deny by default), so a forgotten decorator is a 403, never an open page.
"""

from collections.abc import Callable

from ispops.staff.models import Role

PUBLIC = "public"  # anyone, e.g. the login page
PLATFORM = "platform"  # platform admins, on the public host only
LOGGED_IN = "logged-in"  # anyone logged in on this host (their own password, say)
# a subscriber signed in to the portal of this ISP; no staff login counts for it
SUBSCRIBER = "subscriber"
# The portal's sign-in lives under this session key, apart from Django's auth keys: a
# staff login never opens the portal and a portal sign-in never opens a staff page.
PORTAL_SESSION_KEY = "portal"
# Every role but the voucher agent, who is not staff: an agent logs in only to sell
# cards (hotspot), so "any staff" pages (subscribers, tickets, the map) stay closed.
ALL_STAFF = frozenset(Role.values) - {Role.AGENT}
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})

ROLES_ATTR = "ispops_roles"


def roles(*allowed: str) -> Callable:
    """Allow logged-in, active staff of this ISP whose role is one of `allowed`."""
    unknown = set(allowed) - set(Role.values)
    if not allowed or unknown:
        raise ValueError(f"roles() needs known roles, got {allowed!r}")
    return _declare(frozenset(allowed))


def any_staff(view):
    """Allow every logged-in, active staff member of this ISP."""
    return _declare(ALL_STAFF)(view)


def logged_in(view):
    """Allow anyone logged in on this host: staff of this ISP, or platform admins on
    the platform host (sessions live per schema, so that is all a login can be)."""
    return _declare(LOGGED_IN)(view)


def public(view):
    """Allow anyone, logged in or not."""
    return _declare(PUBLIC)(view)


def subscriber(view):
    """Allow a subscriber signed in to this ISP's portal (the portal's session key), on
    an ISP's host; staff logins do not count."""
    return _declare(SUBSCRIBER)(view)


def platform_admin(view):
    """Allow the platform's own admins, on the public host."""
    return _declare(PLATFORM)(view)


def declared_roles(view) -> frozenset | str | None:
    return getattr(view, ROLES_ATTR, None)


def _declare(audience):
    def decorate(view):
        setattr(view, ROLES_ATTR, audience)
        return view

    return decorate
