"""Monitoring: polls with the real librouteros client against the RouterOS emulator over
TCP (samples, rates, sessions, offline routers), alerts and their emails, downsampling,
the charts fragment, the alerts page and online status for subscriber pages."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, Role, User
from network import monitoring
from network.models import ActiveSession, Alert, InterfaceSample, Router, RouterSample
from network.services import add_router
from subscribers import services as subscribers
from subscribers.models import Plan

MBIT = 1_000_000


@pytest.fixture(autouse=True)
def quick_timeout(settings):
    # A router that is down must not hold a test for the production timeout.
    settings.ROUTER_API_TIMEOUT = 2


@pytest.fixture
def record(in_alpha):
    """A router record for tests that need no router to answer."""
    return add_router(
        actor="test", name="core-record", host="192.0.2.1", port=8728, username="api", password="x"
    )


def subscriber_online(emulator, name, service="pppoe", address="10.10.0.2"):
    if service == "pppoe":
        emulator.add_row("/ppp/secret", name=name, password="pw", profile="default")
    else:
        emulator.add_row("/ip/hotspot/user", name=name, password="pw", profile="default")
    emulator.dial_in(name, address=address, service=service)


def dead_router(name="gone", **fields) -> Router:
    # A port nothing listens on: the connection is refused at once.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return add_router(
        actor="test",
        name=name,
        host="127.0.0.1",
        port=port,
        username="admin",
        password="x",
        **fields,
    )


def raw(model, router, **filters):
    return model.objects.filter(router=router, resolution="raw", **filters)


# --- polling ---------------------------------------------------------------------------


def test_poll_writes_health_interface_samples_and_marks_the_router_online(router, emulator):
    emulator.cpu_load = 17
    subscriber_online(emulator, "wanjiku")

    with time_machine.travel(timezone.now() + timedelta(hours=3)):  # 3 h after boot
        summary = monitoring.poll_router(router)

    assert summary["answered"] is True
    sample = raw(RouterSample, router).get()
    assert sample.cpu_load == 17
    assert sample.total_memory > 0 and 0 < sample.free_memory <= sample.total_memory
    assert 3 * 3600 <= sample.uptime_seconds < 3 * 3600 + 60
    assert sample.active_sessions == 1
    interfaces = set(raw(InterfaceSample, router).values_list("interface", flat=True))
    assert "ether1" in interfaces
    assert not any(name.startswith("<") for name in interfaces)  # per-subscriber ones
    router.refresh_from_db()
    assert router.status == Router.Status.ONLINE
    assert router.identity == "MikroTik" and router.version.startswith("7.")
    assert router.last_seen_at == sample.at and router.last_error == ""


def test_interface_rates_are_counter_deltas_over_the_time_between_polls(router, emulator):
    # The emulator's counters and our clock travel together: rates are exact.
    with time_machine.travel(timezone.now(), tick=False) as clock:
        emulator.set_traffic("ether1", 40 * MBIT, 8 * MBIT)
        monitoring.poll_router(router)
        clock.shift(60)
        monitoring.poll_router(router)

    first, second = raw(InterfaceSample, router, interface="ether1").order_by("at")
    assert (second.at - first.at).total_seconds() == 60
    assert first.rx_bps == first.tx_bps == 0  # nothing to compare the first poll with
    assert second.rx_bytes - first.rx_bytes == 40 * MBIT * 60 // 8
    assert second.rx_bps == 40 * MBIT and second.tx_bps == 8 * MBIT


def test_a_counter_that_went_back_gives_a_zero_rate_not_a_negative_one(router, emulator):
    now = timezone.now()
    InterfaceSample.objects.create(
        router=router,
        interface="ether1",
        at=now - timedelta(seconds=60),
        rx_bytes=10**15,
        tx_bytes=10**15,
    )
    monitoring.poll_router(router, now=now)
    latest = raw(InterfaceSample, router, interface="ether1").get(at=now)
    assert latest.rx_bps == 0 and latest.tx_bps == 0


def test_sessions_are_replaced_at_every_poll(router, emulator):
    subscriber_online(emulator, "alice", address="10.10.0.2")
    subscriber_online(emulator, "bob", address="10.10.0.3")
    subscriber_online(emulator, "carol", service="hotspot", address="10.20.0.5")
    monitoring.poll_router(router)
    sessions = {s.username: s for s in ActiveSession.objects.filter(router=router)}
    assert set(sessions) == {"alice", "bob", "carol"}
    assert sessions["bob"].service == "pppoe" and sessions["bob"].address == "10.10.0.3"
    assert sessions["carol"].service == "hotspot" and sessions["carol"].address == "10.20.0.5"

    emulator.hang_up("alice")
    emulator.hang_up("carol")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        # bob's bytes are the counters of his dynamic <pppoe-bob> interface.
        emulator.set_traffic("<pppoe-bob>", 8 * MBIT, 16 * MBIT)
        monitoring.poll_router(router)
        before = ActiveSession.objects.get(router=router, username="bob")
        clock.shift(10)
        monitoring.poll_router(router)
    bob = ActiveSession.objects.get(router=router, username="bob")
    assert bob.rx_bytes - before.rx_bytes == 10 * MBIT  # 8 Mbit/s for 10 s, in bytes
    assert bob.tx_bytes - before.tx_bytes == 20 * MBIT
    assert list(ActiveSession.objects.filter(router=router).values_list("username", flat=True)) == [
        "bob"
    ]
    assert raw(RouterSample, router).order_by("at").last().active_sessions == 1


def test_poll_all_routers_counts_those_that_answered_and_goes_past_a_dead_one(router, emulator):
    gone = dead_router()
    assert monitoring.poll_all_routers() == 1
    gone.refresh_from_db()
    router.refresh_from_db()
    assert gone.status == Router.Status.OFFLINE and router.status == Router.Status.ONLINE
    assert raw(RouterSample, router).count() == 1
    assert not RouterSample.objects.filter(router=gone).exists()


def test_wrong_api_password_marks_the_router_offline_with_the_reason(router, emulator):
    router.password = "not-the-password"
    router.save(update_fields=["password"])
    summary = monitoring.poll_router(router)
    router.refresh_from_db()
    assert summary["answered"] is False
    assert router.status == Router.Status.OFFLINE
    assert "wrong username or password" in router.last_error
    assert not RouterSample.objects.filter(router=router).exists()


# --- alerts ------------------------------------------------------------------------------


def test_router_down_opens_once_after_three_minutes_emails_managers_once_and_resolves(
    router, emulator, alpha, mailoutbox, django_capture_on_commit_callbacks
):
    t0 = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        monitoring.poll_router(router, now=t0)
        emulator.go_down()
        for minute in (1, 2, 3):
            monitoring.poll_router(router, now=t0 + timedelta(minutes=minute))
        router.refresh_from_db()
        assert router.status == Router.Status.OFFLINE
        assert router.name in router.last_error and "127.0.0.1" in router.last_error
        assert not Alert.objects.filter(router=router).exists()  # 3 minutes: not yet

        for minute in (4, 5, 6):
            monitoring.poll_router(router, now=t0 + timedelta(minutes=minute))
    alert = Alert.objects.get(router=router)
    assert alert.kind == Alert.Kind.ROUTER_DOWN and alert.resolved_at is None
    assert alert.opened_at == t0 + timedelta(minutes=4)
    assert alert.last_seen_at == t0 + timedelta(minutes=6)
    assert alert.notified_at is not None
    assert raw(RouterSample, router).count() == 1  # no samples while down

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.subject == f"[ispops] Router not answering: {router}"
    assert set(mail.to) == {alpha.owner.email, alpha.admin.email}

    emulator.come_up()
    with django_capture_on_commit_callbacks(execute=True):
        monitoring.poll_router(router, now=t0 + timedelta(minutes=7))
    alert.refresh_from_db()
    router.refresh_from_db()
    assert alert.resolved_at == t0 + timedelta(minutes=7)
    assert router.status == Router.Status.ONLINE and router.last_error == ""
    assert len(mailoutbox) == 1


def test_cpu_high_opens_when_it_stays_high_for_three_polls_not_for_one_spike(
    router, emulator, mailoutbox, django_capture_on_commit_callbacks
):
    t0 = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for minute, load in enumerate([95, 20, 91, 99]):
            emulator.cpu_load = load
            monitoring.poll_router(router, now=t0 + timedelta(minutes=minute))
        assert not Alert.objects.filter(router=router).exists()

        emulator.cpu_load = 96
        monitoring.poll_router(router, now=t0 + timedelta(minutes=4))
        monitoring.poll_router(router, now=t0 + timedelta(minutes=5))
    alert = Alert.objects.get(router=router, kind=Alert.Kind.CPU_HIGH)
    assert alert.resolved_at is None and alert.opened_at == t0 + timedelta(minutes=4)
    assert "96%" in alert.message
    assert [m.subject for m in mailoutbox] == [f"[ispops] CPU high: {router}"]

    emulator.cpu_load = 40
    monitoring.poll_router(router, now=t0 + timedelta(minutes=6))
    alert.refresh_from_db()
    assert alert.resolved_at == t0 + timedelta(minutes=6)


def test_uplink_near_capacity_opens_an_alert_and_resolves_when_traffic_drops(router, emulator):
    Router.objects.filter(pk=router.pk).update(uplink_capacity_mbps=100)
    router.refresh_from_db()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        emulator.set_traffic("ether1", 85 * MBIT, 5 * MBIT)  # 85% of 100 Mbit/s
        for _ in range(3):  # the first poll has no rate to compare with
            monitoring.poll_router(router)
            clock.shift(60)
        assert not Alert.objects.filter(router=router).exists()
        monitoring.poll_router(router)
        alert = Alert.objects.get(router=router)
        assert alert.kind == Alert.Kind.UPLINK_FULL and alert.resolved_at is None
        assert alert.message.startswith("ether1 at 85 Mbit/s of 100 Mbit/s")

        emulator.set_traffic("ether1", 70 * MBIT, 70 * MBIT)
        clock.shift(60)
        monitoring.poll_router(router)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_an_open_alert_is_refreshed_not_duplicated(record):
    now = timezone.now()
    first = monitoring.raise_alert(record, Alert.Kind.CPU_HIGH, "CPU load 95%", now)
    again = monitoring.raise_alert(
        record, Alert.Kind.CPU_HIGH, "CPU load 97%", now + timedelta(minutes=1)
    )
    assert again.pk == first.pk
    assert again.message == "CPU load 97%" and again.last_seen_at == now + timedelta(minutes=1)
    assert Alert.objects.filter(router=record).count() == 1


def test_alert_emails_skip_admins_of_other_branches(record, alpha):
    ours, theirs = (
        Branch.objects.create(name="Ours", code="ours"),
        Branch.objects.create(name="Theirs", code="theirs"),
    )
    Router.objects.filter(pk=record.pk).update(branch=ours)
    record.refresh_from_db()
    elsewhere = User.objects.create_user("elsewhere@alpha.test", "pw-12345678", role=Role.ADMIN)
    elsewhere.branches.add(theirs)
    here = User.objects.create_user("here@alpha.test", "pw-12345678", role=Role.ADMIN)
    here.branches.add(ours)
    recipients = monitoring.alert_recipients(record)
    assert "here@alpha.test" in recipients and alpha.owner.email in recipients
    assert "elsewhere@alpha.test" not in recipients


# --- downsampling --------------------------------------------------------------------------


def _health(router, at, cpu, resolution="raw"):
    RouterSample.objects.create(
        router=router,
        at=at,
        resolution=resolution,
        cpu_load=cpu,
        free_memory=100,
        total_memory=200,
        uptime_seconds=1000,
        active_sessions=cpu // 10,
    )


def _traffic(router, at, bps, resolution="raw"):
    InterfaceSample.objects.create(
        router=router,
        interface="ether1",
        at=at,
        resolution=resolution,
        rx_bytes=bps,
        tx_bytes=bps,
        rx_bps=bps,
        tx_bps=bps // 2,
    )


def test_downsample_folds_old_points_into_averages_and_a_second_run_changes_nothing(record):
    now = datetime(2025, 3, 10, 12, 2, tzinfo=UTC)
    day_ago = datetime(2025, 3, 8, 9, 0, tzinfo=UTC)  # two days back, on a 5-minute edge
    for minute, cpu in [(0, 10), (1, 20), (2, 30), (3, 40), (4, 50), (5, 60), (6, 80)]:
        _health(record, day_ago + timedelta(minutes=minute), cpu)
        _traffic(record, day_ago + timedelta(minutes=minute), cpu * MBIT)
    _health(record, now - timedelta(hours=1), 5)  # recent: stays raw
    _traffic(record, now - timedelta(hours=1), 5)
    month_ago = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
    for minutes, cpu in [(0, 10), (5, 30), (55, 50)]:  # one hour of 5-minute points
        _health(record, month_ago + timedelta(minutes=minutes), cpu, resolution="5m")
    _health(record, now - timedelta(days=400), 70, resolution="1h")  # past a year: gone

    removed = monitoring.downsample(now=now)

    assert removed == 7 + 7 + 3 + 1
    assert list(raw(RouterSample, record).values_list("cpu_load", flat=True)) == [5]
    five = RouterSample.objects.filter(router=record, resolution="5m").order_by("at")
    assert [(s.at, s.cpu_load, s.active_sessions) for s in five] == [
        (day_ago, 30, 3),
        (day_ago + timedelta(minutes=5), 70, 7),
    ]
    traffic = InterfaceSample.objects.filter(router=record, resolution="5m").order_by("at")
    assert [(s.at, s.rx_bps, s.tx_bps) for s in traffic] == [
        (day_ago, 30 * MBIT, 15 * MBIT),
        (day_ago + timedelta(minutes=5), 70 * MBIT, 35 * MBIT),
    ]
    hourly = RouterSample.objects.filter(router=record, resolution="1h")
    assert [(s.at, s.cpu_load) for s in hourly] == [(month_ago, 30)]

    def snapshot():
        return sorted(RouterSample.objects.values_list("at", "resolution", "cpu_load")), sorted(
            InterfaceSample.objects.values_list("at", "resolution", "rx_bps")
        )

    before = snapshot()
    assert monitoring.downsample(now=now) == 0
    assert snapshot() == before


def test_downsample_leaves_an_unfinished_bucket_raw_until_it_is_whole(record):
    now = datetime(2025, 3, 10, 12, 2, tzinfo=UTC)
    edge = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)  # the 5-minute bucket holding now - 24h
    _health(record, edge + timedelta(minutes=1), 10)
    _health(record, edge + timedelta(minutes=3), 30)
    assert monitoring.downsample(now=now) == 0
    assert monitoring.downsample(now=now + timedelta(minutes=5)) == 2
    assert list(RouterSample.objects.filter(router=record).values_list("at", "cpu_load")) == [
        (edge, 20)
    ]


# --- series and pages -------------------------------------------------------------------------


def _some_history(router, now):
    Router.objects.filter(pk=router.pk).update(uplink_capacity_mbps=100, status="online")
    router.refresh_from_db()
    for minutes in range(0, 180, 3):
        at = now - timedelta(minutes=minutes)
        _health(router, at, 20 + minutes % 50)
        _traffic(router, at, (10 + minutes % 40) * MBIT)


def test_series_averages_into_buckets_for_longer_spans(record):
    now = timezone.now()
    _some_history(record, now)
    short = monitoring.series(record, hours=6, now=now)
    day = monitoring.series(record, hours=24, now=now)
    week = monitoring.series(record, hours=168, now=now)
    assert len(short["cpu"]) == 60  # every raw point
    assert 30 <= len(day["cpu"]) <= 61  # 5-minute buckets
    assert 3 <= len(week["cpu"]) <= 4  # hours
    assert week["capacity_bps"] == 100 * MBIT
    assert [at for at, _ in day["rx"]] == sorted(at for at, _ in day["rx"])


# A client's login leaves the connection on the public schema: data is made inside
# tenant_context after it.


def test_charts_fragment_renders_svg_charts_for_support(record, alpha):
    client = alpha.client(alpha.support)
    with tenant_context(alpha.isp):
        _some_history(record, timezone.now())
        Alert.objects.create(router=record, kind=Alert.Kind.CPU_HIGH, message="CPU load 93%")
    for hours in (6, 24, 168):
        response = client.get(f"/routers/{record.pk}/charts/?hours={hours}", HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        html = response.content.decode()
        assert "<html" not in html  # a fragment for htmx
        assert html.count("<svg") == 3 and "<polyline" in html
        assert 'class="rule"' in html  # the capacity line
        assert "CPU load 93%" in html
    page = client.get(f"/routers/{record.pk}/charts/?hours=oops")
    assert page.status_code == 200 and b"<html" in page.content


def test_charts_are_refused_to_technicians_and_to_staff_of_other_branches(record, alpha):
    ours, theirs = (
        Branch.objects.create(name="B1", code="b1"),
        Branch.objects.create(name="B2", code="b2"),
    )
    Router.objects.filter(pk=record.pk).update(branch=ours)
    limited = User.objects.create_user("limited@alpha.test", "pw-12345678", role=Role.SUPPORT)
    limited.branches.add(theirs)
    assert alpha.client(alpha.technician).get(f"/routers/{record.pk}/charts/").status_code == 403
    assert alpha.client(limited).get(f"/routers/{record.pk}/charts/").status_code == 404


def test_alerts_page_lists_open_alerts_first_then_recently_resolved(record, alpha):
    now = timezone.now()
    _alerts(record, now)
    html = alpha.client(alpha.admin).get("/alerts/").content.decode()
    assert html.index("open now") < html.index("resolved yesterday")
    assert "resolved long ago" not in html
    per_router = alpha.client(alpha.owner).get(f"/alerts/?router={record.pk}")
    assert per_router.status_code == 200 and "open now" in per_router.content.decode()
    assert alpha.client(alpha.technician).get("/alerts/").status_code == 403
    assert alpha.client(alpha.finance).get("/alerts/").status_code == 403


def _alerts(router, now):
    Alert.objects.create(
        router=router,
        kind=Alert.Kind.CPU_HIGH,
        message="resolved yesterday",
        opened_at=now - timedelta(days=1, hours=1),
        resolved_at=now - timedelta(days=1),
    )
    Alert.objects.create(router=router, kind=Alert.Kind.ROUTER_DOWN, message="open now")
    Alert.objects.create(
        router=router,
        kind=Alert.Kind.UPLINK_FULL,
        message="resolved long ago",
        opened_at=now - timedelta(days=40),
        resolved_at=now - timedelta(days=39),
    )


# --- online status for subscriber pages -------------------------------------------------------


def test_sessions_for_accounts_matches_router_username_and_service_in_one_query(
    record, django_assert_num_queries
):
    plan = Plan.objects.create(
        name="Fibre 5M", price="1500.00", download_kbps=5000, upload_kbps=2000
    )
    other = dead_router("other")
    accounts = []
    for username in ("online1", "online2", "offline1", "elsewhere"):
        customer = subscribers.create_customer(actor="test", name=username, phone="0712345678")
        accounts.append(
            subscribers.create_service_account(
                actor="test",
                customer=customer,
                plan=plan,
                username=username,
                password="pw",
                router=record,
                status="installing",
            )
        )
    now = timezone.now()
    ActiveSession.objects.bulk_create(
        [
            ActiveSession(router=record, username="online1", service="pppoe", seen_at=now),
            ActiveSession(
                router=record, username="online2", service="pppoe", uptime_seconds=7200, seen_at=now
            ),
            ActiveSession(router=record, username="offline1", service="hotspot", seen_at=now),
            ActiveSession(router=other, username="elsewhere", service="pppoe", seen_at=now),
        ]
    )
    with django_assert_num_queries(1):
        found = monitoring.sessions_for_accounts(accounts)
    assert set(found) == {accounts[0].pk, accounts[1].pk}
    assert found[accounts[1].pk].started_at == now - timedelta(hours=2)
    assert monitoring.sessions_for_accounts([]) == {}


def test_session_partial_shows_online_and_offline(record):
    now = timezone.now()
    session = ActiveSession.objects.create(
        router=record,
        username="wanjiku",
        service="pppoe",
        address="10.10.0.9",
        uptime_seconds=3 * 3600 + 120,
        rx_bytes=5 * 1024**2,
        tx_bytes=3 * 1024**3,
        seen_at=now,
    )
    session.started_at = now - timedelta(seconds=session.uptime_seconds)
    html = render_to_string("network/monitoring/_session.html", {"session": session})
    assert "online" in html and "10.10.0.9" in html
    assert "3\xa0hours" in html and "5.0\xa0MB" in html and "3.0\xa0GB" in html
    assert "as of" in html
    assert "offline" in render_to_string("network/monitoring/_session.html", {"session": None})
