"""The hotspot staff pages: packages entered in the units people use (validity in
minutes, hours or days; data in MB or GB stored as bytes), lists and their query
counts, and which role opens which page."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from hotspot.models import Package
from ispops.staff.models import Role

VIEWERS = {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}
MANAGERS = {Role.OWNER, Role.ADMIN}
ISSUERS = {Role.OWNER, Role.ADMIN, Role.FINANCE}


def _form(**changes):
    data = {
        "name": "Daily 1.5 GB",
        "price": "50",
        "validity": "1",
        "validity_unit": "days",
        "starts": "purchase",
        "data_limit": "1.5",
        "data_unit": "GB",
        "download_kbps": "5000",
        "upload_kbps": "2000",
        "devices": "2",
        "idle_timeout_minutes": "10",
        "mac_cookie_hours": "24",
        "is_active": "on",
    }
    data.update(changes)
    return data


def test_an_admin_creates_a_package_in_days_and_gigabytes(alpha):
    client = alpha.client(alpha.admin)
    response = client.post("/hotspot/packages/new/", _form())
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        package = Package.objects.get(name="Daily 1.5 GB")
        assert package.validity_minutes == 1440
        assert package.data_limit_bytes == 1_500_000_000
        assert package.devices == 2
    page = client.get("/hotspot/packages/").content.decode()
    assert "Daily 1.5 GB" in page and "1.5 GB" in page and "1 day" in page


def test_minutes_megabytes_and_unlimited(alpha):
    client = alpha.client(alpha.owner)
    client.post(
        "/hotspot/packages/new/",
        _form(
            name="Half hour",
            validity="30",
            validity_unit="minutes",
            data_limit="300",
            data_unit="MB",
        ),
    )
    client.post(
        "/hotspot/packages/new/",
        _form(name="Week", validity="7", validity_unit="days", data_limit=""),
    )
    with tenant_context(alpha.isp):
        half = Package.objects.get(name="Half hour")
        week = Package.objects.get(name="Week")
        assert (half.validity_minutes, half.data_limit_bytes) == (30, 300_000_000)
        assert (week.validity_minutes, week.data_limit_bytes) == (7 * 1440, None)


def test_editing_a_package_shows_its_units_back(alpha):
    with tenant_context(alpha.isp):
        package = Package.objects.create(
            name="3 hours",
            price=30,
            validity_minutes=180,
            data_limit_bytes=500_000_000,
            download_kbps=1000,
            upload_kbps=500,
        )
    connection.set_schema_to_public()
    client = alpha.client(alpha.owner)
    page = client.get(f"/hotspot/packages/{package.pk}/").content.decode()
    assert 'name="validity" value="3"' in page
    assert '<option value="hours" selected>' in page
    assert 'value="500"' in page and '<option value="MB" selected>' in page
    response = client.post(
        f"/hotspot/packages/{package.pk}/",
        _form(name="3 hours", validity="4", validity_unit="hours", data_limit=""),
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        package.refresh_from_db()
        assert package.validity_minutes == 240 and package.data_limit_bytes is None


def test_a_package_longer_than_a_year_or_without_a_name_is_refused(alpha):
    client = alpha.client(alpha.owner)
    response = client.post("/hotspot/packages/new/", _form(validity="400"))
    assert response.status_code == 200 and "At most 366 days" in response.content.decode()
    assert client.post("/hotspot/packages/new/", _form(name="")).status_code == 200
    with tenant_context(alpha.isp):
        assert not Package.objects.exists()


def test_a_package_is_sold_at_chosen_routers(alpha):
    from network.models import Router

    with tenant_context(alpha.isp):
        router = Router.objects.create(name="hs-stage", host="192.0.2.20", username="a")
    connection.set_schema_to_public()
    client = alpha.client(alpha.owner)
    client.post("/hotspot/packages/new/", _form(routers=[router.pk]))
    with tenant_context(alpha.isp):
        assert list(Package.objects.get().routers.all()) == [router]


# --- query counts -------------------------------------------------------------------------


@pytest.mark.parametrize("batches", [1, 12])
def test_the_batch_list_reads_the_same_with_few_or_many_batches(
    in_alpha, make_batch, batches, django_assert_max_num_queries
):
    for _ in range(batches):
        make_batch(count=2)
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.owner)
    with django_assert_max_num_queries(12):
        assert client.get("/hotspot/batches/").status_code == 200


@pytest.mark.parametrize("count", [3, 60])
def test_a_batch_page_reads_the_same_with_few_or_many_cards(
    in_alpha, make_batch, count, django_assert_max_num_queries
):
    batch = make_batch(count=count, agent=in_alpha.agent)
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.owner)
    with django_assert_max_num_queries(16):
        assert client.get(f"/hotspot/batches/{batch.pk}/").status_code == 200
    with django_assert_max_num_queries(16):
        assert client.get(f"/hotspot/agents/{in_alpha.agent.pk}/").status_code == 200


def test_the_card_list_filters_by_state_and_code_by_htmx(in_alpha, make_batch):
    batch = make_batch(count=3)
    first = batch.vouchers.order_by("id").first()
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.support)
    url = f"/hotspot/batches/{batch.pk}/?state=generated&q={first.code[:4].lower()}"
    response = client.get(url, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert first.code[:4] in body


# --- roles --------------------------------------------------------------------------------


PAGES = [
    ("/hotspot/packages/", VIEWERS),
    ("/hotspot/packages/new/", MANAGERS),
    ("/hotspot/batches/", VIEWERS | {Role.AGENT}),
    ("/hotspot/batches/new/", ISSUERS),
    ("/hotspot/agents/", ISSUERS),
    ("/hotspot/my/", {Role.AGENT}),
]


@pytest.mark.parametrize("url,allowed", PAGES)
@pytest.mark.parametrize("role", Role.values)
def test_page_roles(alpha, url, allowed, role):
    response = alpha.client(alpha.people[role]).get(url)
    assert response.status_code == (200 if role in allowed else 403)


@pytest.mark.parametrize("role", Role.values)
def test_object_page_roles(in_alpha, make_batch, package, role):
    batch = make_batch(count=1)
    card = batch.vouchers.get()
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.people[role])
    expected = {
        f"/hotspot/packages/{package.pk}/": MANAGERS,
        f"/hotspot/batches/{batch.pk}/": VIEWERS,
        f"/hotspot/batches/{batch.pk}/cards.csv": VIEWERS,
        f"/hotspot/vouchers/{card.pk}/sell/": VIEWERS,
        f"/hotspot/vouchers/{card.pk}/sms/": VIEWERS,
        f"/hotspot/agents/{in_alpha.agent.pk}/": ISSUERS,
    }
    for url, allowed in expected.items():
        status = client.get(url).status_code
        # An agent reaches the card pages' view, which finds no batch of theirs.
        want = (
            200
            if role in allowed
            else (
                404
                if role == Role.AGENT and "agents/" not in url and "packages/" not in url
                else 403
            )
        )
        assert status == want, (url, role, status)


def test_anonymous_visitors_are_sent_to_log_in(alpha):
    for url, _allowed in PAGES:
        response = alpha.client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_nav_shows_hotspot_to_staff_who_sell(alpha):
    assert 'href="/hotspot/batches/"' in alpha.client(alpha.support).get("/").content.decode()
    page = alpha.client(alpha.technician).get("/").content.decode()
    assert 'href="/hotspot/batches/"' not in page
