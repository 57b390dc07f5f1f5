"""Taking over an ISP that already runs on a MikroTik: the router's PPP profiles and
hotspot user profiles become plans, its PPP secrets and hotspot users become subscribers.

    read_router (one API connection, nothing written)
    -> plan_import (decides everything, writes nothing: the preview)
    -> import_router (all or nothing: one transaction, rows written in bulk)

Re-running an import is safe: a login that already has a live service account here is
counted as "already here" and left alone. No router jobs are made, since the router
already has every login; the router is only read.
"""

import ipaddress
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from librouteros.exceptions import MultiTrapError, TrapError

from ispops import audit
from ispops.lib.phones import InvalidPhone, normalise_phone
from network.models import Router
from network.routeros import connect, parse_duration
from subscribers import services
from subscribers.models import (
    Customer,
    Plan,
    ServiceAccount,
    ServiceType,
    SubscriberSettings,
)

PPP = ServiceType.PPPOE.value
HOTSPOT = ServiceType.HOTSPOT.value
SECRET_PATH = "/ppp/secret"
HOTSPOT_USER_PATH = "/ip/hotspot/user"
# What is read, and nothing more: a big router answers in about a second.
PROFILE_FIELDS = ("name", "rate-limit")
SECRET_FIELDS = (
    "name",
    "password",
    "service",
    "profile",
    "remote-address",
    "disabled",
    "comment",
    "caller-id",
)
HOTSPOT_USER_FIELDS = ("name", "password", "profile", "disabled", "comment", "mac-address")
# Secrets of these services are PPPoE logins; l2tp, ovpn, sstp... are not sold here.
PPP_SERVICES = {"any", "pppoe"}
ZERO = Decimal("0.00")
BATCH = 2000
_TRUE = {"true", "yes"}
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")
_PHONE_TOKEN_RE = re.compile(r"^\+?[\d-]*\d[\d-]*$")


# --- reading the router ----------------------------------------------------------------


@dataclass
class RouterSnapshot:
    """What the router holds, as the text RouterOS gave (every value a str)."""

    router: Router
    ppp_profiles: list[dict]
    secrets: list[dict]
    hotspot_profiles: list[dict]
    hotspot_users: list[dict]
    seconds: float = 0.0


def read_router(router: Router) -> RouterSnapshot:
    """PPP profiles and secrets, hotspot user profiles and users, over one connection.

    Raises network.routeros.RouterError (unreachable, login refused, command refused).
    """
    started = time.monotonic()
    with connect(router) as api:
        snapshot = RouterSnapshot(
            router=router,
            ppp_profiles=_print(api, "/ppp/profile", PROFILE_FIELDS),
            secrets=_print(api, SECRET_PATH, SECRET_FIELDS),
            hotspot_profiles=_print(api, "/ip/hotspot/user/profile", PROFILE_FIELDS, optional=True),
            hotspot_users=_print(api, HOTSPOT_USER_PATH, HOTSPOT_USER_FIELDS, optional=True),
        )
    snapshot.seconds = time.monotonic() - started
    return snapshot


def _print(api, path: str, fields, *, optional: bool = False) -> list[dict]:
    """Every row of a menu as {field: text}.

    Read below librouteros' row parsing on purpose: it turns "yes"/"no"/"true"/"false"
    into booleans and digit strings into ints, and a password "yes" must stay "yes".
    Traps are raised as librouteros raises them, so connect() reports them the same way.
    """
    api.protocol.writeSentence(f"{path}/print", f"=.proplist={','.join(fields)}")
    rows, traps = [], []
    while True:
        reply, words = api.protocol.readSentence()
        attrs = dict(word[1:].split("=", 1) for word in words if word.startswith("="))
        if reply == "!re":
            rows.append(attrs)
        elif reply == "!trap":
            traps.append(TrapError(attrs.get("message", "refused"), attrs.get("category")))
        elif reply == "!done":
            break
    if traps and optional and all("no such command" in t.message for t in traps):
        return []  # a router without the hotspot menus simply has no hotspot users
    if len(traps) > 1:
        raise MultiTrapError(*traps)
    if traps:
        raise traps[0]
    return rows


# --- deciding --------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    item: str  # the router's item, e.g. "/ppp/secret jane"
    reason: str

    def __str__(self):
        return f"{self.item}: {self.reason}"


@dataclass
class NewPlan:
    name: str
    service: str
    profile: str
    rate_limit: str
    download_kbps: int
    upload_kbps: int
    burst_download_kbps: int | None = None
    burst_upload_kbps: int | None = None
    burst_seconds: int = 8
    price: Decimal = ZERO
    users: int = 0

    @property
    def needs_price(self) -> bool:
        return self.price == 0

    @property
    def download(self) -> str:
        return services.format_speed(self.download_kbps)

    @property
    def upload(self) -> str:
        return services.format_speed(self.upload_kbps)


@dataclass
class ReusedPlan:
    plan: Plan
    service: str
    profile: str
    mapped: bool = False  # chosen by staff rather than found by name
    users: int = 0


@dataclass
class UnmappedProfile:
    """A profile that cannot become a plan by itself: staff map it to an existing plan,
    or fix it on the router."""

    service: str
    profile: str
    reason: str
    users: int = 0

    @property
    def key(self) -> str:
        return f"{self.service}:{self.profile}"


@dataclass
class ImportRow:
    source: str  # SECRET_PATH or HOTSPOT_USER_PATH
    username: str
    password: str
    service: str
    profile: str
    status: str
    customer_name: str
    phone: str = ""
    comment: str = ""
    static_ip: str | None = None
    mac: str = ""
    plan_name: str = ""
    already_here: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def item(self) -> str:
        return f"{self.source} {self.username}"

    @property
    def problem(self) -> str:
        return "; ".join(self.problems)


@dataclass
class ImportPreview:
    router: Router
    rows: list[ImportRow]
    new_plans: list[NewPlan]
    reused_plans: list[ReusedPlan]
    unmapped: list[UnmappedProfile]
    secrets: int
    hotspot_users: int
    read_seconds: float = 0.0
    existing_plans: dict = field(default_factory=dict, repr=False)  # lower name -> Plan

    @property
    def errors(self) -> list[RowError]:
        return [RowError(r.item, r.problem) for r in self.rows if r.problems]

    @property
    def ok(self) -> bool:
        return not any(r.problems for r in self.rows)

    @property
    def to_import(self) -> list[ImportRow]:
        return [r for r in self.rows if not r.problems and not r.already_here]

    @property
    def already_here(self) -> int:
        return sum(1 for r in self.rows if r.already_here)

    @property
    def by_status(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.to_import)
        return {status: counts.get(status, 0) for status in ("active", "suspended")}

    @property
    def needs_price(self) -> list[NewPlan]:
        return [p for p in self.new_plans if p.needs_price]


def parse_price(text) -> Decimal:
    """'2,500' -> Decimal('2500.00'); ValueError with a sentence for anything else."""
    try:
        value = Decimal(str(text).replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"price {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"price {text!r} must be zero or more, with at most 2 decimals")
    return value.quantize(Decimal("0.01"))


def parse_rate_limit(text: str) -> dict:
    """A RouterOS rate-limit ("rx/tx rx-burst/tx-burst thr/thr time/time ...") as plan
    speeds. Rates are seen from the router: tx is what the client downloads."""
    tokens = (text or "").split()
    if not tokens:
        raise ValueError("no rate-limit")
    upload, download = _pair(tokens[0])
    speeds = {"download_kbps": _kbps(download), "upload_kbps": _kbps(upload)}
    if len(tokens) > 1:
        try:
            burst_up, burst_down = _pair(tokens[1])
            speeds["burst_download_kbps"] = _kbps(burst_down)
            speeds["burst_upload_kbps"] = _kbps(burst_up)
            if len(tokens) > 3:
                burst_time = _pair(tokens[3])[1]  # "16/16" or "16s/16s"
                seconds = int(burst_time) if burst_time.isdigit() else parse_duration(burst_time)
                if seconds:
                    speeds["burst_seconds"] = seconds
        except ValueError:
            # "0/0" bursts (none) or ones we do not read: the plan keeps its plain speeds.
            for key in ("burst_download_kbps", "burst_upload_kbps", "burst_seconds"):
                speeds.pop(key, None)
    return speeds


def _pair(token: str) -> tuple[str, str]:
    rx, _, tx = token.partition("/")
    return rx, tx or rx  # a missing tx copies rx


def _kbps(text: str) -> int:
    """RouterOS rates (k = 1,000, M = 1,000,000, a bare number in bits per second) in kbps."""
    match = _RATE_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a rate")
    number, unit = match.groups()
    if not unit:
        # parse_speed reads a bare number as kbps; RouterOS means bits per second.
        number, unit = str(Decimal(number) / 1000), "k"
    try:
        return services.parse_speed(f"{number}{unit}")
    except services.SubscriberError:
        raise ValueError(f"{text!r} is no speed limit") from None


def split_comment(comment: str, username: str) -> tuple[str, str]:
    """(customer name, phone) from a comment like "Jane Doe 0712 345 678": a trailing
    number that is a Kenyan mobile becomes the phone; the rest, or the username, the name."""
    comment = " ".join((comment or "").split())
    tokens = comment.split(" ") if comment else []
    for take in range(1, min(3, len(tokens)) + 1):
        tail = tokens[-take:]
        if not all(_PHONE_TOKEN_RE.match(t) for t in tail):
            break
        try:
            phone = normalise_phone(" ".join(tail))
        except InvalidPhone:
            continue
        name = " ".join(tokens[:-take]).rstrip(" ,;:-/|")
        return (name or username)[:150], phone
    return (comment or username)[:150], ""


def plan_import(
    snapshot: RouterSnapshot,
    *,
    default_price: Decimal = ZERO,
    prices: dict | None = None,
    mapping: dict | None = None,
) -> ImportPreview:
    """What an import of this snapshot would do; writes nothing.

    prices: {plan or profile name: amount} for the plans it would create (a plan's own
    name wins over its profile's; a bad amount is a ValueError).
    mapping: {profile: plan name or Plan} puts a profile's users on an existing plan;
    "pppoe:NAME" or "hotspot:NAME" keys win over a bare "NAME".
    """
    router = snapshot.router
    existing_plans = {p.name.lower(): p for p in Plan.objects.all()}
    deciding = _PlanDecider(
        existing_plans,
        profiles={
            PPP: {str(p.get("name", "")): p.get("rate-limit", "") for p in snapshot.ppp_profiles},
            HOTSPOT: {
                str(p.get("name", "")): p.get("rate-limit", "") for p in snapshot.hotspot_profiles
            },
        },
        default_price=default_price,
        prices={str(k).lower(): parse_price(v) for k, v in (prices or {}).items()},
        mapping={str(k).lower(): v for k, v in (mapping or {}).items()},
    )
    items = [(SECRET_PATH, PPP, s) for s in snapshot.secrets] + [
        (HOTSPOT_USER_PATH, HOTSPOT, u) for u in snapshot.hotspot_users
    ]
    live = _live_accounts([str(raw.get("name", "")) for _, _, raw in items])
    seen: dict[str, str] = {}  # username -> item that has it
    rows = []
    for source, service, raw in items:
        row = _row(source, service, raw)
        if not row.username:
            continue
        clash = seen.get(row.username)
        if clash:
            row.problems.append(f"{clash} has the same name; a login belongs to one account")
            rows.append(row)
            continue
        seen[row.username] = row.item
        here = live.get(row.username)
        if here is not None:
            here_service, here_account = here
            if here_service == service:
                row.already_here = True  # imported before (or added by hand): left alone
            else:
                row.problems.append(
                    f"username {row.username} is already used by the {here_service} account "
                    f"of customer {here_account}"
                )
            rows.append(row)
            continue
        if service == PPP:
            ppp_service = raw.get("service") or "any"
            if ppp_service not in PPP_SERVICES:
                row.problems.append(f"service {ppp_service} is not supported")
        if len(row.username) > 64:
            row.problems.append("the name is longer than 64 characters")
        plan_name, problem = deciding.plan_for(service, row.profile)
        if problem:
            row.problems.append(problem)
        row.plan_name = plan_name
        rows.append(row)
    _check_static_ips(rows)
    return ImportPreview(
        router=router,
        rows=rows,
        new_plans=deciding.new_plans(),
        reused_plans=deciding.reused_plans(),
        unmapped=deciding.unmapped(),
        secrets=len(snapshot.secrets),
        hotspot_users=len(snapshot.hotspot_users),
        read_seconds=snapshot.seconds,
        existing_plans=existing_plans,
    )


def _row(source: str, service: str, raw: dict) -> ImportRow:
    username = str(raw.get("name", "")).strip()
    comment = str(raw.get("comment", "")).strip()
    name, phone = split_comment(comment, username)
    static_ip = None
    if service == PPP:
        try:
            static_ip = str(ipaddress.IPv4Address(str(raw.get("remote-address", "")).strip()))
        except ValueError:
            static_ip = None  # empty, or an address pool's name
    mac = str(raw.get("caller-id" if service == PPP else "mac-address", "")).strip()
    disabled = str(raw.get("disabled", "")).lower() in _TRUE
    return ImportRow(
        source=source,
        username=username,
        password=str(raw.get("password", "")),
        service=service,
        profile=str(raw.get("profile") or "default"),
        status=ServiceAccount.Status.SUSPENDED if disabled else ServiceAccount.Status.ACTIVE,
        customer_name=name,
        phone=phone,
        comment=comment,
        static_ip=static_ip,
        mac=mac.upper() if _MAC_RE.match(mac) else "",
    )


def _live_accounts(usernames: list[str]) -> dict[str, tuple[str, str]]:
    """username -> (service, customer account) of live service accounts with these logins."""
    found = {}
    names = [u for u in dict.fromkeys(usernames) if u]
    for start in range(0, len(names), BATCH):
        found.update(
            (username, (svc, account))
            for username, svc, account in ServiceAccount.objects.filter(
                username__in=names[start : start + BATCH]
            )
            .exclude(status=ServiceAccount.Status.TERMINATED)
            .values_list("username", "service", "customer__account")
        )
    return found


def _check_static_ips(rows: list[ImportRow]) -> None:
    """A static address belongs to one live account (the database refuses a second)."""
    wanted = [r for r in rows if r.static_ip and not r.already_here]
    taken = {}
    ips = [r.static_ip for r in wanted]
    for start in range(0, len(ips), BATCH):
        taken.update(
            ServiceAccount.objects.filter(static_ip__in=ips[start : start + BATCH])
            .exclude(status=ServiceAccount.Status.TERMINATED)
            .values_list("static_ip", "username")
        )
    seen: dict[str, str] = {}
    for row in wanted:
        if row.static_ip in taken:
            row.problems.append(
                f"remote-address {row.static_ip} is already the static IP of "
                f"{taken[row.static_ip] or 'another account'}"
            )
        elif row.static_ip in seen:
            row.problems.append(f"remote-address {row.static_ip} is also on {seen[row.static_ip]}")
        else:
            seen[row.static_ip] = row.item


class _PlanDecider:
    """Which plan each (service, profile) goes to, decided once per profile."""

    def __init__(self, existing, *, profiles, default_price, prices, mapping):
        self.existing = existing
        self.profiles = profiles
        self.default_price = default_price
        self.prices = prices
        self.mapping = mapping
        self.decided: dict[tuple[str, str], tuple[str, str]] = {}
        self.new: dict[str, NewPlan] = {}  # lower name -> plan to create
        self.reused: dict[tuple[str, str], ReusedPlan] = {}
        self.refused: dict[tuple[str, str], UnmappedProfile] = {}

    def plan_for(self, service: str, profile: str) -> tuple[str, str]:
        """(plan name, problem) for one more user of this profile."""
        key = (service, profile)
        if key not in self.decided:
            self.decided[key] = self._decide(service, profile)
        plan_name, problem = self.decided[key]
        if problem:
            if key in self.refused:
                self.refused[key].users += 1
        elif key in self.reused:
            self.reused[key].users += 1
        else:
            self.new[plan_name.lower()].users += 1
        return plan_name, problem

    def _decide(self, service: str, profile: str) -> tuple[str, str]:
        if profile not in self.profiles[service]:
            return "", f"unknown profile {profile}"
        target = self.mapping.get(f"{service}:{profile}".lower()) or self.mapping.get(
            profile.lower()
        )
        if target:
            return self._mapped(service, profile, target)
        # A plan of the profile's name; if that name is a plan of another service, the
        # service's own variant ("10M (hotspot)"), so PPP and hotspot plans never mix.
        for name in (profile, f"{profile} ({service})"):
            plan = self.existing.get(name.lower())
            if plan is not None and plan.service == service:
                self.reused[(service, profile)] = ReusedPlan(plan, service, profile)
                return plan.name, ""
            if plan is None and name.lower() not in self.new:
                return self._new(service, profile, name)
        return "", (
            f"plans {profile} and {profile} ({service}) exist for other services; "
            "map the profile to a plan"
        )

    def _mapped(self, service, profile, target) -> tuple[str, str]:
        plan = target if isinstance(target, Plan) else self.existing.get(str(target).lower())
        if plan is None:
            return "", f"profile {profile} is mapped to plan {target}, which does not exist"
        if plan.service != service:
            return "", (
                f"profile {profile} is mapped to plan {plan.name}, a {plan.service} plan; "
                f"{service} users need a {service} plan"
            )
        self.reused[(service, profile)] = ReusedPlan(plan, service, profile, mapped=True)
        return plan.name, ""

    def _new(self, service, profile, name) -> tuple[str, str]:
        rate_limit = str(self.profiles[service][profile] or "").strip()
        if not rate_limit:
            reason = (
                f"profile {profile} has no rate-limit; give it one on the router "
                "or map it to a plan"
            )
            self.refused[(service, profile)] = UnmappedProfile(service, profile, reason)
            return "", reason
        try:
            speeds = parse_rate_limit(rate_limit)
        except ValueError as exc:
            reason = (
                f"profile {profile} has a rate-limit we cannot read ({rate_limit}: {exc}); "
                "fix it on the router or map it to a plan"
            )
            self.refused[(service, profile)] = UnmappedProfile(service, profile, reason)
            return "", reason
        if len(name) > 80:
            reason = f"profile name {profile} is too long for a plan name; map it to a plan"
            self.refused[(service, profile)] = UnmappedProfile(service, profile, reason)
            return "", reason
        price = self.prices.get(name.lower(), self.prices.get(profile.lower(), self.default_price))
        self.new[name.lower()] = NewPlan(
            name=name,
            service=service,
            profile=profile,
            rate_limit=rate_limit,
            price=price,
            **speeds,
        )
        return name, ""

    def new_plans(self) -> list[NewPlan]:
        return [p for p in self.new.values() if p.users]

    def reused_plans(self) -> list[ReusedPlan]:
        return [p for p in self.reused.values() if p.users]

    def unmapped(self) -> list[UnmappedProfile]:
        return list(self.refused.values())


# --- writing ---------------------------------------------------------------------------


@dataclass
class ImportResult:
    router: Router
    dry_run: bool = False
    preview: ImportPreview | None = None
    plans_created: int = 0
    plans_reused: int = 0
    subscribers_created: int = 0
    already_here: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return f"{len(self.errors)} problem(s) on router {self.router}; nothing imported"
        verb = "would import" if self.dry_run else "imported"
        made = "would create" if self.dry_run else "created"
        return (
            f"{verb} {self.subscribers_created} subscriber(s) from router {self.router}; "
            f"{made} {self.plans_created} plan(s), reused {self.plans_reused}; "
            f"{self.already_here} already here"
        )


def import_router(
    router: Router,
    *,
    actor,
    prices: dict | None = None,
    mapping: dict | None = None,
    dry_run: bool = False,
    default_price: Decimal = ZERO,
) -> ImportResult:
    """Read the router and import what it holds, all or nothing.

    Raises network.routeros.RouterError when the router cannot be read; every other
    refusal is in result.errors, and then nothing is written.
    """
    started = time.monotonic()
    snapshot = read_router(router)  # before the transaction: no network inside it
    preview = plan_import(snapshot, default_price=default_price, prices=prices, mapping=mapping)
    result = ImportResult(
        router=router,
        dry_run=dry_run,
        preview=preview,
        plans_created=len(preview.new_plans),
        plans_reused=len(preview.reused_plans),
        subscribers_created=len(preview.to_import),
        already_here=preview.already_here,
        errors=preview.errors,
    )
    if result.ok and not dry_run:
        try:
            _write(preview, actor)
        except IntegrityError as exc:
            # A login, address or plan name created by someone else while we read.
            result.errors.append(
                RowError(str(router), f"a row clashed with a record created meanwhile: {exc}")
            )
    if result.errors:
        result.plans_created = result.subscribers_created = 0
    result.seconds = time.monotonic() - started
    return result


def _write(preview: ImportPreview, actor) -> None:
    router = preview.router
    rows = preview.to_import
    now = timezone.now()
    reason = f"Imported from router {router.name}"
    plans = {p.plan.name.lower(): p.plan for p in preview.reused_plans}
    billing = SubscriberSettings.load().default_billing
    with transaction.atomic(), audit.acting_as(actor):
        for new in preview.new_plans:
            plan = Plan(
                name=new.name,
                price=new.price,
                service=new.service,
                billing=billing,
                download_kbps=new.download_kbps,
                upload_kbps=new.upload_kbps,
                burst_download_kbps=new.burst_download_kbps,
                burst_upload_kbps=new.burst_upload_kbps,
                burst_seconds=new.burst_seconds,
                description=f"From profile {new.profile} on router {router.name}"[:255],
            )
            plan.save()  # a handful: save() writes each one's audit entry
            plans[plan.name.lower()] = plan
        numbers = services.reserve_account_numbers(len(rows))
        customers = []
        for row, number in zip(rows, numbers, strict=True):
            customer = Customer(
                account=number,
                name=row.customer_name,
                phone=row.phone,
                status=row.status,
                branch_id=router.branch_id,
                site_id=router.site_id,
                notes=f"Router comment: {row.comment}" if row.comment else "",
                created_at=now,
            )
            customer.search = services.search_text(customer, [row.username])
            customers.append(customer)
        Customer.objects.bulk_create(customers, batch_size=BATCH)
        accounts = [
            ServiceAccount(
                customer=customer,
                plan=plans[row.plan_name.lower()],
                service=row.service,
                username=row.username,
                password=row.password,
                static_ip=row.static_ip,
                mac=row.mac,
                router=router,
                site_id=router.site_id,
                status=row.status,
                activated_at=now,
                # A prepaid account in service always has an expiry (billing.prepaid).
                expires_at=now if plans[row.plan_name.lower()].billing == "prepaid" else None,
                suspended_at=now if row.status == ServiceAccount.Status.SUSPENDED else None,
                created_at=now,
            )
            for customer, row in zip(customers, rows, strict=True)
        ]
        ServiceAccount.objects.bulk_create(accounts, batch_size=BATCH)
        services.record_bulk_creation(
            customers, accounts, actor=actor, reason=reason, source=router.name
        )
