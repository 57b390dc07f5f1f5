"""Importing a MikroTik's PPP secrets and hotspot users: the real librouteros client reads
the project's RouterOS emulator over TCP; plans and subscribers are written all or nothing."""

import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.staff.models import Role
from network.emulator import RouterOSEmulator
from network.models import Router, RouterJob
from network.router_import import import_router, parse_rate_limit, plan_import, read_router
from network.services import add_router
from subscribers.models import Customer, Plan, ServiceAccount, StatusChange
from tests.conftest import ROOT, free_port, subprocess_database_url

API_PASSWORD = "api-Secret-9"
PROFILES = {"5M": "2M/5M", "10M": "5M/10M", "20M": "10M/20M 20M/40M 8M/16M 16/16"}


@pytest.fixture
def emulator():
    emu = RouterOSEmulator(port=0, users={"admin": API_PASSWORD})
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def router(alpha, emulator):
    with tenant_context(alpha.isp):
        return make_router(emulator)


def make_router(emulator, name="Core CCR", password=API_PASSWORD) -> Router:
    return add_router(
        actor="test",
        name=name,
        host="127.0.0.1",
        port=emulator.port,
        username="admin",
        password=password,
    )


def seed_profiles(emu, profiles=PROFILES):
    for name, rate_limit in profiles.items():
        fields = {"rate-limit": rate_limit} if rate_limit else {}
        emu.add_row("/ppp/profile", name=name, **fields)


def seed_secrets(emu, count=1000):
    """`count` secrets over the three profiles; every 10th is disabled on the router."""
    names = list(PROFILES)
    for i in range(count):
        emu.add_row(
            "/ppp/secret",
            name=f"sub{i:04d}",
            password=f"pw-{i}",
            service="pppoe",
            profile=names[i % 3],
            disabled="true" if i % 10 == 0 else "false",
            comment=f"Customer {i} 0712{i:06d}",
        )


@pytest.fixture
def big_router(router, emulator):
    seed_profiles(emulator)
    seed_secrets(emulator)
    return router


def stored_password(username: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "select password from subscribers_serviceaccount where username = %s", [username]
        )
        return cursor.fetchone()[0]


def test_importing_1000_secrets_creates_subscribers_on_the_right_plans(alpha, big_router):
    with tenant_context(alpha.isp):
        customers_before = Customer.objects.count()
        started = time.monotonic()
        result = import_router(
            big_router, actor=alpha.owner, prices={"10M": Decimal("2500"), "20m": "4000.00"}
        )
        took = time.monotonic() - started
        print(f"\nimported 1,000 secrets from the emulator in {took:.2f} s")
        assert result.ok, result.errors
        assert (result.subscribers_created, result.plans_created, result.already_here) == (
            1000,
            3,
            0,
        )
        plans = {p.name: p for p in Plan.objects.filter(name__in=PROFILES)}
        assert {n: (p.download_kbps, p.upload_kbps, p.service) for n, p in plans.items()} == {
            "5M": (5_000, 2_000, "pppoe"),
            "10M": (10_000, 5_000, "pppoe"),
            "20M": (20_000, 10_000, "pppoe"),
        }
        assert plans["10M"].price == Decimal("2500.00")
        assert plans["20M"].price == Decimal("4000.00")
        assert plans["5M"].price == 0  # imported free, flagged for a price
        assert (plans["20M"].burst_download_kbps, plans["20M"].burst_upload_kbps) == (
            40_000,
            20_000,
        )
        assert plans["20M"].burst_seconds == 16

        accounts = ServiceAccount.objects.filter(router=big_router)
        assert accounts.count() == 1000
        assert Customer.objects.count() == customers_before + 1000
        assert accounts.filter(status="suspended").count() == 100
        assert accounts.filter(status="active").count() == 900
        for i in (0, 1, 2, 999):
            account = accounts.select_related("plan", "customer").get(username=f"sub{i:04d}")
            assert account.plan.name == list(PROFILES)[i % 3]
            assert account.status == ("suspended" if i % 10 == 0 else "active")
            assert account.activated_at is not None
            assert account.customer.name == f"Customer {i}"
            assert account.customer.phone == f"254712{i:06d}"
            assert account.customer.status == account.status
            assert account.password == f"pw-{i}"
            raw = stored_password(account.username)
            assert raw and f"pw-{i}" not in raw
        assert (
            StatusChange.objects.filter(
                service_account__router=big_router, reason="Imported from router Core CCR"
            ).count()
            == 1000
        )
        assert (
            AuditEntry.objects.filter(
                model="subscribers.serviceaccount", changes__imported="Core CCR"
            ).count()
            == 1000
        )
        assert not RouterJob.objects.filter(router=big_router).exists()
        assert Customer.objects.search("sub0007").get().name == "Customer 7"


def test_a_second_import_creates_nothing_and_counts_everyone_as_already_here(alpha, big_router):
    with tenant_context(alpha.isp):
        assert import_router(big_router, actor="test").ok
        plans, customers = Plan.objects.count(), Customer.objects.count()

        again = import_router(big_router, actor="test")

        assert again.ok
        assert (again.subscribers_created, again.plans_created, again.already_here) == (0, 0, 1000)
        assert (Plan.objects.count(), Customer.objects.count()) == (plans, customers)


def test_a_secret_on_a_profile_without_rate_limit_is_reported_and_nothing_is_written(
    alpha, router, emulator
):
    seed_profiles(emulator, {"10M": "5M/10M", "office": ""})
    emulator.add_row("/ppp/secret", name="jane", password="x", profile="10M", service="pppoe")
    emulator.add_row("/ppp/secret", name="boss", password="y", profile="office", service="pppoe")
    with tenant_context(alpha.isp):
        plans, customers = Plan.objects.count(), Customer.objects.count()

        result = import_router(router, actor="test")

        assert not result.ok
        assert [str(e) for e in result.errors] == [
            "/ppp/secret boss: profile office has no rate-limit; give it one on the router "
            "or map it to a plan"
        ]
        assert (Plan.objects.count(), Customer.objects.count()) == (plans, customers)
        assert not ServiceAccount.objects.filter(username="jane").exists()

        # Mapped to an existing plan, the same router imports.
        office = Plan.objects.create(
            name="Office 50M", price="9000", download_kbps=50_000, upload_kbps=50_000
        )
        mapped = import_router(router, actor="test", mapping={"office": "office 50m"})
        assert mapped.ok, mapped.errors
        assert ServiceAccount.objects.get(username="boss").plan == office
        assert ServiceAccount.objects.get(username="jane").plan.name == "10M"


def test_hotspot_users_become_hotspot_accounts_on_hotspot_plans(alpha, router, emulator):
    seed_profiles(emulator, {"2M": "1M/2M"})
    emulator.add_row("/ip/hotspot/user/profile", name="2M", **{"rate-limit": "2M/2M"})
    emulator.add_row("/ip/hotspot/user/profile", name="day-pass", **{"rate-limit": "512k/1M"})
    emulator.add_row("/ppp/secret", name="pat", password="p", profile="2M", service="any")
    emulator.add_row(
        "/ip/hotspot/user",
        name="kiosk1",
        password="k1",
        profile="2M",
        comment="Mama Mboga",
        **{"mac-address": "aa:bb:cc:dd:ee:01"},
    )
    emulator.add_row(
        "/ip/hotspot/user", name="kiosk2", password="k2", profile="day-pass", disabled="yes"
    )
    with tenant_context(alpha.isp):
        result = import_router(router, actor="test", prices={"day-pass": Decimal("50")})

        assert result.ok, result.errors
        assert result.subscribers_created == 3
        pat = ServiceAccount.objects.select_related("plan").get(username="pat")
        assert (pat.service, pat.plan.name, pat.plan.service) == ("pppoe", "2M", "pppoe")
        kiosk1 = ServiceAccount.objects.select_related("plan", "customer").get(username="kiosk1")
        # The PPP plan has the profile's name, so the hotspot one gets its service's name.
        assert (kiosk1.service, kiosk1.plan.name, kiosk1.plan.service) == (
            "hotspot",
            "2M (hotspot)",
            "hotspot",
        )
        assert (kiosk1.plan.download_kbps, kiosk1.plan.upload_kbps) == (2_000, 2_000)
        assert kiosk1.mac == "AA:BB:CC:DD:EE:01"
        assert kiosk1.customer.name == "Mama Mboga"
        kiosk2 = ServiceAccount.objects.select_related("plan", "customer").get(username="kiosk2")
        assert (kiosk2.service, kiosk2.status) == ("hotspot", "suspended")
        assert kiosk2.plan.name == "day-pass"
        assert (kiosk2.plan.download_kbps, kiosk2.plan.upload_kbps) == (1_000, 512)
        assert kiosk2.plan.price == Decimal("50.00")
        assert kiosk2.customer.name == "kiosk2"  # no comment: the username

        # A second run finds the hotspot plans by their names and adds nothing.
        again = import_router(router, actor="test")
        assert (again.already_here, again.plans_created, again.subscribers_created) == (3, 0, 0)


def test_other_ppp_services_shared_names_and_taken_addresses_are_errors(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M"})
    emulator.add_row("/ip/hotspot/user/profile", name="hs", **{"rate-limit": "1M/1M"})
    emulator.add_row("/ppp/secret", name="vpn1", password="v", profile="10M", service="l2tp")
    emulator.add_row("/ppp/secret", name="jane", password="j", profile="10M", service="pppoe")
    emulator.add_row("/ip/hotspot/user", name="jane", password="j2", profile="hs")
    emulator.add_row(
        "/ppp/secret",
        name="fixed1",
        password="f",
        profile="10M",
        service="pppoe",
        **{"remote-address": "10.9.0.7"},
    )
    emulator.add_row(
        "/ppp/secret",
        name="fixed2",
        password="f",
        profile="10M",
        service="pppoe",
        **{"remote-address": "10.9.0.7"},
    )
    with tenant_context(alpha.isp):
        preview = plan_import(read_router(router))
        reasons = {str(e) for e in preview.errors}
        assert reasons == {
            "/ppp/secret vpn1: service l2tp is not supported",
            "/ip/hotspot/user jane: /ppp/secret jane has the same name; "
            "a login belongs to one account",
            "/ppp/secret fixed2: remote-address 10.9.0.7 is also on /ppp/secret fixed1",
        }
        rows = {r.username: r for r in preview.rows if r.source == "/ppp/secret"}
        assert rows["fixed1"].static_ip == "10.9.0.7"
        assert rows["jane"].static_ip is None
        assert not import_router(router, actor="test").ok
        assert not ServiceAccount.objects.filter(router=router).exists()


def test_rate_limits_read_as_routeros_writes_them():
    assert parse_rate_limit("5M/10M") == {"download_kbps": 10_000, "upload_kbps": 5_000}
    assert parse_rate_limit("512k") == {"download_kbps": 512, "upload_kbps": 512}
    assert parse_rate_limit("1000000/2000000") == {"download_kbps": 2_000, "upload_kbps": 1_000}
    assert parse_rate_limit("1.5M/1G 0/0") == {"download_kbps": 1_000_000, "upload_kbps": 1_500}
    with pytest.raises(ValueError):
        parse_rate_limit("0/0")


# --- the command -----------------------------------------------------------------------


def run_command(*args) -> tuple[str, str]:
    out, err = _Buffer(), _Buffer()
    call_command("import_from_router", "--schema", "alpha", *args, stdout=out, stderr=err)
    return out.text, err.text


class _Buffer:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_command_previews_with_dry_run_then_imports_with_prices(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M"})
    emulator.add_row("/ppp/secret", name="jane", password="x", profile="10M", service="pppoe")
    emulator.add_row(
        "/ppp/secret", name="john", password="y", profile="10M", service="pppoe", disabled="yes"
    )

    out, _ = run_command("Core CCR", "--dry-run")
    assert "new plan 10M (pppoe, 10M down, 5M up): 2 subscriber(s), no price: set a price" in out
    assert "to import: 2 (active 1, suspended 1); already here: 0" in out
    assert "would import 2 subscriber(s) from router Core CCR" in out
    with tenant_context(alpha.isp):
        assert not ServiceAccount.objects.filter(username__in=["jane", "john"]).exists()

    out, _ = run_command("core ccr", "--price", "10M=1,500")
    assert "imported 2 subscriber(s) from router Core CCR; created 1 plan(s)" in out
    with tenant_context(alpha.isp):
        assert Plan.objects.get(name="10M").price == Decimal("1500.00")


def test_command_refuses_error_rows_printing_each_one(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M"})
    emulator.add_row("/ppp/secret", name="vpn1", password="v", profile="10M", service="ovpn")
    with pytest.raises(CommandError) as refused:
        run_command("Core CCR")
    assert str(refused.value) == "1 problem(s) on router Core CCR; nothing imported"
    assert refused.value.returncode == 1


def test_command_with_a_wrong_router_password_says_so(alpha, emulator):
    with tenant_context(alpha.isp):
        make_router(emulator, name="Edge", password="not-the-password")
    with pytest.raises(CommandError) as refused:
        run_command("Edge")
    message = str(refused.value)
    assert "wrong username or password" in message
    assert "\n" not in message


def test_command_with_an_unreachable_router_names_the_address(alpha):
    port = free_port()  # nothing listens there
    with tenant_context(alpha.isp):
        add_router(
            actor="test", name="Far", host="127.0.0.1", port=port, username="a", password="b"
        )
    with pytest.raises(CommandError, match=f"127.0.0.1:{port}"):
        run_command("Far")


def test_command_with_an_unknown_router_exits_non_zero_with_one_line(alpha):
    with pytest.raises(CommandError, match=r"^no router named 'Nowhere'$"):
        run_command("Nowhere")
    # And as a real process: exit status and the single line on stderr.
    env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
    proc = subprocess.run(
        [sys.executable, "manage.py", "import_from_router", "--schema", "alpha", "Nowhere"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "CommandError: no router named 'Nowhere'"


# --- the page --------------------------------------------------------------------------


def test_owner_previews_then_imports_with_prices_on_the_page(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M", "20M": "10M/20M"})
    emulator.add_row(
        "/ppp/secret", name="jane", password="Jane-Secret-1", profile="10M", service="pppoe"
    )
    emulator.add_row(
        "/ppp/secret",
        name="john",
        password="John-Secret-2",
        profile="20M",
        service="pppoe",
        comment="John Otieno 0722 000 111",
    )
    client = alpha.client(alpha.owner)
    url = f"/routers/{router.pk}/import/"

    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="price:10M"' in html and 'name="price:20M"' in html
    assert "set a price" in html
    assert "John Otieno" in html and "254722000111" in html
    assert "Jane-Secret-1" not in html and "John-Secret-2" not in html

    done = client.post(url, {"action": "import", "price:10M": "2500", "price:20M": "4,000"})
    assert done.status_code == 200
    assert "Imported 2 subscriber(s) from router Core CCR" in done.content.decode()
    with tenant_context(alpha.isp):
        assert Plan.objects.get(name="10M").price == Decimal("2500.00")
        assert Plan.objects.get(name="20M").price == Decimal("4000.00")
        john = ServiceAccount.objects.select_related("customer").get(username="john")
        assert (john.customer.name, john.customer.phone) == ("John Otieno", "254722000111")
        assert john.router == router

    again = client.get(url).content.decode()
    assert "already imported" in again
    assert "Nothing new to import" in again


def test_a_bad_price_is_shown_on_its_field_and_nothing_is_imported(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M"})
    emulator.add_row("/ppp/secret", name="jane", password="x", profile="10M", service="pppoe")
    client = alpha.client(alpha.admin)
    page = client.post(f"/routers/{router.pk}/import/", {"action": "import", "price:10M": "lots"})
    assert page.status_code == 200
    assert "price &#x27;lots&#x27; is not a number" in page.content.decode()
    with tenant_context(alpha.isp):
        assert not ServiceAccount.objects.filter(username="jane").exists()


def test_an_import_posted_despite_problems_writes_nothing_and_lists_them(alpha, router, emulator):
    seed_profiles(emulator, {"10M": "5M/10M"})
    emulator.add_row("/ppp/secret", name="jane", password="x", profile="10M", service="pppoe")
    emulator.add_row("/ppp/secret", name="vpn1", password="v", profile="10M", service="sstp")
    page = alpha.client(alpha.owner).post(f"/routers/{router.pk}/import/", {"action": "import"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 problem(s) on router Core CCR; nothing imported." in html
    assert "service sstp is not supported" in html
    with tenant_context(alpha.isp):
        assert not ServiceAccount.objects.filter(router=router).exists()
        assert not Plan.objects.filter(name="10M").exists()


def test_a_profile_without_rate_limit_is_mapped_to_a_plan_on_the_page(alpha, router, emulator):
    seed_profiles(emulator, {"office": ""})
    emulator.add_row("/ppp/secret", name="boss", password="y", profile="office", service="pppoe")
    with tenant_context(alpha.isp):
        plan = Plan.objects.create(
            name="Office 50M", price="9000", download_kbps=50_000, upload_kbps=50_000
        )
    client = alpha.client(alpha.owner)
    url = f"/routers/{router.pk}/import/"

    html = client.get(url).content.decode()
    assert "profile office has no rate-limit" in html
    assert 'name="map:pppoe:office"' in html

    checked = client.post(url, {"action": "check", "map:pppoe:office": str(plan.pk)})
    assert checked.status_code == 200
    assert not checked.context["errors"]
    assert f'value="{plan.pk}" selected' in checked.content.decode()

    done = client.post(url, {"action": "import", "map:pppoe:office": str(plan.pk)})
    assert done.status_code == 200
    with tenant_context(alpha.isp):
        assert ServiceAccount.objects.get(username="boss").plan == plan


def test_the_preview_of_a_big_router_shows_200_rows_and_every_count(alpha, big_router):
    client = alpha.client(alpha.owner)
    started = time.monotonic()
    page = client.get(f"/routers/{big_router.pk}/import/")
    took = time.monotonic() - started
    print(f"\npreview of 1,000 secrets rendered in {took:.2f} s")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<td class="item primary"') == 200
    assert "The first 200 of 1000." in html
    assert page.context["preview"].by_status == {"active": 900, "suspended": 100}


def test_an_unreachable_router_shows_its_error_as_a_message(alpha):
    port = free_port()
    with tenant_context(alpha.isp):
        router = add_router(
            actor="test", name="Far", host="127.0.0.1", port=port, username="a", password="b"
        )
    page = alpha.client(alpha.owner).get(f"/routers/{router.pk}/import/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Far (127.0.0.1:{port}) cannot be reached" in html
    assert "New plans" not in html and "<table" not in html


def test_a_wrong_api_password_shows_the_login_message(alpha, emulator):
    with tenant_context(alpha.isp):
        router = make_router(emulator, name="Edge", password="nope")
    page = alpha.client(alpha.owner).get(f"/routers/{router.pk}/import/")
    assert page.status_code == 200
    assert "wrong username or password" in page.content.decode()


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.FINANCE, Role.TECHNICIAN])
def test_only_owners_and_admins_may_import(alpha, role):
    with tenant_context(alpha.isp):
        router = add_router(
            actor="test", name="Core", host="127.0.0.1", port=1, username="a", password="b"
        )
    client = alpha.client(alpha.people[role])
    url = f"/routers/{router.pk}/import/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "import"}).status_code == 403


def test_another_isps_router_cannot_be_imported(alpha, beta):
    with tenant_context(alpha.isp):
        router = add_router(
            actor="test", name="Core", host="127.0.0.1", port=1, username="a", password="b"
        )
    assert beta.client(beta.owner).get(f"/routers/{router.pk}/import/").status_code == 404
