"""Codes sent by SMS that prove a phone: the one home for asking for a code and for
checking one. The subscriber portal signs in with them (purpose "portal"); the captive
page proves the phone of a free trial or of "I already paid" with them ("hotspot").

- A code is random digits from `secrets`; only an HMAC keyed by SECRET_KEY over the
  ISP's schema, the purpose, the phone and the code is stored, so a leaked table cannot
  be brute-forced offline and a code of one purpose, phone or ISP proves no other.
- The caller says whether to send it: a phone with nothing to prove (nobody's customer,
  nothing bought) gets a row all the same, never sent and never matching, and its text
  is rendered all the same, so limits, answers and timing do not tell who is known.
- Limits (resend wait, codes per phone per day, per address per day, tries per code)
  are the caller's (Limits, from its settings row); they hold under concurrent
  requests by a PostgreSQL advisory lock per purpose and phone / address held for
  the transaction.
- Each wrong entry uses one of the newest code's tries; an expired, used or exhausted
  code is dead, and asking again is the only way on.

Callers turn the outcomes into their own words. Time comes in as `now`.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils.crypto import constant_time_compare

from ispops.messaging import services as messaging
from ispops.messaging.models import PhoneCode

PORTAL = PhoneCode.Purpose.PORTAL
HOTSPOT = PhoneCode.Purpose.HOTSPOT
DAY = timedelta(hours=24)  # "per day" limits are a rolling 24 hours


class Outcome(Enum):
    ISSUED = "issued"  # a row written; sent if the caller said so
    WAIT = "wait"  # asked again before the resend wait was over
    PHONE_LIMIT = "phone_limit"
    IP_LIMIT = "ip_limit"
    RIGHT = "right"  # the code is used up: the phone is proven
    WRONG = "wrong"  # a try used; tries_left may be 0 (the code is dead now)
    DEAD = "dead"  # no live code: none, expired, used, or out of tries


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    wait_seconds: int = 0
    tries_left: int = 0


@dataclass(frozen=True)
class Limits:
    resend_wait_seconds: int
    codes_per_phone_per_day: int
    code_length: int
    code_minutes: int
    # Codes of the purpose one address may ask for in 24 hours; None when the caller
    # caps the address itself (the portal counts codes and wrong passwords together).
    codes_per_ip_per_day: int | None = None

    @classmethod
    def of(cls, cfg, *, codes_per_ip_per_day: int | None = None) -> "Limits":
        """The limits a settings row holds (portal.models.PortalSettings' fields)."""
        return cls(
            resend_wait_seconds=cfg.resend_wait_seconds,
            codes_per_phone_per_day=cfg.codes_per_phone_per_day,
            code_length=cfg.code_length,
            code_minutes=cfg.code_minutes,
            codes_per_ip_per_day=codes_per_ip_per_day,
        )


@dataclass(frozen=True)
class Sms:
    """The SMS carrying a code: message template `key` rendered with `context` and the
    code and its lifetime (`code`, `minutes`); the customer whose phone it is, if one."""

    key: str
    context: dict = field(default_factory=dict)
    customer: object = None  # subscribers.models.Customer | None
    related: str = ""


def code_hash(purpose: str, phone: str, code: str) -> str:
    message = f"{purpose}:{connection.schema_name}:{phone}:{code}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _lock(purpose: str, *names: str) -> None:
    """Serialise the limit checks of one phone / address until the transaction ends,
    so two requests at once cannot both slip under a cap."""
    with connection.cursor() as cursor:
        for name in sorted(set(names)):
            key = f"phone-code:{connection.schema_name}:{purpose}:{name}"
            digest = hashlib.sha256(key.encode()).digest()
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
            )


def issue(
    phone: str,
    *,
    purpose: str,
    sms: Sms,
    send: bool,
    limits: Limits,
    now: datetime,
    ip: str | None = None,
    mac: str = "",
) -> Result:
    """Write a new code for `phone` (2547... form) unless a limit stops it, and queue
    its SMS (sent after commit) if `send`; otherwise the row is written unsent and the
    text rendered only. The limits are checked in the order the callers answer them:
    the address, the resend wait, the phone's daily count."""
    counted_ip = ip if ip and limits.codes_per_ip_per_day is not None else None
    with transaction.atomic():
        _lock(purpose, f"phone:{phone}", *([f"ip:{counted_ip}"] if counted_ip else []))
        since = now - DAY
        codes = PhoneCode.objects.filter(purpose=purpose, created_at__gt=since)
        if counted_ip and codes.filter(ip=counted_ip).count() >= limits.codes_per_ip_per_day:
            return Result(Outcome.IP_LIMIT)
        recent = codes.filter(phone=phone).aggregate(count=Count("id"), newest=Max("created_at"))
        wait = timedelta(seconds=limits.resend_wait_seconds)
        if recent["newest"] is not None and recent["newest"] > now - wait:
            left = (recent["newest"] + wait - now).total_seconds()
            return Result(Outcome.WAIT, wait_seconds=max(1, int(left + 0.999)))
        if recent["count"] >= limits.codes_per_phone_per_day:
            return Result(Outcome.PHONE_LIMIT)
        code = "".join(str(secrets.randbelow(10)) for _ in range(limits.code_length))
        PhoneCode.objects.create(
            phone=phone,
            purpose=purpose,
            code_hash=code_hash(purpose, phone, code),
            sent=send,
            ip=ip or None,
            mac=mac,
            created_at=now,
            expires_at=now + timedelta(minutes=limits.code_minutes),
        )
        context = {**sms.context, "code": code, "minutes": limits.code_minutes}
        if send:
            messaging.notify_phone(
                phone,
                sms.key,
                context,
                customer=sms.customer,
                related=sms.related,
                keep=(code,),  # an edited template that lost the code sends the default
            )
        else:
            # Rendered all the same: an unknown phone takes as long as a known one.
            messaging.sms_text(sms.key, context, customer=sms.customer, keep=(code,))
    return Result(Outcome.ISSUED)


def check(
    phone: str,
    code: str,
    *,
    purpose: str,
    tries: int,
    now: datetime,
    accept: Callable[[], bool] | None = None,
) -> Result:
    """Use up the newest code of `purpose` written for `phone` if `code` is it (digits
    only are read: "123 456" is 123456). A wrong code uses one of its `tries`; so does
    a right one that was never sent (it can only have been guessed) or that `accept`
    (asked only then) turns down because the phone has nothing to prove any more.
    Inside the caller's transaction: the newest row is locked, so two entries at once
    count two tries, and the code is used with whatever the caller does next."""
    if not connection.in_atomic_block:
        raise RuntimeError("phone_codes.check() runs inside the caller's transaction")
    latest = (
        PhoneCode.objects.select_for_update()
        .filter(purpose=purpose, phone=phone)
        .order_by("-created_at", "-id")
        .first()
    )
    if (
        latest is None
        or latest.used_at is not None
        or latest.expires_at <= now
        or latest.tries >= tries
    ):
        return Result(Outcome.DEAD)
    typed = "".join(ch for ch in (code or "") if ch.isdigit())
    right = constant_time_compare(code_hash(purpose, phone, typed), latest.code_hash)
    if right and latest.sent and (accept is None or accept()):
        latest.used_at = now
        latest.save(update_fields=["used_at"])
        return Result(Outcome.RIGHT)
    latest.tries += 1
    latest.save(update_fields=["tries"])
    return Result(Outcome.WRONG, tries_left=max(tries - latest.tries, 0))


def forget(now: datetime) -> int:
    """Delete codes older than the longest window any limit looks back on (a day), so
    the table holds a day of codes, not every code ever asked for. Returns how many."""
    deleted, _ = PhoneCode.objects.filter(created_at__lt=now - 2 * DAY).delete()
    return deleted
