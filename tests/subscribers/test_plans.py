"""Plans pages: who may see and change plans, speeds typed as text, the list's queries."""

from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.staff.models import Role
from subscribers import services
from subscribers.models import Plan


def make_plan(name="Home 10", price="1500.00", **fields) -> Plan:
    fields = {"download_kbps": 10_000, "upload_kbps": 5_000, **fields}
    return Plan.objects.create(name=name, price=Decimal(price), **fields)


def plan_data(plan=None, **changes) -> dict:
    data = {
        "name": plan.name if plan else "Home 20",
        "price": str(plan.price) if plan else "2500.00",
        "cycle": "monthly",
        "billing": "prepaid",
        "service": "pppoe",
        "download_kbps": "20M",
        "upload_kbps": "10M",
        "burst_download_kbps": "",
        "burst_upload_kbps": "",
        "burst_seconds": "8",
        "data_cap_gb": "",
        "fup_download_kbps": "",
        "fup_upload_kbps": "",
        "description": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


def test_support_cannot_change_a_plan_price(alpha):
    with tenant_context(alpha.isp):
        plan = make_plan()
    client = alpha.client(alpha.support)
    assert client.get(f"/plans/{plan.pk}/edit/").status_code == 403
    response = client.post(f"/plans/{plan.pk}/edit/", plan_data(plan, price="1.00"))
    assert response.status_code == 403
    assert client.post("/plans/new/", plan_data()).status_code == 403
    with tenant_context(alpha.isp):
        plan.refresh_from_db()
        assert plan.price == Decimal("1500.00")
        assert not Plan.objects.filter(name="Home 20").exists()


def test_finance_changes_a_plan_price_and_the_change_is_audited(alpha):
    with tenant_context(alpha.isp):
        plan = make_plan()
    client = alpha.client(alpha.finance)
    page = client.get(f"/plans/{plan.pk}/edit/").content.decode()
    assert "future charges only" in page
    assert 'value="10M"' in page  # stored kbps shown as typed
    response = client.post(f"/plans/{plan.pk}/edit/", plan_data(plan, price="1750.50"))
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        plan.refresh_from_db()
        assert plan.price == Decimal("1750.50")
        assert (plan.download_kbps, plan.upload_kbps) == (20_000, 10_000)
        entry = AuditEntry.objects.for_object(plan).filter(action="update").get()
        assert entry.actor == alpha.finance
        assert entry.changes["price"] == ["1500.00", "1750.50"]
    page = client.get(f"/plans/{plan.pk}/edit/").content.decode()
    assert "History" in page and alpha.finance.full_name in page  # history names people


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.FINANCE])
def test_owner_admin_and_finance_create_plans_with_speeds_as_text(alpha, role):
    data = plan_data(
        name=f"Fibre {role}",
        download_kbps="1.5M",
        upload_kbps="512k",
        burst_download_kbps="3M",
        burst_upload_kbps="1M",
        data_cap_gb="100",
        fup_download_kbps="1M",
        fup_upload_kbps="256k",
    )
    response = alpha.client(alpha.people[role]).post("/plans/new/", data)
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        plan = Plan.objects.get(name=f"Fibre {role}")
    assert (plan.download_kbps, plan.upload_kbps) == (1500, 512)
    assert (plan.burst_download_kbps, plan.burst_upload_kbps) == (3000, 1000)
    assert (plan.fup_download_kbps, plan.fup_upload_kbps) == (1000, 256)


def test_technician_cannot_see_plans(alpha):
    client = alpha.client(alpha.technician)
    assert client.get("/plans/").status_code == 403
    assert client.get("/plans/new/").status_code == 403


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT])
def test_office_roles_see_the_plan_list(alpha, role):
    assert alpha.client(alpha.people[role]).get("/plans/").status_code == 200


def test_support_sees_no_edit_links(alpha):
    with tenant_context(alpha.isp):
        plan = make_plan()
    page = alpha.client(alpha.support).get("/plans/").content.decode()
    assert plan.name in page
    assert f"/plans/{plan.pk}/edit/" not in page
    assert "/plans/new/" not in page


def test_bad_speed_text_is_a_form_error(alpha):
    response = alpha.client(alpha.owner).post("/plans/new/", plan_data(download_kbps="fast"))
    assert response.status_code == 200
    assert "bad speed" in response.context["form"].errors["download_kbps"][0]
    with tenant_context(alpha.isp):
        assert not Plan.objects.filter(name="Home 20").exists()


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"fup_download_kbps": "1M", "fup_upload_kbps": "1M"}, "fup_download_kbps"),
        ({"burst_download_kbps": "10M", "burst_upload_kbps": "20M"}, "burst_download_kbps"),
        ({"burst_download_kbps": "30M"}, "burst_download_kbps"),
        ({"price": "-1"}, "price"),
        ({"price": "10.555"}, "price"),
        ({"upload_kbps": ""}, "upload_kbps"),
        ({"data_cap_gb": "50", "fup_download_kbps": "30M", "fup_upload_kbps": "1M"}, None),
    ],
    ids=[
        "fup-without-cap",
        "burst-below-speed",
        "burst-half-given",
        "negative-price",
        "three-decimals",
        "missing-speed",
        "fup-above-speed",
    ],
)
def test_plan_rules_are_form_errors(alpha, changes, field):
    response = alpha.client(alpha.owner).post("/plans/new/", plan_data(**changes))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors
    if field:
        assert field in errors
    with tenant_context(alpha.isp):
        assert not Plan.objects.filter(name="Home 20").exists()


def test_a_plan_can_be_deactivated_but_not_deleted(alpha):
    with tenant_context(alpha.isp):
        plan = make_plan()
    client = alpha.client(alpha.admin)
    data = plan_data(plan, download_kbps="10M", upload_kbps="5M")
    del data["is_active"]
    assert client.post(f"/plans/{plan.pk}/edit/", data).status_code == 302
    with tenant_context(alpha.isp):
        plan.refresh_from_db()
        assert not plan.is_active
    page = client.get(f"/plans/{plan.pk}/edit/").content.decode()
    assert "Delete" not in page
    assert "inactive" in client.get("/plans/").content.decode()


def test_plan_list_counts_live_accounts_in_a_bounded_number_of_queries(
    alpha, django_assert_max_num_queries
):
    with tenant_context(alpha.isp):
        plans = [make_plan(name=f"Plan {i:02}", price=str(100 + i)) for i in range(30)]
        customer = services.create_customer(actor=alpha.owner, name="Wanjiru", phone="0712345678")
        for status in ("active", "suspended", "installing", "lead", "terminated"):
            services.create_service_account(
                actor=alpha.owner, customer=customer, plan=plans[0], status=status
            )
        services.create_service_account(
            actor=alpha.owner, customer=customer, plan=plans[1], status="active"
        )
    client = alpha.client(alpha.owner)
    client.get("/plans/")  # warm caches (content types, session) outside the count
    # Tenant routing, session, user and the session save, each maybe after a SET
    # search_path, and one annotated query for the plans, however many there are.
    with django_assert_max_num_queries(16) as captured:
        response = client.get("/plans/")
    assert response.status_code == 200
    assert len([q for q in captured.captured_queries if "subscribers_" in q["sql"]]) == 1
    counts = {p.name: p.live_accounts for p in response.context["plans"]}
    assert counts["Plan 00"] == 3  # active, suspended, installing
    assert counts["Plan 01"] == 1
    assert counts["Plan 29"] == 0
    page = response.content.decode()
    assert "KES 100.00" in page
    assert "10M/5M" in page
