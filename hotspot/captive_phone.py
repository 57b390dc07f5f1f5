"""The captive page's phone-proven steps: "I already paid" (by the M-Pesa code, or by the
paying phone proven with an SMS code: a typed number proves nothing) and the free trial
(once per phone per the ISP's period; by phone, since MACs are randomised). The device,
the router and the locks are hotspot.captive's."""

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils.crypto import constant_time_compare

from hotspot import entitlements
from hotspot.captive import (
    CaptiveError,
    Device,
    _lock,
    package_for,
    phone_login,
    router_of,
)
from hotspot.models import Entitlement, HotspotSettings, Package, PhoneCode, Trial
from ispops.messaging import services as messaging
from ispops.messaging.models import Channel, Message
from portal.models import PortalSettings

# --- "I already paid" ---------------------------------------------------------------------


def paid_by(device: Device, *, phone: str = "", receipt: str = "") -> Entitlement | None:
    """The live (or waiting) entitlement bought on this router by `phone` or with the
    M-Pesa `receipt`: this device may join it (within its device limit, which the
    router enforces as shared-users)."""
    found = Entitlement.objects.filter(
        router_id=device.router_id,
        state__in=[Entitlement.State.LIVE, Entitlement.State.QUEUED],
        source=Entitlement.Source.PURCHASE,
    ).select_related("package")
    if phone:
        found = found.filter(phone=phone)
    elif receipt:
        found = found.filter(payment__reference=receipt)
    else:
        return None
    return found.order_by("state", "-created_at").first()  # live before queued


RECEIPT = re.compile(r"[A-Z0-9]{8,12}")


def receipt_of(raw: str) -> str:
    """An M-Pesa code as typed ('uc3 ab12 xyz' -> 'UC3AB12XYZ'), or "" if it is not one."""
    text = "".join((raw or "").split()).upper()
    return text if RECEIPT.fullmatch(text) and not text.isdigit() else ""


def ask_paid_by_phone(device: Device, phone: str, *, now) -> str | None:
    """ "I already paid" with a phone: a number is no proof (anyone can type one), so a
    code goes to the phone when it bought something here; the answer is the same
    either way. None when done, else why not (the code limits)."""
    send = paid_by(device, phone=phone) is not None
    return send_phone_code(device, phone, why="connect another device", send=send, now=now)


def join_by_phone(device: Device, phone: str, code: str, *, now) -> Entitlement:
    with transaction.atomic():
        check_phone_code(phone, code, now=now)
    found = paid_by(device, phone=phone)
    if found is None:
        raise CaptiveError("We found no package bought with this phone on this Wi-Fi.")
    return rebind(device, found)


def rebind(device: Device, entitlement: Entitlement) -> Entitlement:
    """Remember this device on the entitlement (what stacks next), the login the router
    checks is unchanged."""
    Entitlement.objects.filter(pk=entitlement.pk).update(mac=device.mac)
    entitlement.mac = device.mac
    return entitlement


# --- the free trial ------------------------------------------------------------------------


def trial_package(router) -> Package | None:
    cfg = HotspotSettings.load()
    if cfg.trial_package_id is None:
        return None
    return package_for(router, cfg.trial_package_id)


def _code_hash(phone: str, code: str) -> str:
    message = f"hotspot:{connection.schema_name}:{phone}:{code}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def trial_used(phone: str, now) -> datetime | None:
    """When this phone's last trial was, if within the ISP's trial period."""
    cfg = HotspotSettings.load()
    return (
        Trial.objects.filter(phone=phone, at__gt=now - timedelta(days=cfg.trial_every_days))
        .values_list("at", flat=True)
        .first()
    )


PHONE_CODE_TEMPLATE = "hotspot_phone_code"


def send_phone_code(device: Device, phone: str, *, why: str, send: bool, now) -> str | None:
    """A code that proves `phone` (the portal's limits: resend wait, codes per phone per
    day, per address per day). Written whether or not it is sent (`send` False: the
    phone has nothing to prove here), so limits and answers are alike either way.
    None when written, else why not, in words."""
    cfg = PortalSettings.load()
    with transaction.atomic():
        _lock(f"phone:{phone}", f"ip:{device.ip}")
        day = now - timedelta(hours=24)
        if PhoneCode.objects.filter(ip=device.ip, created_at__gt=day).count() >= (
            cfg.attempts_per_ip_per_day
        ):
            return "Too many codes asked from this connection today."
        recent = PhoneCode.objects.filter(phone=phone, created_at__gt=day)
        latest = recent.first()
        wait = timedelta(seconds=cfg.resend_wait_seconds)
        if latest is not None and latest.created_at > now - wait:
            return f"A code was sent moments ago. Wait {cfg.resend_wait_seconds} seconds."
        if recent.count() >= cfg.codes_per_phone_per_day:
            return "Too many codes for this phone today."
        code = "".join(str(secrets.randbelow(10)) for _ in range(cfg.code_length))
        PhoneCode.objects.create(
            phone=phone,
            code_hash=_code_hash(phone, code),
            mac=device.mac,
            ip=device.ip,
            created_at=now,
            expires_at=now + timedelta(minutes=cfg.code_minutes),
        )
        if send:
            name = getattr(connection.tenant, "name", "") or "Wi-Fi"
            text = f"{name} Wi-Fi: your code to {why} is {code}. It works for "
            messaging.queue_messages(
                [
                    Message(
                        channel=Channel.SMS,
                        to=phone,
                        body=f"{text}{cfg.code_minutes} minutes.",
                        template_key=PHONE_CODE_TEMPLATE,
                        related="hotspot",
                    )
                ]
            )
    return None


def check_phone_code(phone: str, code: str, *, now) -> None:
    """Use up the newest code sent to `phone` if `code` is it; CaptiveError otherwise
    (each wrong entry uses one of the code's tries, as the portal's do). Inside the
    caller's transaction."""
    cfg = PortalSettings.load()
    _lock(f"phone:{phone}")
    latest = PhoneCode.objects.select_for_update().filter(phone=phone).first()
    if (
        latest is None
        or latest.used_at is not None
        or latest.expires_at <= now
        or latest.tries >= cfg.tries_per_code
    ):
        raise CaptiveError("That code has expired. Ask for a new one.")
    typed = "".join(ch for ch in code or "" if ch.isdigit())
    if not constant_time_compare(_code_hash(phone, typed), latest.code_hash):
        PhoneCode.objects.filter(pk=latest.pk).update(tries=latest.tries + 1)
        raise CaptiveError("That code is wrong.")
    latest.used_at = now
    latest.save(update_fields=["used_at"])


def send_trial_code(device: Device, phone: str, *, now) -> str | None:
    if trial_used(phone, now) is not None:
        return "This phone had its free trial already. Buy a package instead."
    return send_phone_code(device, phone, why="start your free trial", send=True, now=now)


def start_trial(device: Device, phone: str, code: str, *, now) -> Entitlement:
    """Check the code sent to `phone` and give this device the trial package once per
    phone per the ISP's period; CaptiveError in words otherwise."""
    router = router_of(device)
    package = trial_package(router)
    if package is None:
        raise CaptiveError("There is no free trial on this Wi-Fi.")
    # The code is used up (or its try counted) whatever follows.
    with transaction.atomic():
        check_phone_code(phone, code, now=now)
    with transaction.atomic():
        _lock(f"trial:{phone}")
        if trial_used(phone, now) is not None:
            raise CaptiveError("This phone had its free trial already. Buy a package instead.")
        login = phone_login(phone)
        if Entitlement.objects.filter(
            router=router, login=login, state=Entitlement.State.LIVE
        ).exists():
            raise CaptiveError("This phone has a package on already.")
        entitlement = entitlements.grant(
            router=router,
            login=login,
            package=package,
            source=Entitlement.Source.TRIAL,
            phone=phone,
            mac=device.mac,
            actor=f"trial {phone}",
            now=now,
        )
        Trial.objects.create(phone=phone, mac=device.mac, entitlement=entitlement, at=now)
    return entitlement
