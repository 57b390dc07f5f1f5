"""The daily subscription snapshot (reports.snapshots): the normalised-MRR rule, a
scripted account history read back day by day (on the day and after the fact), a day
taken once, the snapshot command, and a query count that does not grow with accounts."""

import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import timeline
from billing.models import BillingSettings
from ispops.staff.models import Branch
from reports import snapshots, tasks
from reports.models import MovementFigures, Snapshot, SnapshotDay
from subscribers import services as subscribers
from subscribers.models import Plan

D = Decimal


def moment(day: date, hour: int = 9) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def at(day: date, hour: int = 9):
    return time_machine.travel(moment(day, hour), tick=False)


def value(price, cycle, *, discounts=(), addons=(), rate="16", inclusive=False):
    return snapshots.monthly_value(
        1, cycle, date(2026, 3, 10), price_of=lambda plan_id, day: D(price),
        vat_rate=D(rate), vat_inclusive=inclusive, discounts=discounts, addons=addons,
    )  # fmt: skip


def discount(kind, amount, id=1):
    return timeline.DiscountTerm(id, "loyal", kind, D(amount), date(2026, 3, 1), date(2026, 3, 31))


def test_a_monthly_price_is_its_mrr():
    assert value("3000", "monthly") == D("3000.00")


def test_weekly_daily_and_hourly_plans_are_scaled_to_30_4375_days():
    assert value("700", "weekly") == D("3043.75")  # 700 x 30.4375 / 7
    assert value("100", "daily") == D("3043.75")
    assert value("5", "hourly") == D("3652.50")  # 5 x 24 x 30.4375
    assert value("333", "weekly") == D("1447.96")  # 1447.955 rounded half-up


def test_discounts_apply_as_billing_applies_them():
    assert value("3000", "monthly", discounts=[discount("percent", "10")]) == D("2700.00")
    assert value("3000", "monthly", discounts=[discount("fixed", "500")]) == D("2500.00")
    # A fixed discount is per period: a weekly plan's is scaled with it.
    assert value("700", "weekly", discounts=[discount("fixed", "100")]) == D("2608.93")
    # Together they never take more than the plan.
    both = [discount("percent", "60", 1), discount("fixed", "2000", 2)]
    assert value("3000", "monthly", discounts=both) == D("0.00")


def test_a_discount_out_of_force_on_the_day_is_not_applied():
    ended = timeline.DiscountTerm(1, "old", "percent", D(50), date(2026, 1, 1), date(2026, 3, 9))
    assert value("3000", "monthly", discounts=[ended]) == D("3000.00")


def test_vat_inclusive_prices_have_the_vat_taken_out():
    assert value("3480", "monthly", inclusive=True) == D("3000.00")
    assert value("3480", "monthly", inclusive=False) == D("3480.00")
    assert value("812", "weekly", inclusive=True) == D("3043.75")  # 3530.75 incl. 16 %


# --- a scripted history --------------------------------------------------------------

MARCH = date(2026, 3, 1)


@pytest.fixture
def world(in_alpha):
    cfg = BillingSettings.load()
    cfg.vat_inclusive, cfg.vat_rate = True, D("16")
    cfg.save()

    def plan(name, price, cycle="monthly", mode="postpaid"):
        return Plan.objects.create(name=name, price=D(price), billing=mode, cycle=cycle,
                                   download_kbps=10_000, upload_kbps=5_000)  # fmt: skip

    return {"home": plan("SnapHome", "3480"), "biz": plan("SnapBiz", "6960"),
            "week": plan("SnapWeek", "812", "weekly", "prepaid")}  # fmt: skip


_phones = iter(range(1, 10_000))


def activate(plan, on: date, name="Akinyi"):
    with at(on):
        customer = subscribers.create_customer(
            actor="t", name=name, phone=f"0733{next(_phones):06d}"
        )
        account = subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username=f"snap{customer.pk}", status="active"
        )
    account.refresh_from_db()
    return account


def script(world):
    """A: home from 2 Mar, biz from 10 Mar, suspended 15th, back 20th, gone 25th.
    B: weekly prepaid from 1 Mar, unchanged."""
    b = activate(world["week"], MARCH, "Baraka")
    a = activate(world["home"], date(2026, 3, 2))
    with at(date(2026, 3, 10)):
        subscribers.change_plan(a, world["biz"], actor="t")
    with at(date(2026, 3, 15)):
        subscribers.change_status(a, "suspended", actor="t", reason="unpaid")
    with at(date(2026, 3, 20)):
        subscribers.change_status(a, "active", actor="t", reason="paid")
    with at(date(2026, 3, 25)):
        subscribers.change_status(a, "terminated", actor="t", reason="moved")
    return a, b


DAYS = [date(2026, 3, d) for d in (1, 2, 9, 10, 14, 15, 17, 19, 20, 24, 25, 26)]


def rows(day, accounts):
    ids = [x.pk for x in accounts]
    return {
        r.service_account_id: (r.status, r.plan_id, r.suspended_since, r.mrr)
        for r in Snapshot.objects.filter(day=day, service_account_id__in=ids)
    }


def test_a_scripted_history_gives_the_right_rows_on_the_right_days(world):
    a, b = script(world)
    home, biz, week = world["home"].pk, world["biz"].pk, world["week"].pk
    weekly = ("active", week, None, D("3043.75"))
    for day in DAYS:
        snap = snapshots.take(day, as_of=moment(day + timedelta(days=1), 0))
        assert not snap.estimated
    s15 = date(2026, 3, 15)
    expected = {
        1: {b.pk: weekly},
        2: {a.pk: ("active", home, None, D("3000.00")), b.pk: weekly},
        9: {a.pk: ("active", home, None, D("3000.00")), b.pk: weekly},
        10: {a.pk: ("active", biz, None, D("6000.00")), b.pk: weekly},
        14: {a.pk: ("active", biz, None, D("6000.00")), b.pk: weekly},
        15: {a.pk: ("suspended", biz, s15, D("6000.00")), b.pk: weekly},
        17: {a.pk: ("suspended", biz, s15, D("6000.00")), b.pk: weekly},
        19: {a.pk: ("suspended", biz, s15, D("6000.00")), b.pk: weekly},
        20: {a.pk: ("active", biz, None, D("6000.00")), b.pk: weekly},
        24: {a.pk: ("active", biz, None, D("6000.00")), b.pk: weekly},
        25: {b.pk: weekly},
        26: {b.pk: weekly},
    }
    on_the_day = {}
    for day in DAYS:
        on_the_day[day] = rows(day, [a, b])
        assert on_the_day[day] == expected[day.day], day
    a.refresh_from_db()
    row = Snapshot.objects.get(day=date(2026, 3, 10), service_account_id=a.pk)
    assert (row.customer_id, row.site_id, row.router_id) == (a.customer_id, a.site_id, a.router_id)

    # Taken again long after (the beat was down): the same rows, marked estimated.
    Snapshot.objects.all().delete()
    SnapshotDay.objects.all().delete()
    later = moment(date(2026, 5, 1))
    for day in DAYS:
        assert snapshots.take(day, as_of=later).estimated
        assert rows(day, [a, b]) == on_the_day[day], day
    assert set(Snapshot.objects.values_list("estimated", flat=True)) == {True}


def test_a_day_is_taken_once_and_never_rewritten(world):
    a = activate(world["home"], MARCH)
    day = date(2026, 3, 5)
    first = snapshots.take(day, as_of=moment(date(2026, 3, 6), 0))
    count = Snapshot.objects.filter(day=day).count()
    with at(date(2026, 3, 7)):
        subscribers.change_plan(a, world["biz"], actor="t")
    again = snapshots.take(day, as_of=moment(date(2026, 3, 8)))
    assert again.pk == first.pk and not again.estimated
    assert Snapshot.objects.filter(day=day).count() == count
    assert Snapshot.objects.get(day=day, service_account_id=a.pk).plan_id == world["home"].pk


def test_a_day_not_over_yet_is_refused(world):
    with pytest.raises(snapshots.SnapshotError):
        snapshots.take(date(2026, 3, 5), as_of=moment(date(2026, 3, 5), 23))
    assert not SnapshotDay.objects.exists()


def test_fill_missing_takes_every_day_without_a_snapshot_as_estimated(world):
    activate(world["home"], MARCH)
    snapshots.take(date(2026, 3, 3), as_of=moment(date(2026, 3, 4), 0))
    filled = snapshots.fill_missing(date(2026, 3, 6), as_of=moment(date(2026, 3, 10)))
    assert [s.day for s in filled] == [date(2026, 3, d) for d in (4, 5, 6)]
    assert all(s.estimated for s in filled)
    assert snapshots.fill_missing(date(2026, 3, 6), as_of=moment(date(2026, 3, 10))) == []


def test_a_day_keeps_its_mrr_by_branch(world):
    a = activate(world["home"], MARCH, "Main")
    b = activate(world["biz"], MARCH, "East")
    east = Branch.objects.create(name="East", code="east")
    main = Branch.objects.create(name="Main", code="main-snap")
    for account, branch in ((a, main), (b, east)):
        account.customer.branch = branch
        account.customer.save(update_fields=["branch"])
    activate(world["home"], MARCH, "Nowhere")  # a customer with no branch: in the total only
    snap = snapshots.take(date(2026, 3, 2), as_of=moment(date(2026, 3, 3), 0))
    rows = Snapshot.objects.filter(day=snap.day)
    by_rows = {str(r.branch_id): str(r.mrr) for r in rows if r.branch_id}
    assert snap.by_branch == by_rows and len(by_rows) == 2
    nowhere = sum(r.mrr for r in rows if r.branch_id is None)
    assert sum(D(v) for v in snap.by_branch.values()) + nowhere == snap.mrr
    assert snap.by_branch[str(east.pk)] == "6000.00"
    assert snap.by_branch[str(main.pk)] == "3000.00"


def test_the_query_count_of_a_take_does_not_grow_with_the_accounts(
    world, django_assert_max_num_queries
):
    activate(world["home"], MARCH)
    with django_assert_max_num_queries(17):
        snapshots.take(date(2026, 3, 2), as_of=moment(date(2026, 3, 3), 0))
    for n in range(20):
        activate(world["biz"], MARCH, f"Many {n}")
    with django_assert_max_num_queries(17):
        snap = snapshots.take(date(2026, 3, 3), as_of=moment(date(2026, 3, 4), 0))
    assert snap.services >= 21


# --- the command -------------------------------------------------------------------


def test_the_command_takes_yesterday_by_default_and_prints_what_it_did(world, alpha):
    activate(world["home"], MARCH)
    out = StringIO()
    with at(date(2026, 3, 5), 0):
        call_command("snapshot", "--schema", alpha.isp.schema_name, stdout=out)
    snap = SnapshotDay.objects.get()
    assert snap.day == date(2026, 3, 4) and not snap.estimated
    assert out.getvalue().strip() == f"2026-03-04: {snap.services} services, MRR {snap.mrr}"

    out = StringIO()
    with at(date(2026, 3, 9)):
        call_command("snapshot", "--schema", alpha.isp.schema_name, "--date", "2026-03-02",
                     stdout=out)  # fmt: skip
    assert out.getvalue().strip().endswith("(estimated)")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--date", "2026-13-01"], "--date must be YYYY-MM-DD"),
        (["--date", "2026-03-09"], "is not over yet"),
        (["--date", "2026-04-01"], "is not over yet"),
    ],
)
def test_the_command_refuses_bad_input_and_writes_nothing(world, alpha, args, message):
    with at(date(2026, 3, 9)), pytest.raises(CommandError, match=message):
        call_command("snapshot", "--schema", alpha.isp.schema_name, *args)
    assert not SnapshotDay.objects.exists()


def test_the_command_refuses_an_unknown_isp():
    with pytest.raises(CommandError, match="no ISP"):
        call_command("snapshot", "--schema", "nosuchisp")


# --- two takes at once ------------------------------------------------------------


@pytest.mark.committed
def test_two_takes_of_a_day_at_once_write_it_once(django_db_blocker):
    from ispops.tenancy.services import create_isp

    with django_db_blocker.unblock():
        isp, _ = create_isp(
            schema="conc_snapshot",
            name="Concurrency snapshot",
            domain="conc-snapshot.localhost",
            owner_email="o@conc-snapshot.test",
            owner_password="conc-pass-2026-s",
        )
        try:
            with tenant_context(isp):
                plan = Plan.objects.create(name="Home", price=D("3480"), billing="postpaid",
                                           download_kbps=10_000, upload_kbps=5_000)  # fmt: skip
                for n in range(30):
                    activate(plan, MARCH, f"Twin {n}")
            day, results, errors = date(2026, 3, 4), [], []
            barrier = threading.Barrier(2)

            def work():
                try:
                    with tenant_context(isp):
                        barrier.wait(timeout=30)
                        results.append(snapshots.take(day, as_of=moment(date(2026, 3, 5), 0)).pk)
                except Exception as exc:  # reported by the assertion below
                    errors.append(repr(exc))
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert errors == []
            assert len(results) == 2 and results[0] == results[1]
            with tenant_context(isp):
                assert SnapshotDay.objects.count() == 1
                assert Snapshot.objects.filter(day=day).count() == 30
                assert SnapshotDay.objects.get().services == 30
        finally:
            connection.set_schema_to_public()
            isp.delete(force_drop=True)


def test_the_nightly_task_takes_yesterday_then_the_days_the_beat_missed(world):
    activate(world["home"], MARCH)
    snapshots.take(date(2026, 3, 2), as_of=moment(date(2026, 3, 3), 0))
    with time_machine.travel(moment(date(2026, 3, 7), 0) + timedelta(minutes=20), tick=False):
        tasks.nightly_snapshot()
    days = dict(SnapshotDay.objects.values_list("day", "estimated"))
    assert days == {date(2026, 3, d): d in (3, 4, 5) for d in range(2, 7)}
    # Then the last 12 months' and weeks' movement is kept, for the ISP and its branches.
    kept = MovementFigures.objects.filter(end_day=date(2026, 3, 6))
    assert set(kept.values_list("kind", "period")) >= {("month", "2026-03"), ("week", "2026-W10")}
    assert set(kept.values_list("scope", flat=True)) >= {MovementFigures.WHOLE_ISP,
                                                         MovementFigures.EVERY_BRANCH}  # fmt: skip
    assert MovementFigures.objects.values("kind").distinct().count() == 2
    entry = settings.CELERY_BEAT_SCHEDULE["nightly-snapshot"]
    assert entry["task"] == "ispops.tasks.fan_out"
    assert entry["args"] == [tasks.nightly_snapshot.name]
