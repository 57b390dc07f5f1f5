"""CSV imports of plans and subscribers: all rows or none.

Every row is checked first and every bad row is reported with its line number (the
header is line 1) and the reason; only a file with no bad row is written, in one
transaction, in bulk. The commands and the upload page (through a Celery task) share
this code, so they accept and refuse exactly the same files.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ispops import audit
from ispops.lib.csvimport import ImportReport, read_rows
from ispops.lib.phones import InvalidPhone, normalise_phone
from network.models import Router
from subscribers import services
from subscribers.models import (
    Billing,
    Customer,
    Plan,
    ServiceAccount,
    ServiceType,
    SubscriberSettings,
)

PLAN_REQUIRED = ["name", "price", "cycle", "download", "upload", "service"]
PLAN_OPTIONAL = ["billing", "data_cap_gb"]
SUBSCRIBER_REQUIRED = [
    "account",
    "name",
    "phone",
    "email",
    "plan",
    "username",
    "password",
    "router",
    "status",
]
SUBSCRIBER_OPTIONAL = ["expires"]
LIVE = ("active", "suspended")
IMPORT_STATUSES = {"active", "suspended", "lead"}
BATCH = 2000
Progress = Callable[[int, int], None]


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"price {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"price {text!r} must be zero or more, with at most 2 decimals")
    return value


# --- plans ---------------------------------------------------------------------------


def import_plans(
    text: str, *, actor, dry_run: bool = False, progress: Progress | None = None
) -> ImportReport:
    report = ImportReport(dry_run=dry_run)
    rows = read_rows(text, PLAN_REQUIRED, PLAN_OPTIONAL, report)
    default_billing = SubscriberSettings.load().default_billing
    existing = {p.name.lower(): p for p in Plan.objects.all()}
    seen: dict[str, int] = {}
    new_plans = []
    for n, (line, row) in enumerate(rows, 1):
        try:
            plan = _plan_from_row(row, default_billing)
        except (ValueError, services.SubscriberError) as exc:
            report.add(line, str(exc))
            continue
        key = plan.name.lower()
        if key in seen:
            report.add(line, f"plan {plan.name!r} is also on line {seen[key]}")
            continue
        seen[key] = line
        if key in existing:
            if _same_plan(existing[key], plan):
                report.unchanged += 1
            else:
                report.add(
                    line,
                    f"plan {plan.name!r} already exists with other values; "
                    "change it on the plans page",
                )
            continue
        new_plans.append(plan)
        if progress and n % 500 == 0:
            progress(n, len(rows))
    if report.ok and not dry_run:
        with transaction.atomic(), audit.acting_as(actor):
            for plan in new_plans:
                plan.save()  # a few hundred at most; save() keeps one audit entry each
    report.created = len(new_plans) if report.ok else 0
    if progress:
        progress(len(rows), len(rows))
    return report


def _plan_from_row(row: dict, default_billing: str) -> Plan:
    name = row["name"]
    if not name or len(name) > 80:
        raise ValueError("name is required (at most 80 characters)")
    cycle = row["cycle"].lower()
    if cycle not in Plan.Cycle.values:
        raise ValueError(f"cycle {row['cycle']!r} must be one of {', '.join(Plan.Cycle.values)}")
    service = row["service"].lower()
    if service not in ServiceType.values:
        raise ValueError(
            f"service {row['service']!r} must be one of {', '.join(ServiceType.values)}"
        )
    billing = (row.get("billing") or default_billing).lower()
    if billing not in Billing.values:
        raise ValueError(f"billing {row['billing']!r} must be prepaid or postpaid")
    cap = row.get("data_cap_gb") or ""
    if cap and (not cap.isdigit() or int(cap) <= 0):
        raise ValueError(f"data_cap_gb {cap!r} must be a whole number of GB above zero")
    return Plan(
        name=name,
        price=_money(row["price"]),
        cycle=cycle,
        service=service,
        billing=billing,
        download_kbps=services.parse_speed(row["download"]),
        upload_kbps=services.parse_speed(row["upload"]),
        data_cap_gb=int(cap) if cap else None,
    )


def _same_plan(a: Plan, b: Plan) -> bool:
    keys = ("price", "cycle", "service", "billing", "download_kbps", "upload_kbps", "data_cap_gb")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


# --- subscribers ---------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    account: str
    name: str
    phone: str
    email: str
    plan: Plan
    username: str
    password: str
    router: Router | None
    status: str
    expires_at: datetime | None


def import_subscribers(
    text: str, *, actor, dry_run: bool = False, progress: Progress | None = None
) -> ImportReport:
    report = ImportReport(dry_run=dry_run)
    rows = read_rows(text, SUBSCRIBER_REQUIRED, SUBSCRIBER_OPTIONAL, report)
    plans = {p.name.lower(): p for p in Plan.objects.all()}
    routers = {r.name.lower(): r for r in Router.objects.all()}
    good: list[_Row] = []
    accounts_seen: dict[str, int] = {}
    usernames_seen: dict[str, int] = {}
    for n, (line, raw) in enumerate(rows, 1):
        clash = _file_duplicate(line, raw, accounts_seen, usernames_seen)
        try:
            row = _subscriber_row(line, raw, plans, routers, clash)
        except ValueError as exc:
            report.add(line, str(exc))
        else:
            good.append(row)
        if progress and n % 500 == 0:
            progress(n, len(rows))
    _check_against_database(good, report)
    report.errors.sort(key=lambda e: e["line"])
    if report.ok and not dry_run:
        try:
            _write_subscribers(good, actor, progress)
        except IntegrityError as exc:
            # Someone created the same account or login while we were checking.
            report.add(1, f"a row clashed with a record created meanwhile: {exc}")
    report.created = len(good) if report.ok else 0
    if progress:
        progress(len(rows), len(rows))
    return report


def _subscriber_row(line: int, raw: dict, plans: dict, routers: dict, clash: list) -> _Row:
    reasons = list(clash)
    account = services.normalise_account(raw["account"])
    if account and not re.fullmatch(r"[A-Z0-9-]{1,20}", account):
        reasons.append(f"account {raw['account']!r} must be letters and digits (at most 20)")
    name = raw["name"]
    if not name:
        reasons.append("name is required")
    phone = ""
    try:
        phone = normalise_phone(raw["phone"])
    except InvalidPhone as exc:
        reasons.append(str(exc))
    email = raw["email"].lower()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            reasons.append(f"invalid email {raw['email']!r}")
    plan = plans.get(raw["plan"].lower())
    if plan is None:
        reasons.append(f"unknown plan {raw['plan']!r}" if raw["plan"] else "plan is required")
    router = None
    if raw["router"]:
        router = routers.get(raw["router"].lower())
        if router is None:
            reasons.append(f"unknown router {raw['router']!r}")
    status = raw["status"].lower()
    if status not in IMPORT_STATUSES:
        reasons.append(f"status {raw['status']!r} must be active, suspended or lead")
    username, password = raw["username"], raw["password"]
    if username and not re.fullmatch(r"[\w.@+-]{1,64}", username):
        reasons.append(f"username {username!r} has characters a router refuses")
    needs_login = plan is not None and plan.service != ServiceType.STATIC
    if needs_login and status in ("active", "suspended") and not (username and password):
        reasons.append(f"a {status} {plan.service} account needs a username and password")
    expires_at = None
    if raw.get("expires"):
        expires_at = _parse_expiry(raw["expires"])
        if expires_at is None:
            reasons.append(f"expires {raw['expires']!r} is not a date (YYYY-MM-DD)")
    if reasons:
        raise ValueError("; ".join(reasons))
    return _Row(
        line, account, name, phone, email, plan, username, password, router, status, expires_at
    )


def _parse_expiry(text: str) -> datetime | None:
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
    except ValueError:
        return None
    if day is not None:
        # A prepaid account paid "until the 5th" works through the whole 5th.
        moment = datetime.combine(day, time(23, 59, 59))
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _file_duplicate(line: int, raw: dict, accounts: dict, usernames: dict) -> list[str]:
    """Reasons this row repeats an account or username of an earlier row of the file."""
    reasons = []
    account = services.normalise_account(raw["account"])
    if account:
        if account in accounts:
            reasons.append(f"duplicate account {account} (also on line {accounts[account]})")
        else:
            accounts[account] = line
    key = raw["username"].lower()
    if key:
        if key in usernames:
            reasons.append(f"duplicate username {raw['username']} (also on line {usernames[key]})")
        else:
            usernames[key] = line
    return reasons


def _check_against_database(rows: list[_Row], report: ImportReport) -> None:
    taken_accounts, taken_usernames = set(), set()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        taken_accounts |= set(
            Customer.objects.filter(
                account__in=[r.account for r in chunk if r.account]
            ).values_list("account", flat=True)
        )
        taken_usernames |= {
            u.lower()
            for u in ServiceAccount.objects.filter(
                username__in=[r.username for r in chunk if r.username]
            )
            .exclude(status=ServiceAccount.Status.TERMINATED)
            .values_list("username", flat=True)
        }
    bad = []
    for row in rows:
        if row.account in taken_accounts:
            report.add(row.line, f"duplicate account {row.account} (already exists)")
            bad.append(row)
        elif row.username and row.username.lower() in taken_usernames:
            report.add(row.line, f"username {row.username} is already in use")
            bad.append(row)
    for row in bad:
        rows.remove(row)


def _write_subscribers(rows: list[_Row], actor, progress: Progress | None) -> None:
    now = timezone.now()
    with transaction.atomic():
        blank = [row for row in rows if not row.account]
        for row, account in zip(blank, services.reserve_account_numbers(len(blank)), strict=True):
            row.account = account
        customers = [
            Customer(
                account=r.account,
                name=r.name,
                phone=r.phone,
                email=r.email,
                status=r.status,
                created_at=now,
            )
            for r in rows
        ]
        for customer, row in zip(customers, rows, strict=True):
            customer.search = services.search_text(customer, [row.username] if row.username else [])
        Customer.objects.bulk_create(customers, batch_size=BATCH)
        accounts = [
            ServiceAccount(
                customer=c,
                plan=r.plan,
                service=r.plan.service,
                username=r.username,
                password=r.password,
                router=r.router,
                status=r.status,
                # A prepaid row in service without an expiry expires at the import
                # (README, "Prepaid"): never free service for want of a date.
                expires_at=r.expires_at
                or (now if r.plan.billing == "prepaid" and r.status in LIVE else None),
                activated_at=now if r.status in LIVE else None,
                suspended_at=now if r.status == "suspended" else None,
                created_at=now,
            )
            for c, r in zip(customers, rows, strict=True)
        ]
        ServiceAccount.objects.bulk_create(accounts, batch_size=BATCH)
        services.record_bulk_creation(
            customers, accounts, actor=actor, reason="Imported", source=True
        )
        if progress:
            progress(len(rows), len(rows))
