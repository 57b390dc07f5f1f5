"""Monitoring: polling routers, the time series, downsampling and alerts.

A poll reads one router over one API connection (health, interface counters, who is
online), then writes what it read in one transaction: a raw RouterSample, an
InterfaceSample per physical interface (rates from the previous raw sample's counters),
and the router's ActiveSession rows, replaced whole. Network I/O never happens inside
that transaction. The router's monitoring fields are written with QuerySet.update():
a poll a minute is not an edit anyone made, so it stays out of the audit log.

Alerts are evaluated after every poll (the rules are next to their constants below);
there is one open alert per router and kind (alert_one_open_per_kind), and the owners
and admins are emailed once when one opens.

Raw points are kept a day, then averaged into 5-minute points (kept 30 days), then into
hourly ones (kept a year): see downsample().
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Avg, DateTimeField, F, Func, Q
from django.utils import timezone
from django_tenants.utils import schema_context
from librouteros.exceptions import MultiTrapError, TrapError
from librouteros.query import Key

from ispops.staff.models import Role, User
from network.models import ActiveSession, Alert, InterfaceSample, Router, RouterSample
from network.routeros import (
    RouterError,
    RouterLoginFailed,
    RouterRefused,
    RouterUnreachable,
    connect,
    parse_duration,
)

logger = logging.getLogger(__name__)

RAW = RouterSample.Resolution.RAW
FIVE_MIN = RouterSample.Resolution.FIVE_MIN
HOUR = RouterSample.Resolution.HOUR

# --- alert rules ----------------------------------------------------------------------
# ROUTER_DOWN: the router has not answered for more than ROUTER_DOWN_AFTER since it last
# did (since it was added, if it never has). A time rule rather than "3 failed polls":
# it means the same whatever the poll interval, and needs no failure counter.
ROUTER_DOWN_AFTER = timedelta(minutes=3)
# CPU_HIGH: cpu-load >= ALERT_CPU_PERCENT in each of the last STAYS_HIGH raw samples
# (one spike is not an alert); resolved by the first sample below it.
ALERT_CPU_PERCENT = 90
# UPLINK_FULL: the uplink interface's rx or tx rate >= ALERT_UPLINK_SHARE of
# router.uplink_capacity_mbps in each of the last STAYS_HIGH raw samples; resolved by
# the first sample below it. Routers without a capacity are not checked.
ALERT_UPLINK_SHARE = 0.8
STAYS_HIGH = 3

# --- polling ----------------------------------------------------------------------------
# Only interfaces that exist for good go into the series; a dynamic PPP interface is one
# subscriber's session (its counters become that session's bytes).
PER_SESSION_TYPES = {"pppoe-in", "pptp-in", "l2tp-in", "sstp-in", "ovpn-in"}
INTERFACE_FIELDS = ("name", "rx-byte", "tx-byte", "running", "type")
# A previous counter older than this is not used for a rate (the router was away).
RATE_WINDOW = timedelta(minutes=30)
# Routers are read in parallel (network only; all database writes stay in this thread).
POLL_THREADS = 8

# --- retention ----------------------------------------------------------------------------
# (from, to, kept for, bucket): points older than `kept for` are averaged per bucket.
FOLDS = [
    (RAW, FIVE_MIN, timedelta(hours=24), timedelta(minutes=5)),
    (FIVE_MIN, HOUR, timedelta(days=30), timedelta(hours=1)),
]
HOURLY_KEPT = timedelta(days=365)
# Buckets start at multiples of their size from this origin (UTC; Nairobi is UTC+3, so
# hours line up locally too).
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

# --- charts -------------------------------------------------------------------------------
# hours shown -> bucket the points are averaged into (None: raw points as polled).
SERIES_STEPS = {6: None, 24: timedelta(minutes=5), 168: timedelta(hours=1)}


@dataclass
class Reading:
    """What one poll read from a router (no database objects, so threads can make it)."""

    at: datetime
    identity: str = ""
    version: str = ""
    cpu_load: int = 0
    free_memory: int = 0
    total_memory: int = 0
    uptime_seconds: int = 0
    interfaces: list[dict] = field(default_factory=list)  # name, rx, tx
    sessions: list[dict] = field(default_factory=list)  # ActiveSession fields


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def read_router(router: Router, now: datetime | None = None) -> Reading:
    """Read health, counters and sessions over one connection. Raises RouterError."""
    with connect(router) as api:
        identity = next(iter(api.path("system", "identity")), {})
        resource = next(iter(api.path("system", "resource")), {})
        interfaces = list(api.path("interface").select(*(Key(k) for k in INTERFACE_FIELDS)))
        ppp = list(api.path("ppp", "active"))
        try:
            hotspot = list(api.path("ip", "hotspot", "active"))
        except (TrapError, MultiTrapError):
            hotspot = []  # no hotspot package on this router
    at = now or timezone.now()

    by_name = {str(row.get("name", "")): row for row in interfaces}
    sessions = {}
    for row in ppp:
        name = str(row.get("name", ""))
        service = str(row.get("service") or "pppoe")[:10]
        # The session's dynamic interface, "<pppoe-NAME>", holds its byte counters.
        counters = by_name.get(f"<{service}-{name}>", {})
        _add_session(
            sessions,
            username=name,
            service=service,
            address=row.get("address"),
            caller_id=row.get("caller-id"),
            uptime=row.get("uptime"),
            # Seen from the router: rx is what the subscriber sent (upload).
            rx_bytes=counters.get("rx-byte"),
            tx_bytes=counters.get("tx-byte"),
            at=at,
        )
    for row in hotspot:
        _add_session(
            sessions,
            username=str(row.get("user", "")),
            service="hotspot",
            address=row.get("address"),
            caller_id=row.get("mac-address"),
            uptime=row.get("uptime"),
            rx_bytes=row.get("bytes-in"),
            tx_bytes=row.get("bytes-out"),
            at=at,
        )
    return Reading(
        at=at,
        identity=str(identity.get("name", ""))[:80],
        version=str(resource.get("version", ""))[:40],
        cpu_load=min(_int(resource.get("cpu-load")), 100),
        free_memory=_int(resource.get("free-memory")),
        total_memory=_int(resource.get("total-memory")),
        uptime_seconds=parse_duration(resource.get("uptime")),
        interfaces=[
            {"name": name, "rx": _int(row.get("rx-byte")), "tx": _int(row.get("tx-byte"))}
            for name, row in by_name.items()
            if name
            and not name.startswith("<")
            and str(row.get("type", "")) not in PER_SESSION_TYPES
        ],
        sessions=list(sessions.values()),
    )


def _add_session(
    sessions: dict, *, username, service, address, caller_id, uptime, rx_bytes, tx_bytes, at
):
    # RouterOS lists a login twice when a profile allows it (only-one=no); we keep one row
    # per (service, username), as activesession_unique requires.
    username = username[:64]
    if not username or (service, username) in sessions:
        return
    sessions[(service, username)] = {
        "username": username,
        "service": service,
        "address": str(address or "")[:45],
        "caller_id": str(caller_id or "")[:40],
        "uptime_seconds": parse_duration(uptime),
        "rx_bytes": _int(rx_bytes),
        "tx_bytes": _int(tx_bytes),
        "seen_at": at,
    }


def _rate(counter: int, previous: int, seconds: float) -> int:
    """Bits per second between two counter values; a counter that went back (reboot,
    reset) gives 0, not a negative rate."""
    if seconds <= 0 or counter < previous:
        return 0
    return round((counter - previous) * 8 / seconds)


def record_reading(router: Router, reading: Reading) -> dict:
    """Store one successful poll and mark the router online."""
    at = reading.at
    names = [row["name"] for row in reading.interfaces]
    with transaction.atomic():
        # The newest raw point of each interface (DISTINCT ON, via ifsample_series).
        previous = {
            sample.interface: sample
            for sample in InterfaceSample.objects.filter(
                router=router,
                interface__in=names,
                resolution=RAW,
                at__lt=at,
                at__gte=at - RATE_WINDOW,
            )
            .order_by("interface", "-at")
            .distinct("interface")
        }
        samples = []
        for row in reading.interfaces:
            before = previous.get(row["name"])
            seconds = (at - before.at).total_seconds() if before else 0
            samples.append(
                InterfaceSample(
                    router=router,
                    interface=row["name"][:64],
                    at=at,
                    resolution=RAW,
                    rx_bytes=row["rx"],
                    tx_bytes=row["tx"],
                    rx_bps=_rate(row["rx"], before.rx_bytes, seconds) if before else 0,
                    tx_bps=_rate(row["tx"], before.tx_bytes, seconds) if before else 0,
                )
            )
        InterfaceSample.objects.bulk_create(samples)
        RouterSample.objects.create(
            router=router,
            at=at,
            resolution=RAW,
            cpu_load=reading.cpu_load,
            free_memory=reading.free_memory,
            total_memory=reading.total_memory,
            uptime_seconds=reading.uptime_seconds,
            active_sessions=len(reading.sessions),
        )
        ActiveSession.objects.filter(router=router).delete()
        ActiveSession.objects.bulk_create(
            [ActiveSession(router=router, **session) for session in reading.sessions]
        )
        _set_router(
            router,
            status=Router.Status.ONLINE,
            last_seen_at=at,
            identity=reading.identity,
            version=reading.version,
            last_error="",
        )
        evaluate_alerts(router, at, answered=True)
    return {
        "router": router.pk,
        "answered": True,
        "error": "",
        "cpu_load": reading.cpu_load,
        "sessions": len(reading.sessions),
        "interfaces": len(samples),
    }


def record_failure(router: Router, error: RouterError, at: datetime) -> dict:
    """Store a poll that got no data. Unreachable or refused login: the router is offline.
    A refused command: it answered (online), but we could not read it; the error says why."""
    message = str(error)[:255]
    answered = isinstance(error, RouterRefused)
    with transaction.atomic():
        if answered:
            _set_router(router, status=Router.Status.ONLINE, last_seen_at=at, last_error=message)
        else:
            _set_router(router, status=Router.Status.OFFLINE, last_error=message)
        evaluate_alerts(router, at, answered=answered)
    return {"router": router.pk, "answered": answered, "error": message}


def _set_router(router: Router, **fields) -> None:
    # update(), not save(): monitoring is not an edit, and must not flood the audit log.
    Router.objects.filter(pk=router.pk).update(**fields)
    for name, value in fields.items():
        setattr(router, name, value)


def poll_router(router: Router, now: datetime | None = None) -> dict:
    """Poll one router and store the result; returns a summary ("answered", "error", ...)."""
    try:
        reading = read_router(router, now)
    except (RouterUnreachable, RouterLoginFailed, RouterRefused) as exc:
        return record_failure(router, exc, now or timezone.now())
    return record_reading(router, reading)


def _read_or_error(router: Router) -> Reading | Exception:
    try:
        return read_router(router)
    except Exception as exc:  # reported by the caller, per router
        return exc


def poll_all_routers() -> int:
    """Poll every router of the current schema; returns how many answered.

    Routers are read in parallel threads (each its own connection, no database access),
    then recorded one by one here; one router's failure never stops the others.
    """
    routers = list(Router.objects.all())
    if not routers:
        return 0
    with ThreadPoolExecutor(max_workers=min(POLL_THREADS, len(routers))) as pool:
        results = list(pool.map(_read_or_error, routers))
    answered = 0
    for router, result in zip(routers, results, strict=True):
        try:
            if isinstance(result, Reading):
                summary = record_reading(router, result)
            elif isinstance(result, RouterError):
                summary = record_failure(router, result, timezone.now())
            else:
                logger.error("polling %s failed", router, exc_info=result)
                continue
        except Exception:
            logger.exception("recording the poll of %s failed", router)
            continue
        answered += summary["answered"]
    return answered


# --- alerts ----------------------------------------------------------------------------


def evaluate_alerts(router: Router, now: datetime, *, answered: bool) -> None:
    """Open, refresh or resolve the router's alerts after a poll."""
    if not answered:
        since = router.last_seen_at or router.created_at
        if now - since > ROUTER_DOWN_AFTER:
            when = _local(since) if router.last_seen_at else "it was added"
            raise_alert(
                router,
                Alert.Kind.ROUTER_DOWN,
                f"Not answering since {when}: {router.last_error}",
                now,
            )
        # Without fresh data the CPU and uplink alerts stay as they are.
        return
    resolve_alert(router, Alert.Kind.ROUTER_DOWN, now)

    loads = list(
        RouterSample.objects.filter(router=router, resolution=RAW)
        .order_by("-at")
        .values_list("cpu_load", flat=True)[:STAYS_HIGH]
    )
    if len(loads) == STAYS_HIGH and min(loads) >= ALERT_CPU_PERCENT:
        raise_alert(
            router,
            Alert.Kind.CPU_HIGH,
            f"CPU load {loads[0]}% (at least {ALERT_CPU_PERCENT}% for {STAYS_HIGH} polls)",
            now,
        )
    elif loads and loads[0] < ALERT_CPU_PERCENT:
        resolve_alert(router, Alert.Kind.CPU_HIGH, now)

    if not router.uplink_capacity_mbps:
        resolve_alert(router, Alert.Kind.UPLINK_FULL, now)
        return
    limit = router.uplink_capacity_mbps * 1_000_000 * ALERT_UPLINK_SHARE
    rates = [
        max(rx, tx)
        for rx, tx in InterfaceSample.objects.filter(
            router=router, interface=router.uplink_interface, resolution=RAW
        )
        .order_by("-at")
        .values_list("rx_bps", "tx_bps")[:STAYS_HIGH]
    ]
    if len(rates) == STAYS_HIGH and min(rates) >= limit:
        raise_alert(
            router,
            Alert.Kind.UPLINK_FULL,
            f"{router.uplink_interface} at {rates[0] / 1_000_000:.0f} Mbit/s of "
            f"{router.uplink_capacity_mbps} Mbit/s "
            f"(at least {ALERT_UPLINK_SHARE:.0%} for {STAYS_HIGH} polls)",
            now,
        )
    elif rates and rates[0] < limit:
        resolve_alert(router, Alert.Kind.UPLINK_FULL, now)


def raise_alert(router: Router, kind: str, message: str, now: datetime) -> Alert:
    """Open the alert, or refresh the one already open (alert_one_open_per_kind)."""
    message = message[:255]
    open_alert = Alert.objects.filter(router=router, kind=kind, resolved_at__isnull=True)
    if not open_alert.update(last_seen_at=now, message=message):
        try:
            with transaction.atomic():
                Alert.objects.create(
                    router=router, kind=kind, message=message, opened_at=now, last_seen_at=now
                )
        except IntegrityError:
            # Another poll opened it between our UPDATE and INSERT.
            open_alert.update(last_seen_at=now, message=message)
    alert = open_alert.get()
    if alert.notified_at is None:
        # Also retried here when an earlier email could not be sent.
        _notify_on_commit(alert.pk)
    return alert


def resolve_alert(router: Router, kind: str, now: datetime) -> int:
    return Alert.objects.filter(router=router, kind=kind, resolved_at__isnull=True).update(
        resolved_at=now
    )


def _notify_on_commit(alert_id: int) -> None:
    schema = connection.schema_name

    def notify():
        with schema_context(schema):
            notify_alert(alert_id)

    transaction.on_commit(notify, robust=True)


def alert_recipients(router: Router) -> list[str]:
    """Active owners and admins who see this router's branch."""
    people = User.objects.filter(is_active=True, role__in=[Role.OWNER, Role.ADMIN]).exclude(
        email=""
    )
    if router.branch_id:
        people = people.filter(Q(branches__isnull=True) | Q(branches=router.branch_id))
    return sorted(set(people.values_list("email", flat=True)))


def notify_alert(alert_id: int) -> bool:
    """Email an open alert once: the claim on notified_at makes a second call a no-op."""
    claimed = Alert.objects.filter(
        pk=alert_id, notified_at__isnull=True, resolved_at__isnull=True
    ).update(notified_at=timezone.now())
    if not claimed:
        return False
    alert = Alert.objects.select_related("router").get(pk=alert_id)
    recipients = alert_recipients(alert.router)
    if not recipients:
        return False
    body = (
        f"{alert.get_kind_display()} on router {alert.router} "
        f"({alert.router.host}:{alert.router.port}).\n\n"
        f"{alert.message}\n\nOpened {_local(alert.opened_at)}.\n"
        "The alert resolves by itself when the condition clears.\n"
    )
    try:
        send_mail(f"[ispops] {alert.get_kind_display()}: {alert.router}", body, None, recipients)
    except Exception:
        # Give it back, so the next poll tries again.
        Alert.objects.filter(pk=alert_id).update(notified_at=None)
        logger.exception("could not email alert %s", alert_id)
        return False
    return True


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%d %b %Y %H:%M")


# --- retention ---------------------------------------------------------------------------


def _floor(moment: datetime, step: timedelta) -> datetime:
    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // step) * step


_FOLD_ROUTER_SQL = """
INSERT INTO {table} (router_id, at, resolution, cpu_load, free_memory, total_memory,
                     uptime_seconds, active_sessions)
SELECT router_id, date_bin(%(step)s::interval, at, %(origin)s::timestamptz), %(to)s,
       round(avg(cpu_load)), round(avg(free_memory)), max(total_memory),
       max(uptime_seconds), round(avg(active_sessions))
FROM {table}
WHERE resolution = %(from)s AND at < %(cutoff)s
GROUP BY router_id, 2
"""

_FOLD_INTERFACE_SQL = """
INSERT INTO {table} (router_id, interface, at, resolution, rx_bytes, tx_bytes, rx_bps, tx_bps)
SELECT router_id, interface, date_bin(%(step)s::interval, at, %(origin)s::timestamptz),
       %(to)s, max(rx_bytes), max(tx_bytes), round(avg(rx_bps)), round(avg(tx_bps))
FROM {table}
WHERE resolution = %(from)s AND at < %(cutoff)s
GROUP BY router_id, interface, 3
"""

_DELETE_SQL = "DELETE FROM {table} WHERE resolution = %(from)s AND at < %(cutoff)s"


def downsample(now: datetime | None = None) -> int:
    """Average old points into coarser ones and drop expired ones; returns how many rows
    went (folded or expired). Safe to run again: cutoffs fall on bucket boundaries, so a
    bucket is only ever folded whole, and a second run finds nothing left to fold."""
    now = now or timezone.now()
    tables = (
        (RouterSample._meta.db_table, _FOLD_ROUTER_SQL),
        (InterfaceSample._meta.db_table, _FOLD_INTERFACE_SQL),
    )
    removed = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # Two runs at once (beat hiccup, a manual run) would fold the same rows twice.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.downsample'))")
        for source, target, kept, step in FOLDS:
            params = {
                "step": step,
                "origin": BUCKET_ORIGIN,
                "from": source,
                "to": target,
                "cutoff": _floor(now - kept, step),
            }
            for table, fold_sql in tables:
                cursor.execute(fold_sql.format(table=table), params)
                cursor.execute(_DELETE_SQL.format(table=table), params)
                removed += cursor.rowcount
        params = {"from": HOUR, "cutoff": now - HOURLY_KEPT}
        for table, _ in tables:
            cursor.execute(_DELETE_SQL.format(table=table), params)
            removed += cursor.rowcount
    return removed


# --- reading the series -------------------------------------------------------------------


class DateBin(Func):
    """date_bin(step, at, origin): the start of the bucket a time falls in."""

    function = "date_bin"
    output_field = DateTimeField()

    def __init__(self, step: timedelta, expression, **extra):
        seconds = int(step.total_seconds())  # an int from our own table: safe to inline
        super().__init__(expression, seconds=seconds, **extra)

    template = (
        "date_bin(INTERVAL '%(seconds)s seconds', %(expressions)s, "
        "TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    )


def series_step(hours: int) -> timedelta | None:
    """The bucket used for a window: raw points for short ones, averages for long ones."""
    for limit, step in sorted(SERIES_STEPS.items()):
        if hours <= limit:
            return step
    return SERIES_STEPS[max(SERIES_STEPS)]


def series(router: Router, hours: int = 24, now: datetime | None = None) -> dict:
    """Points for a router's charts over the last `hours`, oldest first (two queries):
    cpu and sessions [(at, value)], uplink rx and tx in bit/s [(at, bps)]."""
    until = now or timezone.now()
    since = until - timedelta(hours=hours)
    step = series_step(hours)
    bucket = DateBin(step, F("at")) if step else F("at")

    health = (
        RouterSample.objects.filter(router=router, at__gte=since, at__lte=until)
        .annotate(t=bucket)
        .values("t")
        .annotate(cpu=Avg("cpu_load"), sessions=Avg("active_sessions"))
        .order_by("t")
    )
    traffic = (
        InterfaceSample.objects.filter(
            router=router, interface=router.uplink_interface, at__gte=since, at__lte=until
        )
        .annotate(t=bucket)
        .values("t")
        .annotate(rx=Avg("rx_bps"), tx=Avg("tx_bps"))
        .order_by("t")
    )
    health, traffic = list(health), list(traffic)
    return {
        "hours": hours,
        "step": step,
        "since": since,
        "until": until,
        "cpu": [(row["t"], float(row["cpu"])) for row in health],
        "sessions": [(row["t"], float(row["sessions"])) for row in health],
        "rx": [(row["t"], float(row["rx"])) for row in traffic],
        "tx": [(row["t"], float(row["tx"])) for row in traffic],
        "capacity_bps": (router.uplink_capacity_mbps or 0) * 1_000_000 or None,
    }


# --- sessions for subscriber pages --------------------------------------------------------

SESSION_SERVICES = ("pppoe", "hotspot")


def sessions_for_accounts(accounts) -> dict:
    """{service account id: its ActiveSession} for the accounts online now (one query).

    `accounts` are subscribers.models.ServiceAccount (a list, or an evaluated queryset);
    a session matches on router, username and service. Each session also gets
    `started_at` (seen_at minus its uptime), for templates to humanise.
    """
    wanted = {
        (account.router_id, account.username, account.service): account.pk
        for account in accounts
        if account.router_id and account.username and account.service in SESSION_SERVICES
    }
    if not wanted:
        return {}
    rows = ActiveSession.objects.filter(
        username__in={username for _, username, _ in wanted},
        router_id__in={router_id for router_id, _, _ in wanted},
        service__in=SESSION_SERVICES,
    )
    found = {}
    for session in rows:
        account_id = wanted.get((session.router_id, session.username, session.service))
        if account_id is not None:
            session.started_at = session.seen_at - timedelta(seconds=session.uptime_seconds)
            found[account_id] = session
    return found
