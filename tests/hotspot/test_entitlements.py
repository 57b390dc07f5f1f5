"""The entitlement engine: each stacking rule, what the buyer is told before confirming,
a payment or voucher granting once, first-login packages, the queue handing over at
the end, and one live entitlement per login when grants race on committed rows."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connections
from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import entitlements
from hotspot.entitlements import Refused
from hotspot.models import (
    Entitlement,
    Grant,
    HotspotSettings,
    Package,
    Stacking,
    Voucher,
    VoucherBatch,
)
from network.models import Router

NOW = timezone.make_aware(timezone.datetime(2026, 6, 1, 10, 0))


@pytest.fixture
def hs_router(in_alpha):
    return Router.objects.create(name="hs-ent", host="192.0.2.10", username="api")


@pytest.fixture
def hour(in_alpha):
    return Package.objects.create(
        name="Hour 500 MB",
        price="20.00",
        validity_minutes=60,
        data_limit_bytes=500 * 10**6,
        download_kbps=2000,
        upload_kbps=1000,
    )


@pytest.fixture
def day(in_alpha):
    return Package.objects.create(
        name="Day unlimited",
        price="50.00",
        validity_minutes=24 * 60,
        download_kbps=5000,
        upload_kbps=5000,
    )


def rule(value):
    cfg = HotspotSettings.load()
    cfg.stacking = value
    cfg.save()


def give(router, package, *, login="0712345678", now=NOW, **kw):
    return entitlements.grant(
        router=router,
        package=package,
        source=kw.pop("source", "staff"),
        login=login,
        password="pw",
        now=now,
        actor="test",
        **kw,
    )


def voucher_for(package, code):
    batch = VoucherBatch.objects.create(
        package=package, count=1, price=package.price, created_by="test"
    )
    return Voucher.objects.create(batch=batch, code=code, state=Voucher.State.SOLD)


def test_a_first_grant_is_live_from_purchase(hs_router, hour):
    entitlement = give(hs_router, hour)
    assert entitlement.state == "live" and entitlement.live_at == NOW
    assert (entitlement.starts_at, entitlement.ends_at) == (NOW, NOW + timedelta(hours=1))
    assert entitlement.data_limit_bytes == 500 * 10**6 and entitlement.router_pending
    (grant,) = Grant.objects.filter(entitlement=entitlement)
    assert grant.outcome == "new"


def test_extend_rule_same_package_adds_time_and_data(hs_router, hour):
    rule(Stacking.EXTEND)
    first = give(hs_router, hour)
    preview = entitlements.stacking_preview(hs_router, "0712345678", hour, NOW)
    assert preview.outcome == "extend"
    assert "adds 1 hour and 500 MB" in preview.message
    again = give(hs_router, hour, now=NOW + timedelta(minutes=10))
    assert again.pk == first.pk
    again.refresh_from_db()
    assert again.ends_at == NOW + timedelta(hours=2) and again.minutes == 120
    assert again.data_limit_bytes == 10**9
    assert Entitlement.objects.filter(login="0712345678").count() == 1
    assert [g.outcome for g in again.grants.all()] == ["new", "extend"]


def test_an_extension_lets_the_buyer_be_warned_again_under_the_new_limit(hs_router, hour):
    first = give(hs_router, hour)
    Entitlement.objects.filter(pk=first.pk).update(used_bytes=450 * 10**6, warned_percent=80)
    give(hs_router, hour)  # 450 MB of 1 GB: under 80 % again
    first.refresh_from_db()
    assert first.warned_percent == 0


def test_extend_rule_another_package_queues_after_the_current_one(hs_router, hour, day):
    rule(Stacking.EXTEND)
    first = give(hs_router, hour)
    preview = entitlements.stacking_preview(hs_router, "0712345678", day, NOW)
    assert preview.outcome == "queue"
    assert "will start when your Hour 500 MB package ends" in preview.message
    queued = give(hs_router, day)
    assert queued.state == "queued" and queued.starts_at is None
    assert queued.password == first.password  # one login, one password on the router
    first.refresh_from_db()
    assert first.ends_at == NOW + timedelta(hours=1)  # untouched


def test_queue_rule_queues_even_the_same_package(hs_router, hour):
    rule(Stacking.QUEUE)
    give(hs_router, hour)
    assert entitlements.stacking_preview(hs_router, "0712345678", hour, NOW).outcome == "queue"
    second = give(hs_router, hour)
    assert second.state == "queued"
    assert Entitlement.objects.filter(login="0712345678", state="live").count() == 1


def test_refuse_rule_refuses_while_one_is_live_and_writes_nothing(hs_router, hour, day):
    rule(Stacking.REFUSE)
    give(hs_router, hour)
    preview = entitlements.stacking_preview(hs_router, "0712345678", day, NOW)
    assert preview.refused and "still on until" in preview.message
    with pytest.raises(Refused, match="still on"):
        give(hs_router, day)
    assert Entitlement.objects.filter(login="0712345678").count() == 1
    assert Grant.objects.filter(entitlement__login="0712345678").count() == 1


def test_the_preview_of_a_new_login_says_what_it_gets(hs_router, day):
    preview = entitlements.stacking_preview(hs_router, "new-login", day, NOW)
    assert preview.outcome == "new"
    assert preview.message == "Day unlimited: 1 day and unlimited data, starting now."


def test_a_voucher_grants_once_even_when_redeemed_again(hs_router, hour):
    voucher = voucher_for(hour, "ABCD2345")
    first = entitlements.grant(
        router=hs_router, package=hour, source="voucher", voucher=voucher, now=NOW
    )
    assert (first.login, first.password) == ("ABCD2345", "ABCD2345")
    again = entitlements.grant(
        router=hs_router, package=hour, source="voucher", voucher=voucher, now=NOW
    )
    assert again.pk == first.pk
    first.refresh_from_db()
    assert first.minutes == 60  # not extended by the repeat
    assert Grant.objects.filter(voucher=voucher).count() == 1


def test_a_payment_grants_once_whatever_login_it_is_retried_on(hs_router, hour):
    from payments.models import Payment

    payment = Payment.objects.create(
        method="mpesa", reference="SGH7ABC123", amount=Decimal("20.00"), state="credited"
    )
    first = give(hs_router, hour, payment=payment, source="purchase")
    assert give(hs_router, hour, payment=payment, source="purchase").pk == first.pk
    assert give(hs_router, hour, login="other", payment=payment, source="purchase").pk == first.pk
    assert Grant.objects.filter(payment=payment).count() == 1
    assert not Entitlement.objects.filter(login="other").exists()


def test_a_first_login_package_waits_for_the_first_session(hs_router, in_alpha):
    package = Package.objects.create(
        name="Week",
        price="300.00",
        validity_minutes=7 * 24 * 60,
        starts=Package.Starts.FIRST_LOGIN,
        download_kbps=3000,
        upload_kbps=1000,
    )
    entitlement = give(hs_router, package)
    assert entitlement.starts_at is None and entitlement.ends_at is None
    first_seen = NOW + timedelta(days=2)
    assert entitlements.start_at_first_login(entitlement, first_seen) is True
    assert entitlements.start_at_first_login(entitlement, first_seen + timedelta(hours=1)) is False
    entitlement.refresh_from_db()
    assert entitlement.ends_at == first_seen + timedelta(days=7)
    # Not due before then, whatever the clock says about its purchase.
    assert not entitlements.due_for_end(NOW + timedelta(days=8)).filter(pk=entitlement.pk)


def test_the_end_hands_the_login_to_the_oldest_queued_one_once(hs_router, hour, day):
    rule(Stacking.QUEUE)
    first = give(hs_router, hour)
    second = give(hs_router, day, now=NOW + timedelta(minutes=1))
    third = give(hs_router, hour, now=NOW + timedelta(minutes=2))
    moment = NOW + timedelta(hours=1)
    following = entitlements.end(first, reason="expired", now=moment)
    assert following.pk == second.pk
    second.refresh_from_db()
    assert (second.state, second.live_at, second.starts_at) == ("live", moment, moment)
    assert second.ends_at == moment + timedelta(days=1)
    assert entitlements.end(first, reason="expired", now=moment) is None  # already ended
    third.refresh_from_db()
    assert third.state == "queued"


def test_end_due_ends_the_expired_and_the_used_up(hs_router, hour, day):
    give(hs_router, day, login="a")
    used_up = give(hs_router, hour, login="b")
    fine = give(hs_router, hour, login="c")
    Entitlement.objects.filter(pk=used_up.pk).update(used_bytes=500 * 10**6)
    Entitlement.objects.filter(pk=fine.pk).update(used_bytes=499 * 10**6)
    touched = entitlements.end_due(NOW + timedelta(days=1))
    assert touched == [hs_router.pk]
    states = dict(Entitlement.objects.values_list("login", "end_reason"))
    assert states == {"a": "expired", "b": "data", "c": "expired"}
    touched = entitlements.end_due(NOW + timedelta(minutes=30))
    assert touched == []


# --- one live per login when grants race ---------------------------------------------------


@pytest.mark.committed
def test_grants_racing_on_one_login_leave_one_live_entitlement(
    django_db_blocker, tenants, monkeypatch
):
    """Eight grants at once (real threads, each its own connection, committed rows): the
    same package extends the one live entitlement, another package queues; never two
    live, never a grant lost."""
    from hotspot import router as hotspot_router

    monkeypatch.setattr(hotspot_router, "push_soon", lambda router_id: True)
    alpha = tenants["alpha"]
    with django_db_blocker.unblock(), tenant_context(alpha.isp):
        router = Router.objects.create(name="hs-race", host="192.0.2.11", username="api")
        hour = Package.objects.create(
            name="Race hour", price="20.00", validity_minutes=60, download_kbps=1000,
            upload_kbps=1000, data_limit_bytes=10**8,
        )  # fmt: skip
        day = Package.objects.create(
            name="Race day", price="50.00", validity_minutes=1440, download_kbps=1000,
            upload_kbps=1000,
        )  # fmt: skip
        rule(Stacking.EXTEND)
    errors, barrier = [], threading.Barrier(8)

    def grant(package):
        try:
            with tenant_context(alpha.isp), time_machine.travel(NOW, tick=False):
                barrier.wait(10)
                give(router, package, login="race")
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    try:
        threads = [threading.Thread(target=grant, args=(p,)) for p in [hour] * 6 + [day] * 2]
        with django_db_blocker.unblock():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert errors == []
        with django_db_blocker.unblock(), tenant_context(alpha.isp):
            rows = list(Entitlement.objects.filter(router=router, login="race"))
            live = [e for e in rows if e.state == "live"]
            assert len(live) == 1
            queued = [e for e in rows if e.state == "queued"]
            # Whichever came first is live; the same package always ends on one row.
            if live[0].package_id == hour.pk:
                assert live[0].minutes == 6 * 60 and live[0].data_limit_bytes == 6 * 10**8
                assert len(queued) == 2
            else:
                assert live[0].minutes == 2 * 1440
                assert sorted(e.minutes for e in queued) == [60] * 6
            assert Grant.objects.filter(entitlement__router=router).count() == 8
    finally:
        with django_db_blocker.unblock(), tenant_context(alpha.isp):
            Grant.objects.filter(entitlement__router=router).delete()
            Entitlement.objects.filter(router=router).delete()
            Package.objects.filter(pk__in=[hour.pk, day.pk]).delete()
            router.delete()
            rule(Stacking.EXTEND)
