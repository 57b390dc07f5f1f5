"""Portal operations: ask for a one-time code, sign in with it or with a password, set a
password, and what the home page shows. Time is passed in (`now`) so tests and callers
agree on it.

The codes themselves (writing, limits per phone, tries, the SMS) are
ispops.messaging.phone_codes'; this module answers for the portal's own rules: who may
sign in, the per-address cap over codes and wrong passwords, the password lock-out.
Limits are enforced under a PostgreSQL advisory lock per phone and per address held
for the transaction, so two requests at once cannot both slip under a cap. Unknown
phones go through the same steps (a code row is written, never sent) so the answers,
limits and timing do not tell who is a customer.
"""

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from django.contrib.auth.hashers import check_password, make_password
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from billing import ledger
from billing import services as billing
from billing.models import BillingSettings
from billing.prepaid import grace
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.messaging import phone_codes
from payments.models import Payment
from portal.models import PortalEvent, PortalLogin, PortalSettings, SignInAttempt
from subscribers.models import AccountStatus, Billing, Customer, ServiceAccount, StatusChange

DAY = timedelta(hours=24)  # "per day" limits are a rolling 24 hours
CODE_TEMPLATE = "portal_code"
# check_password against this when there is no password to check, so a phone without
# one takes as long to refuse as a wrong password.
_DUMMY_HASH = make_password("portal-no-password-here")


class Outcome(Enum):
    SENT = "sent"  # also for unknown phones
    WAIT = "wait"  # resend asked too soon
    PHONE_LIMIT = "phone_limit"
    IP_LIMIT = "ip_limit"
    SIGNED_IN = "signed_in"
    WRONG = "wrong"
    DEAD = "dead"  # no live code: expired, used, or out of tries
    LOCKED = "locked"  # too many wrong passwords


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    login: PortalLogin | None = None
    wait_seconds: int = 0
    tries_left: int = 0


def normalise(raw: str) -> str | None:
    """The phone in 2547.../2541... form, or None if it is not a Kenyan mobile."""
    try:
        return normalise_phone(raw)
    except InvalidPhone:
        return None


def customers_for_phone(phone: str):
    """The customers a proven phone may see: those whose phone or alternative phone it
    is (stored normalised, so an exact match), terminated ones left out."""
    return (
        Customer.objects.filter(Q(phone=phone) | Q(alt_phone=phone))
        .exclude(status=Customer.Status.TERMINATED)
        .order_by("account")
    )


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"portal:{connection.schema_name}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock(*names: str) -> None:
    """Serialise the limit checks of one phone / address until the transaction ends."""
    with connection.cursor() as cursor:
        for name in sorted(set(names)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(name)])


@contextmanager
def held(name: str):
    """Serialise a block that must commit as it goes (an STK push: its row must be
    visible to the callback that may follow within milliseconds): a session advisory
    lock, not a transaction's."""
    if connection.in_atomic_block:
        raise RuntimeError("held() is for work outside a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(name)])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(name)])


def _ip_capped(ip: str | None, cfg: PortalSettings, now: datetime) -> bool:
    if not ip:
        return False
    count = SignInAttempt.objects.filter(ip=ip, at__gt=now - DAY).count()
    return count >= cfg.attempts_per_ip_per_day


def request_code(raw_phone: str, *, ip: str | None, now: datetime) -> Result:
    """Send a sign-in code to `raw_phone` if a customer has it; the same Result whether
    one does or not (ispops.messaging.phone_codes writes and limits the codes)."""
    phone = normalise(raw_phone)
    if phone is None:
        raise ValueError("not a Kenyan mobile number")
    cfg = PortalSettings.load()
    with transaction.atomic():
        # The address's cap counts codes and wrong passwords together, so it is checked
        # here under the lock password_sign_in takes too, not by phone_codes.
        lock(f"phone:{phone}", f"ip:{ip}")
        if _ip_capped(ip, cfg, now):
            return Result(Outcome.IP_LIMIT)
        customer = customers_for_phone(phone).first()
        # To the phone that was typed (it may be the customer's alternative phone).
        sms = phone_codes.Sms(CODE_TEMPLATE, customer=customer, related="portal sign-in")
        issued = phone_codes.issue(
            phone,
            purpose=phone_codes.PORTAL,
            sms=sms,
            send=customer is not None,
            limits=phone_codes.Limits.of(cfg),
            ip=ip,
            now=now,
        )
        if issued.outcome == phone_codes.Outcome.WAIT:
            return Result(Outcome.WAIT, wait_seconds=issued.wait_seconds)
        if issued.outcome == phone_codes.Outcome.PHONE_LIMIT:
            return Result(Outcome.PHONE_LIMIT)
        SignInAttempt.objects.create(
            kind=SignInAttempt.Kind.CODE_REQUESTED, phone=phone, ip=ip, at=now
        )
    return Result(Outcome.SENT)


def verify_code(raw_phone: str, code: str, *, now: datetime) -> Result:
    """Sign in with the newest code sent to the phone. Each wrong entry uses up one of
    the code's tries; an expired, used or exhausted code is dead. A right code for a
    phone no customer has any more counts as a wrong one."""
    phone = normalise(raw_phone)
    cfg = PortalSettings.load()
    if phone is None:
        return Result(Outcome.DEAD)
    with transaction.atomic():
        checked = phone_codes.check(
            phone,
            code,
            purpose=phone_codes.PORTAL,
            tries=cfg.tries_per_code,
            now=now,
            accept=lambda: customers_for_phone(phone).exists(),
        )
        if checked.outcome == phone_codes.Outcome.RIGHT:
            return Result(Outcome.SIGNED_IN, login=_signed_in(phone, now))
        left = checked.tries_left
        if checked.outcome == phone_codes.Outcome.WRONG and left > 0:
            return Result(Outcome.WRONG, tries_left=left)
        return Result(Outcome.DEAD, tries_left=left)


def password_sign_in(raw_phone: str, password: str, *, ip: str | None, now: datetime) -> Result:
    """Sign in with a phone and the password its holder set. Wrong passwords count per
    phone (a pause after `password_tries`) and against the address's daily cap."""
    phone = normalise(raw_phone)
    cfg = PortalSettings.load()
    with transaction.atomic():
        lock(f"phone:{phone}", f"ip:{ip}")
        if _ip_capped(ip, cfg, now):
            return Result(Outcome.IP_LIMIT)
        if phone is not None:
            window = now - timedelta(minutes=cfg.password_lock_minutes)
            wrong = SignInAttempt.objects.filter(
                phone=phone, kind=SignInAttempt.Kind.WRONG_PASSWORD, at__gt=window
            ).count()
            if wrong >= cfg.password_tries:
                return Result(Outcome.LOCKED)
        login = PortalLogin.objects.filter(phone=phone).first() if phone else None
        stored = login.password if login is not None and login.password else _DUMMY_HASH
        ok = check_password(password or "", stored) and stored is not _DUMMY_HASH
        if ok and customers_for_phone(phone).exists():
            return Result(Outcome.SIGNED_IN, login=_signed_in(phone, now))
        SignInAttempt.objects.create(
            kind=SignInAttempt.Kind.WRONG_PASSWORD, phone=phone or "", ip=ip, at=now
        )
    return Result(Outcome.WRONG)


def _signed_in(phone: str, now: datetime) -> PortalLogin:
    login, _ = PortalLogin.objects.get_or_create(phone=phone, defaults={"created_at": now})
    login.last_signed_in_at = now
    login.save(update_fields=["last_signed_in_at"])
    return login


def set_password(login: PortalLogin, password: str) -> None:
    """Store the subscriber's new password (hashed by Django's hasher)."""
    login.password = make_password(password)
    login.save(update_fields=["password"])


# --- what the home page shows --------------------------------------------------------


@dataclass(frozen=True)
class ServiceCard:
    account: object  # subscribers.models.ServiceAccount
    state: str  # active, grace, walled, suspended, pending
    label: str
    reason: str
    expires_at: datetime | None


@dataclass(frozen=True)
class Home:
    customer: object
    services: list[ServiceCard]
    owed: Decimal
    overdue: Decimal
    due_on: object  # date | None
    to_pay: Decimal
    last_payment: object  # payments.models.Payment | None


def home(customer, now: datetime) -> Home:
    """One customer's services and money, in a fixed handful of queries."""
    today = timezone.localdate(now)
    dues = ledger.dues(customer, today)
    cfg = BillingSettings.load()
    why = StatusChange.objects.filter(
        service_account=OuterRef("pk"), to_status=AccountStatus.SUSPENDED
    ).order_by("-at", "-id")
    accounts = (
        ServiceAccount.objects.filter(customer=customer)
        .exclude(status=AccountStatus.TERMINATED)
        .select_related("plan")
        .annotate(suspend_reason=Subquery(why.values("reason")[:1]))
        .order_by("id")
    )
    cards = []
    for account in accounts:
        prepaid = account.plan.billing == Billing.PREPAID
        expires = account.expires_at if prepaid else None
        reason = ""
        if account.status == AccountStatus.SUSPENDED:
            reason = account.suspend_reason or ""
            if account.suspension == "soft":
                state, label = "walled", "Limited until paid"
            else:
                state, label = "suspended", "Suspended"
        elif account.status == AccountStatus.ACTIVE:
            late = (expires is not None and expires <= now) or (not prepaid and dues.overdue > 0)
            state, label = (
                ("grace", "In grace period: please pay") if late else ("active", "Active")
            )
            if late and expires is not None:
                until = timezone.localtime(expires + grace(account.plan.cycle, cfg))
                reason = f"Your package ended. Pay before {until:%d %b %H:%M} to stay online."
        else:
            state, label = "pending", "Being connected"
        cards.append(ServiceCard(account, state, label, reason, expires))
    last = (
        Payment.objects.filter(customer=customer, state=Payment.State.CREDITED)
        .order_by("-received_at", "-id")
        .first()
    )
    return Home(
        customer=customer,
        services=cards,
        owed=dues.owed,
        overdue=dues.overdue,
        due_on=dues.oldest_due,
        to_pay=billing.to_pay(customer, now),
        last_payment=last,
    )


def login_for(phone: str) -> PortalLogin:
    """The phone's portal login (a signed-in phone has one; made if it was removed)."""
    login, _ = PortalLogin.objects.get_or_create(phone=phone)
    return login


def record_event(kind, *, phone: str = "", customer=None, staff=None, ip=None, now=None):
    """One line in the portal's event log (sign-ins, sign-outs, staff viewing as)."""
    return PortalEvent.objects.create(
        kind=kind,
        phone=phone,
        customer=customer,
        staff=staff,
        ip=ip or None,
        at=now or timezone.now(),
    )


def events_for(customer):
    """The portal events about a customer: those of the customer, and sign-ins by a
    phone of theirs (a sign-in comes before an account is chosen)."""
    phones = [p for p in (customer.phone, customer.alt_phone) if p]
    return (
        PortalEvent.objects.filter(Q(customer=customer) | Q(phone__in=phones, customer=None))
        .select_related("staff")
        .order_by("-at", "-id")
    )
