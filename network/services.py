"""Network operations other apps call: router records, router jobs (queue, run, retry,
sweep; they live in network.jobs), drift checks and syncing a router with the database."""

import logging
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from librouteros.exceptions import MultiTrapError, TrapError
from librouteros.query import Key

from ispops import audit
from network import jobs, provisioning, routeros, walled_garden
from network.models import Alert, DriftItem, Router, RouterJob, has_control_characters, visible
from network.provisioning import NotApplied

log = logging.getLogger(__name__)

# Router jobs live in network.jobs; other apps (and staff pages) reach them from here.
queue_account, queue_plan, retry_job = jobs.queue_account, jobs.queue_plan, jobs.retry_job
queue_accounts = jobs.queue_accounts
run_jobs, send_router_jobs, sweep_jobs = jobs.run_jobs, jobs.send_router_jobs, jobs.sweep_jobs
backoff, STUCK_AFTER = jobs.backoff, jobs.STUCK_AFTER

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[?[0-9a-fA-F:]+\]?$")


class RouterError(ValueError):
    """Input refused; str() is the reason."""


def valid_host(host: str) -> bool:
    return bool(_HOST_RE.match(host or ""))


def _check(name: str, host: str, port, username: str, exclude_pk=None, **text) -> None:
    """Refuse what no router record may hold; `text` is the other text fields (password,
    notes) checked for control characters."""
    fields = {"name": name, "host": host, "username": username, **text}
    bad = [
        field
        for field, value in fields.items()
        if has_control_characters(value, lines_allowed=field == "notes")
    ]
    if bad:
        raise RouterError(f"control characters are not allowed in: {', '.join(bad)}")
    if not name:
        raise RouterError("a router needs a name")
    if not valid_host(host):
        raise RouterError(f"invalid host {host!r}")
    problem = routeros.host_problem(host)
    if problem:
        raise RouterError(problem)
    if not 1 <= int(port) <= 65535:
        raise RouterError(f"invalid port {port}")
    if not username:
        raise RouterError("a router needs an API username")
    if Router.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise RouterError(f"a router named {name!r} already exists")


def add_router(
    *,
    actor,
    name: str,
    host: str,
    port: int,
    username: str,
    password: str,
    use_tls: bool = False,
    branch=None,
    site=None,
    notes: str = "",
    check_connection: bool = False,
) -> Router:
    """Record a router. With check_connection, one that cannot be reached or refuses the
    login is refused with the reason, and nothing is saved."""
    name, host, username = (name or "").strip(), (host or "").strip(), (username or "").strip()
    _check(name, host, port, username, password=password, notes=notes)
    if check_connection:
        probe = Router(
            name=name,
            host=host,
            port=int(port),
            username=username,
            password=password,
            use_tls=use_tls,
        )
        try:
            with routeros.connect(probe, timeout=5) as api:
                routeros.identify(api)
        except routeros.RouterError as exc:
            raise RouterError(str(exc)) from None
    with transaction.atomic(), audit.acting_as(actor):
        return Router.objects.create(
            name=name,
            host=host,
            port=int(port),
            username=username,
            password=password,
            use_tls=use_tls,
            branch=branch,
            site=site,
            notes=notes,
        )


def update_router(
    router: Router,
    *,
    actor,
    name: str,
    host: str,
    port: int,
    username: str,
    password: str = "",
    use_tls: bool = False,
    branch=None,
    site=None,
    notes: str = "",
) -> Router:
    """Change a router's record. A blank password keeps the stored one."""
    name, host, username = (name or "").strip(), (host or "").strip(), (username or "").strip()
    _check(name, host, port, username, exclude_pk=router.pk, password=password, notes=notes)
    with transaction.atomic(), audit.acting_as(actor):
        router.name, router.host, router.port, router.username = name, host, int(port), username
        router.use_tls, router.branch, router.site, router.notes = use_tls, branch, site, notes
        fields = ["name", "host", "port", "username", "use_tls", "branch", "site", "notes"]
        if password:
            router.password = password
            fields.append("password")
        router.save(update_fields=fields)
    return router


# --- drift ----------------------------------------------------------------------------

# What one billing cycle is worth per month, to show the money at stake. An hourly
# plan is counted as one hour a day.
_MONTHLY_FACTOR = {
    "monthly": Decimal("1"),
    "weekly": Decimal("52") / 12,
    "daily": Decimal("30"),
    "hourly": Decimal("30"),
}
_DRIFT_MENUS = (
    (provisioning.PPP_SECRET, "pppoe", ["name", "profile", "disabled", "comment"]),
    (provisioning.HS_USER, "hotspot", ["name", "profile", "disabled", "comment"]),
    (provisioning.QUEUE, "static", ["name", "target", "disabled", "comment"]),
)


def monthly_value(plan) -> Decimal:
    return (plan.price * _MONTHLY_FACTOR[plan.cycle]).quantize(Decimal("0.01"))


@dataclass
class DriftReport:
    router: Router
    items: list = field(default_factory=list)
    checked: int = 0
    seconds: float = 0.0

    def count(self, kind) -> int:
        return sum(1 for i in self.items if i.kind == kind)

    @property
    def at_stake(self) -> Decimal:
        return sum((i.monthly_value for i in self.items), Decimal("0.00"))


def read_router_items(session) -> dict[str, list[dict]]:
    """Every secret, hotspot user and simple queue, with only the fields drift needs."""
    found = {}
    for menu, _, props in _DRIFT_MENUS:
        path = session.path(menu).select(*[Key(p) for p in [".id", *props]])
        found[menu] = list(path)
    return found


def compute_drift(router: Router, router_items: dict[str, list[dict]]) -> list[DriftItem]:
    """Router against database, for the accounts this router serves."""
    from subscribers.models import Plan, ServiceAccount, ServiceType

    accounts = list(ServiceAccount.objects.filter(router=router).select_related("plan", "customer"))
    provisioning.annotate_levels(accounts)  # the fair-usage levels in one query, not one each
    by_id = {a.pk: a for a in accounts}
    live_by_name = {
        (a.service, a.username): a
        for a in accounts
        if a.username and a.status != ServiceAccount.Status.TERMINATED
    }
    plans_by_name = {p.name.lower(): p for p in Plan.objects.all()}
    expected = {
        (a.service, provisioning.key_for(a)): a
        for a in accounts
        if provisioning.should_exist(a, router.pk)
    }
    items, seen = [], set()
    for menu, service, _ in _DRIFT_MENUS:
        for row in router_items.get(menu, []):
            if provisioning.owned_elsewhere(row.get("comment")):
                continue
            name = str(row.get("name", ""))
            account = by_id.get(provisioning.owner_of(row.get("comment")))
            if account is None or not provisioning.should_exist(account, router.pk):
                account = live_by_name.get((service, name)) if service != "static" else None
            if account is None or not provisioning.should_exist(account, router.pk):
                # A disabled login gives no service: it leaks nothing.
                if provisioning.as_wire(row.get("disabled", False)) == "true":
                    continue
                if provisioning.owner_of(row.get("comment")) is not None or service != "static":
                    plan = plans_by_name.get(str(row.get("profile", "")).lower())
                    items.append(
                        DriftItem(
                            router=router,
                            kind=DriftItem.Kind.UNBILLED,
                            service=service,
                            username=name,
                            detail=f"{menu} {name} has no billed account"
                            + (f" (profile {row.get('profile')})" if row.get("profile") else ""),
                            monthly_value=monthly_value(plan) if plan else Decimal("0.00"),
                        )
                    )
                continue
            seen.add((account.service, provisioning.key_for(account)))
            wanted = provisioning.desired_fields(account)
            value = monthly_value(account.plan)
            if (
                account.service != ServiceType.STATIC
                and str(row.get("profile")) != wanted["profile"]
            ):
                items.append(
                    DriftItem(
                        router=router,
                        kind=DriftItem.Kind.WRONG_PROFILE,
                        service=service,
                        username=name,
                        service_account=account,
                        monthly_value=value,
                        detail=f"profile {row.get('profile')} on the router, plan {account.plan}",
                    )
                )
            disabled = provisioning.as_wire(row.get("disabled", False))
            if disabled != wanted["disabled"]:
                state = "disabled" if disabled == "true" else "enabled"
                items.append(
                    DriftItem(
                        router=router,
                        kind=DriftItem.Kind.WRONG_STATE,
                        service=service,
                        username=name,
                        service_account=account,
                        monthly_value=value,
                        detail=f"{state} on the router, {account.get_status_display().lower()} "
                        "here",
                    )
                )
    for key, account in expected.items():
        if key not in seen:
            items.append(
                DriftItem(
                    router=router,
                    kind=DriftItem.Kind.MISSING,
                    service=account.service,
                    username=provisioning.key_for(account),
                    service_account=account,
                    monthly_value=monthly_value(account.plan),
                    detail=f"{account.get_status_display()} here, missing on the router",
                )
            )
    return items


def check_drift(router: Router) -> DriftReport:
    """Read the router once, compare, and keep the result as the router's drift list."""
    started = time.perf_counter()
    with routeros.connect(router) as api:
        router_items = read_router_items(provisioning.RouterSession(api))
    items = compute_drift(router, router_items)
    with transaction.atomic():
        DriftItem.objects.filter(router=router).delete()
        DriftItem.objects.bulk_create(items, batch_size=2000)
        Router.objects.filter(pk=router.pk).update(drift_checked_at=timezone.now())
    checked = sum(len(rows) for rows in router_items.values())
    return DriftReport(router, items, checked, time.perf_counter() - started)


def check_drift_all() -> int:
    """The periodic check (beat, every 6 hours): each router's drift list, and its
    suspended list's walled garden put back if someone changed it on the router, so a
    soft suspension works on a router nobody has synced by hand."""
    checked = 0
    for router in Router.objects.all():
        try:
            check_drift(router)
            keep_walled_garden(router)
            checked += 1
        except routeros.RouterError as exc:
            jobs.mark_router(router, online=False, error=str(exc))
    return checked


def keep_walled_garden(router: Router) -> list[str]:
    """Push the walled garden where it differs (network.walled_garden); returns the
    changes made. A refusal is logged and kept as the router's last error."""
    with routeros.connect(router) as api:
        try:
            return walled_garden.sync(provisioning.RouterSession(api))
        except (NotApplied, TrapError, MultiTrapError) as exc:
            log.warning("router %s: walled garden: %s", router, exc)
            Router.objects.filter(pk=router.pk).update(last_error=f"walled garden: {exc}"[:255])
            return []


def sync_router(router: Router, *, actor, disable_unbilled: bool = False) -> tuple:
    """Report the drift, then push the desired state of every account this router
    serves (one pass over one connection). Unbilled items are disabled only when asked.
    Returns (drift report before, outcomes)."""
    from subscribers.models import ServiceAccount

    report = check_drift(router)
    accounts = list(ServiceAccount.objects.filter(router=router).select_related("plan", "customer"))
    with routeros.connect(router) as api:
        session = provisioning.RouterSession(api)
        outcomes = provisioning.apply_accounts(session, accounts, router.pk, recheck_profiles=True)
        if disable_unbilled:
            _disable_unbilled(
                session, [i for i in report.items if i.kind == DriftItem.Kind.UNBILLED]
            )
        # The suspended list's walled garden (network.walled_garden); a refusal there
        # is the router's last error, and the accounts above are synced all the same.
        garden_error = ""
        try:
            walled_garden.sync(session)
        except (NotApplied, TrapError, MultiTrapError) as exc:
            garden_error = f"walled garden: {exc}"
            log.warning("router %s: %s", router, garden_error)
    jobs.mark_router(router, online=True, error=garden_error)
    check_drift(router)
    _, label = audit.describe_actor(actor)
    log.info("router %s synced by %s: %d drift items", router, label, len(report.items))
    return report, outcomes


def _disable_unbilled(session, items) -> None:
    menus = {
        "pppoe": provisioning.PPP_SECRET,
        "hotspot": provisioning.HS_USER,
        "static": provisioning.QUEUE,
    }
    stamp = timezone.localdate().isoformat()
    for item in items:
        menu = menus[item.service]
        for row in session.rows(menu, name=item.username):
            session.update(
                menu, row[".id"], disabled="yes", comment=f"unbilled, disabled by ispops {stamp}"
            )


def fix_drift(router: Router, *, actor) -> int:
    """The drift page's one action: push the desired state and disable what nobody pays
    for. Runs in a worker (network.tasks.fix_drift)."""
    report, _ = sync_router(router, actor=actor, disable_unbilled=True)
    return len(report.items)


def home_figures(user) -> list[dict]:
    """The staff home page's network figures of the routers `user` sees: routers online,
    open alerts, failed jobs."""
    routers = visible(Router.objects.all(), user)
    online = routers.filter(status=Router.Status.ONLINE).count()
    return [
        {"label": "Routers online", "value": f"{online}/{routers.count()}", "url": "/routers/"},
        {
            "label": "Open alerts",
            "value": Alert.objects.filter(resolved_at__isnull=True, router__in=routers).count(),
            "url": "/alerts/",
        },
        {
            "label": "Router jobs waiting",
            "value": RouterJob.objects.filter(
                state__in=[RouterJob.State.RETRY, RouterJob.State.FAILED], router__in=routers
            ).count(),
            "url": "/routers/",
        },
    ]
