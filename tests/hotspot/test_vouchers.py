"""Voucher codes and the life of a card: the alphabet and length, codes typed in any
case, unique codes when batches are made at once, one redemption per code however
many race, states, revoking and the expiry of unsold cards."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import vouchers
from hotspot.models import AgentEntry, HotspotSettings, Package, Voucher, VoucherBatch
from hotspot.vouchers import Refusal, VoucherError
from ispops.audit.models import AuditEntry
from network.models import Router
from subscribers.models import NetworkSite

State = Voucher.State


# --- codes ----------------------------------------------------------------------------


def test_codes_use_the_alphabet_without_look_alikes_at_the_isps_length(make_batch):
    HotspotSettings.objects.filter(pk=HotspotSettings.load().pk).update(code_length=10)
    batch = make_batch(count=200)
    codes = list(batch.vouchers.values_list("code", flat=True))
    assert len(codes) == len(set(codes)) == 200
    assert all(len(code) == 10 for code in codes)
    used = set("".join(codes))
    assert not used & set("0O1IL")
    assert used <= set(vouchers.ALPHABET)
    assert len(used) > 25  # drawn over the whole alphabet


def test_the_default_length_is_eight(make_batch):
    assert {len(c) for c in make_batch(count=3).vouchers.values_list("code", flat=True)} == {8}


@pytest.mark.parametrize(
    "typed", ["abcd efgh", "ABCD-EFGH", " abcd-EFgh\t", "abcd\u2013efgh", "AbCdEfGh"]
)
def test_a_code_typed_in_any_case_with_spaces_or_dashes_is_the_stored_code(typed):
    assert vouchers.normalise_code(typed) == "ABCDEFGH"


def test_a_code_typed_in_lower_case_is_found(make_batch):
    voucher = make_batch(count=1).vouchers.get()
    typed = vouchers.grouped(voucher.code).lower().replace(" ", "-")
    found = vouchers.find_redeemable(typed)
    assert found.ok and found.voucher == voucher


def test_a_batch_has_one_to_ten_thousand_cards(make_batch):
    for count in (0, vouchers.MAX_BATCH + 1):
        with pytest.raises(VoucherError):
            make_batch(count=count)
    assert not VoucherBatch.objects.exists()


def test_a_batch_records_who_made_it_and_the_price_defaults_to_the_packages(
    make_batch, in_alpha, package
):
    batch = make_batch(count=2)
    assert batch.price == Decimal("20.00")  # the package's
    assert batch.created_by == in_alpha.owner.email
    assert AuditEntry.objects.filter(model="hotspot.voucherbatch", object_id=str(batch.pk)).exists()
    assert make_batch(count=1, price="15").price == Decimal("15.00")


def _committed_package(alpha):
    return Package.objects.create(
        name="Race hour", price="10.00", validity_minutes=60, download_kbps=1, upload_kbps=1
    )


def _drop(package):
    batches = VoucherBatch.objects.filter(package=package)
    AgentEntry.objects.filter(batch__in=batches).delete()
    Voucher.objects.filter(batch__in=batches).delete()
    batches.delete()
    package.delete()


def _in_threads(alpha, calls) -> tuple[list, list]:
    """Run each call in its own thread and connection, all starting at once."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def work(i, call):
        try:
            with tenant_context(alpha.isp):
                barrier.wait(timeout=30)
                results[i] = call()
        except Exception as exc:  # reported by the callers' assertions
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


@pytest.mark.committed
def test_two_batches_made_at_once_share_no_code(tenants, django_db_blocker, monkeypatch):
    """A tiny code space (3 letters, 6 long: 729 codes) makes the two batches collide
    often: each still gets its count, and no code is in both."""
    alpha = tenants["alpha"]
    monkeypatch.setattr(vouchers, "ALPHABET", "ABC")
    with django_db_blocker.unblock():
        with tenant_context(alpha.isp):
            package = _committed_package(alpha)
            settings_row = HotspotSettings.load()
            old_length = settings_row.code_length
            HotspotSettings.objects.filter(pk=settings_row.pk).update(code_length=6)
        try:

            def make():
                return vouchers.generate_batch(package, 250, actor="race").pk

            results, errors = _in_threads(alpha, [make, make])
            assert errors == []
            with tenant_context(alpha.isp):
                first, second = (
                    set(Voucher.objects.filter(batch_id=pk).values_list("code", flat=True))
                    for pk in results
                )
                assert len(first) == len(second) == 250
                assert not first & second
                assert {len(c) for c in first | second} == {6}
        finally:
            with tenant_context(alpha.isp):
                _drop(package)
                HotspotSettings.objects.filter(pk=settings_row.pk).update(code_length=old_length)
            connection.set_schema_to_public()


@pytest.mark.committed
def test_a_code_redeems_once_when_two_devices_try_at_once(tenants, django_db_blocker):
    alpha = tenants["alpha"]
    with django_db_blocker.unblock():
        with tenant_context(alpha.isp):
            package = _committed_package(alpha)
            voucher = vouchers.generate_batch(package, 1, actor="race").vouchers.get()
        try:
            at = timezone.now()

            def redeem():
                found = vouchers.find_redeemable(voucher.code.lower())
                return found.ok and vouchers.mark_redeemed(found.voucher, at)

            results, errors = _in_threads(alpha, [redeem] * 4)
            assert errors == []
            assert sorted(results) == [False, False, False, True]
            with tenant_context(alpha.isp):
                voucher.refresh_from_db()
                assert voucher.state == State.REDEEMED and voucher.redeemed_at == at
        finally:
            with tenant_context(alpha.isp):
                _drop(package)
            connection.set_schema_to_public()


# --- the captive page's look-up ---------------------------------------------------------


def test_a_redeemed_code_is_refused_as_used(make_batch):
    voucher = make_batch(count=1).vouchers.get()
    assert vouchers.mark_redeemed(voucher, timezone.now()) is True
    assert vouchers.mark_redeemed(voucher, timezone.now()) is False
    found = vouchers.find_redeemable(voucher.code)
    assert not found.ok and found.reason == Refusal.USED


def test_an_unknown_or_garbage_code_is_refused(make_batch):
    make_batch(count=1)
    for typed in ("", "NOPE2345", "x" * 40):
        found = vouchers.find_redeemable(typed)
        assert found.voucher is None and found.reason == Refusal.UNKNOWN


def test_a_card_with_its_agent_redeems_and_counts_as_sold_by_them(in_alpha, make_batch):
    batch = make_batch(count=2, agent=in_alpha.agent, commission_percent=10)
    voucher = batch.vouchers.first()
    assert voucher.state == State.ASSIGNED
    assert vouchers.find_redeemable(voucher.code).ok
    assert vouchers.mark_redeemed(voucher, timezone.now())
    voucher.refresh_from_db()
    assert voucher.state == State.REDEEMED and voucher.sold_at == voucher.redeemed_at
    commission = AgentEntry.objects.get(agent=in_alpha.agent, kind="commission")
    assert commission.amount == Decimal("2.00") and commission.voucher == voucher


def test_a_card_is_refused_at_a_router_where_its_package_or_site_is_not_sold(
    in_alpha, make_batch, package
):
    here = NetworkSite.objects.create(name="Stage", kind="pop")
    there = NetworkSite.objects.create(name="Campus", kind="pop")
    router_here = Router.objects.create(name="hs-here", host="192.0.2.10", username="a", site=here)
    router_there = Router.objects.create(
        name="hs-there", host="192.0.2.11", username="a", site=there
    )
    anywhere = make_batch(count=1).vouchers.get()
    assert vouchers.find_redeemable(anywhere.code, router=router_there).ok
    on_site = make_batch(count=1, site=here).vouchers.get()
    assert vouchers.find_redeemable(on_site.code, router=router_here).ok
    refused = vouchers.find_redeemable(on_site.code, router=router_there)
    assert refused.reason == Refusal.ELSEWHERE
    package.routers.set([router_here])
    assert vouchers.find_redeemable(anywhere.code, router=router_there).reason == (
        Refusal.ELSEWHERE
    )
    assert vouchers.find_redeemable(anywhere.code, router=router_here).ok


def test_a_card_of_a_package_no_longer_sold_is_refused(make_batch, package):
    voucher = make_batch(count=1).vouchers.get()
    Package.objects.filter(pk=package.pk).update(is_active=False)
    assert vouchers.find_redeemable(voucher.code).reason == Refusal.WITHDRAWN


# --- states, revoking, expiry ---------------------------------------------------------


def test_a_card_goes_generated_sold_redeemed(in_alpha, make_batch):
    voucher = make_batch(count=1).vouchers.get()
    assert voucher.state == State.GENERATED
    vouchers.sell(voucher, phone="0712 345 678", actor=in_alpha.support)
    voucher.refresh_from_db()
    assert voucher.state == State.SOLD and voucher.sold_to == "254712345678"
    with pytest.raises(VoucherError):
        vouchers.sell(voucher, actor=in_alpha.support)
    assert vouchers.mark_redeemed(voucher, timezone.now())
    voucher.refresh_from_db()
    assert voucher.state == State.REDEEMED
    with pytest.raises(VoucherError):
        vouchers.revoke_voucher(voucher, actor=in_alpha.owner)


def test_a_sale_refuses_a_phone_that_is_not_a_mobile(in_alpha, make_batch):
    voucher = make_batch(count=1).vouchers.get()
    with pytest.raises(VoucherError):
        vouchers.sell(voucher, phone="12", actor=in_alpha.owner)
    voucher.refresh_from_db()
    assert voucher.state == State.GENERATED


def test_a_revoked_card_cannot_be_sold_or_redeemed(in_alpha, make_batch):
    voucher = make_batch(count=1).vouchers.get()
    vouchers.revoke_voucher(voucher, actor=in_alpha.owner)
    assert vouchers.find_redeemable(voucher.code).reason == Refusal.REVOKED
    assert vouchers.mark_redeemed(voucher, timezone.now()) is False
    with pytest.raises(VoucherError):
        vouchers.sell(voucher, actor=in_alpha.owner)


def test_revoking_a_batch_revokes_every_card_not_yet_used(in_alpha, make_batch):
    batch = make_batch(count=5)
    used, sold, *rest = batch.vouchers.order_by("id")
    vouchers.mark_redeemed(used, timezone.now())
    vouchers.sell(sold, actor=in_alpha.owner)
    assert vouchers.revoke_batch(batch, actor=in_alpha.owner) == 4
    counts = vouchers.state_counts(batch)
    assert counts[State.REVOKED] == 4 and counts[State.REDEEMED] == 1
    batch.refresh_from_db()
    assert batch.revoked_at is not None
    assert all(vouchers.find_redeemable(v.code).reason == Refusal.REVOKED for v in rest)
    with pytest.raises(VoucherError):
        vouchers.revoke_batch(batch, actor=in_alpha.owner)


def test_unsold_cards_expire_at_the_batchs_date_and_sold_ones_still_work(in_alpha, make_batch):
    now = timezone.now()
    batch = make_batch(count=3, unsold_expire_at=now + timedelta(days=2))
    sold, unsold, other = batch.vouchers.order_by("id")
    vouchers.sell(sold, actor=in_alpha.owner)
    with time_machine.travel(now + timedelta(days=2, minutes=1), tick=False):
        # Refused from the moment itself, before the sweep has run.
        assert vouchers.find_redeemable(unsold.code).reason == Refusal.EXPIRED
        assert vouchers.mark_redeemed(other, timezone.now()) is False
        assert vouchers.find_redeemable(sold.code).ok
        assert vouchers.expire_unsold() == 2
        assert vouchers.expire_unsold() == 0
        assert vouchers.mark_redeemed(sold, timezone.now()) is True
    counts = vouchers.state_counts(batch)
    assert counts[State.EXPIRED] == 2 and counts[State.REDEEMED] == 1


def test_an_expiry_in_the_past_is_refused(make_batch):
    with pytest.raises(VoucherError):
        make_batch(count=1, unsold_expire_at=timezone.now() - timedelta(minutes=1))


def test_the_beat_expires_unsold_cards_in_every_isp(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["expire-unsold-vouchers"]
    assert entry["task"] == "ispops.tasks.fan_out"
    assert entry["args"] == ["hotspot.tasks.expire_unsold_vouchers"]


def test_the_expiry_task_runs_the_sweep(in_alpha, make_batch):
    from hotspot.tasks import expire_unsold_vouchers

    batch = make_batch(count=2, unsold_expire_at=timezone.now() + timedelta(hours=1))
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        assert expire_unsold_vouchers() == 2
    assert vouchers.state_counts(batch)[State.EXPIRED] == 2
