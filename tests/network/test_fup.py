"""PPPoE fair use (issue 14) against the RouterOS emulator over TCP, on a frozen clock:
crossing the cap moves the secret to the plan's slower (or capped) profile at the poll
that sees it, the live session is dropped and the redial runs at the slower speed; SMS
at 80 % and 100 % once each; a new period or a top-up restores full speed; polls and
jobs run twice do everything once."""

import io

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from ispops.messaging.models import Message
from network import fup, pppoe_usage, services, tasks
from network.models import DataTopUp, RouterJob, UsageMeter
from subscribers import services as subscribers
from subscribers.models import Plan

START = timezone.make_aware(timezone.datetime(2026, 7, 30, 12, 0))
NEXT_MONTH = timezone.make_aware(timezone.datetime(2026, 8, 1, 0, 0, 30))
# 20 Mbit/s up and 60 down: 10 MB a second, the 1 GB cap in 100 s.
UP_BPS, DOWN_BPS = 20_000_000, 60_000_000


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def make_account(router, *, fup_speeds=True, username="otieno", billing="postpaid"):
    # Postpaid: the usage period is the calendar month (prepaid terms are in
    # tests/network/test_fup_ladder.py).
    plan = Plan.objects.create(
        name=f"Capped 100M {username}", price="3000.00", billing=billing, download_kbps=100_000,
        upload_kbps=50_000, data_cap_gb=1,
        fup_download_kbps=2_000 if fup_speeds else None,
        fup_upload_kbps=1_000 if fup_speeds else None,
    )  # fmt: skip
    customer = subscribers.create_customer(actor="test", name="Otieno", phone="0712000333")
    account = subscribers.create_service_account(
        actor="test", customer=customer, plan=plan, username=username, password="pw",
        router=router, status="active",
    )  # fmt: skip
    services.queue_account(account, actor="test")
    services.run_jobs(router.pk)
    return account


def secret(emulator, name):
    return next(r for r in emulator.rows("/ppp/secret") if r["name"] == name)


def queue(emulator, name):
    return next(r for r in emulator.rows("/queue/simple") if r["name"] == f"<pppoe-{name}>")


def online(emulator, name):
    emulator.dial_in(name)
    emulator.state.pppoe.set_rate(name, UP_BPS, DOWN_BPS)


def sms(account, key):
    return Message.objects.filter(customer=account.customer, template_key=key).count()


def level(account):
    return UsageMeter.objects.get(service_account=account).fup_level


@pytest.fixture
def account(router, clock):
    return make_account(router)


def test_crossing_the_cap_switches_to_the_slower_profile_at_that_poll(
    router, emulator, account, clock
):
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "50000000/100000000"
    pppoe_usage.poll(router)
    clock.shift(60)
    pppoe_usage.poll(router)  # 600 MB: full speed, no message
    assert level(account) == "full" and not RouterJob.objects.filter(created_by="fair usage")
    clock.shift(50)
    pppoe_usage.poll(router)  # 1.1 GB
    assert level(account) == "throttled"
    job = RouterJob.objects.get(service_account=account, created_by="fair usage")
    assert services.run_jobs(router.pk) == "1 done, 0 refused"
    job.refresh_from_db()
    assert "session dropped for the new profile" in job.result
    assert secret(emulator, "otieno")["profile"] == f"{account.plan.name}-fup"
    profile = next(p for p in emulator.rows("/ppp/profile") if p["name"].endswith("-fup"))
    assert profile["rate-limit"] == "1M/2M"
    assert "otieno" not in emulator.active_names()
    # The subscriber's device redials: the new session runs at the FUP speed.
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "1000000/2000000"
    before = emulator.state.pppoe.counters("otieno")
    clock.shift(8)
    after = emulator.state.pppoe.counters("otieno")
    assert (after[0] - before[0], after[1] - before[1]) == (1_000_000, 2_000_000)


def test_80_and_100_percent_are_told_once_each(router, emulator, account, clock):
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(85)
    pppoe_usage.poll(router)  # 850 MB
    pppoe_usage.poll(router)
    assert (sms(account, "data_cap_warning"), sms(account, "data_cap_used_up")) == (1, 0)
    message = Message.objects.get(template_key="data_cap_warning")
    assert "80%" in message.body and "0.1 GB left" in message.body
    clock.shift(20)
    pppoe_usage.poll(router)  # 1.05 GB
    clock.shift(60)
    pppoe_usage.poll(router)
    assert (sms(account, "data_cap_warning"), sms(account, "data_cap_used_up")) == (1, 1)
    used_up = Message.objects.get(template_key="data_cap_used_up")
    assert "speed is now 2 Mbit/s" in used_up.body


def test_a_new_period_restores_full_speed_within_a_minute(router, emulator, account, clock):
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(120)
    pppoe_usage.poll(router)
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"].endswith("-fup")
    online(emulator, "otieno")
    clock.shift(30)
    pppoe_usage.poll(router)
    # The new period: the first poll in it restores (the subscriber is offline over
    # the night here; a session across midnight shares its bytes by time).
    emulator.hang_up("otieno")
    clock.move_to(NEXT_MONTH)  # 30 s into August
    tasks.poll_pppoe_usage()
    assert level(account) == "full"
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == account.plan.name
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "50000000/100000000"


def test_a_top_up_restores_full_speed_once_committed(
    router, emulator, account, clock, django_capture_on_commit_callbacks, alpha
):
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(120)
    pppoe_usage.poll(router)  # 1.2 GB of 1
    services.run_jobs(router.pk)
    with django_capture_on_commit_callbacks(execute=True):
        fup.top_up(account, 1, actor=alpha.owner)
    assert DataTopUp.objects.get(service_account=account).gigabytes == 1
    assert level(account) == "full"  # 1.2 GB of 2
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == account.plan.name
    with pytest.raises(fup.TopUpError):
        fup.top_up(account, 0, actor=alpha.owner)


def test_without_fup_speeds_the_account_is_capped_and_walled_in(router, emulator, clock):
    account = make_account(router, fup_speeds=False, username="kamau")
    online(emulator, "kamau")
    pppoe_usage.poll(router)
    clock.shift(110)
    pppoe_usage.poll(router)
    assert level(account) == "blocked"
    services.run_jobs(router.pk)
    assert secret(emulator, "kamau")["profile"] == f"{account.plan.name}-capped"
    emulator.dial_in("kamau")
    address = emulator.rows("/ppp/active")[0]["address"]
    listed = [r for r in emulator.rows("/ip/firewall/address-list") if r["address"] == address]
    assert [r["list"] for r in listed] == ["ispops-suspended"]
    assert queue(emulator, "kamau")["max-limit"] == "64000/64000"
    used_up = Message.objects.get(template_key="data_cap_used_up")
    assert "internet is paused" in used_up.body


def test_polls_and_jobs_run_twice_do_everything_once(router, emulator, account, clock):
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(120)
    pppoe_usage.poll(router)
    pppoe_usage.poll(router)
    tasks.poll_pppoe_usage()
    assert RouterJob.objects.filter(created_by="fair usage").count() == 1
    assert sms(account, "data_cap_used_up") == 1
    services.run_jobs(router.pk)
    assert services.run_jobs(router.pk) == "nothing due"
    # Applying the slowed account again writes nothing and drops no session.
    online(emulator, "otieno")
    services.queue_account(account, actor="test")
    services.run_jobs(router.pk)
    latest = RouterJob.objects.filter(service_account=account).first()
    assert latest.result == "already in place"
    assert "otieno" in emulator.active_names()


def test_the_slowed_speed_is_told_in_the_units_people_read():
    assert [fup._speed(k) for k in (2000, 1500, 512)] == [
        "2 Mbit/s",
        "1.5 Mbit/s",
        "512 kbit/s",
    ]


def test_plans_without_a_cap_are_never_limited(router, emulator, clock):
    plan = Plan.objects.create(
        name="Unlimited", price="5000.00", download_kbps=100_000, upload_kbps=50_000
    )
    customer = subscribers.create_customer(actor="test", name="Wafula", phone="0712000444")
    account = subscribers.create_service_account(
        actor="test", customer=customer, plan=plan, username="wafula", password="pw",
        router=router, status="active",
    )  # fmt: skip
    services.queue_account(account, actor="test")
    services.run_jobs(router.pk)
    online(emulator, "wafula")
    pppoe_usage.poll(router)
    clock.shift(600)
    pppoe_usage.poll(router)
    assert level(account) == "full" and not Message.objects.filter(customer=customer)
    with pytest.raises(fup.TopUpError):
        fup.top_up(account, 1, actor="test")


def test_a_slowed_account_stays_slowed_through_a_reboot_with_ispops_away(
    router, emulator, account, clock
):
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(120)
    pppoe_usage.poll(router)
    services.run_jobs(router.pk)
    emulator.reboot()  # nothing from ispops after this
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "1000000/2000000"


def test_the_top_up_command_adds_data_or_says_why_not(router, emulator, account, clock):
    out = io.StringIO()
    call_command("top_up_data", "--schema", "alpha", "otieno", "2", stdout=out)
    assert "2 GB added to otieno for the period from 2026-07-01" in out.getvalue()
    assert DataTopUp.objects.get(service_account=account).created_by == "top_up_data command"
    with pytest.raises(CommandError, match="no live PPPoE account 'nobody'"):
        call_command("top_up_data", "--schema", "alpha", "nobody", "1")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("top_up_data", "--schema", "alpha", "otieno", "0")


def test_a_poll_costs_the_same_queries_for_one_account_or_many(router, emulator, clock):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_of_a_poll() -> int:
        pppoe_usage.poll(router)
        clock.shift(60)
        with CaptureQueriesContext(connection) as captured:
            pppoe_usage.poll(router)
        return len(captured)

    def slow(name):  # far from the cap: no level change, no message
        emulator.dial_in(name)
        emulator.state.pppoe.set_rate(name, 100_000, 100_000)

    slow(make_account(router, username="user0").username)
    one = queries_of_a_poll()
    for number in range(1, 8):
        slow(make_account(router, username=f"user{number}").username)
    assert queries_of_a_poll() == one <= 12
