"""Enforcement and usage against the RouterOS emulator over TCP, on a frozen clock that
the emulator shares: an expired entitlement leaves the router within a minute, a session
crossing its data limit is cut within two polls (and the buyer told at 80 % and 100 %),
and counters that restart (reconnection, reboot) lose no usage."""

import pytest
import time_machine
from django.utils import timezone

from hotspot import entitlements, router, tasks, usage
from hotspot.models import Package
from ispops.messaging.models import Message
from network.emulator import RouterOSEmulator
from network.services import add_router

USER, PASSWORD = "admin", "hs-usage-pass"
MAC = "AA:BB:CC:00:00:09"
START = timezone.make_aware(timezone.datetime(2026, 7, 1, 12, 0))
MB = 10**6


@pytest.fixture
def emulator():
    with RouterOSEmulator(users={USER: PASSWORD}) as emu:
        yield emu


@pytest.fixture
def hs_router(in_alpha, emulator):
    return add_router(
        actor="test",
        name="hotspot-usage",
        host="127.0.0.1",
        port=emulator.port,
        username=USER,
        password=PASSWORD,
    )


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def package(name, minutes, data=None, devices=1):
    return Package.objects.create(
        name=name,
        price="20.00",
        validity_minutes=minutes,
        data_limit_bytes=data,
        download_kbps=2000,
        upload_kbps=1000,
        devices=devices,
    )


def online(hs_router, emulator, pack, *, login="0712000222", phone="", bps=800_000):
    """Granted, pushed, and the device logged in over the API, its traffic `bps` each
    way (200 kB/s in total by default)."""
    entitlement = entitlements.grant(
        router=hs_router, package=pack, source="purchase", login=login, password="pw",
        phone=phone, now=timezone.now(), actor="test",
    )  # fmt: skip
    router.push(hs_router.pk)
    assert router.login_device(entitlement, "10.5.50.40", MAC)
    emulator.hotspot.set_rate(login, bps, bps)
    return entitlement


def rows(emulator, path, **where):
    return [r for r in emulator.rows(path) if all(r.get(k) == v for k, v in where.items())]


def used(entitlement) -> int:
    entitlement.refresh_from_db()
    return entitlement.used_bytes


# --- deltas ---------------------------------------------------------------------------------


def test_deltas_count_continuing_new_and_ended_sessions_once():
    seen = {"user": 0, "sessions": {"*1": [5 * MB, 1000]}}
    # *1 went on to 7 MB: 2 MB more.
    assert usage.deltas(seen, 0, {"*1": [7 * MB, 1000]})[0] == 2 * MB
    # *1 logged out at 8 MB (its 8 MB now on the user), *2 is new with 1 MB: 3 + 1.
    delta, after = usage.deltas(seen, 8 * MB, {"*2": [MB, 1500]})
    assert delta == 4 * MB and after == {"user": 8 * MB, "sessions": {"*2": [MB, 1500]}}
    # After a reboot *1 is a new session (it began later) even with more bytes.
    assert usage.deltas(seen, 0, {"*1": [9 * MB, 1400]})[0] == 9 * MB
    # A session that vanished without reaching the user (reboot): nothing goes back.
    assert usage.deltas(seen, 0, {})[0] == 0
    # A user re-created (its total went down) counts from zero.
    assert usage.deltas({"user": 50 * MB, "sessions": {}}, 3 * MB, {})[0] == 3 * MB


# --- expiry ---------------------------------------------------------------------------------


def test_an_expired_entitlement_disappears_from_the_router_within_60_seconds(
    hs_router, emulator, clock
):
    # Two devices: the router's own guard (twice the time) is not what removes it.
    entitlement = online(hs_router, emulator, package("Ten minutes", 10, devices=2))
    assert rows(emulator, "/ip/hotspot/user", name="0712000222")
    clock.shift(10 * 60 - 1)
    tasks.enforce_entitlements()
    assert rows(emulator, "/ip/hotspot/active", user="0712000222")  # not yet
    clock.shift(30)  # the next beat, 29 s after the end
    tasks.enforce_entitlements()
    entitlement.refresh_from_db()
    assert (entitlement.state, entitlement.end_reason) == ("ended", "expired")
    assert rows(emulator, "/ip/hotspot/user", name="0712000222") == []
    assert rows(emulator, "/ip/hotspot/active", user="0712000222") == []
    assert rows(emulator, "/ip/hotspot/cookie", user="0712000222") == []


def test_the_router_guard_cuts_the_session_when_ispops_is_not_looking(hs_router, emulator, clock):
    online(hs_router, emulator, package("Five minutes", 5))
    clock.shift(5 * 60 + 1)
    assert rows(emulator, "/ip/hotspot/active") == []  # limit-uptime, on the router alone


# --- the data limit -----------------------------------------------------------------------------


def test_a_session_crossing_its_data_limit_is_cut_within_two_polls(hs_router, emulator, clock):
    entitlement = online(
        hs_router, emulator, package("Ten MB", 60, data=10 * MB), phone="254712000222",
        bps=400_000,  # 100 kB/s in total: the limit is reached at 100 s
    )  # fmt: skip
    # The router lost its guard (an operator's edit): only ispops stands in the way.
    (user,) = rows(emulator, "/ip/hotspot/user", name="0712000222")
    emulator.set_row("/ip/hotspot/user", user[".id"], limit_bytes_total="0")
    clock.shift(60)
    usage.poll(hs_router)
    assert used(entitlement) == 6 * MB
    assert not Message.objects.filter(template_key__startswith="hotspot_data")
    clock.shift(30)
    usage.poll(hs_router)  # 9 MB: past 80 %
    assert used(entitlement) == 9 * MB
    (warning,) = Message.objects.filter(template_key="hotspot_data_warning")
    assert warning.to == "254712000222" and "80%" in warning.body and "Ten MB" in warning.body
    clock.shift(30)  # 12 MB by now: over the limit since 100 s
    result = usage.poll(hs_router)
    assert result["ended"] == 1
    entitlement.refresh_from_db()
    assert (entitlement.state, entitlement.end_reason) == ("ended", "data")
    assert rows(emulator, "/ip/hotspot/active", user="0712000222") == []
    assert rows(emulator, "/ip/hotspot/user", name="0712000222") == []
    (used_up,) = Message.objects.filter(template_key="hotspot_data_used_up")
    assert "used up" in used_up.body
    usage.poll(hs_router)  # nothing new to say
    assert Message.objects.filter(template_key__startswith="hotspot_data").count() == 2


# --- counters that restart ------------------------------------------------------------------------


def test_a_reconnection_loses_no_usage(hs_router, emulator, clock):
    entitlement = online(hs_router, emulator, package("Gig", 600, data=10**9))
    clock.shift(60)
    usage.poll(hs_router)
    assert used(entitlement) == 12 * MB
    clock.shift(30)
    emulator.hang_up("0712000222")  # 18 MB handed to the user's counters
    emulator.hotspot.login("0712000222", mac=MAC)  # a new session, counting from zero
    emulator.hotspot.set_rate("0712000222", 800_000, 800_000)
    clock.shift(30)
    usage.poll(hs_router)
    (user,) = rows(emulator, "/ip/hotspot/user", name="0712000222")
    (session,) = rows(emulator, "/ip/hotspot/active", user="0712000222")
    truth = sum(int(r[k]) for r in (user, session) for k in ("bytes-in", "bytes-out"))
    assert truth == 24 * MB and used(entitlement) == truth
    clock.shift(60)
    usage.poll(hs_router)
    assert used(entitlement) == 36 * MB  # nothing counted twice


def test_a_reboot_loses_no_usage_that_was_seen(hs_router, emulator, clock):
    entitlement = online(hs_router, emulator, package("Gig", 600, data=10**9))
    clock.shift(60)
    usage.poll(hs_router)
    assert used(entitlement) == 12 * MB
    clock.shift(10)
    emulator.reboot()  # the session and its 14 MB vanish; ids start again at *1
    emulator.hotspot.login("0712000222", mac=MAC)
    emulator.hotspot.set_rate("0712000222", 800_000, 800_000)
    (session,) = rows(emulator, "/ip/hotspot/active")
    assert session[".id"] == "*1"  # the id the lost session had
    clock.shift(130)  # the new session has 26 MB: more than the old one was seen with
    usage.poll(hs_router)
    assert used(entitlement) == 12 * MB + 26 * MB
