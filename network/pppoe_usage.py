"""PPPoE usage, counted server-side from the router's per-session counters (issue 14),
the way hotspot.usage counts hotspot usage.

Counters (shared/routeros.md §5.3, §5.11): /ppp/active has no bytes in v7; each
session's are on its dynamic interface `<pppoe-NAME>` (rx-byte: received from the
subscriber, their upload; tx-byte: download). They start from zero when a session
starts, so a reconnection or a reboot restarts them; a reboot also restarts the
/ppp/active ids. So each account's meter (UsageMeter.seen) keeps, per session id, the
bytes last seen and the session's start; network.counters.session_deltas counts a
continuing session's difference and a new session's whole counters (the rule the
hotspot poll uses too). An ended session adds nothing more: the router keeps no
counter of it.

Deltas go to the usage period the poll falls in (network.fup.period_start), shared by
time with the period before when one began since the last poll. What a
session moved between its last poll and its end is lost by the router itself (PPPoE
secrets carry no totals; only RADIUS accounting would report it): at most one poll
interval; everything ispops saw is kept and nothing is counted twice.

Safe to run twice: one poll at a time per router (an advisory lock), and a meter never
takes a reading older than the one it holds (polled_at), so a slow poll finishing after
a newer one changes nothing.
"""

import json
import logging
import zlib
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from librouteros.query import Key

from network import fup, routeros
from network.counters import session_deltas
from network.models import Router, UsageMeter, UsagePeriod
from network.routeros import parse_duration
from subscribers.models import ServiceAccount, ServiceType

log = logging.getLogger(__name__)


def deltas(seen: dict, sessions: dict) -> tuple[int, int, dict]:
    """(bytes in, bytes out used since `seen`, what to remember now). Both map a session
    id to [bytes in, bytes out, start epoch]."""
    (used_in, used_out), _ = session_deltas(seen, sessions, counters=2)
    return used_in, used_out, {sid: list(v) for sid, v in sessions.items()}


def read(router: Router) -> list[dict]:
    """The router's PPP sessions with their interface counters:
    [{name, id, in, out, uptime}] (one read of each menu)."""
    with routeros.pooled(router) as link:
        api = link.api
        active = list(
            api.path("ppp", "active").select(Key(".id"), Key("name"), Key("service"), Key("uptime"))
        )
        interfaces = list(
            api.path("interface")
            .select(Key("name"), Key("rx-byte"), Key("tx-byte"))
            .where(Key("type") == "pppoe-in")
        )
    counters = {str(row.get("name", "")): row for row in interfaces}
    out = []
    for row in active:
        name, service = str(row.get("name", "")), str(row.get("service") or "pppoe")
        if service != "pppoe" or not name:
            continue
        interface = counters.get(f"<pppoe-{name}>", {})
        out.append(
            {
                "name": name,
                "id": str(row.get(".id")),
                "in": int(interface.get("rx-byte") or 0),
                "out": int(interface.get("tx-byte") or 0),
                "uptime": parse_duration(row.get("uptime")),
            }
        )
    return out


def _lock_key(router_id: int) -> int:
    return zlib.crc32(f"{connection.schema_name}:pppoe-usage:{router_id}".encode())


def poll(router: Router, *, now: datetime | None = None) -> dict:
    """Count one router's PPPoE usage, then let fair use act on it (network.fup).
    Raises routeros.RouterError when the router cannot be read."""
    sessions = read(router)
    at = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(router.pk)])
            if not cursor.fetchone()[0]:
                return {"skipped": "another worker is counting this router"}
        counted, account_ids = _account(router, sessions, at)
    changed = fup.evaluate(account_ids, now=at)
    return {"sessions": len(sessions), "counted": counted, "fup_changed": changed}


def _account(router: Router, sessions: list[dict], at: datetime) -> tuple[int, list[int]]:
    from subscribers.models import ServiceAccount, ServiceType

    epoch = at.timestamp()
    by_name: dict[str, dict] = {}
    for row in sessions:
        by_name.setdefault(row["name"], {})[row["id"]] = [
            row["in"],
            row["out"],
            round(epoch - row["uptime"]),
        ]
    accounts = list(
        ServiceAccount.objects.filter(
            router=router, service=ServiceType.PPPOE, username__in=list(by_name)
        )
        .exclude(status=ServiceAccount.Status.TERMINATED)
        .select_related("plan")
        .only("id", "username", "expires_at", "plan__cycle", "plan__billing")
    )
    # Accounts that had sessions when last seen and have none now: their seen is
    # cleared, so an id reused after a reboot counts as the new session it is.
    gone = list(
        UsageMeter.objects.filter(service_account__router=router)
        .exclude(seen={})
        .exclude(service_account_id__in=[a.pk for a in accounts])
        .values_list("service_account_id", flat=True)
    )
    UsageMeter.objects.bulk_create(
        [UsageMeter(service_account_id=a.pk) for a in accounts], ignore_conflicts=True
    )
    meters = {
        m.service_account_id: m
        for m in UsageMeter.objects.select_for_update().filter(
            service_account_id__in=[a.pk for a in accounts] + gone
        )
    }
    rows, total = [], 0
    for account in accounts:
        meter = meters[account.pk]
        if meter.polled_at is not None and meter.polled_at >= at:
            continue  # a newer reading is already stored
        used_in, used_out, seen = deltas(meter.seen or {}, by_name[account.username])
        parts = _split(account, meter.polled_at, at, used_in, used_out)
        rows += [(account.pk, period, b_in, b_out, seen) for period, b_in, b_out in parts]
        total += used_in + used_out
    for account_id in gone:
        meter = meters.get(account_id)
        if meter is not None and (meter.polled_at is None or meter.polled_at < at):
            rows.append((account_id, None, 0, 0, {}))
    _store(rows, at)
    return total, [a.pk for a in accounts]


def _split(account, since, at, used_in, used_out) -> list[tuple]:
    """[(period, bytes in, bytes out)]: what was used between the last poll and this one,
    shared by time between two periods when a period began in between (the router
    says how much, not when). A prepaid account's period is its paid term
    (network.fup.usage_period), named from the expiry it has now: the share before a
    renewal that followed a lapse is kept under a name one term before the renewal,
    not the lapsed term's (the row holds no limit any more; nothing is counted twice)."""
    now_period, boundary = fup.usage_period(account, at)
    if since is None or fup.period_start(account, since) == now_period:
        return [(now_period, used_in, used_out)]
    share = min(max((boundary - since) / (at - since), 0.0), 1.0)
    old_in, old_out = round(used_in * share), round(used_out * share)
    return [
        (fup.period_start(account, since), old_in, old_out),
        (now_period, used_in - old_in, used_out - old_out),
    ]


def _store(rows, at: datetime) -> None:
    """Two statements for the whole poll: the meters, then each period's bytes added
    (INSERT ... ON CONFLICT on usage_period_once). An account may have two rows (a
    period began since its last poll): both carry the same `seen`."""
    if not rows:
        return
    meters = connection.ops.quote_name(UsageMeter._meta.db_table)
    periods = connection.ops.quote_name(UsagePeriod._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {meters} AS m SET seen = v.seen::jsonb, polled_at = %s "
            "FROM unnest(%s::bigint[], %s::text[]) AS v(id, seen) "
            "WHERE m.service_account_id = v.id",
            [at, [r[0] for r in rows], [json.dumps(r[4]) for r in rows]],
        )
        used = [r for r in rows if r[1] is not None and (r[2] or r[3])]
        if used:
            cursor.execute(
                f"INSERT INTO {periods} AS p (service_account_id, period_start, bytes_in, "
                "bytes_out, warned_percent, updated_at) "
                "SELECT v.id, v.period, v.b_in, v.b_out, 0, %s FROM unnest(%s::bigint[], "
                "%s::date[], %s::bigint[], %s::bigint[]) AS v(id, period, b_in, b_out) "
                "ON CONFLICT (service_account_id, period_start) DO UPDATE SET "
                "bytes_in = p.bytes_in + EXCLUDED.bytes_in, "
                "bytes_out = p.bytes_out + EXCLUDED.bytes_out, updated_at = EXCLUDED.updated_at",
                [
                    at,
                    [r[0] for r in used],
                    [r[1] for r in used],
                    [r[2] for r in used],
                    [r[3] for r in used],
                ],
            )


def poll_all(now: datetime | None = None) -> int:
    """Poll every router serving PPPoE accounts (the beat task); then fair use looks at
    every account not at full speed (a new period, a top-up) even on a router that did
    not answer."""

    router_ids = (
        ServiceAccount.objects.filter(service=ServiceType.PPPOE, router__isnull=False)
        .exclude(status=ServiceAccount.Status.TERMINATED)
        .values_list("router_id", flat=True)
        .distinct()
    )
    polled = 0
    for router in Router.objects.filter(pk__in=list(router_ids)):
        try:
            poll(router, now=now)
            polled += 1
        except routeros.RouterError as exc:
            log.info("PPPoE usage poll of %s failed: %s", router, exc)
    fup.evaluate(None, now=now)
    return polled
