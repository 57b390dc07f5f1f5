"""PPPoE fair-usage ladders (issue 14): several steps per plan, each a profile on the
router; top-ups raising every threshold; the usage period of a prepaid account is the
term it paid for; the staff page that edits a plan's ladder. Against the RouterOS
emulator over TCP with the real librouteros client, on frozen clocks, and random usage
histories checked against the ladder's invariants."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services as billing
from ispops.audit.models import AuditEntry
from ispops.messaging.models import Message
from network import fup, pppoe_usage, provisioning, services, tasks, views_fup
from network.models import FupStep, RouterJob, UsageMeter, UsagePeriod, check_ladder
from subscribers import services as subscribers
from subscribers.models import Plan
from subscribers.views import plans as plan_views
from tests.network.test_fup import online, queue, secret

GB = 10**9
NAIROBI = ZoneInfo("Africa/Nairobi")
START = datetime(2026, 7, 15, 12, 0, tzinfo=NAIROBI)
# Steps at 1, 2 and 3 GB (the cap); at the emulator's full 80 Mbit/s a session moves
# 10 MB a second, so 1 GB takes 100 s.
LADDER = [(1, 10_000, 5_000), (2, 2_000, 1_000), (3, None, None)]


def at(*args) -> datetime:
    return datetime(*args, tzinfo=NAIROBI)


def make_plan(name="Ladder 100M", *, billing_mode="postpaid", cap=3, ladder=LADDER, **fields):
    plan = Plan.objects.create(
        name=name, price="3000.00", billing=billing_mode, download_kbps=100_000,
        upload_kbps=50_000, data_cap_gb=cap, **fields,
    )  # fmt: skip
    if ladder:
        fup.save_ladder(plan, ladder, actor="test")
    return plan


def make_account(router, plan, username="otieno", phone="0712000333"):
    customer = subscribers.create_customer(actor="test", name="Otieno", phone=phone)
    account = subscribers.create_service_account(
        actor="test", customer=customer, plan=plan, username=username, password="pw",
        router=router, status="active",
    )  # fmt: skip
    services.queue_account(account, actor="test")
    services.run_jobs(router.pk)
    return account


def meter(account) -> UsageMeter:
    return UsageMeter.objects.get(service_account=account)


def fair_usage_jobs(account) -> int:
    return RouterJob.objects.filter(service_account=account, created_by=fup.ACTOR).count()


def profile(emulator, name) -> dict:
    return next(p for p in emulator.rows("/ppp/profile") if p["name"] == name)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


# --- the ladder on the router ------------------------------------------------------------


def test_a_session_crossing_step_1_then_step_2_ends_on_the_step_2_profile(router, emulator, clock):
    plan = make_plan()
    account = make_account(router, plan)
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(110)
    pppoe_usage.poll(router)  # 1.1 GB: step 1
    assert (meter(account).fup_step, meter(account).fup_level) == (1, "throttled")
    assert services.run_jobs(router.pk) == "1 done, 0 refused"
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup1"
    # rate-limit as the router reads it: rx (the subscriber's upload) / tx (download).
    assert profile(emulator, f"{plan.name}-fup1")["rate-limit"] == "5M/10M"
    online(emulator, "otieno")  # the device redials on the slower profile
    assert queue(emulator, "otieno")["max-limit"] == "5000000/10000000"
    pppoe_usage.poll(router)
    clock.shift(500)  # at 15 Mbit/s: 0.94 GB more, 2.04 GB in all
    pppoe_usage.poll(router)
    assert meter(account).fup_step == 2
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup2"
    assert profile(emulator, f"{plan.name}-fup2")["rate-limit"] == "1M/2M"
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "1000000/2000000"
    assert fair_usage_jobs(account) == 2


def test_two_thresholds_crossed_in_one_poll_land_on_the_second_step_directly(
    router, emulator, clock
):
    plan = make_plan()
    account = make_account(router, plan)
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(250)
    pppoe_usage.poll(router)  # 2.5 GB: past 1 GB and 2 GB at once
    assert meter(account).fup_step == 2 and fair_usage_jobs(account) == 1
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup2"
    assert not [p for p in emulator.rows("/ppp/profile") if p["name"].endswith("-fup1")]


def test_the_last_step_blocks_and_walls_the_session_in(router, emulator, clock):
    plan = make_plan()
    account = make_account(router, plan)
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(310)
    pppoe_usage.poll(router)  # 3.1 GB of 3
    assert (meter(account).fup_step, meter(account).fup_level) == (3, "blocked")
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-capped"
    emulator.dial_in("otieno")
    assert queue(emulator, "otieno")["max-limit"] == "64000/64000"
    used_up = Message.objects.get(template_key=fup.USED_UP)
    assert "internet is paused" in used_up.body


def test_a_top_up_raises_every_threshold_and_moves_the_account_up_within_one_evaluate(
    router, emulator, clock, django_capture_on_commit_callbacks, alpha
):
    plan = make_plan()
    account = make_account(router, plan)
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(250)
    pppoe_usage.poll(router)  # 2.5 GB: step 2
    services.run_jobs(router.pk)
    with django_capture_on_commit_callbacks(execute=True):
        fup.top_up(account, 1, actor=alpha.owner)  # steps now at 2, 3 and 4 GB
    assert meter(account).fup_step == 1
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup1"
    with django_capture_on_commit_callbacks(execute=True):
        fup.top_up(account, 2, actor=alpha.owner)  # 4, 5 and 6 GB: under the first
    assert (meter(account).fup_step, meter(account).fup_level) == (0, "full")
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == plan.name


def test_a_plan_without_steps_keeps_its_one_step_and_profile_name(router, emulator, clock):
    plan = make_plan(ladder=None, cap=1, fup_download_kbps=2_000, fup_upload_kbps=1_000)
    account = make_account(router, plan)
    assert [(s.number, s.after_gb, s.profile) for s in fup.ladder(plan)] == [
        (1, 1, f"{plan.name}-fup")
    ]
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(110)
    pppoe_usage.poll(router)
    services.run_jobs(router.pk)
    assert meter(account).fup_step == 1
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup"


# --- the usage period follows the paid term ------------------------------------------


def fake(billing_mode, cycle, expires_at):
    return SimpleNamespace(
        plan=SimpleNamespace(billing=billing_mode, cycle=cycle), expires_at=expires_at
    )


@pytest.mark.parametrize(
    "billing_mode,cycle,expires_at,moment,expected",
    [
        # Bought on 15 Jul for a month: the 1st of August is no reset.
        ("prepaid", "monthly", at(2026, 8, 15, 10), at(2026, 8, 1, 0, 1), date(2026, 7, 15)),
        ("prepaid", "monthly", at(2026, 8, 15, 10), at(2026, 7, 15, 10), date(2026, 7, 15)),
        ("prepaid", "monthly", at(2026, 8, 15, 10), at(2026, 7, 15, 9), date(2026, 6, 15)),
        # Terms bought ahead: the one containing now.
        ("prepaid", "monthly", at(2026, 10, 15, 10), at(2026, 8, 20), date(2026, 8, 15)),
        # A chain on the 31st: the term ending 31 Mar began on the last day of February.
        ("prepaid", "monthly", at(2027, 3, 31, 9), at(2027, 3, 10), date(2027, 2, 28)),
        # Expired (grace, suspended): the last term goes on until a payment.
        ("prepaid", "monthly", at(2026, 8, 15, 10), at(2026, 9, 3), date(2026, 7, 15)),
        ("prepaid", "weekly", at(2026, 8, 5, 18), at(2026, 7, 27), date(2026, 7, 22)),
        ("prepaid", "daily", at(2026, 8, 5, 18), at(2026, 8, 5, 17), date(2026, 8, 4)),
        ("prepaid", "daily", at(2026, 8, 5, 18), at(2026, 8, 3, 20), date(2026, 8, 3)),
        # Without a term: the calendar, as before.
        ("postpaid", "monthly", None, at(2026, 8, 20), date(2026, 8, 1)),
        ("prepaid", "monthly", None, at(2026, 8, 20), date(2026, 8, 1)),
        ("postpaid", "weekly", None, at(2026, 8, 20), date(2026, 8, 17)),
        ("prepaid", "hourly", at(2026, 8, 20, 11), at(2026, 8, 20, 10, 30), date(2026, 8, 20)),
    ],
)
def test_the_usage_period_is_the_paid_term_where_there_is_one(
    billing_mode, cycle, expires_at, moment, expected
):
    account = fake(billing_mode, cycle, expires_at)
    assert fup.period_start(account, moment) == expected
    start, began = fup.usage_period(account, moment)
    assert began <= moment and timezone.localdate(began) == start


def test_a_prepaid_renewal_restores_full_speed_and_the_first_of_the_month_does_not(
    router, emulator, clock
):
    plan = make_plan(billing_mode="prepaid")
    account = make_account(router, plan)
    billing.record_payment(account.customer, Decimal("3480"), actor="test", reference="T1")
    account.refresh_from_db()
    assert timezone.localdate(account.expires_at) == date(2026, 8, 15)
    online(emulator, "otieno")
    pppoe_usage.poll(router)
    clock.shift(150)
    pppoe_usage.poll(router)  # 1.5 GB of the term from 15 Jul
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == f"{plan.name}-fup1"
    emulator.hang_up("otieno")
    clock.move_to(at(2026, 8, 1, 0, 0, 30))
    tasks.poll_pppoe_usage()
    assert meter(account).fup_step == 1  # a calendar month would have given 3 GB more
    clock.move_to(at(2026, 8, 16, 9, 0))  # past the expiry: the last term goes on
    tasks.poll_pppoe_usage()
    assert meter(account).fup_step == 1
    billing.record_payment(account.customer, Decimal("3480"), actor="test", reference="T2")
    clock.shift(50)
    tasks.poll_pppoe_usage()  # the beat, within a minute of the renewal
    assert (meter(account).fup_step, meter(account).fup_level) == (0, "full")
    services.run_jobs(router.pk)
    assert secret(emulator, "otieno")["profile"] == plan.name
    online(emulator, "otieno")
    assert queue(emulator, "otieno")["max-limit"] == "50000000/100000000"


def test_evaluate_costs_a_bounded_number_of_queries_for_many_accounts(
    router, clock, django_assert_max_num_queries
):
    plans = [make_plan(f"Ladder {n}") for n in range(2)]
    accounts = [
        make_account(router, plans[n % 2], username=f"user{n}", phone=f"07120004{n:02d}")
        for n in range(12)
    ]
    for number, account in enumerate(accounts):
        UsageMeter.objects.get_or_create(service_account=account)
        UsagePeriod.objects.create(
            service_account=account, period_start=date(2026, 7, 1), bytes_out=number * GB // 4
        )
    ids = [a.pk for a in accounts]
    with django_assert_max_num_queries(5 + 4 * 12):  # changes: claim, job, SMS each
        fup.evaluate(ids, now=START)
    with django_assert_max_num_queries(4):  # nothing to change: no statement per account
        fup.evaluate(ids, now=START)


# --- random usage histories ------------------------------------------------------------

ladders = st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True).flatmap(
    lambda gbs: st.tuples(st.just(sorted(gbs)), st.booleans())
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("use"), st.integers(0, 60)),  # tenths of a GB
        st.tuples(st.just("top_up"), st.integers(1, 4)),
        st.just(("next_period",)),
        st.just(("evaluate",)),
    ),
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ladder=ladders, history=actions)
def test_random_usage_keeps_the_ladder_invariants(router, ladder, history):
    """The step is the highest whose threshold plus the period's top-ups the period's
    usage reached; a step change queues exactly one router job; the 80 % and the 100 %
    SMS go once a period each."""
    thresholds, blocks_last = ladder
    cap = max(thresholds)
    speeds = [(10_000 // (n + 1), 5_000 // (n + 1)) for n in range(len(thresholds))]
    steps = [(gb, d, u) for gb, (d, u) in zip(thresholds, speeds, strict=True)]
    if blocks_last:
        steps[-1] = (cap, None, None)
    with transaction.atomic():
        plan = make_plan(ladder=steps, cap=cap)
        customer = subscribers.create_customer(actor="t", name="Prop", phone="0712000999")
        account = subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username="prop", password="pw",
            router=router, status="active",
        )  # fmt: skip
        UsageMeter.objects.create(service_account=account)
        month, used, topped, step, jobs = date(2026, 7, 1), {}, {}, 0, 0
        warned: dict[date, int] = {}
        sent = {fup.WARNING: 0, fup.USED_UP: 0}
        for action in history:
            now = timezone.make_aware(datetime.combine(month, time(12)))
            if action[0] == "use":
                row, _ = UsagePeriod.objects.get_or_create(
                    service_account=account, period_start=month
                )
                UsagePeriod.objects.filter(pk=row.pk).update(
                    bytes_out=F("bytes_out") + action[1] * GB // 10
                )
                used[month] = used.get(month, 0) + action[1] * GB // 10
            elif action[0] == "top_up":
                fup.top_up(account, action[1], actor="t", now=now)  # evaluate: on commit
                topped[month] = topped.get(month, 0) + action[1]
            elif action[0] == "next_period":
                month = (month + timedelta(days=32)).replace(day=1)
                sent = {fup.WARNING: 0, fup.USED_UP: 0}
                now = timezone.make_aware(datetime.combine(month, time(12)))
            fup.evaluate([account.pk], now=now)
            # The oracle, worked out here from the history alone.
            u, extra = used.get(month, 0), topped.get(month, 0)
            wanted = max(
                [n for n, gb in enumerate(thresholds, 1) if u >= (gb + extra) * GB], default=0
            )
            if wanted != step:
                jobs += 1
            step = wanted
            allowance = (cap + extra) * GB
            reached = 100 if u >= allowance else 80 if u * 100 >= allowance * 80 else 0
            if u and reached > warned.get(month, 0):
                sent[fup.USED_UP if reached == 100 else fup.WARNING] += 1
                warned[month] = reached
            m = UsageMeter.objects.get(service_account=account)
            assert m.fup_step == step, (action, u, extra)
            assert m.fup_level == ("full" if step == 0 else fup.ladder(plan)[step - 1].level)
            assert fair_usage_jobs(account) == jobs
            related = f"usage:{account.pk}:{month:%Y-%m-%d}"
            for key, count in sent.items():
                found = Message.objects.filter(template_key=key, related=related).count()
                assert found == count <= 1, (key, action)
        transaction.set_rollback(True)


# --- the ladder's rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    "steps,problem",
    [
        ([(5, 2_000, 1_000), (5, 1_000, 500)], "two steps start after 5 GB"),
        ([(5, 2_000, 1_000), (8, 3_000, 500)], "must be slower"),
        ([(5, 2_000, 1_000), (8, 2_000, 1_000)], "must be slower"),
        ([(5, 200_000, 1_000)], "must be slower"),
        ([(5, None, None), (8, 1_000, 500)], "must be the last step"),
        ([(5, 2_000, None)], "needs both speeds"),
    ],
)
def test_unsound_ladders_are_refused_with_the_reason(steps, problem):
    rows = [FupStep(after_gb=a, download_kbps=d, upload_kbps=u) for a, d, u in steps]
    problems = check_ladder(rows, plan_download_kbps=100_000, plan_upload_kbps=50_000)
    assert any(problem in p for p in problems), problems


def test_a_sound_ladder_passes():
    rows = [FupStep(after_gb=a, download_kbps=d, upload_kbps=u) for a, d, u in LADDER]
    assert check_ladder(rows, plan_download_kbps=100_000, plan_upload_kbps=50_000) == []


# --- the staff page --------------------------------------------------------------------


def form_data(rows) -> dict:
    data = {}
    for i, (after, down, up, block) in enumerate(rows):
        data |= {f"after_{i}": after, f"down_{i}": down, f"up_{i}": up}
        if block:
            data[f"block_{i}"] = "on"
    return data


GOOD = [("50", "10M", "5M", False), ("80", "2M", "1M", False), ("100", "", "", True)]


@pytest.fixture
def capped_plan(alpha):
    with tenant_context(alpha.isp):
        return make_plan("Home 100", cap=100, ladder=None, fup_download_kbps=1_000)


def steps_of(alpha, plan):
    with tenant_context(alpha.isp):
        return list(
            FupStep.objects.filter(plan=plan).values_list(
                "after_gb", "download_kbps", "upload_kbps"
            )
        )


def test_the_page_edits_a_plan_ladder_and_audits_it(alpha, capped_plan):
    client = alpha.client(alpha.finance)
    url = f"/plans/{capped_plan.pk}/fair-use/"
    page = client.get(url).content.decode()
    assert "Home 100-fup" in page and "100 GB" in page  # the plan's own one step
    response = client.post(url, form_data(GOOD))
    assert response.status_code == 302
    assert steps_of(alpha, capped_plan) == [
        (50, 10_000, 5_000),
        (80, 2_000, 1_000),
        (100, None, None),
    ]
    page = client.get(url).content.decode()
    assert "Home 100-fup2" in page and "Home 100-capped" in page
    with tenant_context(alpha.isp):
        entry = AuditEntry.objects.filter(changes__has_key="fair_use_ladder").get()
        assert "after 80 GB 2 Mbit/s down, 1 Mbit/s up" in entry.changes["fair_use_ladder"][1]
    # And back to the plan's own fields.
    assert client.post(url, {"use_plan_fields": "1"}).status_code == 302
    assert steps_of(alpha, capped_plan) == []


@pytest.mark.parametrize(
    "rows,error",
    [
        ([("50", "10M", "5M", False), ("80", "20M", "1M", False)], "must be slower"),
        ([("50", "", "", True), ("80", "2M", "1M", False)], "must be the last step"),
        ([("150", "2M", "1M", False)], "at or before the data cap (100 GB)"),
        ([("50", "2M", "", False)], "give both speeds, or tick Block"),
        ([("50", "2M", "1M", True)], "a block has no speeds"),
        ([("", "2M", "1M", False)], "after how many GB"),
        ([("50", "fast", "1M", False)], "bad speed"),
        ([("50", "2M", "1M", False), ("50", "1M", "512k", False)], "two steps start after 50 GB"),
        ([], "add at least one step"),
    ],
)
def test_a_bad_ladder_is_shown_its_errors_and_nothing_is_saved(alpha, capped_plan, rows, error):
    client = alpha.client(alpha.owner)
    url = f"/plans/{capped_plan.pk}/fair-use/"
    client.post(url, form_data(GOOD))
    response = client.post(url, form_data(rows))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert [s[0] for s in steps_of(alpha, capped_plan)] == [50, 80, 100]


def test_only_plan_editors_reach_the_page_and_posts_need_the_csrf_token(alpha, capped_plan):
    url = f"/plans/{capped_plan.pk}/fair-use/"
    assert views_fup.EDITORS == plan_views.EDITORS
    for role in ("support", "technician"):
        client = alpha.client(getattr(alpha, role))
        assert client.get(url).status_code == 403
        assert client.post(url, form_data(GOOD)).status_code == 403
    assert alpha.client(alpha.admin).get(url).status_code == 200
    assert alpha.client().get(url).status_code in (302, 403)
    checked = alpha.client(alpha.owner)
    checked.handler.enforce_csrf_checks = True
    assert checked.post(url, form_data(GOOD)).status_code == 403
    assert steps_of(alpha, capped_plan) == []
    assert alpha.client(alpha.owner).get("/plans/999999/fair-use/").status_code == 404


def test_the_plan_page_links_to_its_ladder(alpha, capped_plan):
    page = alpha.client(alpha.owner).get(f"/plans/{capped_plan.pk}/edit/").content.decode()
    assert f"/plans/{capped_plan.pk}/fair-use/" in page


def test_a_plan_without_a_cap_cannot_get_a_ladder(alpha):
    with tenant_context(alpha.isp):
        plan = make_plan("Unlimited", cap=None, ladder=None)
    client = alpha.client(alpha.owner)
    url = f"/plans/{plan.pk}/fair-use/"
    assert "never limited" in client.get(url).content.decode()
    response = client.post(url, form_data(GOOD))
    assert "has no data cap" in response.content.decode()
    assert steps_of(alpha, plan) == []


def test_saving_a_ladder_queues_jobs_for_the_accounts_it_moves(
    router, emulator, clock, django_capture_on_commit_callbacks
):
    plan = make_plan()
    slowed, light = (
        make_account(router, plan, username=n, phone=p)
        for n, p in (("slowed", "0712000501"), ("light", "0712000502"))
    )
    for account, gb in ((slowed, 1.5), (light, 0.2)):
        UsageMeter.objects.get_or_create(service_account=account)
        UsagePeriod.objects.create(
            service_account=account, period_start=date(2026, 7, 1), bytes_out=int(gb * GB)
        )
    fup.evaluate([slowed.pk, light.pk], now=START)
    services.run_jobs(router.pk)
    assert secret(emulator, "slowed")["profile"] == f"{plan.name}-fup1"
    before = RouterJob.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        fup.save_ladder(plan, [(2, 5_000, 2_000), (3, None, None)], actor="test", now=START)
    assert meter(slowed).fup_step == 0 and meter(light).fup_step == 0
    assert RouterJob.objects.count() == before + 1  # the slowed account only
    services.run_jobs(router.pk)
    assert secret(emulator, "slowed")["profile"] == plan.name
    # A ladder whose first step is unchanged but slower rewrites the step's profile.
    UsagePeriod.objects.filter(service_account=slowed).update(bytes_out=int(2.5 * GB))
    fup.evaluate([slowed.pk], now=START)
    services.run_jobs(router.pk)
    assert profile(emulator, f"{plan.name}-fup1")["rate-limit"] == "2M/5M"
    with django_capture_on_commit_callbacks(execute=True):
        fup.save_ladder(plan, [(2, 4_000, 1_000), (3, None, None)], actor="test", now=START)
    services.run_jobs(router.pk)
    assert profile(emulator, f"{plan.name}-fup1")["rate-limit"] == "1M/4M"
    assert provisioning.profile_for(slowed) == f"{plan.name}-fup1"
