"""Staff limited to a branch see and choose only their branches' rows (issue 12,
findings 2 and 13): billing runs, router and site choices, import jobs, drift, the
technician of an inventory move."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.staff.models import Role
from tests.probe_world import (
    MARK_OTHER_BRANCH,
    OTHER_BRANCH,
    OWN,
    build_set,
    limited_user,
)


@pytest.fixture
def world(alpha):
    """Alpha with two branch sets (the own one's router shared by every branch) and a
    staff member of each role limited to the own branch."""
    with tenant_context(alpha.isp):
        own = build_set(OWN, "ownbranch", shared_router=True)
        other = build_set(OTHER_BRANCH, MARK_OTHER_BRANCH, run_pk=OWN)
        # The other branch's account is also served by the shared router.
        from network.models import DriftItem

        DriftItem.objects.create(
            router_id=OWN,
            kind="missing",
            service="pppoe",
            username="u-other",
            service_account=other.account,
            detail=f"drift of {MARK_OTHER_BRANCH}",
            monthly_value=777,
        )
        limited = {role: limited_user(role, own.branch) for role in Role.values}
    connection.set_schema_to_public()
    return alpha, limited


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


# --- finding 2: billing runs ----------------------------------------------------------


def test_branch_limited_finance_sees_only_their_branches_in_a_billing_run(world):
    alpha, limited = world
    client = alpha.client(limited[Role.FINANCE])
    page = _page(client, f"/billing/runs/{OWN}/")
    assert f"P{OWN}" in page
    assert MARK_OTHER_BRANCH not in page and f"P{OTHER_BRANCH}" not in page
    # Totals are the branch's: one invoice of 1,000, not the run's two.
    assert "2,000" not in page
    runs = _page(client, "/billing/runs/")
    assert "2,000" not in runs


def test_branch_limited_finance_cannot_start_a_billing_run(
    world, django_capture_on_commit_callbacks
):
    alpha, limited = world
    client = alpha.client(limited[Role.FINANCE])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/billing/runs/start/")
    assert response.status_code == 403
    assert callbacks == []
    assert "Run billing for today" not in _page(client, "/billing/runs/")


def test_unlimited_finance_still_sees_the_whole_run(world):
    alpha, _ = world
    page = _page(alpha.client(alpha.finance), f"/billing/runs/{OWN}/")
    assert MARK_OTHER_BRANCH in page


# --- finding 13: choices and pages ----------------------------------------------------


def test_account_form_offers_only_routers_and_sites_of_the_users_branches(world):
    alpha, limited = world
    client = alpha.client(limited[Role.ADMIN])
    page = _page(client, f"/subscribers/{OWN}/accounts/new/")
    assert f"Site ownbranch {OWN}" in page
    assert MARK_OTHER_BRANCH not in page


def test_forged_post_of_another_branchs_router_or_site_is_a_form_error(world):
    alpha, limited = world
    client = alpha.client(limited[Role.ADMIN])
    for field in ("router", "site"):
        response = client.post(
            f"/subscribers/{OWN}/accounts/new/",
            {"plan": OWN, "username": f"forged-{field}", field: OTHER_BRANCH},
        )
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
        response = client.post(f"/accounts/{OWN}/login/", {"username": "x", field: OTHER_BRANCH})
        assert response.status_code == 400
    with tenant_context(alpha.isp):
        from subscribers.models import ServiceAccount

        account = ServiceAccount.objects.get(pk=OWN)
        assert (account.router_id, account.site_id) == (OWN, None)
        assert not ServiceAccount.objects.filter(username__startswith="forged").exists()


def test_customer_form_refuses_another_branchs_site(world):
    alpha, limited = world
    client = alpha.client(limited[Role.ADMIN])
    assert MARK_OTHER_BRANCH not in _page(client, "/subscribers/new/")
    response = client.post(
        f"/subscribers/{OWN}/edit/",
        {"name": "Renamed", "phone": "0712345678", "branch": OWN, "site": OTHER_BRANCH},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_branch_limited_manager_sees_only_their_own_import_jobs(world):
    alpha, limited = world
    client = alpha.client(limited[Role.ADMIN])
    assert MARK_OTHER_BRANCH not in _page(client, "/imports/")
    assert client.get(f"/imports/{OTHER_BRANCH}/").status_code == 404
    assert client.get(f"/imports/{OTHER_BRANCH}/errors.csv").status_code == 404


def test_drift_page_of_a_shared_router_hides_other_branches_accounts(world):
    alpha, limited = world
    page = _page(alpha.client(limited[Role.ADMIN]), f"/routers/{OWN}/drift/")
    assert f"drift ownbranch {OWN}" in page
    assert MARK_OTHER_BRANCH not in page and "777" not in page
    assert MARK_OTHER_BRANCH in _page(alpha.client(alpha.admin), f"/routers/{OWN}/drift/")


def test_item_move_offers_and_accepts_only_technicians_of_the_users_branches(world):
    alpha, limited = world
    client = alpha.client(limited[Role.ADMIN])
    page = _page(client, f"/inventory/items/{OWN}/")
    assert f"Tech ownbranch {OWN}" in page
    assert MARK_OTHER_BRANCH not in page
    with tenant_context(alpha.isp):
        from ispops.staff.models import User

        other_tech = User.objects.get(email=f"tech{OTHER_BRANCH}@probe.test").pk
    connection.set_schema_to_public()
    response = client.post(
        f"/inventory/items/{OWN}/move/", {"kind": "issued", "technician": other_tech}
    )
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        from inventory.models import Item

        assert Item.objects.get(pk=OWN).holder_id is None


def test_pipeline_scheduling_offers_and_accepts_only_technicians_of_the_users_branches(world):
    alpha, limited = world
    from ispops.staff.models import User
    from subscribers.forms_pipeline import RescheduleForm, ScheduleForm

    with tenant_context(alpha.isp):
        own_tech = User.objects.get(email=f"tech{OWN}@probe.test")
        other_tech = User.objects.get(email=f"tech{OTHER_BRANCH}@probe.test")
        user = limited[Role.ADMIN]
        for form_class in (ScheduleForm, RescheduleForm):
            offered = set(form_class(user=user).fields["technician"].queryset)
            assert own_tech in offered and other_tech not in offered
            forged = form_class(
                {"technician": other_tech.pk, "scheduled_for": "2026-12-03"}, user=user
            )
            assert not forged.is_valid() and "technician" in forged.errors
    connection.set_schema_to_public()
