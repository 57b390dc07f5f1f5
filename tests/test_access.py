"""Roles: every view declares its audience, and the declaration is enforced."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from ispops.staff.access import declared_roles
from ispops.staff.models import Role


def _views(urlconf):
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p.callback

    return list(walk(get_resolver(urlconf).url_patterns))


@pytest.mark.parametrize("urlconf", ["ispops.urls", "ispops.urls_public"])
def test_every_view_declares_its_roles(urlconf):
    undeclared = [route for route, view in _views(urlconf) if declared_roles(view) is None]
    assert undeclared == []


# (path, roles allowed) for the tenant pages of the foundation.
PAGES = [
    ("/", set(Role.values)),
    ("/password/change/", set(Role.values)),
    ("/staff/", {Role.OWNER}),
    ("/staff/invite/", {Role.OWNER}),
    ("/branches/", {Role.OWNER, Role.ADMIN}),
]


@pytest.mark.parametrize("path,allowed", PAGES)
@pytest.mark.parametrize("role", Role.values)
def test_role_matrix(alpha, path, allowed, role):
    response = alpha.client(alpha.people[role]).get(path)
    assert response.status_code == (200 if role in allowed else 403)


def test_technician_cannot_open_an_owner_only_page(alpha):
    client = alpha.client(alpha.technician)
    assert client.get("/staff/").status_code == 403
    assert client.get(f"/staff/{alpha.owner.pk}/").status_code == 403
    response = client.post(f"/staff/{alpha.owner.pk}/active/", {"active": "0"})
    assert response.status_code == 403
    alpha.owner.refresh_from_db()
    assert alpha.owner.is_active


@pytest.mark.parametrize("path", ["/", "/staff/", "/branches/"])
def test_anonymous_is_sent_to_login(alpha, path):
    response = alpha.client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_platform_page_needs_a_platform_admin(tenants, db, client):
    assert client.get("/platform/", HTTP_HOST="localhost").status_code == 302
    from ispops.staff.models import User

    plain = User.objects.create_user("someone@platform.test", "x-pass-12345")
    client.force_login(plain)
    assert client.get("/platform/", HTTP_HOST="localhost").status_code == 403


def test_platform_page_does_not_exist_on_an_isp_host(alpha):
    assert alpha.client(alpha.owner).get("/platform/").status_code == 404


def test_platform_admin_can_change_their_password_on_the_platform_host(tenants, db, client):
    from ispops.staff.models import User

    admin = User.objects.create_superuser("root2@platform.test", "x-pass-12345")
    client.force_login(admin)
    assert client.get("/password/change/", HTTP_HOST="localhost").status_code == 200
