"""Operations on subscribers. Views, commands, imports and other apps call these.

- the status machine of a service account (`change_status`), the one way statuses move;
- activation (`activate`), which starts billing (billing.services, in the same
  transaction) and router provisioning (a router job written in the same transaction);
- the lead-to-activation pipeline (`create_lead`, `advance_installation`, technician
  `start_job` / `complete_job`);
- customers' account numbers, search text and status summary.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from billing import services as billing_services
from ispops import audit
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.messaging import services as messaging
from subscribers.models import (
    AddOn,
    Customer,
    Discount,
    Installation,
    InstallationStep,
    Plan,
    PlanChange,
    ServiceAccount,
    ServiceType,
    StatusChange,
    SubscriberSettings,
)

Status = ServiceAccount.Status
Stage = Installation.Stage
LIVE = (Status.ACTIVE, Status.SUSPENDED)


class SubscriberError(ValueError):
    """A change the rules refuse; str() is the reason shown to staff."""


class IllegalTransition(SubscriberError):
    pass


# --- speeds -------------------------------------------------------------------------

_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:bps|b)?\s*$")
_UNIT_KBPS = {"": 1, "k": 1, "m": 1000, "g": 1_000_000}


def parse_speed(text: str) -> int:
    """'10M' -> 10000 kbps, '512k' -> 512, '1.5M' -> 1500, '1G' -> 1000000."""
    match = _SPEED_RE.match(str(text or ""))
    if not match:
        raise SubscriberError(f"bad speed {text!r}: use a number with k, M or G, like 10M")
    kbps = round(float(match.group(1)) * _UNIT_KBPS[match.group(2).lower()])
    if kbps <= 0:
        raise SubscriberError(f"bad speed {text!r}: must be above zero")
    return kbps


def format_speed(kbps: int | None) -> str:
    """10000 -> '10M', 1500 -> '1500k', 512 -> '512k' (RouterOS rate-limit notation)."""
    if not kbps:
        return ""
    if kbps % 1_000_000 == 0:
        return f"{kbps // 1_000_000}G"
    if kbps % 1000 == 0:
        return f"{kbps // 1000}M"
    return f"{kbps}k"


# --- account numbers ----------------------------------------------------------------

_PATTERN_RE = re.compile(r"^([A-Za-z0-9]*)\{seq(?::(\d{1,2}))?\}([A-Za-z0-9]*)$")


def expand_account_pattern(pattern: str, seq: int) -> str:
    match = _PATTERN_RE.match(pattern)
    if not match:
        raise SubscriberError(
            f"bad account pattern {pattern!r}: letters/digits around one {{seq}} or {{seq:5}}"
        )
    prefix, width, suffix = match.groups()
    return f"{prefix}{seq:0{int(width or 1)}d}{suffix}".upper()


def validate_account_pattern(pattern: str) -> str:
    sample = expand_account_pattern(pattern, 99999)
    if len(sample) > 12:
        raise SubscriberError("account numbers must fit in 12 characters (M-Pesa's limit)")
    return pattern


def normalise_account(account: str) -> str:
    """Account numbers are matched case- and space-insensitively (M-Pesa users type them)."""
    return re.sub(r"\s+", "", account or "").upper()


def next_account_number() -> str:
    """The next free account number from the ISP's pattern."""
    return reserve_account_numbers(1)[0]


def reserve_account_numbers(count: int) -> list[str]:
    """`count` free account numbers from the ISP's pattern, in order.

    The settings row is locked for the increment, so two customers created at once never
    get the same number; numbers already taken (imported by hand) are skipped.
    """
    with transaction.atomic():
        SubscriberSettings.load()
        cfg = SubscriberSettings.objects.select_for_update().get(pk=1)
        found: list[str] = []
        seq = cfg.next_account_seq
        while len(found) < count:
            want = count - len(found)
            batch = [expand_account_pattern(cfg.account_pattern, seq + i) for i in range(want)]
            taken = set(
                Customer.objects.filter(account__in=batch).values_list("account", flat=True)
            )
            found += [a for a in batch if a not in taken]
            seq += want
        SubscriberSettings.objects.filter(pk=1).update(next_account_seq=seq)
    return found


# --- customers ----------------------------------------------------------------------

# The liveliest status of a customer's service accounts summarises the customer.
_SUMMARY_ORDER = [
    Status.ACTIVE,
    Status.SUSPENDED,
    Status.INSTALLING,
    Status.SURVEY,
    Status.LEAD,
    Status.TERMINATED,
]


def summary_status(statuses) -> str:
    present = set(statuses)
    for status in _SUMMARY_ORDER:
        if status in present:
            return status
    return Customer.Status.LEAD


def search_text(customer: Customer, usernames=()) -> str:
    parts = [
        customer.account,
        customer.name,
        customer.phone,
        customer.alt_phone,
        customer.email,
        customer.id_number,
        *usernames,
    ]
    return " ".join(p for p in parts if p).lower()


def customer_summary(customer: Customer, rows) -> tuple[str, str]:
    """The customer's status summary and search text, from (status, username) rows of
    their accounts."""
    return summary_status(s for s, _ in rows), search_text(customer, [u for _, u in rows if u])


def refresh_customer(customer: Customer) -> None:
    """Recompute the customer's status summary and search text from their accounts."""
    rows = list(customer.service_accounts.values_list("status", "username"))
    customer.status, customer.search = customer_summary(customer, rows)
    Customer.objects.filter(pk=customer.pk).update(status=customer.status, search=customer.search)


def clean_phone(raw: str, *, required: bool = True) -> str:
    if not raw and not required:
        return ""
    try:
        return normalise_phone(raw)
    except InvalidPhone as exc:
        raise SubscriberError(str(exc)) from None


CUSTOMER_FIELDS = (
    "name",
    "phone",
    "alt_phone",
    "email",
    "id_number",
    "address",
    "latitude",
    "longitude",
    "branch",
    "site",
    "notes",
    "tags",
)


def create_customer(*, actor, account: str = "", **fields) -> Customer:
    fields["phone"] = clean_phone(fields.get("phone", ""))
    fields["alt_phone"] = clean_phone(fields.get("alt_phone", ""), required=False)
    with transaction.atomic(), audit.acting_as(actor):
        account = normalise_account(account) or next_account_number()
        if Customer.objects.filter(account=account).exists():
            raise SubscriberError(f"account {account} already exists")
        customer = Customer(account=account, **{k: v for k, v in fields.items() if v is not None})
        customer.search = search_text(customer)
        customer.save()
    return customer


def update_customer(customer: Customer, *, actor, **fields) -> Customer:
    if "phone" in fields:
        fields["phone"] = clean_phone(fields["phone"])
    if "alt_phone" in fields:
        fields["alt_phone"] = clean_phone(fields["alt_phone"], required=False)
    with transaction.atomic(), audit.acting_as(actor):
        for name, value in fields.items():
            setattr(customer, name, value)
        customer.save(update_fields=list(fields))
        refresh_customer(customer)
    return customer


# --- the status machine -------------------------------------------------------------

TRANSITIONS: dict[str, set[str]] = {
    Status.LEAD: {Status.SURVEY, Status.INSTALLING, Status.TERMINATED},
    Status.SURVEY: {Status.LEAD, Status.INSTALLING, Status.TERMINATED},
    Status.INSTALLING: {Status.SURVEY, Status.ACTIVE, Status.TERMINATED},
    Status.ACTIVE: {Status.SUSPENDED, Status.TERMINATED},
    Status.SUSPENDED: {Status.ACTIVE, Status.TERMINATED},
    Status.TERMINATED: set(),
}

# Moves after which the router must change: activation, suspension, restoration, removal.
_ROUTER_ACTIONS = {
    (Status.INSTALLING, Status.ACTIVE): "provision",
    (Status.ACTIVE, Status.SUSPENDED): "suspend",
    (Status.SUSPENDED, Status.ACTIVE): "restore",
    (Status.ACTIVE, Status.TERMINATED): "remove",
    (Status.SUSPENDED, Status.TERMINATED): "remove",
}


def _tell_router(account, *, actor, action="provision", router_id=None) -> None:
    """Queue a router job in the caller's transaction (none if no router serves it)."""
    from network import services as network_services

    network_services.queue_account(account, actor=actor, action=action, router_id=router_id)


def allowed_moves(status: str) -> list[str]:
    return [s for s in Status.values if s in TRANSITIONS[status]]


def change_status(
    account: ServiceAccount,
    to: str,
    *,
    actor,
    reason: str,
    suspension: str = "hard",
    at: datetime | None = None,
) -> ServiceAccount:
    """Move a service account to `to` at `at` (default now), or raise IllegalTransition
    and change nothing.

    The customer row, then the account row are locked first (the order every money
    transaction takes, billing.ledger), so two staff, a payment and a dunning run
    changing the same account are serialised and the second sees the first's result. A
    suspension is hard (login disabled) unless `suspension="soft"` (walled garden)."""
    if to not in Status.values:
        raise IllegalTransition(f"unknown status {to!r}")
    reason = (reason or "").strip()
    if not reason:
        raise SubscriberError("say why the status changes")
    at = at or timezone.now()
    user, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        billing_services.lock_customer(account.customer_id)
        locked = (
            ServiceAccount.objects.select_for_update(of=("self",), no_key=True)
            .select_related("customer", "plan")
            .get(pk=account.pk)
        )
        current = locked.status
        if to not in TRANSITIONS[current]:
            raise IllegalTransition(
                f"cannot move {locked} from {Status(current).label} to {Status(to).label}"
            )
        locked.status = to
        locked.suspension = suspension if to == Status.SUSPENDED else ""
        fields = ["status", "suspension"]
        stamp = {
            Status.ACTIVE: "activated_at",
            Status.SUSPENDED: "suspended_at",
            Status.TERMINATED: "terminated_at",
        }.get(to)
        if stamp and not (to == Status.ACTIVE and current == Status.SUSPENDED):
            setattr(locked, stamp, at)
            fields.append(stamp)
        locked.save(update_fields=fields)
        StatusChange.objects.create(
            service_account=locked,
            from_status=current,
            to_status=to,
            at=at,
            actor=user,
            actor_label=label,
            reason=reason[:255],
        )
        # Billing acts in this transaction (the timeline, prorations, prepaid expiry);
        # the router through a job that commits with it.
        billing_services.on_status_change(locked, current, to, actor=actor, at=at)
        if (current, to) in _ROUTER_ACTIONS:
            _tell_router(locked, actor=actor, action=_ROUTER_ACTIONS[(current, to)])
        refresh_customer(locked.customer)
    account.refresh_from_db()
    return account


def harden_suspension(account: ServiceAccount, *, actor, reason: str) -> ServiceAccount:
    """A soft-suspended account (walled garden) gets its login disabled as well."""
    user, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        locked = ServiceAccount.objects.select_for_update(no_key=True).get(pk=account.pk)
        if locked.status != Status.SUSPENDED or locked.suspension == "hard":
            return locked
        locked.suspension = "hard"
        locked.save(update_fields=["suspension"])
        StatusChange.objects.create(
            service_account=locked,
            from_status=Status.SUSPENDED,
            to_status=Status.SUSPENDED,
            actor=user,
            actor_label=label,
            reason=f"Hard suspension: {reason}"[:255],
        )
        _tell_router(locked, actor=actor, action="suspend")
    account.refresh_from_db()
    return account


def activate(account: ServiceAccount, *, actor, reason: str = "Activated") -> ServiceAccount:
    """Turn service on: status active; billing starts (prepaid expiry, postpaid periods
    from today) and the router is asked to provision it (a router job), both in the
    transaction of the status change, so neither can be lost. An account with no login
    or router gets them first."""
    with transaction.atomic(), audit.acting_as(actor):
        prepare_for_activation(account)
        return change_status(account, Status.ACTIVE, actor=actor, reason=reason)


def prepare_for_activation(account: ServiceAccount) -> None:
    """Give a PPPoE/hotspot account a login (its account number, and a random password)
    and a router (the one serving its site, else its branch's, else the ISP's only one)
    when it has none, so activation can provision it."""
    fields = []
    if account.service != ServiceType.STATIC and not account.username:
        account.username = _free_username(account.customer.account.lower())
        fields.append("username")
    if account.service != ServiceType.STATIC and not account.password:
        account.password = secrets.token_urlsafe(6)
        fields.append("password")
    if account.router_id is None:
        account.router = default_router_for(account)
        if account.router is not None:
            fields.append("router")
    if fields:
        account.save(update_fields=fields)


def _free_username(base: str) -> str:
    taken = set(
        ServiceAccount.objects.filter(username__startswith=base)
        .exclude(status=Status.TERMINATED)
        .values_list("username", flat=True)
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def default_router_for(account: ServiceAccount):
    """The router that should serve an account with none set, or None if unclear."""
    from network.models import Router

    site_ids = []
    site = account.site or account.customer.site
    while site is not None and len(site_ids) < 20:
        site_ids.append(site.pk)
        site = site.parent
    for site_id in site_ids:
        router = Router.objects.filter(site_id=site_id).order_by("id").first()
        if router is not None:
            return router
    branch_routers = list(Router.objects.filter(branch_id=account.customer.branch_id)[:2])
    if account.customer.branch_id and len(branch_routers) == 1:
        return branch_routers[0]
    only = list(Router.objects.all()[:2])
    return only[0] if len(only) == 1 else None


def pending_intents(account: ServiceAccount):
    return account.intents.filter(processed_at__isnull=True)


# --- service accounts, add-ons, discounts ---------------------------------------------


def create_service_account(
    *,
    actor,
    customer: Customer,
    plan: Plan,
    username: str = "",
    password: str = "",
    static_ip=None,
    mac: str = "",
    router=None,
    site=None,
    status: str = Status.LEAD,
    reason: str = "Created",
    expires_at: datetime | None = None,
) -> ServiceAccount:
    username = (username or "").strip()
    if (
        username
        and ServiceAccount.objects.filter(username=username)
        .exclude(status=Status.TERMINATED)
        .exists()
    ):
        raise SubscriberError(f"username {username} is already in use")
    user, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        account = ServiceAccount.objects.create(
            customer=customer,
            plan=plan,
            service=plan.service,
            username=username,
            password=password,
            static_ip=static_ip or None,
            mac=mac,
            router=router,
            site=site or customer.site,
            status=status,
            # A prepaid account in service always has an expiry (billing.prepaid).
            expires_at=expires_at
            or (timezone.now() if status in LIVE and plan.billing == "prepaid" else None),
            activated_at=timezone.now() if status in LIVE else None,
        )
        StatusChange.objects.create(
            service_account=account,
            from_status="",
            to_status=status,
            actor=user,
            actor_label=label,
            reason=reason,
        )
        refresh_customer(customer)
    return account


def change_plan(
    account: ServiceAccount, plan: Plan, *, actor, at: datetime | None = None
) -> ServiceAccount:
    """Change the plan from `at` (default now). Billing recomputes what the change is
    worth (or refuses it: a prepaid upgrade where the ISP waits for renewal); the
    router profile follows through a router job when the account is live."""
    if plan.pk == account.plan_id:
        return account
    at = at or timezone.now()
    try:
        with transaction.atomic(), audit.acting_as(actor):
            billing_services.lock_customer(account.customer_id)
            locked = (
                ServiceAccount.objects.select_for_update(of=("self",), no_key=True)
                .select_related("plan")
                .get(pk=account.pk)
            )
            old_plan = locked.plan
            locked.plan = plan
            locked.service = plan.service
            locked.save(update_fields=["plan", "service"])
            # A change made now replaces one waiting for renewal (the periodic task
            # closes its own row before it calls here).
            PlanChange.objects.filter(
                service_account=locked, state=PlanChange.State.PENDING
            ).update(
                state=PlanChange.State.CANCELLED,
                closed_at=at,
                closed_by=audit.describe_actor(actor)[1],
                note=f"replaced by a change to {plan.name}"[:255],
            )
            billing_services.on_plan_change(locked, old_plan, plan, actor=actor, at=at)
            if locked.status in (Status.ACTIVE, Status.SUSPENDED):
                _tell_router(locked, actor=actor)
    except billing_services.BillingError as exc:
        raise SubscriberError(str(exc)) from None
    account.refresh_from_db()
    return account


def _terms_changed(account: ServiceAccount, since, *, actor, at, reason: str) -> None:
    billing_services.lock_customer(account.customer_id)
    ServiceAccount.objects.select_for_update(no_key=True).filter(pk=account.pk).first()
    billing_services.on_terms_change(account, since, actor=actor, at=at, reason=reason)


def add_addon(account: ServiceAccount, *, actor, at: datetime | None = None, **fields) -> AddOn:
    """An add-on, charged by day from its start to its end (billing.timeline)."""
    at = at or timezone.now()
    with transaction.atomic(), audit.acting_as(actor):
        addon = AddOn.objects.create(service_account=account, **fields)
        _terms_changed(account, addon.starts_on, actor=actor, at=at, reason=f"Add-on {addon.name}")
    return addon


def add_discount(
    account: ServiceAccount, *, actor, at: datetime | None = None, **fields
) -> Discount:
    """A discount, taken off by day from its start to its end (billing.timeline)."""
    at = at or timezone.now()
    with transaction.atomic(), audit.acting_as(actor):
        discount = Discount.objects.create(service_account=account, **fields)
        _terms_changed(
            account, discount.starts_on, actor=actor, at=at, reason=f"Discount {discount.reason}"
        )
    return discount


def end_addon(addon: AddOn, *, actor, on=None, at: datetime | None = None) -> AddOn:
    """The add-on's last day is `on` (default the day of `at`)."""
    at = at or timezone.now()
    on = on or timezone.localdate(at)
    with transaction.atomic(), audit.acting_as(actor):
        addon.ends_on = max(on, addon.starts_on)
        addon.save(update_fields=["ends_on"])
        _terms_changed(
            addon.service_account,
            addon.ends_on,
            actor=actor,
            at=at,
            reason=f"Add-on {addon.name} ended",
        )
    return addon


# --- lead to activation ---------------------------------------------------------------

STAGE_ORDER = [
    Stage.LEAD,
    Stage.SURVEY,
    Stage.QUOTED,
    Stage.SCHEDULED,
    Stage.EQUIPPED,
    Stage.INSTALLED,
    Stage.ACTIVATED,
    Stage.CONFIRMED,
]
# The service account's status each stage needs (moved through change_status).
_STAGE_STATUS = {
    Stage.SURVEY: Status.SURVEY,
    Stage.SCHEDULED: Status.INSTALLING,
    Stage.ACTIVATED: Status.ACTIVE,
    Stage.CANCELLED: Status.TERMINATED,
}


def next_stage(stage: str) -> str | None:
    if stage not in STAGE_ORDER or stage == STAGE_ORDER[-1]:
        return None
    return STAGE_ORDER[STAGE_ORDER.index(stage) + 1]


@dataclass
class LeadDetails:
    name: str
    phone: str
    plan: Plan
    email: str = ""
    address: str = ""
    latitude: object = None
    longitude: object = None
    branch: object = None
    site: object = None
    source: str = ""
    notes: str = ""


def create_lead(details: LeadDetails, *, actor) -> Installation:
    """A prospective subscriber: a customer, a service account in status lead, and the
    installation that will carry it through to activation."""
    with transaction.atomic(), audit.acting_as(actor):
        customer = create_customer(
            actor=actor,
            name=details.name,
            phone=details.phone,
            email=details.email,
            address=details.address,
            latitude=details.latitude,
            longitude=details.longitude,
            branch=details.branch,
            site=details.site,
            notes=details.notes,
        )
        account = create_service_account(
            actor=actor, customer=customer, plan=details.plan, site=details.site, reason="New lead"
        )
        installation = Installation.objects.create(service_account=account, source=details.source)
        _record_step(installation, Stage.LEAD, actor, "Lead recorded")
    return installation


def _record_step(installation, stage, actor, note=""):
    user, label = audit.describe_actor(actor)
    InstallationStep.objects.create(
        installation=installation, stage=stage, actor=user, actor_label=label, note=note
    )


def advance_installation(
    installation: Installation,
    to: str,
    *,
    actor,
    note: str = "",
    technician=None,
    scheduled_for=None,
    quote_amount=None,
    serials=None,
) -> Installation:
    """Move an installation to its next stage (or cancel it), with what that stage needs.

    The installation row is locked, so a technician completing a job and an office
    user moving the same lead cannot both act on a stale stage.
    """
    with transaction.atomic(), audit.acting_as(actor):
        inst = Installation.objects.select_for_update().get(pk=installation.pk)
        if inst.stage in (Stage.CONFIRMED, Stage.CANCELLED):
            raise IllegalTransition(f"this installation is already {inst.get_stage_display()}")
        if to == Stage.CANCELLED:
            if inst.stage in (Stage.ACTIVATED,):
                raise IllegalTransition("an activated service is terminated, not cancelled")
            if not note.strip():
                raise SubscriberError("say why the lead is cancelled")
        elif to != next_stage(inst.stage):
            expected = Stage(next_stage(inst.stage)).label if next_stage(inst.stage) else "none"
            raise IllegalTransition(
                f"cannot go from {inst.get_stage_display()} to {Stage(to).label}; "
                f"next is {expected}"
            )
        fields = ["stage", "stage_since"]
        if to == Stage.QUOTED:
            if quote_amount is None:
                raise SubscriberError("a quotation needs its amount")
            inst.quote_amount = quote_amount
            fields.append("quote_amount")
        if to == Stage.SCHEDULED:
            if technician is None or scheduled_for is None:
                raise SubscriberError("scheduling needs a technician and a date")
            _check_technician(technician)
            inst.technician, inst.scheduled_for = technician, scheduled_for
            fields += ["technician", "scheduled_for"]
        if to == Stage.EQUIPPED:
            clean = _clean_serials(serials)
            if not clean:
                raise SubscriberError("list the serial numbers of the equipment allocated")
            inst.equipment_serials = clean
            fields.append("equipment_serials")
        if to in (Stage.EQUIPPED, Stage.INSTALLED, Stage.CANCELLED):
            _record_equipment(inst, to, actor)
        if to == Stage.INSTALLED and inst.completed_at is None:
            inst.completed_at = timezone.now()
            fields.append("completed_at")
        if to == Stage.SURVEY and note:
            inst.survey_notes = note
            fields.append("survey_notes")
        inst.stage, inst.stage_since = to, timezone.now()
        inst.save(update_fields=fields)
        status = _STAGE_STATUS.get(to)
        account = inst.service_account
        if status and account.status != status:
            if status == Status.ACTIVE:
                prepare_for_activation(account)
            change_status(
                account, status, actor=actor, reason=note or f"Installation: {Stage(to).label}"
            )
            if status == Status.ACTIVE:
                send_welcome(account)
        _record_step(inst, to, actor, note)
    installation.refresh_from_db()
    return installation


def send_welcome(account: ServiceAccount) -> None:
    """The welcome message of a newly activated account (template "welcome", through
    messaging.notify: the customer's preferences apply): plan, login, paid-until for a
    prepaid account, and how to pay. Sent by sign-up's "activate now" and by the
    pipeline's activation."""
    plan = account.plan
    messaging.notify(
        account.customer,
        "welcome",
        {
            "plan": plan.name,
            "login": account.username,
            "expires_at": account.expires_at if plan.billing == "prepaid" else None,
            "paybill": billing_services.BillingSettings.load().paybill,
        },
        related=f"service_account:{account.pk}",
    )


def _record_equipment(inst: Installation, to: str, actor) -> None:
    """Allocated equipment must be in inventory and free; installed equipment becomes
    installed at the service account; a cancelled installation's equipment goes back to
    its store (inventory.services; a no-op for an ISP with no store yet)."""
    from inventory import services as inventory

    try:
        if to == Stage.EQUIPPED:
            inventory.check_installable(inst.equipment_serials, inst.service_account, inst)
        elif to == Stage.INSTALLED:
            inventory.install_for_installation(inst, actor=actor)
        else:
            inventory.return_from_installation(inst, actor=actor)
    except inventory.InventoryError as exc:
        raise SubscriberError(f"equipment: {exc}") from None


def reschedule(
    installation: Installation, *, actor, technician, scheduled_for, note: str = ""
) -> Installation:
    if installation.stage not in (Stage.SCHEDULED, Stage.EQUIPPED):
        raise IllegalTransition("only a scheduled installation can be rescheduled")
    _check_technician(technician)
    with transaction.atomic(), audit.acting_as(actor):
        installation.technician, installation.scheduled_for = technician, scheduled_for
        installation.save(update_fields=["technician", "scheduled_for"])
        _record_step(
            installation,
            installation.stage,
            actor,
            note or f"Rescheduled to {scheduled_for} with {technician}",
        )
    return installation


def _check_technician(user) -> None:
    from ispops.staff.models import Role

    if not user.is_active or user.role not in (
        Role.TECHNICIAN,
        Role.SUPPORT,
        Role.ADMIN,
        Role.OWNER,
    ):
        raise SubscriberError(f"{user} cannot be given installation jobs")


def _clean_serials(serials) -> list[str]:
    if isinstance(serials, str):
        serials = re.split(r"[\s,;]+", serials)
    seen = []
    for serial in serials or []:
        serial = serial.strip().upper()
        if serial and serial not in seen:
            seen.append(serial)
    return seen


# --- technicians -----------------------------------------------------------------------


def jobs_for(technician):
    """Installations assigned to this technician that are still to do or done today."""
    today = timezone.localdate()
    return Installation.objects.filter(technician=technician).filter(
        Q(stage__in=[Stage.SCHEDULED, Stage.EQUIPPED])
        | Q(stage=Stage.INSTALLED, completed_at__date=today)
    )


def start_job(installation: Installation, *, actor) -> Installation:
    if installation.stage not in (Stage.SCHEDULED, Stage.EQUIPPED):
        raise IllegalTransition("this job is not waiting to be done")
    with transaction.atomic(), audit.acting_as(actor):
        updated = Installation.objects.filter(pk=installation.pk, started_at__isnull=True).update(
            started_at=timezone.now()
        )
        if updated:
            _record_step(installation, installation.stage, actor, "Technician started the job")
    installation.refresh_from_db()
    return installation


def complete_job(
    installation: Installation, *, actor, notes: str = "", serials=None
) -> Installation:
    """The technician has installed it: record notes and serials used, move to Installed."""
    with transaction.atomic(), audit.acting_as(actor):
        inst = Installation.objects.select_for_update().get(pk=installation.pk)
        if inst.stage not in (Stage.SCHEDULED, Stage.EQUIPPED):
            raise IllegalTransition("this job is not waiting to be done")
        clean = _clean_serials(serials)
        if clean:
            inst.equipment_serials = list(dict.fromkeys([*inst.equipment_serials, *clean]))
        if notes:
            inst.technician_notes = notes
        inst.started_at = inst.started_at or timezone.now()
        inst.save(update_fields=["equipment_serials", "technician_notes", "started_at"])
        if inst.stage == Stage.SCHEDULED:
            # The technician brought the kit: allocation is recorded with the installation.
            if not inst.equipment_serials:
                raise SubscriberError("record the serial numbers of the equipment installed")
            advance_installation(
                inst,
                Stage.EQUIPPED,
                actor=actor,
                serials=inst.equipment_serials,
                note="Equipment recorded on site",
            )
            inst.refresh_from_db()
        advance_installation(inst, Stage.INSTALLED, actor=actor, note=notes or "Installed")
    installation.refresh_from_db()
    return installation


# --- status report ---------------------------------------------------------------------


def account_status(account: str) -> dict:
    """What `account_status` prints: the customer's accounts, balance and expiry."""
    customer = (
        Customer.objects.filter(account=normalise_account(account))
        .prefetch_related("service_accounts__plan")
        .first()
    )
    if customer is None:
        raise SubscriberError(f"no customer with account {normalise_account(account)}")
    accounts = list(customer.service_accounts.all())
    expiries = [a.expires_at for a in accounts if a.expires_at]
    return {
        "account": customer.account,
        "name": customer.name,
        "status": customer.status,
        "balance": str(billing_services.customer_balance(customer)),
        "expires_at": _local_iso(max(expiries)) if expiries else None,
        "service_accounts": [
            {
                "id": a.pk,
                "username": a.username,
                "plan": a.plan.name,
                "service": a.service,
                "status": a.status,
                "expires_at": _local_iso(a.expires_at) if a.expires_at else None,
            }
            for a in accounts
        ],
    }


def _local_iso(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds")


def update_service_account(
    account: ServiceAccount,
    *,
    actor,
    username: str,
    password: str,
    static_ip=None,
    mac: str = "",
    router=None,
    site=None,
) -> ServiceAccount:
    """Change an account's login and network details. A blank password keeps the stored
    one. A live account's router is told (a router job); a router it moved away from
    removes it."""
    username = (username or "").strip()
    if (
        username
        and ServiceAccount.objects.filter(username=username)
        .exclude(status=Status.TERMINATED)
        .exclude(pk=account.pk)
        .exists()
    ):
        raise SubscriberError(f"username {username} is already in use")
    old_router_id = account.router_id
    with transaction.atomic(), audit.acting_as(actor):
        account.username, account.static_ip, account.mac = username, static_ip or None, mac
        account.router, account.site = router, site
        fields = ["username", "static_ip", "mac", "router", "site"]
        if password:
            account.password = password
            fields.append("password")
        account.save(update_fields=fields)
        if account.status in (Status.ACTIVE, Status.SUSPENDED):
            _tell_router(account, actor=actor)
            if old_router_id and old_router_id != account.router_id:
                # The old router drops it: there it is no longer the account's router.
                _tell_router(account, actor=actor, action="remove", router_id=old_router_id)
        refresh_customer(account.customer)
    return account


def site_subtree_ids(site_id: int) -> set[int]:
    """The site and every node below it (one query for the whole, small, tree)."""
    from subscribers.models import NetworkSite

    children: dict[int | None, list[int]] = {}
    for pk, parent in NetworkSite.objects.values_list("id", "parent_id"):
        children.setdefault(parent, []).append(pk)
    found, stack = set(), [site_id]
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(children.get(node, []))
    return found


def home_figures(user) -> list[dict]:
    """The staff home page's subscriber figures, for the branches `user` sees."""
    customers = Customer.objects.visible_to(user)
    counts = dict(customers.values_list("status").annotate(n=Count("id")).order_by())
    waiting = Installation.objects.filter(
        service_account__customer__in=customers,
        stage__in=[s for s in STAGE_ORDER if s not in (Stage.ACTIVATED, Stage.CONFIRMED)],
    ).count()
    return [
        {
            "label": "Active subscribers",
            "value": counts.get(Status.ACTIVE, 0),
            "url": "/subscribers/?status=active",
        },
        {
            "label": "Suspended",
            "value": counts.get(Status.SUSPENDED, 0),
            "url": "/subscribers/?status=suspended",
        },
        {"label": "Leads in the pipeline", "value": waiting, "url": "/pipeline/"},
    ]


def record_bulk_creation(customers, accounts, *, actor, reason: str, source) -> None:
    """History for customers and service accounts made with bulk_create (imports), which
    skips the audit signals: their first StatusChange and their audit "create" entries,
    written in bulk too. `source` says where they came from (a file, a router)."""
    from ispops.audit.models import AuditEntry

    user, label = audit.describe_actor(actor)
    now = timezone.now()
    StatusChange.objects.bulk_create(
        [
            StatusChange(
                service_account=a,
                from_status="",
                to_status=a.status,
                at=now,
                actor=user,
                actor_label=label,
                reason=reason,
            )
            for a in accounts
        ],
        batch_size=2000,
    )

    def entry(model, obj, changes):
        return AuditEntry(
            at=now,
            actor=user,
            actor_label=label,
            action=AuditEntry.Action.CREATE,
            model=model,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            changes=changes,
        )

    AuditEntry.objects.bulk_create(
        [
            entry(
                "subscribers.customer",
                c,
                {"account": c.account, "name": c.name, "imported": source},
            )
            for c in customers
        ]
        + [
            entry(
                "subscribers.serviceaccount",
                a,
                {
                    "plan": a.plan.name,
                    "status": a.status,
                    "username": a.username,
                    "router": a.router.name if a.router_id else "",
                    "imported": source,
                },
            )
            for a in accounts
        ],
        batch_size=2000,
    )


# --- a new customer in one step ----------------------------------------------------------


class SignUpError(SubscriberError):
    """A sign-up the rules refuse; `field` names the form field it is about ("" for the
    whole form). Nothing was written."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class SignUp:
    """What the new-customer form collects. `activate_now`: a technician-free install,
    in service at once; otherwise a lead in the pipeline. `payment_*`: the first payment
    (a prepaid account activated now must have one that buys its first term)."""

    name: str
    phone: str
    plan: Plan
    email: str = ""
    address: str = ""
    branch: object = None
    site: object = None
    router: object = None
    username: str = ""
    password: str = ""
    activate_now: bool = False
    payment_amount: object = None
    payment_method: str = ""
    payment_reference: str = ""
    source: str = ""
    notes: str = ""


@dataclass
class SignedUp:
    customer: Customer
    account: ServiceAccount
    installation: Installation | None = None
    payment: object = None


def phone_owner(phone: str) -> Customer | None:
    """A customer (not terminated) whose main or other phone is `phone` (normalised)."""
    return (
        Customer.objects.filter(Q(phone=phone) | Q(alt_phone=phone))
        .exclude(status=Customer.Status.TERMINATED)
        .order_by("id")
        .first()
    )


def username_taken(username: str) -> bool:
    return (
        ServiceAccount.objects.filter(username=username).exclude(status=Status.TERMINATED).exists()
    )


def check_sign_up(details: SignUp, at: datetime) -> None:
    """Raise SignUpError for what the form must refuse: a phone or login already in use,
    a prepaid account put in service with no first payment, or one too small to buy a
    term (it would be active and expired at once), a payment without activation."""
    plan = details.plan
    if plan is None or not plan.is_active:
        raise SignUpError("plan", "choose a plan that is on sale")
    owner = phone_owner(details.phone)
    if owner is not None:
        raise SignUpError(
            "phone", f"{details.phone} is already the phone of customer {owner.account}"
        )
    username = (details.username or "").strip()
    if username and username_taken(username):
        raise SignUpError("username", f"username {username} is already in use")
    amount = details.payment_amount
    if amount is not None and amount <= 0:
        raise SignUpError("payment_amount", "the amount must be above zero")
    if amount is not None and not details.activate_now:
        raise SignUpError(
            "payment_amount",
            "a first payment is taken with Activate now; a lead pays when it is activated",
        )
    if details.activate_now and plan.billing == "prepaid":
        cost = billing_services.term_cost(plan, at)
        if amount is None:
            raise SignUpError(
                "payment_amount",
                f"a prepaid plan is activated with its first payment: KES {cost:,.2f} "
                f"buys the first {plan.get_cycle_display().lower()} term",
            )
        if amount < cost:
            raise SignUpError(
                "payment_amount",
                f"KES {amount:,.2f} does not buy a term of {plan.name}: it costs KES {cost:,.2f}",
            )
    if amount is not None:
        if details.payment_method not in ("cash", "mpesa", "bank"):
            raise SignUpError("payment_method", "say how the customer paid: cash, M-Pesa or bank")
        if details.payment_method != "cash" and not (details.payment_reference or "").strip():
            raise SignUpError("payment_reference", "an M-Pesa or bank payment needs its reference")


def sign_up(details: SignUp, *, actor, at: datetime | None = None) -> SignedUp:
    """A new customer from the one form, in one transaction: the customer and its
    service account (login generated when left blank) and then either

    - a lead in the pipeline (create_lead), as the pipeline's own form makes one; or
    - activated now: one status change (installing -> active, reason written here),
      which starts billing (postpaid: the first, prorated invoice) and queues the router
      job; the first payment recorded through payments (cash gets our receipt number),
      buying a prepaid account's first term; and a welcome message queued through
      messaging.notify (preferences respected), sent once the transaction commits.

    Refused (SignUpError, nothing written): see check_sign_up. The phone number is held
    by a transaction-scoped advisory lock, so two clerks signing up the same phone at
    once make one customer."""
    from payments import services as payments

    at = at or timezone.now()
    details.phone = clean_phone(details.phone)
    # The staff member's name where they have one (audit labels are e-mail addresses).
    label = getattr(actor, "full_name", "") or audit.describe_actor(actor)[1]
    try:
        with transaction.atomic(), audit.acting_as(actor):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"sign-up:{details.phone}"]
                )
            check_sign_up(details, at)
            if not details.activate_now:
                return _sign_up_lead(details, actor=actor)
            customer = create_customer(
                actor=actor,
                name=details.name,
                phone=details.phone,
                email=details.email,
                address=details.address,
                branch=details.branch,
                site=details.site,
                notes=details.notes,
            )
            account = create_service_account(
                actor=actor,
                customer=customer,
                plan=details.plan,
                username=details.username,
                password=details.password,
                router=details.router,
                site=details.site,
                status=Status.INSTALLING,
                reason=f"Signed up by {label} for activation now",
            )
            activate(account, actor=actor, reason=f"Activated at sign-up by {label}")
            if details.plan.billing == "postpaid":
                # The first (prorated) invoice now, as the day's billing run would open
                # it tonight; the run then finds the period open and bills it once.
                billing_services.bill_chunk(
                    [account.pk], timezone.localdate(at), at=at, actor=actor
                )
            payment = None
            if details.payment_amount is not None:
                try:
                    payment = payments.record_manual_payment(
                        customer,
                        method=details.payment_method,
                        amount=details.payment_amount,
                        reference=details.payment_reference,
                        actor=actor,
                        note="First payment at sign-up",
                    )
                except payments.PaymentError as exc:
                    field = "payment_reference" if "reference" in str(exc) else "payment_amount"
                    raise SignUpError(field, str(exc)) from None
            account.refresh_from_db()
            if details.plan.billing == "prepaid" and not (
                account.expires_at and account.expires_at > at
            ):
                # Never active and expired at once: the payment did not buy a term.
                raise SignUpError("payment_amount", "the payment did not buy a first term")
            send_welcome(account)
            return SignedUp(customer=customer, account=account, payment=payment)
    except IntegrityError:
        # The live-username constraint, met by a clerk who took it a moment earlier.
        raise SignUpError("username", "that username was just taken: try again") from None
    except SignUpError:
        raise
    except SubscriberError as exc:
        field = "username" if "username" in str(exc) else ""
        raise SignUpError(field, str(exc)) from None


def _sign_up_lead(details: SignUp, *, actor) -> SignedUp:
    """The pipeline's lead (create_lead), with the login the form gave or a generated
    one, and the router it named."""
    installation = create_lead(
        LeadDetails(
            name=details.name,
            phone=details.phone,
            plan=details.plan,
            email=details.email,
            address=details.address,
            branch=details.branch,
            site=details.site,
            source=details.source or "Sign-up form",
            notes=details.notes,
        ),
        actor=actor,
    )
    account = installation.service_account
    fields = []
    if account.service != ServiceType.STATIC:
        account.username = details.username.strip() or _free_username(
            account.customer.account.lower()
        )
        account.password = details.password or secrets.token_urlsafe(6)
        fields += ["username", "password"]
    if details.router is not None:
        account.router = details.router
        fields.append("router")
    if fields:
        account.save(update_fields=fields)
    return SignedUp(customer=account.customer, account=account, installation=installation)
