"""The captive portal: what a phone on a hotspot can do at the ISP's /hs/ page after the
router's login.html sent it there, and how it ends logged in. Buying by M-Pesa is
hotspot.captive_purchase's, the phone-proven steps hotspot.captive_phone's.

The device. The router's login page forwards its variables (mac, ip, link-login-only,
link-orig, chap-id, chap-challenge, identity, server-name, error) and a signed reference
to the router it was generated for (`router_ref`): the reference names the router, the
variables say which device and how to log it in. Nothing the phone sends is trusted
beyond that: a bad or missing parameter is a BadDevice with a reason (the page answers
400 with it), never a guess.

Logging in. Once an entitlement exists on the router, the browser posts the login and
password to `link-login-only` (the router's own login servlet; for CHAP the password is
md5(chap-id + password + chap-challenge), computed here so no JavaScript is needed);
when the page has no way to post (no link-login-only), the router is asked over its API
(/ip/hotspot/active/login) instead.

Logins. A voucher's login is its code. A purchase's or trial's login is the buyer's
phone in its local form, 07... or 01...: the person is the phone (MACs are randomised,
phones are not), the same phone buying again stacks on the same login by the ISP's rule,
"I already paid" finds it by the phone, and a leading 0 never collides with a voucher
code (codes have no 0). In both cases, when this device is already on a live login of
this router, what it redeems or buys goes to that login, under the stacking rule, and
the outcome is shown before confirming. A voucher's password is its code; a phone
login's is random (hotspot.entitlements.grant); a login keeps its password while it
has a live entitlement.
"""

import base64
import hashlib
import ipaddress
import logging
import re
from dataclasses import asdict, dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from billing.links import public_host
from hotspot import entitlements, vouchers
from hotspot.models import CodeAttempt, Entitlement, HotspotSettings, Package
from hotspot.tasks_captive import login_device_task
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.lib.urls import absolute_url
from ispops.tasks import hand_to_worker
from network.models import Router

log = logging.getLogger(__name__)

SALT = "ispops.hotspot.captive.router"
MAC_BYTES = 12
ROUTER_REF = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{16})")
MAC = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")
# What the router's login page forwards, by the names MikroTik gives its variables.
FORWARDED = (
    "mac",
    "ip",
    "link-login-only",
    "link-orig",
    "chap-id",
    "chap-challenge",
    "identity",
    "server-name",
    "error",
)
MAX_PARAM = 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# MikroTik writes chap-id and chap-challenge as octal escapes, "\371\042...": one byte
# each, 16 bytes for the challenge; some templates give hex instead.
OCTAL = re.compile(r"(?:\\[0-7]{1,3})+")


class BadDevice(ValueError):
    """The page was opened without what it needs from the router; str() says what."""


class CaptiveError(Exception):
    """An action refused, in words for the person on the phone."""


# --- the router reference and the device ----------------------------------------------


def router_ref(router_id: int, *, schema: str | None = None) -> str:
    """The signed reference to a router that its login.html carries to /hs/ (the id
    and an HMAC over it and the ISP's schema: useless on another ISP's host)."""
    return f"{int(router_id)}.{_mac(schema or connection.schema_name, int(router_id))}"


def check_router_ref(text: str) -> int:
    match = ROUTER_REF.fullmatch(text or "")
    if match is None:
        raise BadDevice("the router reference (r) is missing or malformed")
    pk = int(match.group(1))
    # Pages made under an old key keep working while a new SECRET_KEY rolls out.
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not any(
        constant_time_compare(match.group(2), _mac(connection.schema_name, pk, key)) for key in keys
    ):
        raise BadDevice("the router reference (r) names no router of this ISP")
    return pk


def _mac(schema: str, pk: int, key: str | None = None) -> str:
    digest = salted_hmac(SALT, f"{schema}/{pk}", secret=key or settings.SECRET_KEY).digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode().rstrip("=")


@dataclass(frozen=True)
class Device:
    """A phone behind a router's hotspot, as the router described it."""

    router_id: int
    mac: str
    ip: str
    link_login_only: str = ""
    link_orig: str = ""
    chap_id: str = ""
    chap_challenge: str = ""
    identity: str = ""
    server_name: str = ""
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "Device | None":
        try:
            return cls(**data)
        except TypeError:
            return None

    @property
    def can_post_login(self) -> bool:
        return bool(self.link_login_only)


def parse_device(params) -> Device:
    """The device from /hs/'s query string, or BadDevice saying what is wrong."""
    values = {}
    for name in ("r", *FORWARDED):
        value = params.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_PARAM:
            raise BadDevice(f"{name} is too long")
        if CONTROL.search(value):
            raise BadDevice(f"{name} holds control characters")
        values[name] = value.strip()
    router_id = check_router_ref(values["r"])
    mac = values["mac"].upper().replace("-", ":")
    if not MAC.fullmatch(mac):
        raise BadDevice("mac is missing or not a MAC address (open this page from the Wi-Fi)")
    try:
        ip = ipaddress.IPv4Address(values["ip"])
    except ValueError:
        raise BadDevice("ip is missing or not an IPv4 address") from None
    link = values["link-login-only"]
    if link and not _login_link(link):
        raise BadDevice("link-login-only is not the router's http(s) login address")
    orig = values["link-orig"]
    if orig and urlsplit(orig).scheme not in ("http", "https"):
        orig = ""  # only ever used as dst after login: drop what is not a web address
    for name in ("chap-id", "chap-challenge"):
        if values[name] and chap_bytes(values[name]) is None:
            raise BadDevice(f"{name} is not an octal-escaped or hex string")
    if bool(values["chap-id"]) != bool(values["chap-challenge"]):
        raise BadDevice("chap-id and chap-challenge come together")
    if not Router.objects.filter(pk=router_id).exists():
        raise BadDevice("the router of this page no longer exists")
    return Device(
        router_id=router_id,
        mac=mac,
        ip=str(ip),
        link_login_only=link,
        link_orig=orig,
        chap_id=values["chap-id"],
        chap_challenge=values["chap-challenge"],
        identity=values["identity"][:80],
        server_name=values["server-name"][:80],
        error=values["error"][:200],
    )


def _login_link(url: str) -> bool:
    """The router's login servlet: http(s), a host, the path /login. The browser posts
    the login there, so nothing else is accepted (a link to any other page would have
    the phone send its password to it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path.rstrip("/").endswith("/login")
        and not parts.username
    )


# --- CHAP --------------------------------------------------------------------------------


def chap_bytes(text: str) -> bytes | None:
    """The bytes of a chap-id or chap-challenge as MikroTik prints them: octal escapes
    ("\\371\\042..."), or 2n hex digits as some templates pass them; None otherwise."""
    if OCTAL.fullmatch(text):
        return bytes(int(part, 8) & 0xFF for part in text.split("\\")[1:])
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        return bytes.fromhex(text)
    return None


def chap_response(chap_id: str, password: str, chap_challenge: str) -> str:
    """What the router's http-chap login takes as the password:
    md5(chap-id + password + chap-challenge) in hex, the id and challenge as bytes."""
    ident, challenge = chap_bytes(chap_id), chap_bytes(chap_challenge)
    if ident is None or challenge is None:
        raise ValueError("chap-id and chap-challenge must be octal-escaped or hex")
    return hashlib.md5(ident + password.encode() + challenge, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class RouterLogin:
    """The form the browser posts to the router's login servlet."""

    action: str
    fields: list[tuple[str, str]]


def router_login(device: Device, entitlement: Entitlement) -> RouterLogin:
    password = entitlement.password
    if device.chap_id:
        password = chap_response(device.chap_id, password, device.chap_challenge)
    fields = [("username", entitlement.login), ("password", password)]
    if device.link_orig:
        fields.append(("dst", device.link_orig))
    fields.append(("popup", "true"))
    return RouterLogin(device.link_login_only, fields)


# --- what is sold here and what this device has --------------------------------------------


def router_of(device: Device) -> Router:
    return Router.objects.get(pk=device.router_id)


def packages_for(router) -> list[Package]:
    """The active packages sold at `router` (a package with no routers chosen is sold
    at every one)."""
    return list(
        Package.objects.filter(is_active=True)
        .filter(Q(routers=router) | Q(routers__isnull=True))
        .distinct()
        .order_by("price", "name")
    )


def package_for(router, pk) -> Package | None:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return next((p for p in packages_for(router) if p.pk == pk), None)


def device_entitlement(device: Device) -> Entitlement | None:
    """The live entitlement this device was given on this router, if any: what a new
    voucher or purchase on this device stacks onto."""
    return (
        Entitlement.objects.filter(
            router_id=device.router_id, mac=device.mac, state=Entitlement.State.LIVE
        )
        .select_related("package")
        .order_by("-created_at", "-id")
        .first()
    )


def phone_login(phone: str) -> str:
    """A phone's hotspot login: its local form, 07... / 01... (module docstring)."""
    return "0" + phone[3:]


def normalise(raw: str) -> str | None:
    try:
        return normalise_phone(raw)
    except InvalidPhone:
        return None


@dataclass(frozen=True)
class Stacking:
    """What a new package does to this device's live login, in words, before confirming."""

    outcome: str  # new, extend, queue, refuse
    message: str
    login: str

    @property
    def needs_confirmation(self) -> bool:
        return self.outcome in ("extend", "queue")


def stacking_for(device: Device, package: Package, fallback_login: str, now) -> Stacking:

    live = device_entitlement(device)
    login = live.login if live is not None else fallback_login
    preview = entitlements.stacking_preview(router_of(device), login, package, now)
    return Stacking(preview.outcome, preview.message, login)


# --- vouchers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Redeemed:
    outcome: str  # done, confirm, wrong, locked, refused
    message: str = ""
    stacking: Stacking | None = None
    entitlement: Entitlement | None = None


def _lock(*names: str) -> None:
    """Serialise the lockout count of a device and an address until the transaction
    ends (two wrong codes at once cannot both slip under the limit)."""
    with connection.cursor() as cursor:
        for name in sorted(set(names)):
            digest = hashlib.sha256(f"hotspot:{connection.schema_name}:{name}".encode()).digest()
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
            )


def wrong_codes(device: Device, now) -> tuple[int, HotspotSettings]:
    """Wrong codes counted against this device: the larger of its MAC's and its
    address's, within the lockout window."""
    cfg = HotspotSettings.load()
    recent = CodeAttempt.objects.filter(
        ok=False, at__gt=now - timedelta(minutes=cfg.lockout_minutes)
    )
    by_mac = recent.filter(mac=device.mac).count()
    by_ip = recent.filter(ip=device.ip).count()
    return max(by_mac, by_ip), cfg


def count_wrong(device: Device, now) -> None:
    """A wrong answer from this device ("I already paid" with nothing found)."""
    CodeAttempt.objects.create(mac=device.mac, ip=device.ip, ok=False, at=now)


def locked_out(device: Device, now) -> bool:
    wrong, cfg = wrong_codes(device, now)
    return wrong >= cfg.wrong_codes_before_lockout


# Why a typed code did not work, in words. A code that exists but may not be redeemed
# counts as wrong like an unknown one (a code being tried is a code being guessed),
# except one sold for another place: that is a buyer's mistake, not a guess.
REFUSALS = {
    "unknown": "That code is not valid.",
    "used": "That code was used already.",
    "revoked": "That code was cancelled by the seller.",
    "expired": "That code has expired.",
    "withdrawn": "That code's package is no longer sold.",
    "elsewhere": "That code is not for this Wi-Fi.",
}


def redeem_voucher(device: Device, raw_code: str, *, confirmed: bool, now, actor) -> Redeemed:
    """Redeem a typed code (any case, spaces and dashes ignored) for this device: a
    wrong code counts towards the lockout of its MAC and its address; when something
    is live on this device's login the stacking outcome comes back to be confirmed
    first (nothing is counted or redeemed then)."""

    router = router_of(device)
    with transaction.atomic():
        _lock(f"mac:{device.mac}", f"ip:{device.ip}")
        wrong, cfg = wrong_codes(device, now)
        if wrong >= cfg.wrong_codes_before_lockout:
            return Redeemed("locked", _locked_words(cfg))
        found = vouchers.find_redeemable(raw_code or "", router=router, now=now)
        if not found.ok:
            reason = found.reason or "unknown"
            words = REFUSALS.get(reason, REFUSALS["unknown"])
            if reason == "elsewhere":
                return Redeemed("refused", words)
            CodeAttempt.objects.create(mac=device.mac, ip=device.ip, ok=False, at=now)
            left = cfg.wrong_codes_before_lockout - wrong - 1
            if left <= 0:
                return Redeemed("locked", _locked_words(cfg))
            tries = "try" if left == 1 else "tries"
            return Redeemed("wrong", f"{words} {left} more {tries} before this device must wait.")
        voucher = found.voucher
        package = voucher.batch.package
        stacking = stacking_for(device, package, voucher.code, now)
        if stacking.outcome == "refuse":
            return Redeemed("refused", stacking.message)
        if stacking.needs_confirmation and not confirmed:
            return Redeemed("confirm", stacking.message, stacking)
        try:
            with transaction.atomic():  # the card is not used up by a refused grant
                if not vouchers.mark_redeemed(voucher, now):
                    return Redeemed("refused", REFUSALS["used"])
                # The login's password: the voucher's code, or the live login's own.
                entitlement = entitlements.grant(
                    router=router,
                    login=stacking.login,
                    package=package,
                    source=Entitlement.Source.VOUCHER,
                    voucher=voucher,
                    mac=device.mac,
                    actor=actor,
                    now=now,
                )
        except entitlements.Refused as exc:
            return Redeemed("refused", str(exc))
        CodeAttempt.objects.create(mac=device.mac, ip=device.ip, ok=True, at=now)
    return Redeemed("done", stacking.message, stacking, entitlement)


def _locked_words(cfg: HotspotSettings) -> str:
    return (
        f"Too many wrong codes from this device. Wait {cfg.lockout_minutes} minutes and "
        "try again, or buy with M-Pesa."
    )


# --- logging in ---------------------------------------------------------------------------


def login_target(entitlement: Entitlement) -> Entitlement:
    """What logs the device in: the entitlement, or for one queued behind another, the
    live one of the same login (same login, same password on the router)."""
    if entitlement.state == Entitlement.State.QUEUED:
        return entitlements.live_for(entitlement.router, entitlement.login) or entitlement
    return entitlement


def on_router(entitlement: Entitlement) -> bool:
    """Whether the router holds the login as the row says (hotspot.router pushed it)."""
    return entitlement.state == Entitlement.State.LIVE and not entitlement.router_pending


# --- logging in over the API ---------------------------------------------------------------


def login_over_api(device: Device, entitlement: Entitlement) -> None:
    """When the browser cannot post to the router: a worker has the router log the
    device in (/ip/hotspot/active/login), after the current transaction commits."""

    transaction.on_commit(
        lambda: hand_to_worker(
            login_device_task, entitlement.pk, device.ip, device.mac, what="hotspot login"
        )
    )


# --- the router's own pages ------------------------------------------------------------------

ROUTER_PAGES = (
    "login.html",
    "alogin.html",
    "redirect.html",
    "rlogin.html",
    "status.html",
    "logout.html",
    "error.html",
)


def router_pages(router, *, now=None) -> dict[str, str]:
    """The pages to upload to `router`'s hotspot html directory, by file name: login.html
    forwards the router's variables and the router's signed reference to this ISP's
    /hs/ (the ISP's primary host), by itself with JavaScript and by a button without;
    the others are the MikroTik companions in the same look. MikroTik's $(...) variables
    and $(if ...) conditionals are left for the router to fill."""

    host = public_host()
    if not host:
        raise CaptiveError("this ISP has no primary domain yet: the pages would lead nowhere")
    context = {
        "router": router,
        "ref": router_ref(router.pk),
        "host": host,
        "portal_url": absolute_url(reverse("captive:home"), host=host),
        "isp_name": getattr(connection.tenant, "name", "") or host,
        "generated_at": now or timezone.now(),
    }
    return {name: render_to_string(f"hotspot/routeros/{name}", context) for name in ROUTER_PAGES}
