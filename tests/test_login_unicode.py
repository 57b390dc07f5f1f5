"""The login throttle counts failures against the user the login would find, however
the name is spelled (issue 12, finding 4): PostgreSQL's case-insensitive match folds
more than Python's lower(), so a lock keyed on lower() let a dotless-i spelling of a
locked login in."""

import pytest
from django_tenants.utils import tenant_context

from ispops.staff.models import Role, User

PASSWORD = "x-pass-12345"


def _login(client, email, password):
    return client.post("/login/", {"username": email, "password": password})


@pytest.mark.parametrize(
    "stored,variant",
    [
        ("sis@alpha.test", "s\u0131s@alpha.test"),  # dotless i
        ("sis@alpha.test", "SIS@ALPHA.TEST"),
        ("sis@alpha.test", "s\u0130s@alpha.test"),  # dotted capital I
        ("kim@alpha.test", "\u212aim@alpha.test"),  # Kelvin sign
        ("strasse@alpha.test", "STRA\u00dfE@alpha.test"),  # sharp s
        ("sue@alpha.test", "\u017fue@alpha.test"),  # long s
    ],
)
def test_locked_login_stays_locked_under_any_unicode_spelling(alpha, settings, stored, variant):
    settings.LOGIN_FAILURE_LIMIT = 3
    with tenant_context(alpha.isp):
        User.objects.create_user(stored, PASSWORD, role=Role.SUPPORT)
    for _ in range(3):
        _login(alpha.client(), stored, "wrong-password")
    # A fresh client each time: the lock is on the login, not on a session or cookie;
    # the address lock (4x the limit) is not reached.
    client = alpha.client()
    response = _login(client, variant, PASSWORD)
    assert response.status_code in (200, 429)
    assert "_auth_user_id" not in client.session
    assert _login(alpha.client(), stored, PASSWORD).status_code == 429


def test_failures_under_another_spelling_count_towards_the_same_lock(alpha, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    with tenant_context(alpha.isp):
        User.objects.create_user("sis@alpha.test", PASSWORD, role=Role.SUPPORT)
    for spelling in ("sis@alpha.test", "s\u0131s@alpha.test", "SIS@alpha.test"):
        _login(alpha.client(), spelling, "wrong-password")
    assert _login(alpha.client(), "sis@alpha.test", PASSWORD).status_code == 429
