"""Provisioning through router jobs, with the real librouteros client against the
RouterOS emulator over TCP: activation, suspension, restoration, idempotence, retries,
drift, and refusals."""

import time
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from network import provisioning, routeros, services
from network.models import DriftItem, Router, RouterJob
from subscribers import services as subscribers
from subscribers.models import Plan, ServiceAccount

LIST = "ispops-suspended"


@pytest.fixture
def plan(in_alpha):
    return Plan.objects.create(
        name="Fibre 20M", price="3500.00", download_kbps=20_000, upload_kbps=10_000
    )


def make_account(router, plan, *, username="wanjiku", status="installing", static_ip=None):
    customer = subscribers.create_customer(
        actor="test", name=f"Cust {username}", phone="0712345678"
    )
    return subscribers.create_service_account(
        actor="test",
        customer=customer,
        plan=plan,
        username=username,
        password="s3cret",
        router=router,
        status=status,
        static_ip=static_ip,
    )


def secret(emulator, name):
    rows = [r for r in emulator.rows("/ppp/secret") if r.get("name") == name]
    return rows[0] if rows else None


def listed(emulator, address):
    return [
        r
        for r in emulator.rows("/ip/firewall/address-list")
        if r.get("list") == LIST and r.get("address") == address
    ]


def run(router):
    return services.run_jobs(router.pk)


def test_activation_creates_the_secret_with_the_plans_profile(router, plan, emulator):
    account = make_account(router, plan)
    subscribers.activate(account, actor="test")
    job = RouterJob.objects.get(service_account=account)
    assert job.action == "provision" and job.state == "pending"
    assert run(router) == "1 done, 0 refused"
    row = secret(emulator, "wanjiku")
    assert row["profile"] == "Fibre 20M" and row["password"] == "s3cret"
    assert row["service"] == "pppoe" and row["disabled"] == "false"
    profile = next(p for p in emulator.rows("/ppp/profile") if p["name"] == "Fibre 20M")
    assert profile["rate-limit"] == "10M/20M"  # router's view: client upload / download
    job.refresh_from_db()
    assert job.state == "done" and "created" in job.result


def test_suspension_disables_drops_the_session_and_lists_the_address(router, plan, emulator):
    account = make_account(router, plan, status="active")
    services.queue_account(account, actor="t")
    run(router)
    emulator.dial_in("wanjiku", address="10.64.0.7")
    assert "wanjiku" in emulator.active_names()

    subscribers.change_status(account, "suspended", actor="test", reason="Unpaid")
    run(router)
    assert secret(emulator, "wanjiku")["disabled"] == "true"
    assert "wanjiku" not in emulator.active_names()
    assert len(listed(emulator, "10.64.0.7")) == 1

    subscribers.change_status(account, "active", actor="test", reason="Paid")
    run(router)
    assert secret(emulator, "wanjiku")["disabled"] == "false"
    assert listed(emulator, "10.64.0.7") == []


def test_static_ip_account_is_listed_even_when_offline(router, plan, emulator):
    account = make_account(router, plan, username="shop1", status="active", static_ip="10.80.0.5")
    services.queue_account(account, actor="t")
    run(router)
    assert secret(emulator, "shop1")["remote-address"] == "10.80.0.5"
    subscribers.change_status(account, "suspended", actor="test", reason="Unpaid")
    run(router)
    assert len(listed(emulator, "10.80.0.5")) == 1


def test_a_second_sync_changes_nothing(router, plan, emulator):
    for name in ("a1", "a2", "a3"):
        account = make_account(router, plan, username=name)
        subscribers.activate(account, actor="test")
    run(router)
    services.sync_router(router, actor="test")  # the first one writes the walled garden
    emulator.commands.clear()
    report, outcomes = services.sync_router(router, actor="test")
    assert report.items == []
    assert all(not o.changes for o in outcomes.values())
    writes = [c for c in emulator.commands if c[1] in ("add", "set", "remove")]
    assert writes == []


def test_termination_removes_what_we_made(router, plan, emulator):
    account = make_account(router, plan, status="active")
    services.queue_account(account, actor="t")
    run(router)
    subscribers.change_status(account, "terminated", actor="test", reason="Moved")
    run(router)
    assert secret(emulator, "wanjiku") is None


def test_a_router_that_is_down_is_retried_and_converges_once_up(router, plan, emulator):
    account = make_account(router, plan)
    subscribers.activate(account, actor="test")
    emulator.go_down()
    result = run(router)
    assert "unavailable" in result
    job = RouterJob.objects.get(service_account=account)
    assert job.state == "retry" and job.attempts == 1
    assert "cannot be reached" in job.last_error
    assert job.next_attempt_at > timezone.now()
    router.refresh_from_db()
    assert router.status == Router.Status.OFFLINE
    # Not due yet: nothing is tried before the backoff has passed.
    assert run(router) == "nothing due"
    with time_machine.travel(timezone.now() + services.backoff(1), tick=False):
        emulator.come_up()
        assert run(router) == "1 done, 0 refused"
    job.refresh_from_db()
    assert job.state == "done" and job.attempts == 2
    assert secret(emulator, "wanjiku")["profile"] == "Fibre 20M"


def test_backoff_grows_and_is_capped():
    assert [services.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [15, 30, 60, 120]
    assert services.backoff(50).total_seconds() == 1800


def test_the_sweep_requeues_jobs_whose_worker_died(router, plan):
    account = make_account(router, plan)
    subscribers.activate(account, actor="test")
    RouterJob.objects.filter(service_account=account).update(
        state="running", started_at=timezone.now() - services.STUCK_AFTER * 2
    )
    services.sweep_jobs()
    job = RouterJob.objects.get(service_account=account)
    assert job.state == "retry" and "stopped" in job.last_error


def test_drift_finds_an_unbilled_secret_and_a_missing_one(router, plan, emulator):
    paying = make_account(router, plan, username="payer", status="active")
    services.queue_account(paying, actor="t")
    run(router)
    emulator.add_row("/ppp/secret", name="freeloader", password="x", profile="Fibre 20M")
    missing = make_account(router, plan, username="notyet", status="active")
    report = services.check_drift(router)
    kinds = {(i.kind, i.username) for i in report.items}
    assert (DriftItem.Kind.UNBILLED, "freeloader") in kinds
    assert (DriftItem.Kind.MISSING, "notyet") in kinds
    unbilled = next(i for i in report.items if i.username == "freeloader")
    assert unbilled.monthly_value == Decimal("3500.00")
    assert DriftItem.objects.filter(router=router).count() == len(report.items)
    services.fix_drift(router, actor="test")
    assert secret(emulator, "notyet") is not None
    assert secret(emulator, "freeloader")["disabled"] == "true"
    assert not DriftItem.objects.filter(router=router).exists()
    assert missing.pk


def test_drift_leaves_the_hotspot_business_logins_alone(router, plan, emulator):
    """A hotspot login ispops sold (comment ispops-hs:<entitlement>) is paid for: drift
    must neither call it unbilled nor disable it when fixing."""
    emulator.add_row("/ip/hotspot/user", name="0712345601", password="x", comment="ispops-hs:7")
    emulator.add_row("/ip/hotspot/user", name="walkin", password="x")
    report = services.check_drift(router)
    assert {i.username for i in report.items} == {"walkin"}
    services.fix_drift(router, actor="test")
    rows = {r["name"]: r for r in emulator.rows("/ip/hotspot/user")}
    assert rows["0712345601"].get("disabled") != "true"
    assert rows["walkin"]["disabled"] == "true"


def test_drift_sees_wrong_profile_and_state(router, plan, emulator):
    other = Plan.objects.create(name="Home 5M", price=1500, download_kbps=5000, upload_kbps=2000)
    account = make_account(router, plan, username="mover", status="active")
    services.queue_account(account, actor="t")
    run(router)
    emulator.add_row("/ppp/profile", name="Home 5M", **{"rate-limit": "2M/5M"})
    row = secret(emulator, "mover")
    with routeros.connect(router) as api:
        api.path("ppp", "secret").update(
            **{".id": row[".id"], "profile": "Home 5M", "disabled": True}
        )
    report = services.check_drift(router)
    assert {i.kind for i in report.items} == {
        DriftItem.Kind.WRONG_PROFILE,
        DriftItem.Kind.WRONG_STATE,
    }
    assert other.pk


def test_wrong_router_password_is_reported_clearly(router, plan, emulator):
    router.password = "not-it"
    router.save(update_fields=["password"])
    with (
        pytest.raises(routeros.RouterLoginFailed, match="wrong username or password"),
        routeros.connect(router),
    ):
        pass
    account = make_account(router, plan)
    subscribers.activate(account, actor="test")
    run(router)
    job = RouterJob.objects.get(service_account=account)
    assert job.state == "retry" and "wrong username or password" in job.last_error


def test_add_router_refuses_duplicates_and_unreachable_hosts(in_alpha, emulator):
    services.add_router(
        actor="t",
        name="edge",
        host="127.0.0.1",
        port=emulator.port,
        username="admin",
        password="router-pass-1",
        check_connection=True,
    )
    with pytest.raises(services.RouterError, match="already exists"):
        services.add_router(
            actor="t",
            name="EDGE",
            host="127.0.0.1",
            port=emulator.port,
            username="admin",
            password="x",
        )
    emulator.go_down()
    with pytest.raises(services.RouterError, match="cannot be reached"):
        services.add_router(
            actor="t",
            name="edge2",
            host="127.0.0.1",
            port=emulator.port,
            username="admin",
            password="router-pass-1",
            check_connection=True,
        )
    assert not Router.objects.filter(name="edge2").exists()


def test_add_router_command_checks_the_login(in_alpha, emulator):
    with pytest.raises(CommandError, match="wrong username or password"):
        call_command(
            "add_router",
            "--schema",
            "alpha",
            "--name",
            "bad",
            "--host",
            "127.0.0.1",
            "--port",
            str(emulator.port),
            "--username",
            "admin",
            "--password",
            "nope",
        )
    assert not Router.objects.filter(name="bad").exists()


def test_sync_router_command_reports_drift(router, plan, emulator, capsys):
    emulator.add_row("/ppp/secret", name="ghost", password="x")
    make_account(router, plan, username="paid1", status="active")
    call_command("sync_router", "--schema", "alpha", "core-test")
    out = capsys.readouterr().out
    assert "ghost" in out and "paid1" in out
    assert "1 on the router, not billed" in out and "1 paid, missing on the router" in out
    assert secret(emulator, "paid1") is not None


def test_sync_router_of_an_unknown_router_is_one_line(in_alpha):
    with pytest.raises(CommandError, match="no router named 'nope'"):
        call_command("sync_router", "--schema", "alpha", "nope")


def test_many_changes_go_over_one_connection(router, plan, emulator):
    for n in range(60):
        subscribers.activate(make_account(router, plan, username=f"bulk{n}"), actor="t")
    started = time.perf_counter()
    assert run(router) == "60 done, 0 refused"
    logins = [c for c in emulator.commands if c == ("/", "login") or c[0] == "/login"]
    assert len(logins) <= 1, logins
    assert len(emulator.rows("/ppp/secret")) == 60
    assert time.perf_counter() - started < 30


def test_desired_fields_follow_status(plan, in_alpha):
    account = ServiceAccount(
        pk=7, username="u", password="p", plan=plan, service="pppoe", status="suspended"
    )
    account.customer = subscribers.create_customer(actor="t", name="X", phone="0712000111")
    assert provisioning.desired_fields(account)["disabled"] == "true"
    assert provisioning.should_exist(account)
    account.status = "lead"
    assert not provisioning.should_exist(account)


def test_hotspot_and_static_accounts_get_their_own_items(router, emulator):
    hotspot = Plan.objects.create(
        name="Daily 3M",
        price=50,
        cycle="daily",
        service="hotspot",
        download_kbps=3000,
        upload_kbps=1000,
    )
    static = Plan.objects.create(
        name="Biz 50M", price=12000, service="static", download_kbps=50_000, upload_kbps=25_000
    )
    user = make_account(router, hotspot, username="hs-user", status="active")
    shop = make_account(router, static, username="", status="active", static_ip="10.90.0.9")
    services.queue_account(user, actor="t")
    services.queue_account(shop, actor="t")
    assert run(router) == "2 done, 0 refused"
    hs = next(r for r in emulator.rows("/ip/hotspot/user") if r["name"] == "hs-user")
    assert hs["profile"] == "Daily 3M"
    hs_profile = next(
        r for r in emulator.rows("/ip/hotspot/user/profile") if r["name"] == "Daily 3M"
    )
    assert hs_profile["rate-limit"] == "1M/3M"
    queue = next(r for r in emulator.rows("/queue/simple") if r["name"] == f"ispops-{shop.pk}")
    assert queue["target"].startswith("10.90.0.9")
    assert queue["max-limit"] == "25000000/50000000"
    subscribers.change_status(user, "suspended", actor="t", reason="Unpaid")
    run(router)
    hs = next(r for r in emulator.rows("/ip/hotspot/user") if r["name"] == "hs-user")
    assert hs["disabled"] == "true"


def test_a_tls_router_is_reached_over_api_ssl(in_alpha, plan):
    from network.emulator import RouterOSEmulator

    with RouterOSEmulator(port=0, tls_port=0, users={"admin": "tls-pass"}) as emu:
        tls_router = services.add_router(
            actor="t",
            name="tls",
            host="127.0.0.1",
            port=emu.tls_port,
            username="admin",
            password="tls-pass",
            use_tls=True,
            check_connection=True,
        )
        account = make_account(tls_router, plan, username="over-tls")
        subscribers.activate(account, actor="t")
        assert run(tls_router) == "1 done, 0 refused"
        assert any(r["name"] == "over-tls" for r in emu.rows("/ppp/secret"))


def test_moving_an_account_to_another_router_removes_it_from_the_first(router, plan, emulator):
    from network.emulator import RouterOSEmulator

    account = make_account(router, plan, username="mover2", status="active")
    services.queue_account(account, actor="t")
    run(router)
    with RouterOSEmulator(port=0, users={"admin": "pw2"}) as second_emu:
        second = services.add_router(
            actor="t",
            name="second",
            host="127.0.0.1",
            port=second_emu.port,
            username="admin",
            password="pw2",
        )
        subscribers.update_service_account(
            account, actor="t", username="mover2", password="", router=second
        )
        run(router)
        run(second)
        assert secret(emulator, "mover2") is None
        assert any(r["name"] == "mover2" for r in second_emu.rows("/ppp/secret"))
