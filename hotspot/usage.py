"""Hotspot usage, counted server-side from the router's counters, and what follows from
it: a first-login package starts, the buyer is told at the ISP's warning percentage and
at 100 %, and an entitlement at its data limit ends (hotspot.entitlements.end).

Counters (shared/hotspot.md D.2): /ip/hotspot/active shows each session's bytes while
it is up; the /ip/hotspot/user counters move only when a session ends (its bytes are
added then). Both restart: a session's at reconnection, all of them at a reboot (then
the sessions vanish without handing their bytes to the user). So each entitlement keeps
what it last saw (Entitlement.usage_seen): the user's total and, per session id, its
bytes and its start (network.counters holds the rule for sessions). Per poll:

    sessions             network.counters.session_deltas (continuing: the difference;
                         new: all of it)
    user total           (now - seen) - the last seen bytes of the sessions that ended
                         (they were counted while up); never below zero, and a total
                         that went down (user re-created) counts from zero

A session's bytes between the last poll and a reboot are lost by the router itself;
everything ispops saw is kept, nothing is counted twice.
"""

import json
import logging
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone
from librouteros.query import Key

from hotspot import entitlements
from hotspot.models import Entitlement, HotspotSettings
from hotspot.router import is_ours, marker, router_lock
from network import routeros
from network.counters import session_deltas
from network.routeros import parse_duration

log = logging.getLogger(__name__)

WARNING, USED_UP = "hotspot_data_warning", "hotspot_data_used_up"


def deltas(seen: dict, user_total: int, sessions: dict) -> tuple[int, dict]:
    """(bytes used since `seen`, what to remember now). `sessions`: {id: [bytes,
    start epoch]} read now; `user_total`: the user's bytes-in + bytes-out now."""
    before = seen.get("sessions") or {}
    (used,), continuing = session_deltas(before, sessions, counters=1)
    # Sessions that ended handed their bytes to the user total, counted while up.
    ended_seen = sum(old[0] for sid, old in before.items() if sid not in continuing)
    old_user = int(seen.get("user") or 0)
    if user_total < old_user:
        old_user = 0
    used += max(0, user_total - old_user - ended_seen)
    return used, {"user": user_total, "sessions": {k: list(v) for k, v in sessions.items()}}


def read(router) -> tuple[list[dict], list[dict]]:
    """The router's hotspot sessions and users (only the fields usage needs)."""
    with routeros.pooled(router) as link:
        api = link.api
        active = list(
            api.path("ip", "hotspot", "active").select(
                Key(".id"), Key("user"), Key("bytes-in"), Key("bytes-out"), Key("uptime")
            )
        )
        users = list(
            api.path("ip", "hotspot", "user").select(
                Key("name"), Key("comment"), Key("bytes-in"), Key("bytes-out")
            )
        )
    return active, users


def poll(router, *, now: datetime | None = None) -> dict:
    """Count usage on one router; start, warn and end what it calls for. Safe to run
    twice at once (one holds the router) and one after the other (deltas)."""
    with router_lock(router.pk) as got:
        if not got:
            return {"skipped": "another worker has this router"}
        active, users = read(router)
        at = now or timezone.now()
        counted = _account(router, active, users, at)
    ended = _end_over_limit(router, at)
    _warn(router)
    if ended:
        from hotspot import router as hotspot_router

        hotspot_router.push(router.pk)
    return {"sessions": len(active), "counted": counted, "ended": ended}


def _account(router, active, users, at: datetime) -> int:
    epoch = at.timestamp()
    sessions: dict[str, dict] = {}
    for row in active:
        login = str(row.get("user", ""))
        uptime = parse_duration(row.get("uptime"))
        total = int(row.get("bytes-in") or 0) + int(row.get("bytes-out") or 0)
        sessions.setdefault(login, {})[str(row[".id"])] = [total, round(epoch - uptime)]
    user_rows = {str(u.get("name", "")): u for u in users}
    live = Entitlement.objects.filter(router=router, state=Entitlement.State.LIVE).only(
        "id", "login", "usage_seen", "starts_at", "minutes", "live_at", "created_at"
    )
    ids, used, seen_now, starts = [], [], [], []
    for entitlement in live:
        row = user_rows.get(entitlement.login)
        # Only the user written for this entitlement counts for it (a push may not have
        # written it yet, or the previous entitlement's user is about to be taken over).
        if not is_ours(row) or row.get("comment") != marker(entitlement.pk):
            continue
        mine = sessions.get(entitlement.login, {})
        user_total = int(row.get("bytes-in") or 0) + int(row.get("bytes-out") or 0)
        delta, remembered = deltas(entitlement.usage_seen or {}, user_total, mine)
        if delta or remembered != entitlement.usage_seen:
            ids.append(entitlement.pk)
            used.append(delta)
            seen_now.append(remembered)
        if entitlement.starts_at is None and mine:
            first = min(start for _, start in mine.values())
            went_live = (entitlement.live_at or entitlement.created_at).timestamp()
            starts.append((entitlement, max(first, went_live)))
    _store(ids, used, seen_now, at)
    for entitlement, start in starts:
        entitlements.start_at_first_login(entitlement, datetime.fromtimestamp(start, tz=UTC))
    return sum(used)


def _store(ids, used, seen_now, at) -> None:
    """One UPDATE for the whole poll (5,000 sessions must not cost 5,000 statements)."""
    if not ids:
        return
    table = connection.ops.quote_name(Entitlement._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS e SET used_bytes = e.used_bytes + v.used, "
            "usage_seen = v.seen::jsonb, usage_polled_at = %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS v(id, used, seen) "
            "WHERE e.id = v.id AND e.state = 'live'",
            [at, ids, used, [json.dumps(s) for s in seen_now]],
        )


def _end_over_limit(router, at: datetime) -> int:
    over = entitlements.due_for_end(at).filter(router=router)
    ended = 0
    for entitlement in over.only("id", "router_id", "login"):
        with transaction.atomic():
            entitlements.lock_login(entitlement.router_id, entitlement.login)
            current = entitlements.due_for_end(at).filter(pk=entitlement.pk).first()
            if current is None:
                continue
            full = (
                current.data_limit_bytes is not None
                and current.used_bytes >= current.data_limit_bytes
            )
            entitlements.end(current, reason="data" if full else "expired", now=at)
            ended += 1
    return ended


def _warn(router) -> int:
    """SMS the buyer once at the warning percentage and once at 100 % (each claimed by a
    conditional update of warned_percent, so a second poll sends nothing)."""
    from django.db.models import F, Q

    level = HotspotSettings.load().warn_at_percent
    candidates = (
        Entitlement.objects.filter(router=router, data_limit_bytes__isnull=False)
        .filter(Q(state=Entitlement.State.LIVE) | Q(end_reason="data"))
        .exclude(phone="")
        .filter(warned_percent__lt=100)
        .filter(used_bytes__gte=F("data_limit_bytes") * level / 100)
        .select_related("package")
    )
    sent = 0
    for entitlement in candidates:
        percent = 100 if entitlement.used_bytes >= entitlement.data_limit_bytes else level
        if entitlement.warned_percent >= percent:
            continue
        with transaction.atomic():
            claimed = Entitlement.objects.filter(
                pk=entitlement.pk, warned_percent=entitlement.warned_percent
            ).update(warned_percent=percent)
            if claimed:
                tell(entitlement, percent)
                sent += 1
    return sent


def tell(entitlement: Entitlement, percent: int) -> None:
    """Queue the warning or used-up SMS to the buyer's phone (sent after commit)."""
    from ispops.messaging import services as messaging
    from ispops.messaging.models import Channel, Message

    key = USED_UP if percent >= 100 else WARNING
    left = max((entitlement.data_limit_bytes or 0) - entitlement.used_bytes, 0)
    context = {
        "package": entitlement.package.name,
        "percent": percent,
        "left": f"{left / 10**6:.0f} MB",
        "isp_name": getattr(connection.tenant, "name", ""),
    }
    _, body = messaging.render_cached({}, key, Channel.SMS, context)
    messaging.queue_messages(
        [
            Message(
                channel=Channel.SMS,
                to=entitlement.phone,
                body=body,
                template_key=key,
                related=f"hotspot:{entitlement.pk}",
            )
        ]
    )


def poll_all(now: datetime | None = None) -> int:
    """Poll every router with live hotspot entitlements (the beat task)."""
    from network.models import Router

    polled = 0
    router_ids = (
        Entitlement.objects.filter(state=Entitlement.State.LIVE)
        .values_list("router_id", flat=True)
        .distinct()
    )
    for router in Router.objects.filter(pk__in=list(router_ids)):
        try:
            poll(router, now=now)
            polled += 1
        except routeros.RouterError as exc:
            log.info("hotspot usage poll of %s failed: %s", router, exc)
    return polled
