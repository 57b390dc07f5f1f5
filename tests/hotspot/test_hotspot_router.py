"""The hotspot on the router, with the real librouteros client against the RouterOS
emulator over TCP: login over the API, package profiles, users with their guard, the
walled garden (a second sync writes nothing), the end of an entitlement (user, session
and cookie gone) and a queued one taking over without cutting the device."""

from datetime import timedelta

import pytest
from django.utils import timezone
from librouteros import connect
from librouteros.exceptions import TrapError

from hotspot import entitlements, router
from hotspot.models import Entitlement, HotspotSettings, Package
from network.emulator import RouterOSEmulator
from network.services import add_router

USER, PASSWORD = "admin", "hs-router-pass"
MAC = "AA:BB:CC:00:00:01"


@pytest.fixture
def emulator():
    with RouterOSEmulator(users={USER: PASSWORD}) as emu:
        yield emu


@pytest.fixture
def hs_router(in_alpha, emulator):
    return add_router(
        actor="test",
        name="hotspot-test",
        host="127.0.0.1",
        port=emulator.port,
        username=USER,
        password=PASSWORD,
    )


@pytest.fixture
def hour(in_alpha):
    return Package.objects.create(
        name="Hour 1 GB",
        price="20.00",
        validity_minutes=60,
        data_limit_bytes=10**9,
        download_kbps=2000,
        upload_kbps=1000,
        devices=2,
        idle_timeout_minutes=5,
        mac_cookie_hours=24,
    )


@pytest.fixture
def day(in_alpha):
    return Package.objects.create(
        name="Day", price="50.00", validity_minutes=24 * 60, download_kbps=5000, upload_kbps=5000
    )


def rows(emulator, path, **where):
    return [r for r in emulator.rows(path) if all(r.get(k) == v for k, v in where.items())]


def give(hs_router, package, login="guest1", now=None, **kw):
    return entitlements.grant(
        router=hs_router,
        package=package,
        source="staff",
        login=login,
        password="pw-" + login,
        now=now or timezone.now(),
        actor="test",
        **kw,
    )


# --- the emulator's hotspot login ---------------------------------------------------------


def test_active_login_over_the_api_creates_a_session_for_the_mac(emulator):
    api = connect("127.0.0.1", USER, PASSWORD, port=emulator.port)
    api.path("ip", "hotspot", "user", "profile").add(name="two", **{"shared-users": "1"})
    api.path("ip", "hotspot", "user").add(name="amina", password="s3", profile="two")
    with pytest.raises(TrapError, match="invalid username or password"):
        list(api.rawCmd("/ip/hotspot/active/login", "=user=amina", "=password=no",
                        "=ip=10.5.50.7", f"=mac-address={MAC}"))  # fmt: skip
    reply = list(api.rawCmd("/ip/hotspot/active/login", "=user=amina", "=password=s3",
                            "=ip=10.5.50.7", f"=mac-address={MAC.lower()}"))  # fmt: skip
    (session,) = api.path("ip", "hotspot", "active")
    assert reply[0]["ret"] == session[".id"]
    assert (session["user"], session["mac-address"], session["address"]) == (
        "amina", MAC, "10.5.50.7",
    )  # fmt: skip
    (cookie,) = api.path("ip", "hotspot", "cookie")
    assert (cookie["user"], cookie["mac-address"]) == ("amina", MAC)
    # Posting twice from the same device is one session; another device is over the
    # profile's shared-users.
    list(api.rawCmd("/ip/hotspot/active/login", "=user=amina", "=password=s3",
                    "=ip=10.5.50.7", f"=mac-address={MAC}"))  # fmt: skip
    assert len(list(api.path("ip", "hotspot", "active"))) == 1
    with pytest.raises(TrapError, match="no more sessions are allowed"):
        list(api.rawCmd("/ip/hotspot/active/login", "=user=amina", "=password=s3",
                        "=ip=10.5.50.8", "=mac-address=AA:BB:CC:00:00:02"))  # fmt: skip
    api.close()


def test_the_emulator_cuts_a_session_at_the_users_byte_limit_and_refuses_it_again(emulator):
    emulator.add_row("/ip/hotspot/user", name="capped", password="x", limit_bytes_total=50_000)
    emulator.hotspot.login("capped", mac=MAC)
    emulator.hotspot.set_rate("capped", 400_000, 400_000)  # 100 kB/s in total
    import time

    time.sleep(0.7)
    assert rows(emulator, "/ip/hotspot/active") == []
    (user,) = rows(emulator, "/ip/hotspot/user", name="capped")
    assert int(user["bytes-in"]) + int(user["bytes-out"]) == 50_000
    with pytest.raises(Exception, match="reached traffic limit"):
        emulator.hotspot.login("capped", mac=MAC)


# --- profiles and users ---------------------------------------------------------------------


def test_a_grant_puts_the_profile_and_a_guarded_user_on_the_router(hs_router, emulator, hour):
    now = timezone.now()
    entitlement = give(hs_router, hour, now=now)
    assert router.push(hs_router.pk) == "1 logins pushed, 0 refused"
    (profile,) = rows(emulator, "/ip/hotspot/user/profile", name=hour.profile_name)
    assert profile["rate-limit"] == "1M/2M"  # the router's view: client upload / download
    assert profile["shared-users"] == "2" and profile["idle-timeout"] == "5m"
    assert (profile["add-mac-cookie"], profile["mac-cookie-timeout"]) == ("true", "1d")
    (user,) = rows(emulator, "/ip/hotspot/user", name="guest1")
    assert user["profile"] == hour.profile_name and user["password"] == "pw-guest1"
    assert user["comment"] == f"ispops-hs:{entitlement.pk}"
    assert user["limit-bytes-total"] == str(10**9)
    # An hour for each of the two devices the package allows.
    assert user["limit-uptime"] == "2h"
    entitlement.refresh_from_db()
    assert entitlement.router_pending is False and entitlement.router_error == ""
    assert router.push(hs_router.pk) == "0 logins pushed, 0 refused"  # nothing claimed
    assert router.sync_router(hs_router)["writes"] == 2  # the walled garden, first time
    assert router.sync_router(hs_router) == {"writes": 0, "changes": []}


def test_an_extension_moves_the_guard_on_the_router(hs_router, emulator, hour):
    now = timezone.now()
    give(hs_router, hour, now=now)
    router.push(hs_router.pk)
    give(hs_router, hour, now=now)  # the same package: time and data added
    router.push(hs_router.pk)
    (user,) = rows(emulator, "/ip/hotspot/user", name="guest1")
    assert user["limit-bytes-total"] == str(2 * 10**9)
    assert user["limit-uptime"] == "4h"


def test_the_end_removes_the_user_its_session_and_its_cookie(hs_router, emulator, hour):
    entitlement = give(hs_router, hour)
    router.push(hs_router.pk)
    assert router.login_device(entitlement, "10.5.50.20", MAC) is True
    assert rows(emulator, "/ip/hotspot/active", user="guest1")
    assert rows(emulator, "/ip/hotspot/cookie", user="guest1")
    entitlements.end(entitlement, reason="revoked", now=timezone.now())
    router.push(hs_router.pk)
    assert rows(emulator, "/ip/hotspot/user", name="guest1") == []
    assert rows(emulator, "/ip/hotspot/active", user="guest1") == []
    assert rows(emulator, "/ip/hotspot/cookie", user="guest1") == []
    # The device cannot come back by its cookie either.
    with pytest.raises(Exception, match="no cookie"):
        emulator.hotspot.cookie_login(MAC)


def test_a_queued_package_takes_over_the_login_without_cutting_the_device(
    hs_router, emulator, hour, day
):
    first = give(hs_router, hour)
    queued = give(hs_router, day)
    assert queued.state == Entitlement.State.QUEUED
    router.push(hs_router.pk)
    assert router.login_device(first, "10.5.50.21", MAC)
    after = entitlements.end(first, reason="expired", now=timezone.now())
    assert after.pk == queued.pk and after.state == Entitlement.State.LIVE
    router.push(hs_router.pk)
    (user,) = rows(emulator, "/ip/hotspot/user", name="guest1")
    assert user["profile"] == day.profile_name and user["comment"] == f"ispops-hs:{queued.pk}"
    assert rows(emulator, "/ip/hotspot/active", user="guest1")  # still online
    after.refresh_from_db()
    # Its usage counts from the counters the router had when it took over.
    assert after.usage_seen["sessions"] and after.guard_seconds


def test_login_over_the_api_writes_the_user_first_and_starts_a_first_login_package(
    hs_router, emulator, in_alpha
):
    package = Package.objects.create(
        name="Week from first login",
        price="300.00",
        validity_minutes=7 * 24 * 60,
        starts=Package.Starts.FIRST_LOGIN,
        download_kbps=3000,
        upload_kbps=1000,
    )
    entitlement = give(hs_router, package, login="0712000111")
    assert entitlement.starts_at is None
    # No push yet (the worker is slower than the page): login_device writes the user.
    assert router.login_device(entitlement, "10.5.50.30", MAC) is True
    (session,) = rows(emulator, "/ip/hotspot/active", user="0712000111")
    assert session["mac-address"] == MAC and session["address"] == "10.5.50.30"
    entitlement.refresh_from_db()
    assert entitlement.starts_at is not None
    assert entitlement.ends_at - entitlement.starts_at == timedelta(days=7)


def test_login_over_the_api_with_a_queued_entitlement_logs_in_as_the_live_one(
    hs_router, emulator, hour, day
):
    give(hs_router, hour)
    queued = give(hs_router, day)  # another package: queued on the same login
    assert router.login_device(queued, "10.5.50.32", MAC) is True
    (session,) = rows(emulator, "/ip/hotspot/active", user="guest1")
    assert session["mac-address"] == MAC


def test_login_over_the_api_of_an_ended_entitlement_is_refused(hs_router, emulator, hour):
    entitlement = give(hs_router, hour)
    entitlements.end(entitlement, reason="revoked", now=timezone.now())
    assert router.login_device(entitlement, "10.5.50.31", MAC) is False
    assert rows(emulator, "/ip/hotspot/active") == []


def test_an_unreachable_router_leaves_the_login_pending_for_a_retry(hs_router, emulator, hour):
    entitlement = give(hs_router, hour)
    emulator.go_down()
    assert router.push(hs_router.pk).startswith("router unavailable")
    entitlement.refresh_from_db()
    assert entitlement.router_pending and entitlement.router_next_at > timezone.now()
    emulator.come_up()
    Entitlement.objects.filter(pk=entitlement.pk).update(router_next_at=timezone.now())
    assert router.push(hs_router.pk) == "1 logins pushed, 0 refused"
    assert rows(emulator, "/ip/hotspot/user", name="guest1")


def test_a_claimed_login_stays_pending_until_the_router_holds_it(hs_router, emulator, hour):
    """The captive page sends the phone to the router's login form once the login is not
    pending: a claim alone (a worker still writing it) must not say so."""
    entitlement = give(hs_router, hour)
    claimed, lease = router._claim(hs_router.pk, timezone.now())
    assert claimed == {"guest1": [entitlement.pk]}
    entitlement.refresh_from_db()
    assert entitlement.router_pending and entitlement.router_next_at == lease
    assert router._claim(hs_router.pk, timezone.now())[0] == {}  # leased: nobody else
    router._applied([entitlement.pk], lease)
    entitlement.refresh_from_db()
    assert not entitlement.router_pending


def test_a_login_changed_while_it_was_written_is_pushed_again(hs_router, emulator, hour):
    entitlement = give(hs_router, hour)
    claimed, lease = router._claim(hs_router.pk, timezone.now())
    # An extension lands while the worker writes the first version.
    give(hs_router, hour)
    router._applied(claimed["guest1"], lease)
    entitlement.refresh_from_db()
    assert entitlement.router_pending  # the sweep pushes the extension too
    assert router.push(hs_router.pk) == "1 logins pushed, 0 refused"
    entitlement.refresh_from_db()
    assert not entitlement.router_pending and entitlement.minutes == 120


# --- the walled garden ------------------------------------------------------------------------


def test_the_walled_garden_on_the_router_is_the_generated_one_and_a_second_sync_writes_nothing(
    hs_router, emulator
):
    cfg = HotspotSettings.load()
    cfg.walled_garden_hosts = "help.alpha-wifi.example\n\nCDN.alpha.example\n"
    cfg.save()
    # The operator's own entry stays; a stale one of ours goes.
    emulator.add_row("/ip/hotspot/walled-garden", **{"dst-host": "operator.example"})
    emulator.add_row(
        "/ip/hotspot/walled-garden",
        **{"dst-host": "old.example", "comment": router.WALLED_COMMENT},
    )
    result = router.sync_router(hs_router)
    assert "walled garden" in result["changes"]
    expected = router.walled_garden()
    assert ("alpha.localhost", "allow") in expected[router.WALLED]
    assert ("cdn.alpha.example", "allow") in expected[router.WALLED_IP]
    for menu, action in ((router.WALLED, "allow"), (router.WALLED_IP, "allow")):
        ours = {
            (r["dst-host"], r["action"])
            for r in emulator.rows(menu)
            if r.get("comment") == router.WALLED_COMMENT
        }
        assert ours == expected[menu]
        assert {a for _, a in ours} == {action}
    assert rows(emulator, router.WALLED, **{"dst-host": "operator.example"})
    assert not rows(emulator, router.WALLED, **{"dst-host": "old.example"})
    writes_before = len(emulator.commands)
    assert router.sync_router(hs_router) == {"writes": 0, "changes": []}
    verbs = [verb for _, verb in emulator.commands[writes_before:]]
    assert not {"add", "set", "remove"} & set(verbs)


# --- MAC bypass -------------------------------------------------------------------------------


def test_a_bypassed_device_gets_a_binding_until_its_end(hs_router, emulator):
    import time_machine

    from hotspot import tasks

    emulator.add_row("/ip/hotspot/ip-binding", mac_address="AA:BB:CC:00:00:77", type="blocked")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        bypass = entitlements.add_bypass(
            router=hs_router, mac="aa-bb-cc-00-00-42", minutes=60, note="lobby TV",
            actor="test", now=start,
        )  # fmt: skip
        assert bypass.mac == "AA:BB:CC:00:00:42"
        assert "1 bypasses pushed" in router.push(hs_router.pk)
        (binding,) = rows(emulator, "/ip/hotspot/ip-binding", **{"mac-address": bypass.mac})
        assert binding["type"] == "bypassed"
        assert binding["comment"] == f"{router.BYPASS_PREFIX}{bypass.pk}"
        # Bought again: the time is added to the same binding.
        again = entitlements.add_bypass(
            router=hs_router, mac="AA:BB:CC:00:00:42", minutes=60, actor="test", now=start
        )
        assert again.pk == bypass.pk and again.ends_at == start + timedelta(hours=2)
        router.sync_router(hs_router)
        assert router.sync_router(hs_router) == {"writes": 0, "changes": []}
        clock.shift(2 * 3600 + 1)
        tasks.enforce_entitlements()
    assert rows(emulator, "/ip/hotspot/ip-binding", **{"mac-address": bypass.mac}) == []
    # The operator's own binding is not ours to touch.
    assert rows(emulator, "/ip/hotspot/ip-binding", **{"mac-address": "AA:BB:CC:00:00:77"})
    bypass.refresh_from_db()
    assert bypass.state == "ended"


def test_a_bypass_needs_a_mac(hs_router):
    with pytest.raises(entitlements.Refused, match="not a MAC address"):
        entitlements.add_bypass(
            router=hs_router, mac="not-a-mac", minutes=None, actor="test", now=timezone.now()
        )
