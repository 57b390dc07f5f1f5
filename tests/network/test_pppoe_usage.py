"""PPPoE usage accounting (issue 14) against the RouterOS emulator over TCP, on a frozen
clock the emulator shares: a session's interface counters counted by deltas, so a
reconnection or a reboot (counters and ids starting again) loses nothing that was seen,
and a poll run twice, or an older reading stored late, counts nothing twice."""

from datetime import date

import pytest
import time_machine
from django.utils import timezone

from network import pppoe_usage, services
from network.models import UsageMeter, UsagePeriod
from subscribers import services as subscribers
from subscribers.models import Plan

START = timezone.make_aware(timezone.datetime(2026, 7, 10, 12, 0))
MB = 10**6
# 800 kbit/s up (router rx) and 1.6 Mbit/s down (tx): 6 MB and 12 MB a minute.
UP_BPS, DOWN_BPS = 800_000, 1_600_000
IN_PER_MIN, OUT_PER_MIN = 6 * MB, 12 * MB


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def account(router, clock):
    # Postpaid: the usage period is the calendar month (prepaid terms: test_fup_ladder.py).
    plan = Plan.objects.create(
        name="Home 20M",
        price="2500.00",
        billing="postpaid",
        download_kbps=20_000,
        upload_kbps=10_000,
    )
    customer = subscribers.create_customer(actor="test", name="Achieng", phone="0712000111")
    account = subscribers.create_service_account(
        actor="test", customer=customer, plan=plan, username="achieng", password="pw",
        router=router, status="active",
    )  # fmt: skip
    services.queue_account(account, actor="test")
    services.run_jobs(router.pk)
    return account


def online(emulator, name="achieng"):
    emulator.dial_in(name)
    emulator.state.pppoe.set_rate(name, UP_BPS, DOWN_BPS)


def period(account) -> UsagePeriod:
    return UsagePeriod.objects.get(service_account=account)


# --- deltas ---------------------------------------------------------------------------------


def test_deltas_count_continuing_sessions_by_growth_and_new_ones_whole():
    seen = {"*80000001": [5 * MB, 9 * MB, 1000]}
    # The same session went on: only the growth.
    assert pppoe_usage.deltas(seen, {"*80000001": [7 * MB, 10 * MB, 1000]})[:2] == (2 * MB, MB)
    # The same id after a reboot began later: a new session, counted whole.
    assert pppoe_usage.deltas(seen, {"*80000001": [MB, 2 * MB, 1600]})[:2] == (MB, 2 * MB)
    # Same start but a counter that went down: restarted, counted whole.
    assert pppoe_usage.deltas(seen, {"*80000001": [MB, 20 * MB, 1000]})[:2] == (MB, 20 * MB)
    # A session that ended: nothing more, and it is forgotten.
    assert pppoe_usage.deltas(seen, {}) == (0, 0, {})


# --- over TCP -------------------------------------------------------------------------------


def test_a_poll_counts_the_sessions_interface_counters_into_the_period(
    router, emulator, account, clock
):
    online(emulator)
    pppoe_usage.poll(router)
    clock.shift(60)
    summary = pppoe_usage.poll(router)
    assert summary["counted"] == IN_PER_MIN + OUT_PER_MIN
    row = period(account)
    assert (row.bytes_in, row.bytes_out) == (IN_PER_MIN, OUT_PER_MIN)
    assert row.period_start == date(2026, 7, 1)  # a monthly plan: the calendar month
    clock.shift(60)
    pppoe_usage.poll(router)
    assert period(account).total == 2 * (IN_PER_MIN + OUT_PER_MIN)


def test_a_reconnection_restarts_the_counters_and_loses_nothing_seen(
    router, emulator, account, clock
):
    online(emulator)
    clock.shift(60)
    pppoe_usage.poll(router)  # 18 MB seen
    clock.shift(30)
    emulator.hang_up("achieng")  # 9 MB since the poll: gone with the session
    online(emulator)  # counters from zero
    clock.shift(60)
    pppoe_usage.poll(router)
    assert period(account).total == 2 * (IN_PER_MIN + OUT_PER_MIN)


def test_a_reboot_reusing_the_session_id_loses_nothing_seen(router, emulator, account, clock):
    online(emulator)
    first_id = emulator.rows("/ppp/active")[0][".id"]
    clock.shift(120)
    pppoe_usage.poll(router)  # 36 MB seen, more than the new session will have
    emulator.reboot()
    assert emulator.rows("/ppp/active") == []
    clock.shift(20)
    online(emulator)
    assert emulator.rows("/ppp/active")[0][".id"] == first_id  # ids start again
    clock.shift(60)
    pppoe_usage.poll(router)
    assert period(account).total == 3 * (IN_PER_MIN + OUT_PER_MIN)


def test_a_reboot_seen_between_polls_clears_the_meter(router, emulator, account, clock):
    online(emulator)
    clock.shift(60)
    pppoe_usage.poll(router)
    emulator.reboot()
    clock.shift(60)
    pppoe_usage.poll(router)  # no session: nothing counted, nothing remembered
    assert UsageMeter.objects.get(service_account=account).seen == {}
    online(emulator)
    clock.shift(60)
    pppoe_usage.poll(router)
    assert period(account).total == 2 * (IN_PER_MIN + OUT_PER_MIN)


def test_polling_twice_at_once_and_an_older_reading_count_nothing_twice(
    router, emulator, account, clock
):
    online(emulator)
    clock.shift(60)
    pppoe_usage.poll(router)
    assert pppoe_usage.poll(router)["counted"] == 0  # the same moment again
    later = timezone.now()
    clock.shift(60)
    pppoe_usage.poll(router)
    # A slow poll that read at `later` and stores after the newer one: refused.
    assert pppoe_usage.poll(router, now=later)["counted"] == 0
    assert period(account).total == 2 * (IN_PER_MIN + OUT_PER_MIN)


def test_other_routers_sessions_and_unknown_logins_are_not_counted(
    router, emulator, account, clock
):
    emulator.add_row("/ppp/secret", name="stranger", password="x", service="pppoe")
    online(emulator, "stranger")
    online(emulator)
    clock.shift(60)
    pppoe_usage.poll(router)
    assert UsagePeriod.objects.count() == 1 and period(account).total == IN_PER_MIN + OUT_PER_MIN


def test_the_beat_task_polls_every_pppoe_router(router, emulator, account, clock):
    from network import tasks

    online(emulator)
    tasks.poll_pppoe_usage()
    clock.shift(60)
    assert tasks.poll_pppoe_usage() == 1
    assert period(account).total == IN_PER_MIN + OUT_PER_MIN


def test_usage_across_the_start_of_a_period_is_shared_by_time(router, emulator, account, clock):
    clock.move_to(timezone.make_aware(timezone.datetime(2026, 7, 31, 23, 59, 30)))
    online(emulator)
    pppoe_usage.poll(router)
    clock.shift(60)  # 30 s in July, 30 s in August
    pppoe_usage.poll(router)
    by_period = {
        p.period_start: (p.bytes_in, p.bytes_out)
        for p in UsagePeriod.objects.filter(service_account=account)
    }
    half_in, half_out = IN_PER_MIN // 2, OUT_PER_MIN // 2
    assert by_period == {
        date(2026, 7, 1): (half_in, half_out),
        date(2026, 8, 1): (half_in, half_out),
    }
