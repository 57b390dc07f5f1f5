"""The captive page's phone-proven steps: "I already paid" (by the M-Pesa code, or by the
paying phone proven with an SMS code: a typed number proves nothing) and the free trial
(once per phone per the ISP's period; by phone, since MACs are randomised). The device,
the router and the locks are hotspot.captive's; the SMS codes are
ispops.messaging.phone_codes' (purpose "hotspot"), with the portal's limits."""

import re
from datetime import datetime, timedelta

from django.db import transaction

from hotspot import entitlements
from hotspot.captive import (
    CaptiveError,
    Device,
    _lock,
    package_for,
    phone_login,
    router_of,
)
from hotspot.models import Entitlement, HotspotSettings, Package, Trial
from ispops.messaging import phone_codes
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
    return _send_code(device, phone, why="connect another device", send=send, now=now)


def join_by_phone(device: Device, phone: str, code: str, *, now) -> Entitlement:
    with transaction.atomic():
        _use_code(phone, code, now=now)
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


def trial_used(phone: str, now) -> datetime | None:
    """When this phone's last trial was, if within the ISP's trial period."""
    cfg = HotspotSettings.load()
    return (
        Trial.objects.filter(phone=phone, at__gt=now - timedelta(days=cfg.trial_every_days))
        .values_list("at", flat=True)
        .first()
    )


PHONE_CODE_TEMPLATE = "hotspot_phone_code"
# The captive page's words for what ispops.messaging.phone_codes refused.
_REFUSED = {
    phone_codes.Outcome.IP_LIMIT: "Too many codes asked from this connection today.",
    phone_codes.Outcome.PHONE_LIMIT: "Too many codes for this phone today.",
}


def _send_code(device: Device, phone: str, *, why: str, send: bool, now) -> str | None:
    """A code that proves `phone` (the portal's limits: resend wait, codes per phone per
    day, and here per address per day). Written whether or not it is sent (`send`
    False: the phone has nothing to prove here), so limits and answers are alike
    either way. None when written, else why not, in words."""
    cfg = PortalSettings.load()
    issued = phone_codes.issue(
        phone,
        purpose=phone_codes.HOTSPOT,
        sms=phone_codes.Sms(PHONE_CODE_TEMPLATE, {"why": why}, related="hotspot"),
        send=send,
        limits=phone_codes.Limits.of(cfg, codes_per_ip_per_day=cfg.attempts_per_ip_per_day),
        ip=device.ip,
        mac=device.mac,
        now=now,
    )
    if issued.outcome == phone_codes.Outcome.WAIT:
        return f"A code was sent moments ago. Wait {cfg.resend_wait_seconds} seconds."
    return _REFUSED.get(issued.outcome)


def _use_code(phone: str, code: str, *, now) -> None:
    """Use up the newest code sent to `phone` if `code` is it; CaptiveError otherwise
    (each wrong entry uses one of the code's tries, as the portal's do). Inside the
    caller's transaction."""
    checked = phone_codes.check(
        phone,
        code,
        purpose=phone_codes.HOTSPOT,
        tries=PortalSettings.load().tries_per_code,
        now=now,
    )
    if checked.outcome == phone_codes.Outcome.DEAD:
        raise CaptiveError("That code has expired. Ask for a new one.")
    if checked.outcome == phone_codes.Outcome.WRONG:
        raise CaptiveError("That code is wrong.")


def send_trial_code(device: Device, phone: str, *, now) -> str | None:
    if trial_used(phone, now) is not None:
        return "This phone had its free trial already. Buy a package instead."
    return _send_code(device, phone, why="start your free trial", send=True, now=now)


def start_trial(device: Device, phone: str, code: str, *, now) -> Entitlement:
    """Check the code sent to `phone` and give this device the trial package once per
    phone per the ISP's period; CaptiveError in words otherwise."""
    router = router_of(device)
    package = trial_package(router)
    if package is None:
        raise CaptiveError("There is no free trial on this Wi-Fi.")
    # The code is used up (or its try counted) whatever follows.
    with transaction.atomic():
        _use_code(phone, code, now=now)
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
