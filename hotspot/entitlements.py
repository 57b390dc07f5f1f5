"""The entitlement engine: what a voucher, a payment, a trial or a gift gives a login on
one router's hotspot, under the ISP's stacking rule; and how entitlements start, end
and hand over to the one queued behind them.

One login has at most one live entitlement (the one_live_per_login constraint). A new
grant on a login with a live one, per HotspotSettings.stacking:

    extend   the same package adds its time and data to the live one; another package
             queues after the last one waiting
    queue    every grant queues after the last one waiting
    refuse   nothing is granted while one is live (Refused, in words)

Every change to a login happens under a transaction-level advisory lock of (router,
login), so two grants at once are one after the other. A payment or a voucher grants
once: Grant.payment and Grant.voucher are unique, and a second grant with either
returns the entitlement the first one made or extended.

Router work is never done here: the rows say what the router must hold
(router_pending), and hotspot.router pushes it after the transaction commits.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from hotspot.models import Bypass, Entitlement, Grant, HotspotSettings, Package, Stacking
from ispops import audit

State = Entitlement.State


class Refused(Exception):
    """Nothing granted; str() says why, for the buyer."""


@dataclass(frozen=True)
class Preview:
    """What granting `package` on a login would do, in words, shown before confirming."""

    outcome: str  # new, extend, queue, refuse
    message: str
    live: Entitlement | None = None

    @property
    def refused(self) -> bool:
        return self.outcome == "refuse"


# --- locks and reads ----------------------------------------------------------------------


def lock_login(router_id: int, login: str) -> None:
    """Hold (router, login) until the transaction ends (inside transaction.atomic)."""
    digest = hashlib.sha256(
        f"hotspot-login:{connection.schema_name}:{router_id}:{login}".encode()
    ).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
        )


def live_for(router, login: str) -> Entitlement | None:
    return (
        Entitlement.objects.filter(router=router, login=login, state=State.LIVE)
        .select_related("package")
        .first()
    )


def queued_for(router, login: str) -> list[Entitlement]:
    return list(
        Entitlement.objects.filter(router=router, login=login, state=State.QUEUED)
        .select_related("package")
        .order_by("created_at", "id")
    )


# --- the stacking rule --------------------------------------------------------------------


def _decide(live: Entitlement | None, package: Package, rule: str) -> str:
    if live is None:
        return "new"
    if rule == Stacking.REFUSE:
        return "refuse"
    if rule == Stacking.EXTEND and live.package_id == package.pk:
        return "extend"
    return "queue"


def _duration(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day" + ("s" if days != 1 else "")
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def _data(limit: int | None) -> str:
    if limit is None:
        return "unlimited data"
    if limit >= 10**9:
        return f"{limit / 10**9:g} GB"
    return f"{limit / 10**6:g} MB"


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%-d %b, %H:%M")


def stacking_preview(router, login: str, package: Package, now: datetime) -> Preview:
    """What granting `package` on `login` would do now, in words for the captive page
    (shown before the buyer confirms; grant() decides again under the lock)."""
    live = live_for(router, login) if login else None
    rule = HotspotSettings.load().stacking
    outcome = _decide(live, package, rule)
    if outcome == "new":
        starts = "now" if package.starts == Package.Starts.PURCHASE else "when you first connect"
        message = (
            f"{package.name}: {_duration(package.validity_minutes)} and "
            f"{_data(package.data_limit_bytes)}, starting {starts}."
        )
    elif outcome == "refuse":
        until = f" until {_local(live.ends_at)}" if live.ends_at else ""
        message = (
            f"Your {live.package.name} package is still on{until}. You can buy another "
            "one when it ends."
        )
    elif outcome == "extend":
        if live.ends_at is not None:
            new_end = live.ends_at + timedelta(minutes=package.validity_minutes)
            when = f" It will then end {_local(new_end)}."
        else:
            when = ""
        message = (
            f"This adds {_duration(package.validity_minutes)} and "
            f"{_data(package.data_limit_bytes)} to your {live.package.name} package.{when}"
        )
    else:
        waiting = queued_for(router, login)
        after = "the packages already waiting" if waiting else f"your {live.package.name} package"
        message = (
            f"{package.name} will start when {after} ends, with its full "
            f"{_duration(package.validity_minutes)} and {_data(package.data_limit_bytes)}."
        )
    return Preview(outcome, message, live)


# --- granting -----------------------------------------------------------------------------


def new_login() -> str:
    """A login nobody types: the captive page logs the device in with it."""
    return "hs-" + secrets.token_hex(5)


def grant(
    *,
    router,
    package: Package,
    source: str,
    login: str | None = None,
    password: str | None = None,
    phone: str = "",
    mac: str = "",
    voucher=None,
    payment=None,
    now: datetime,
    actor="system",
) -> Entitlement:
    """Give `package` to `login` on `router` under the ISP's stacking rule: a new live
    entitlement, time and data added to the live one, or one queued behind it.
    Refused (nothing written) when the rule refuses. A voucher's code is its login and
    password unless others are given. Idempotent on `payment` and `voucher`: granting
    again returns what the first grant made or extended."""
    if voucher is not None:
        login = login or voucher.code
        password = password or voucher.code
    login = login or new_login()
    try:
        with transaction.atomic():
            return _grant(
                router=router,
                package=package,
                source=source,
                login=login,
                password=password,
                phone=phone,
                mac=mac,
                voucher=voucher,
                payment=payment,
                now=now,
                actor=actor,
            )
    except IntegrityError:
        # The same payment or voucher granted at once on another login: the first won.
        done = _granted(voucher, payment)
        if done is None:
            raise
        return done


def _granted(voucher, payment) -> Entitlement | None:
    found = Grant.objects.none()
    if payment is not None:
        found = Grant.objects.filter(payment=payment)
    if voucher is not None:
        found = found | Grant.objects.filter(voucher=voucher)
    done = found.select_related("entitlement").first()
    return done.entitlement if done is not None else None


def _grant(*, router, package, source, login, password, phone, mac, voucher, payment, now, actor):
    lock_login(router.pk, login)
    done = _granted(voucher, payment)
    if done is not None:
        return done
    live = (
        Entitlement.objects.select_for_update()
        .filter(router=router, login=login, state=State.LIVE)
        .select_related("package")
        .first()
    )
    rule = HotspotSettings.load().stacking
    outcome = _decide(live, package, rule)
    if outcome == "refuse":
        raise Refused(stacking_preview(router, login, package, now).message)
    if outcome == "extend":
        entitlement = _extend(live, package, now)
    else:
        entitlement = Entitlement.objects.create(
            login=login,
            # One login, one password on the router: a queued one keeps the live one's.
            password=live.password if live is not None else (password or secrets.token_hex(4)),
            package=package,
            router=router,
            source=source,
            voucher=voucher,
            payment=payment,
            phone=phone,
            mac=mac,
            state=State.LIVE if outcome == "new" else State.QUEUED,
            live_at=now if outcome == "new" else None,
            minutes=package.validity_minutes,
            data_limit_bytes=package.data_limit_bytes,
            created_at=now,
            router_next_at=now,
        )
        if outcome == "new":
            _start_if_due(entitlement, now)
    Grant.objects.create(
        entitlement=entitlement,
        package=package,
        source=source,
        outcome=outcome,
        voucher=voucher,
        payment=payment,
        minutes=package.validity_minutes,
        data_limit_bytes=package.data_limit_bytes,
        phone=phone,
        actor=audit.describe_actor(actor)[1],
        at=now,
    )
    audit.record(
        entitlement,
        "create" if outcome != "extend" else "update",
        {"grant": [None, f"{outcome} {package.name} ({source})"]},
        actor=actor,
    )
    _push_on_commit(router.pk)
    return entitlement


def _start_if_due(entitlement: Entitlement, now: datetime) -> None:
    """A package that runs from purchase starts now; one from first login waits."""
    if entitlement.package.starts == Package.Starts.PURCHASE:
        entitlement.starts_at = now
        entitlement.ends_at = now + timedelta(minutes=entitlement.minutes)
        entitlement.save(update_fields=["starts_at", "ends_at"])


def _extend(live: Entitlement, package: Package, now: datetime) -> Entitlement:
    live.minutes += package.validity_minutes
    if live.ends_at is not None:
        live.ends_at += timedelta(minutes=package.validity_minutes)
    if live.data_limit_bytes is None or package.data_limit_bytes is None:
        live.data_limit_bytes = None
    else:
        live.data_limit_bytes += package.data_limit_bytes
    # The router's guard moves by what was added (hotspot.router keeps it in step).
    if live.guard_seconds is not None:
        live.guard_seconds += package.validity_minutes * 60 * max(live.package.devices, 1)
    if live.guard_bytes is not None:
        live.guard_bytes = (
            None
            if live.data_limit_bytes is None
            else live.guard_bytes + (package.data_limit_bytes or 0)
        )
    # Warned at 80 % of the old limit is not 80 % of the new one: the buyer is told
    # again when the new limit's thresholds are crossed.
    if live.data_limit_bytes is not None and live.warned_percent:
        level = HotspotSettings.load().warn_at_percent
        percent = live.used_bytes * 100 // live.data_limit_bytes
        passed = 100 if percent >= 100 else level if percent >= level else 0
        live.warned_percent = min(live.warned_percent, passed)
    live.router_pending, live.router_next_at, live.router_attempts = True, now, 0
    live.save(
        update_fields=[
            "minutes",
            "ends_at",
            "data_limit_bytes",
            "guard_seconds",
            "guard_bytes",
            "warned_percent",
            "router_pending",
            "router_next_at",
            "router_attempts",
        ]
    )
    return live


def _push_on_commit(router_id: int) -> None:
    from hotspot import router as hotspot_router

    transaction.on_commit(lambda: hotspot_router.push_soon(router_id))


# --- starting, ending, handing over -------------------------------------------------------


def start_at_first_login(entitlement: Entitlement, at: datetime) -> bool:
    """A live entitlement that runs from first login starts at `at` (once: a
    conditional update). True if this call started it."""
    started = Entitlement.objects.filter(
        pk=entitlement.pk, state=State.LIVE, starts_at__isnull=True
    ).update(starts_at=at, ends_at=at + timedelta(minutes=entitlement.minutes))
    if started:
        entitlement.refresh_from_db(fields=["starts_at", "ends_at"])
    return bool(started)


def end(entitlement: Entitlement, *, reason: str, now: datetime) -> Entitlement | None:
    """End a live entitlement (expired, data, revoked) and start the oldest one queued on
    its login. Safe to call twice: only the call that moves it from live ends it.
    Returns the entitlement that went live after it, if any."""
    with transaction.atomic():
        lock_login(entitlement.router_id, entitlement.login)
        ended = Entitlement.objects.filter(pk=entitlement.pk, state=State.LIVE).update(
            state=State.ENDED,
            ended_at=now,
            end_reason=reason,
            router_pending=True,
            router_next_at=now,
            router_attempts=0,
        )
        if not ended:
            return None
        following = (
            Entitlement.objects.select_for_update()
            .filter(router_id=entitlement.router_id, login=entitlement.login, state=State.QUEUED)
            .select_related("package")
            .order_by("created_at", "id")
            .first()
        )
        if following is not None:
            following.state, following.live_at = State.LIVE, now
            following.router_pending, following.router_next_at = True, now
            following.save(update_fields=["state", "live_at", "router_pending", "router_next_at"])
            _start_if_due(following, now)
        _push_on_commit(entitlement.router_id)
    return following


def due_for_end(now: datetime):
    """Live entitlements past their end or at their data limit."""
    from django.db.models import F, Q

    return Entitlement.objects.filter(state=State.LIVE).filter(
        Q(ends_at__lte=now)
        | Q(data_limit_bytes__isnull=False, used_bytes__gte=F("data_limit_bytes"))
    )


def end_due(now: datetime | None = None) -> list[int]:
    """End every live entitlement past its end or at its data limit (the beat task, every
    30 s); returns the routers touched. Each is ended under its login's lock, so a grant
    extending it at the same moment is either before (then it is not due) or after."""
    now = now or timezone.now()
    routers = set()
    for entitlement in due_for_end(now).only(
        "id", "router_id", "login", "ends_at", "used_bytes", "data_limit_bytes", "minutes"
    ):
        # Looked at again under the lock: an extension may have just moved it.
        with transaction.atomic():
            lock_login(entitlement.router_id, entitlement.login)
            current = due_for_end(now).filter(pk=entitlement.pk).first()
            if current is None:
                continue
            over = (
                current.data_limit_bytes is not None
                and current.used_bytes >= current.data_limit_bytes
            )
            end(current, reason="data" if over else "expired", now=now)
        routers.add(entitlement.router_id)
    return sorted(routers)


def revoke(entitlement: Entitlement, *, actor, now: datetime) -> Entitlement | None:
    """Staff end an entitlement now (a refund, abuse)."""
    following = end(entitlement, reason="revoked", now=now)
    audit.record(entitlement, "update", {"state": ["live", "ended (revoked)"]}, actor=actor)
    return following


def login_device(entitlement: Entitlement, ip: str, mac: str) -> bool:
    """Log a device in over the API (the captive page's fallback when the browser cannot
    post to link-login-only): the router user is written first if it is not there yet.
    Talks to the router: call it after the granting transaction commits."""
    from hotspot import router as hotspot_router

    return hotspot_router.login_device(entitlement, ip, mac)


# --- MAC bypass ---------------------------------------------------------------------------

_MAC = re.compile(r"([0-9A-Fa-f]{2})[:-]?" * 5 + r"([0-9A-Fa-f]{2})")


def normalise_mac(raw: str) -> str:
    """`aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff`... as `AA:BB:CC:DD:EE:FF`; Refused if not a MAC."""
    match = _MAC.fullmatch((raw or "").strip().replace(".", ""))
    if not match:
        raise Refused(f"{raw!r} is not a MAC address")
    return ":".join(match.groups()).upper()


def add_bypass(
    *, router, mac: str, minutes: int | None, note: str = "", payment=None, actor, now
) -> Bypass:
    """Let a device without a browser (a TV, a camera) through the router's hotspot for
    `minutes` (None: until ended). A device already bypassed gets the time added (or
    keeps no end). Idempotent on `payment`."""
    mac = normalise_mac(mac)
    with transaction.atomic():
        lock_login(router.pk, f"bypass:{mac}")
        if payment is not None:
            done = Bypass.objects.filter(payment=payment).first()
            if done is not None:
                return done
        active = (
            Bypass.objects.select_for_update()
            .filter(router=router, mac=mac, state=Bypass.State.ACTIVE)
            .first()
        )
        if active is None:
            bypass = Bypass.objects.create(
                router=router,
                mac=mac,
                note=note,
                payment=payment,
                starts_at=now,
                ends_at=now + timedelta(minutes=minutes) if minutes else None,
                created_by=audit.describe_actor(actor)[1],
                created_at=now,
            )
            audit.record(bypass, "create", {"mac": [None, mac]}, actor=actor)
        else:
            bypass = active
            if minutes and bypass.ends_at is not None:
                bypass.ends_at = max(bypass.ends_at, now) + timedelta(minutes=minutes)
            elif not minutes:
                bypass.ends_at = None
            bypass.router_pending = True
            bypass.save(update_fields=["ends_at", "router_pending"])
            audit.record(bypass, "update", {"ends_at": [None, str(bypass.ends_at)]}, actor=actor)
        _push_on_commit(router.pk)
    return bypass


def end_bypass(bypass: Bypass, *, now, actor="system") -> bool:
    """End a bypass (its binding leaves the router at the next push); once."""
    with transaction.atomic():
        ended = Bypass.objects.filter(pk=bypass.pk, state=Bypass.State.ACTIVE).update(
            state=Bypass.State.ENDED, ended_at=now, router_pending=True
        )
        if ended:
            audit.record(bypass, "update", {"state": ["active", "ended"]}, actor=actor)
            _push_on_commit(bypass.router_id)
    return bool(ended)


def end_due_bypasses(now: datetime) -> list[int]:
    """End the bypasses past their end (the beat task); returns the routers touched."""
    routers = set()
    for bypass in Bypass.objects.filter(state=Bypass.State.ACTIVE, ends_at__lte=now):
        if end_bypass(bypass, now=now):
            routers.add(bypass.router_id)
    return sorted(routers)
