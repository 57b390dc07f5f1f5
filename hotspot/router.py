"""The hotspot on the router: what ispops keeps there, written and read back.

- each package a /ip/hotspot/user/profile `ispops-hs-<pk>`: rate-limit in RouterOS's
  rx/tx order (rx is what the router receives: the client's upload), shared-users =
  the devices allowed, idle and keepalive timeouts, the MAC cookie and its lifetime;
- each login with a live entitlement an /ip/hotspot/user with comment
  `ispops-hs:<entitlement id>` and a guard (limit-uptime, limit-bytes-total) so the
  limits hold while ispops is down; a login with none has no user, no session and no
  MAC cookie;
- the walled garden: the ISP's portal hosts and the extra hosts of HotspotSettings as
  /ip/hotspot/walled-garden (HTTP) and walled-garden ip (HTTPS reaches the host too)
  entries, commented `ispops-hs walled garden`; anything else there is the operator's
  and left alone. No Daraja host: the buyer's phone pays, not the device.

Entitlements that changed carry router_pending; `push()` claims them by a conditional
update, per router under an advisory lock, and makes each login match; `sync_router()`
compares everything (the periodic check) and writes only differences, so a second sync
writes nothing. Every write is read back (NotApplied otherwise).

The guard: limit-bytes-total and limit-uptime count from the router user's counters,
which restart only when the user is created. So the guard is the counters at the moment
the user is written for an entitlement plus what is left of it (data; time times the
devices allowed, since every device's session adds its uptime); it is stored on the
entitlement and moved only by an extension, so it does not change from one sync to
the next. It is a ceiling for when ispops is down: ispops itself ends entitlements to
the second (hotspot.usage, hotspot.entitlements.end_due).
"""

import logging
import time
import zlib
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from librouteros.exceptions import MultiTrapError, TrapError

from hotspot.models import Bypass, Entitlement, HotspotSettings, Package
from network import routeros
from network.provisioning import NotApplied, RouterSession, as_wire
from network.routeros import parse_duration
from subscribers.services import format_speed

log = logging.getLogger(__name__)

HS_USER, HS_PROFILE, HS_ACTIVE, HS_COOKIE = (
    "/ip/hotspot/user",
    "/ip/hotspot/user/profile",
    "/ip/hotspot/active",
    "/ip/hotspot/cookie",
)
WALLED, WALLED_IP = "/ip/hotspot/walled-garden", "/ip/hotspot/walled-garden/ip"
BINDING = "/ip/hotspot/ip-binding"
BYPASS_PREFIX = "ispops-hs-bypass:"
BINDING_PROPS = (".id", "mac-address", "type", "comment", "disabled")
COMMENT_PREFIX = "ispops-hs:"
WALLED_COMMENT = "ispops-hs walled garden"
USER_PROPS = (
    ".id", "name", "password", "profile", "comment", "disabled", "limit-uptime",
    "limit-bytes-total", "bytes-in", "bytes-out", "uptime",
)  # fmt: skip
PROFILE_PROPS = (
    ".id", "name", "rate-limit", "shared-users", "idle-timeout", "keepalive-timeout",
    "add-mac-cookie", "mac-cookie-timeout",
)  # fmt: skip
TIME_FIELDS = {"idle-timeout", "keepalive-timeout", "mac-cookie-timeout", "limit-uptime"}
# Numbers where nothing printed means no limit.
ZERO_IS_NONE = {"limit-uptime", "limit-bytes-total"}
PROFILE_TRUSTED_SECONDS = 60.0
KEEPALIVE = "2m"
_REFUSALS = (routeros.RouterRefused, NotApplied, TrapError, MultiTrapError)


def marker(entitlement_id: int) -> str:
    return f"{COMMENT_PREFIX}{entitlement_id}"


def is_ours(row: dict | None) -> bool:
    return bool(row) and str(row.get("comment", "")).startswith(COMMENT_PREFIX)


# --- what the router should hold ------------------------------------------------------


def profile_fields(package: Package) -> dict:
    fields = {
        "name": package.profile_name,
        # Seen from the router: rx is the client's upload, tx its download.
        "rate-limit": f"{format_speed(package.upload_kbps)}/{format_speed(package.download_kbps)}",
        "shared-users": str(package.devices),
        "idle-timeout": f"{package.idle_timeout_minutes}m"
        if package.idle_timeout_minutes
        else "none",
        "keepalive-timeout": KEEPALIVE,
        "add-mac-cookie": "true" if package.mac_cookie_hours else "false",
    }
    if package.mac_cookie_hours:
        fields["mac-cookie-timeout"] = f"{package.mac_cookie_hours}h"
    return fields


def user_fields(entitlement: Entitlement) -> dict:
    return {
        "name": entitlement.login,
        "password": entitlement.password,
        "profile": entitlement.package.profile_name,
        "comment": marker(entitlement.pk),
        "disabled": "false",
        "limit-uptime": duration(entitlement.guard_seconds or 0),
        "limit-bytes-total": str(entitlement.guard_bytes or 0),
    }


def duration(seconds: int) -> str:
    """Seconds as a RouterOS time value (`1d2h3m4s`; `0s` for none)."""
    out, seconds = [], max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def _same(key: str, have, want: str) -> bool:
    if key in TIME_FIELDS:
        if str(want) == "none" or str(have) == "none":
            return str(have or "none") == str(want)
        return parse_duration(have or 0) == parse_duration(want)
    if key in ZERO_IS_NONE:
        return int(have or 0) == int(want or 0)
    return as_wire(have if have is not None else "") == str(want)


def differences(row: dict, wanted: dict) -> dict:
    return {k: v for k, v in wanted.items() if not _same(k, row.get(k), v)}


def walled_garden_hosts() -> list[str]:
    """The ISP's own hosts (the captive page /hs/ and its static files live there) and
    the extra hosts its settings name, lower case, each once."""
    hosts = []
    tenant = getattr(connection, "tenant", None)
    if tenant is not None and hasattr(tenant, "domains"):
        hosts += list(
            tenant.domains.order_by("-is_primary", "domain").values_list("domain", flat=True)
        )
    extra = HotspotSettings.load().walled_garden_hosts
    hosts += [line.strip() for line in extra.splitlines() if line.strip()]
    return list(dict.fromkeys(h.lower() for h in hosts))


def walled_garden() -> dict[str, set[tuple[str, str]]]:
    """{menu: {(dst-host, action)}} the walled garden should hold."""
    hosts = walled_garden_hosts()
    return {
        WALLED: {(host, "allow") for host in hosts},
        WALLED_IP: {(host, "allow") for host in hosts},  # allow|deny|reject
    }


def packages_for(router) -> list[Package]:
    """Packages sold at this router (none chosen: everywhere), and those of its live
    entitlements (a package withdrawn from sale still serves what was sold)."""
    sold = Package.objects.filter(is_active=True).filter(Q(routers=router) | Q(routers=None))
    live = Package.objects.filter(
        entitlements__router=router, entitlements__state=Entitlement.State.LIVE
    )
    return list((sold | live).distinct().order_by("pk"))


# --- writing ---------------------------------------------------------------------------


def ensure_profile(session: RouterSession, package: Package, *, recheck=False) -> bool:
    """The package's profile is on the router as it should be; True if written. A
    profile this connection checked in the last minute is trusted (a burst of grants)."""
    wanted = profile_fields(package)
    checked = session.cache.setdefault("hotspot_profiles", {})
    key = tuple(sorted(wanted.items()))
    seen = checked.get(package.pk)
    if (
        not recheck
        and seen
        and seen[0] == key
        and time.monotonic() - seen[1] < PROFILE_TRUSTED_SECONDS
    ):
        return False
    rows = session.rows(HS_PROFILE, props=PROFILE_PROPS, name=package.profile_name)
    written = False
    if not rows:
        session.add(HS_PROFILE, **wanted)
        written = True
    else:
        changed = differences(rows[0], wanted)
        if changed:
            session.update(HS_PROFILE, rows[0][".id"], **changed)
            written = True
    if written:
        rows = session.rows(HS_PROFILE, props=PROFILE_PROPS, name=package.profile_name)
        left = differences(rows[0], wanted) if rows else wanted
        if left:
            raise NotApplied(
                f"profile {package.profile_name} still differs in {', '.join(sorted(left))}"
            )
    checked[package.pk] = (key, time.monotonic())
    return written


def sync_walled_garden(session: RouterSession) -> int:
    """Make the walled garden ours hold exactly what it should; returns writes made."""
    writes = 0
    for menu, wanted in walled_garden().items():
        rows = session.rows(menu, props=(".id", "dst-host", "action"), comment=WALLED_COMMENT)
        kept, extra = set(), []
        for row in rows:
            key = (str(row.get("dst-host", "")).lower(), str(row.get("action", "")))
            if key in wanted and key not in kept:
                kept.add(key)
            else:
                extra.append(row[".id"])
        if extra:
            session.remove(menu, *extra)
            writes += 1
        for host, action in sorted(wanted - kept):
            session.add(menu, **{"dst-host": host, "action": action, "comment": WALLED_COMMENT})
            writes += 1
        if extra or wanted - kept:
            after = session.rows(menu, props=("dst-host", "action"), comment=WALLED_COMMENT)
            have = {(str(r.get("dst-host", "")).lower(), str(r.get("action", ""))) for r in after}
            if have != wanted or len(after) != len(wanted):
                raise NotApplied(f"{menu} does not hold the walled garden ispops wrote")
    return writes


def _counters(session: RouterSession, login: str, row: dict | None) -> dict:
    """The router's counters for `login` now: the user's totals and its sessions."""
    sessions = {}
    now = time.time()
    for s in session.rows(HS_ACTIVE, props=(".id", "bytes-in", "bytes-out", "uptime"), user=login):
        uptime = parse_duration(s.get("uptime"))
        sessions[str(s[".id"])] = [
            int(s.get("bytes-in") or 0) + int(s.get("bytes-out") or 0),
            round(now - uptime),
            uptime,
        ]
    row = row or {}
    return {
        "user": int(row.get("bytes-in") or 0) + int(row.get("bytes-out") or 0),
        "uptime": parse_duration(row.get("uptime") or 0),
        "sessions": sessions,
    }


def _guard(entitlement: Entitlement, counters: dict, now: datetime) -> tuple:
    """(guard_seconds, guard_bytes) from the router counters at the moment the user is
    written for this entitlement plus what is left of it."""
    devices = max(entitlement.package.devices, 1)
    if entitlement.ends_at is not None:
        # Whole minutes, rounded up: a ceiling, and stable for a push a moment later.
        left = max(-(-int((entitlement.ends_at - now).total_seconds()) // 60) * 60, 60)
    else:
        left = entitlement.minutes * 60
    used_time = counters["uptime"] + sum(s[2] for s in counters["sessions"].values())
    seconds = used_time + left * devices
    data = None
    if entitlement.data_limit_bytes is not None:
        used_bytes = counters["user"] + sum(s[0] for s in counters["sessions"].values())
        data = used_bytes + max(entitlement.data_limit_bytes - entitlement.used_bytes, 1)
    return seconds, data


def _baseline(counters: dict, now: datetime) -> dict:
    """What hotspot.usage counts deltas from: these counters are not this entitlement's."""
    return {
        "user": counters["user"],
        "sessions": {sid: [s[0], s[1]] for sid, s in counters["sessions"].items()},
    }


def apply_login(
    session: RouterSession, router, login: str, now: datetime, *, row=None, read=True
) -> list[str]:
    """Make `login` on the router match its live entitlement (or its absence). `row`:
    the user as already read (with `read=False`, None means it is not there)."""
    done = []
    live = (
        Entitlement.objects.filter(router=router, login=login, state=Entitlement.State.LIVE)
        .select_related("package")
        .first()
    )
    if read:
        rows = session.rows(HS_USER, props=USER_PROPS, name=login)
        row = rows[0] if rows else None
    if live is None:
        if row is not None and not is_ours(row):
            return done  # someone else's user of that name: not ours to touch
        if row is not None:
            session.remove(HS_USER, row[".id"])
            done.append("user removed")
        active = session.rows(HS_ACTIVE, props=(".id",), user=login)
        if active:
            session.remove(HS_ACTIVE, *[a[".id"] for a in active])
            done.append("session ended")
        cookies = session.rows(HS_COOKIE, props=(".id",), user=login)
        if cookies:
            session.remove(HS_COOKIE, *[c[".id"] for c in cookies])
            done.append("cookie removed")
        if row is not None and session.rows(HS_USER, props=(".id",), name=login):
            raise NotApplied(f"hotspot user {login} is still on the router after removing it")
        return done
    if ensure_profile(session, live.package):
        done.append(f"profile {live.package.profile_name} written")
    fresh = row is None or row.get("comment") != marker(live.pk)
    if fresh:
        # A new user (counters from zero), or the previous entitlement's user taken over
        # as it is (its device stays online): the guard and the usage baseline start
        # from the counters the router has now.
        counters = _counters(session, login, row) if row is not None else {
            "user": 0, "uptime": 0, "sessions": {},
        }  # fmt: skip
        live.guard_seconds, live.guard_bytes = _guard(live, counters, now)
        live.usage_seen = _baseline(counters, now)
        Entitlement.objects.filter(pk=live.pk).update(
            guard_seconds=live.guard_seconds,
            guard_bytes=live.guard_bytes,
            usage_seen=live.usage_seen,
        )
    wanted = user_fields(live)
    if row is None:
        try:
            session.add(HS_USER, **wanted)
            done.append("user created")
        except TrapError as exc:
            if "already have" not in str(exc.message):
                raise
            row = session.rows(HS_USER, props=USER_PROPS, name=login)[0]
    if row is not None:
        changed = differences(row, wanted)
        if changed:
            session.update(HS_USER, row[".id"], **changed)
            done.append("user updated " + ", ".join(sorted(changed)))
    if done:
        after = session.rows(HS_USER, props=USER_PROPS, name=login)
        left = differences(after[0], wanted) if after else wanted
        if left:
            raise NotApplied(f"hotspot user {login} still differs in {', '.join(sorted(left))}")
    return done


def apply_bypass(session: RouterSession, router, mac: str, *, rows=None) -> list[str]:
    """Make `mac`'s bypass binding on the router match its active Bypass (or its
    absence). Bindings without our comment are the operator's and left alone."""
    active = Bypass.objects.filter(router=router, mac=mac, state=Bypass.State.ACTIVE).first()
    if rows is None:
        rows = session.rows(BINDING, props=BINDING_PROPS, **{"mac-address": mac})
    ours = [r for r in rows if str(r.get("comment", "")).startswith(BYPASS_PREFIX)]
    wanted = None
    if active is not None:
        wanted = {
            "mac-address": mac,
            "type": "bypassed",
            "comment": f"{BYPASS_PREFIX}{active.pk}",
            "disabled": "false",
        }
    keep = next((r for r in ours if wanted and r.get("comment") == wanted["comment"]), None)
    done = []
    extra = [r[".id"] for r in ours if r is not keep]
    if extra:
        session.remove(BINDING, *extra)
        done.append(f"{mac} binding removed")
    if wanted is not None:
        if keep is None:
            session.add(BINDING, **wanted)
            done.append(f"{mac} bypassed")
        else:
            changed = differences(keep, wanted)
            if changed:
                session.update(BINDING, keep[".id"], **changed)
                done.append(f"{mac} binding updated")
    if done:
        after = [
            r
            for r in session.rows(BINDING, props=BINDING_PROPS, **{"mac-address": mac})
            if str(r.get("comment", "")).startswith(BYPASS_PREFIX)
        ]
        expected = 0 if wanted is None else 1
        if len(after) != expected or (after and differences(after[0], wanted)):
            raise NotApplied(f"the bypass binding of {mac} is not as written")
    return done


# --- claiming and pushing ---------------------------------------------------------------


@contextmanager
def router_lock(router_id: int):
    """One worker at a time pushes to, syncs or polls a router's hotspot (a session-level
    advisory lock, released at the end)."""
    key = zlib.crc32(f"{connection.schema_name}:hotspot-router:{router_id}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


# How long a claimed entitlement is left to the worker that claimed it: if that worker
# dies, the sweep pushes it again once the lease has passed.
CLAIM_LEASE = timedelta(minutes=2)


def _claim(
    router_id: int, now: datetime, limit: int = 500
) -> tuple[dict[str, list[int]], datetime]:
    """Claim the router's due pending entitlements (conditional update): ({login: ids},
    the lease). They stay pending, leased by router_next_at, until `_applied` clears
    them: "not pending" must mean the router holds the login (the captive page sends
    the phone to the router's login form on it), never "a worker is writing it"."""
    table = connection.ops.quote_name(Entitlement._meta.db_table)
    lease = now + CLAIM_LEASE
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET router_next_at = %s, router_attempts = router_attempts + 1 "
            f"WHERE id IN (SELECT id FROM {table} WHERE router_id = %s AND router_pending "
            "AND router_next_at <= %s ORDER BY router_next_at, id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) AND router_pending RETURNING id, login",
            [lease, router_id, now, limit],
        )
        claimed: dict[str, list[int]] = {}
        for pk, login in cursor.fetchall():
            claimed.setdefault(login, []).append(pk)
    return claimed, lease


def _applied(ids, lease: datetime) -> None:
    """The router holds these logins now. One changed while it was written (an
    extension sets router_next_at to its moment) keeps its pending flag: pushed again."""
    Entitlement.objects.filter(pk__in=ids, router_next_at=lease).update(
        router_pending=False, router_error=""
    )


def _claim_bypasses(router_id: int) -> list[str]:
    """Claim the router's pending bypasses (conditional update): their MACs."""
    table = connection.ops.quote_name(Bypass._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET router_pending = false WHERE router_id = %s AND router_pending "
            "RETURNING mac",
            [router_id],
        )
        return sorted({row[0] for row in cursor.fetchall()})


def _retry_bypasses(router_id: int, macs, error: str) -> None:
    # Tried again by the enforcement sweep (every 30 s), which pushes pending routers.
    Bypass.objects.filter(router_id=router_id, mac__in=list(macs)).update(
        router_pending=True, router_error=error[:2000]
    )


def _retry(ids, error: str, now: datetime) -> None:
    from network.services import backoff

    for entitlement in Entitlement.objects.filter(pk__in=ids).only("id", "router_attempts"):
        Entitlement.objects.filter(pk=entitlement.pk).update(
            router_pending=True,
            router_next_at=now + backoff(entitlement.router_attempts),
            router_error=error[:2000],
        )


def push(router_id: int, *, now: datetime | None = None) -> str:
    """Make the logins of the router's pending entitlements match them. Safe to run
    twice at once: one holds the router, and a claim is a conditional update."""
    from network.models import Router

    router = Router.objects.filter(pk=router_id).first()
    if router is None:
        return "no such router"
    with router_lock(router_id) as got:
        if not got:
            return "another worker has this router"
        done = failed = 0
        while True:
            moment = now or timezone.now()
            claimed, lease = _claim(router_id, moment)
            if not claimed:
                break
            try:
                with routeros.pooled(router) as link:
                    session = RouterSession(link.api, cache=link.cache)
                    for login, ids in claimed.items():
                        try:
                            apply_login(session, router, login, moment)
                            _applied(ids, lease)
                            done += 1
                        except _REFUSALS as exc:
                            session.cache.clear()
                            _retry(ids, str(exc), moment)
                            failed += 1
            except routeros.RouterError as exc:
                _retry([pk for ids in claimed.values() for pk in ids], str(exc), moment)
                return f"router unavailable: {exc}"
            if now is not None:
                break  # a fixed moment (tests): one pass
        macs = _claim_bypasses(router_id)
        if macs:
            try:
                with routeros.pooled(router) as link:
                    session = RouterSession(link.api, cache=link.cache)
                    for mac in macs:
                        apply_bypass(session, router, mac)
            except (routeros.RouterError, *_REFUSALS) as exc:
                _retry_bypasses(router_id, macs, str(exc))
                return f"{done} logins pushed; bypasses failed: {exc}"
    bypassed = f", {len(macs)} bypasses pushed" if macs else ""
    return f"{done} logins pushed, {failed} refused{bypassed}"


def push_soon(router_id: int) -> bool:
    """Hand the router's pending logins to a worker (after a grant commits). If the
    broker is down the rows stay pending and the enforcement sweep pushes them."""
    from hotspot.tasks import push_router
    from ispops.tasks import hand_to_worker

    return hand_to_worker(push_router, router_id, what=f"hotspot push to router {router_id}")


def hotspot_routers():
    """Routers where a package is sold or an entitlement is live (a package sold with
    no router chosen is sold at every router)."""
    from network.models import Router

    if Package.objects.filter(is_active=True, routers=None).exists():
        return Router.objects.all()
    return Router.objects.filter(
        Q(hotspot_packages__is_active=True) | Q(hotspot_entitlements__state=Entitlement.State.LIVE)
    ).distinct()


def pending_routers(now: datetime) -> list[int]:
    logins = Entitlement.objects.filter(router_pending=True, router_next_at__lte=now)
    bypasses = Bypass.objects.filter(router_pending=True)
    return sorted(
        set(logins.values_list("router_id", flat=True))
        | set(bypasses.values_list("router_id", flat=True))
    )


def sync_router(router, *, now: datetime | None = None) -> dict:
    """Compare the router's hotspot with ispops and write the differences: profiles,
    the walled garden, every login with a live entitlement, and users of ours nobody
    holds any more. Returns {"writes": n, "changes": [...]}; a second sync writes 0."""
    now = now or timezone.now()
    changes = []
    with routeros.connect(router) as api:
        session = RouterSession(api)
        for package in packages_for(router):
            if ensure_profile(session, package, recheck=True):
                changes.append(f"profile {package.profile_name}")
        if sync_walled_garden(session):
            changes.append("walled garden")
        users = {str(r.get("name")): r for r in session.rows(HS_USER, props=USER_PROPS)}
        live = set(
            Entitlement.objects.filter(router=router, state=Entitlement.State.LIVE).values_list(
                "login", flat=True
            )
        )
        ours = {name for name, row in users.items() if is_ours(row)}
        for login in sorted(live | ours):
            for change in apply_login(
                session, router, login, now, row=users.get(login), read=False
            ):
                changes.append(f"{login}: {change}")
        bindings: dict[str, list] = {}
        for row in session.rows(BINDING, props=BINDING_PROPS):
            bindings.setdefault(str(row.get("mac-address", "")), []).append(row)
        macs = {
            mac
            for mac, rows in bindings.items()
            if any(str(r.get("comment", "")).startswith(BYPASS_PREFIX) for r in rows)
        }
        macs |= set(
            Bypass.objects.filter(router=router, state=Bypass.State.ACTIVE).values_list(
                "mac", flat=True
            )
        )
        for mac in sorted(macs):
            changes += apply_bypass(session, router, mac, rows=bindings.get(mac, []))
        writes = session.writes
    return {"writes": writes, "changes": changes}


def login_device(entitlement: Entitlement, ip: str, mac: str) -> bool:
    """Have the router log a device in as the entitlement's login (/ip/hotspot/active/
    login), writing the user first if a push has not yet. False (logged) when the
    router refused or could not be reached: the page then asks the device to retry."""
    from hotspot import entitlements

    entitlement.refresh_from_db()
    if entitlement.state == Entitlement.State.QUEUED:
        # Queued behind the live one of the same login (and password): log in as that.
        entitlement = (
            Entitlement.objects.filter(
                router_id=entitlement.router_id,
                login=entitlement.login,
                state=Entitlement.State.LIVE,
            ).first()
            or entitlement
        )
    if entitlement.state != Entitlement.State.LIVE:
        return False
    router = entitlement.router
    now = timezone.now()
    try:
        with routeros.pooled(router) as link:
            session = RouterSession(link.api, cache=link.cache)
            apply_login(session, router, entitlement.login, now)
            list(
                link.api.rawCmd(
                    "/ip/hotspot/active/login",
                    f"=user={entitlement.login}",
                    f"=password={entitlement.password}",
                    f"=ip={ip}",
                    f"=mac-address={mac}",
                )
            )
    except (routeros.RouterError, *_REFUSALS) as exc:
        log.info("hotspot login of %s on %s failed: %s", entitlement.login, router, exc)
        return False
    if entitlement.starts_at is None:
        entitlements.start_at_first_login(entitlement, now)
    return True
