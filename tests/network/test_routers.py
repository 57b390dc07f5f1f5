"""Router pages: who sees and changes routers, the write-only API password, isolation."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.staff.models import Branch, Role, User
from network.models import Router
from network.services import add_router

SECRET = "Sup3r-Secret-API-pass"


def make_router(name="Core CCR", password=SECRET, **fields) -> Router:
    fields = {"host": "127.0.0.1", "port": 8728, "username": "ispops-api", **fields}
    return add_router(actor="test", name=name, password=password, **fields)


def edit_data(router, **changes) -> dict:
    data = {
        "name": router.name,
        "host": router.host,
        "port": str(router.port),
        "username": router.username,
        "password": "",
        "branch": "",
        "site": "",
        "notes": router.notes,
    }
    if router.use_tls:
        data["use_tls"] = "on"
    data.update(changes)
    return data


def stored_password(router) -> str:
    with connection.cursor() as cursor:
        cursor.execute("select password from network_router where id = %s", [router.pk])
        return cursor.fetchone()[0]


def test_router_password_is_stored_encrypted_and_never_shown(alpha):
    client = alpha.client(alpha.owner)
    response = client.post(
        "/routers/new/",
        {
            "name": "Kasarani CCR",
            "host": "192.0.2.10",
            "port": "8729",
            "username": "api",
            "password": SECRET,
            "use_tls": "on",
        },
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        router = Router.objects.get(name="Kasarani CCR")
        assert router.password == SECRET
        raw = stored_password(router)
        assert raw and raw != SECRET and SECRET not in raw
    page = client.get(f"/routers/{router.pk}/").content.decode()
    assert SECRET not in page
    assert raw not in page
    assert ">set<" in page
    assert "(changed)" in page  # the history says a password was given, not which
    assert SECRET not in client.get("/routers/").content.decode()


def test_blank_password_on_edit_keeps_the_stored_one(alpha):
    with tenant_context(alpha.isp):
        router = make_router()
    client = alpha.client(alpha.admin)
    response = client.post(f"/routers/{router.pk}/", edit_data(router, host="127.0.0.2"))
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        router.refresh_from_db()
        assert router.host == "127.0.0.2"
        assert router.password == SECRET
        entry = AuditEntry.objects.for_object(router).filter(action="update").get()
        assert "password" not in entry.changes
        assert entry.actor == alpha.admin


def test_a_new_password_replaces_the_old_and_is_audited_without_its_value(alpha):
    with tenant_context(alpha.isp):
        router = make_router()
    client = alpha.client(alpha.owner)
    response = client.post(f"/routers/{router.pk}/", edit_data(router, password="N3w-pass-x"))
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        router.refresh_from_db()
        assert router.password == "N3w-pass-x"
        entry = AuditEntry.objects.for_object(router).filter(action="update").get()
        assert entry.changes == {"password": [None, "(changed)"]}
    page = client.get(f"/routers/{router.pk}/").content.decode()
    assert "N3w-pass-x" not in page and SECRET not in page


def test_a_refused_edit_does_not_echo_the_typed_password(alpha):
    with tenant_context(alpha.isp):
        router = make_router()
    response = alpha.client(alpha.owner).post(
        f"/routers/{router.pk}/", edit_data(router, host="not a host!", password="Typed-pw-123")
    )
    assert response.status_code == 200
    assert "host" in response.context["form"].errors
    page = response.content.decode()
    assert "Typed-pw-123" not in page and SECRET not in page
    with tenant_context(alpha.isp):
        router.refresh_from_db()
        assert (router.host, router.password) == ("127.0.0.1", SECRET)


def test_router_without_password_shows_not_set(alpha):
    with tenant_context(alpha.isp):
        router = make_router(password="")
    page = alpha.client(alpha.support).get(f"/routers/{router.pk}/").content.decode()
    assert "not set" in page
    assert "Test connection" in page


def test_service_refusals_are_form_errors(alpha):
    with tenant_context(alpha.isp):
        make_router()
    client = alpha.client(alpha.owner)
    data = {"name": "core ccr", "host": "127.0.0.9", "port": "8728", "username": "api"}
    response = client.post("/routers/new/", data)
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].non_field_errors())
    response = client.post("/routers/new/", {**data, "name": "Edge", "host": "bad host"})
    assert response.status_code == 200
    with tenant_context(alpha.isp):
        assert Router.objects.count() == 1


def test_two_routers_cannot_share_a_name_by_editing(alpha):
    with tenant_context(alpha.isp):
        make_router()
        other = make_router(name="Edge hAP")
    response = alpha.client(alpha.owner).post(
        f"/routers/{other.pk}/", edit_data(other, name="CORE ccr")
    )
    assert response.status_code == 200
    assert "name" in response.context["form"].errors


@pytest.mark.parametrize(
    "role,can_view,can_edit",
    [
        (Role.OWNER, True, True),
        (Role.ADMIN, True, True),
        (Role.SUPPORT, True, False),
        (Role.FINANCE, False, False),
        (Role.TECHNICIAN, False, False),
    ],
)
def test_router_roles(alpha, role, can_view, can_edit):
    with tenant_context(alpha.isp):
        router = make_router()
    client = alpha.client(alpha.people[role])
    assert client.get("/routers/").status_code == (200 if can_view else 403)
    assert client.get(f"/routers/{router.pk}/").status_code == (200 if can_view else 403)
    assert client.get("/routers/new/").status_code == (200 if can_edit else 403)
    response = client.post(f"/routers/{router.pk}/", edit_data(router, name="Renamed"))
    assert response.status_code == (302 if can_edit else 403)
    with tenant_context(alpha.isp):
        router.refresh_from_db()
        assert (router.name == "Renamed") == can_edit


def test_support_sees_no_edit_form(alpha):
    with tenant_context(alpha.isp):
        router = make_router()
    response = alpha.client(alpha.support).get(f"/routers/{router.pk}/")
    assert response.context["form"] is None
    assert 'name="password"' not in response.content.decode()


def test_router_list_shows_address_and_account_count(alpha):
    from subscribers import services
    from subscribers.models import Plan

    with tenant_context(alpha.isp):
        router = make_router(port=8729, use_tls=True)
        plan = Plan.objects.create(name="R plan", price="900", download_kbps=5000, upload_kbps=1000)
        customer = services.create_customer(actor="test", name="Otieno", phone="0722000111")
        for status in ("active", "suspended", "terminated"):
            services.create_service_account(
                actor="test", customer=customer, plan=plan, router=router, status=status
            )
    response = alpha.client(alpha.support).get("/routers/")
    assert "127.0.0.1:8729" in response.content.decode()
    assert [r.accounts for r in response.context["routers"]] == [2]


def test_branch_limited_staff_do_not_reach_other_branches_routers(alpha):
    with tenant_context(alpha.isp):
        home = Branch.objects.get(code="alpha-0")
        other = Branch.objects.create(name="Alpha Nakuru", code="alpha-nakuru")
        theirs = make_router(name="Nakuru CCR", branch=other)
        make_router(name="Home CCR", branch=home)
        limited = User.objects.create_user("netadmin@alpha.test", "x-pass-12345", role="admin")
        limited.branches.set([home])
    client = alpha.client(limited)
    page = client.get("/routers/").content.decode()
    assert "Home CCR" in page and "Nakuru CCR" not in page
    assert client.get(f"/routers/{theirs.pk}/").status_code == 404


def test_routers_of_alpha_are_not_reachable_from_beta(alpha, beta):
    with tenant_context(alpha.isp):
        router = make_router(name="Alpha core")
    client = beta.client(beta.owner)
    assert client.get(f"/routers/{router.pk}/").status_code == 404
    response = client.post(f"/routers/{router.pk}/", edit_data(router, name="Hijacked"))
    assert response.status_code == 404
    assert "Alpha core" not in client.get("/routers/").content.decode()
    with tenant_context(alpha.isp):
        router.refresh_from_db()
        assert router.name == "Alpha core"
