"""Network operations other apps call: router records, router jobs (queue, run, retry,
sweep), drift checks and syncing a router with the database."""

import logging
import re
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from librouteros.query import Key

from ispops import audit
from network import provisioning, routeros
from network.models import DriftItem, Router, RouterJob

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[?[0-9a-fA-F:]+\]?$")


class RouterError(ValueError):
    """Input refused; str() is the reason."""


def valid_host(host: str) -> bool:
    return bool(_HOST_RE.match(host or ""))


def _check(name: str, host: str, port, username: str, exclude_pk=None) -> None:
    if not name:
        raise RouterError("a router needs a name")
    if not valid_host(host):
        raise RouterError(f"invalid host {host!r}")
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
    _check(name, host, port, username)
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
    _check(name, host, port, username, exclude_pk=router.pk)
    with transaction.atomic(), audit.acting_as(actor):
        router.name, router.host, router.port, router.username = name, host, int(port), username
        router.use_tls, router.branch, router.site, router.notes = use_tls, branch, site, notes
        fields = ["name", "host", "port", "username", "use_tls", "branch", "site", "notes"]
        if password:
            router.password = password
            fields.append("password")
        router.save(update_fields=fields)
    return router


# --- jobs -----------------------------------------------------------------------------

MAX_REFUSED_ATTEMPTS = 8
STUCK_AFTER = timedelta(minutes=10)
log = logging.getLogger(__name__)


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, ... capped at 30 min: an unreachable router is retried for ever."""
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 1800))


def queue_account(
    account, *, actor, action=RouterJob.Action.PROVISION, router_id=None
) -> RouterJob | None:
    """Ask a router (the account's, unless named) to match the account, in the caller's
    transaction; the job is sent to a worker once that transaction commits."""
    router_id = router_id or account.router_id
    if router_id is None:
        return None
    _, label = audit.describe_actor(actor)
    job = RouterJob.objects.create(
        router_id=router_id, service_account=account, action=action, created_by=label
    )
    transaction.on_commit(lambda: send_router_jobs(router_id))
    return job


def queue_plan(plan, *, actor) -> int:
    """A plan's speeds changed: update its profile on every router that serves it."""
    from subscribers.models import ServiceAccount

    _, label = audit.describe_actor(actor)
    router_ids = set(
        ServiceAccount.objects.filter(plan=plan, router__isnull=False)
        .exclude(status=ServiceAccount.Status.TERMINATED)
        .values_list("router_id", flat=True)
    )
    for router_id in router_ids:
        RouterJob.objects.create(
            router_id=router_id, plan=plan, action=RouterJob.Action.SYNC_PLAN, created_by=label
        )
        transaction.on_commit(lambda r=router_id: send_router_jobs(r))
    return len(router_ids)


def send_router_jobs(router_id: int) -> None:
    """Hand the router's jobs to a worker. If Redis is down the jobs stay in the database
    and the sweep sends them when it is back."""
    from ispops.tasks import hand_to_worker
    from network.tasks import run_router_jobs

    hand_to_worker(run_router_jobs, router_id, what=f"router jobs for router {router_id}")


@contextmanager
def _router_lock(router_id: int):
    """One worker at a time applies a router's jobs (a session-level advisory lock)."""
    key = zlib.crc32(f"{connection.schema_name}:router:{router_id}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def run_jobs(router_id: int, *, limit: int = 20000) -> str:
    """Claim the router's due jobs and apply them over one connection."""
    router = Router.objects.filter(pk=router_id).first()
    if router is None:
        return "no such router"
    with _router_lock(router_id) as got:
        if not got:
            return "another worker has this router"
        now = timezone.now()
        ids = list(
            RouterJob.objects.due(now)
            .filter(router=router)
            .order_by("created_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return "nothing due"
        # Claim with a conditional update: a duplicate delivery finds nothing to claim.
        claimed = RouterJob.objects.filter(
            id__in=ids, state__in=[RouterJob.State.PENDING, RouterJob.State.RETRY]
        ).update(state=RouterJob.State.RUNNING, started_at=now, attempts=F("attempts") + 1)
        if not claimed:
            return "nothing due"
        jobs = list(
            RouterJob.objects.filter(id__in=ids, state=RouterJob.State.RUNNING).select_related(
                "service_account__plan", "service_account__customer", "plan"
            )
        )
        return _apply_jobs(router, jobs)


def _apply_jobs(router, jobs) -> str:
    accounts = {j.service_account_id: j.service_account for j in jobs if j.service_account_id}
    plans = {j.plan for j in jobs if j.plan_id}
    try:
        with routeros.connect(router) as api:
            session = provisioning.RouterSession(api)
            if plans:
                provisioning.ensure_profiles(session, plans)
            outcomes, failures = _apply_isolating_failures(
                session, list(accounts.values()), router.pk
            )
    except (routeros.RouterUnreachable, routeros.RouterLoginFailed) as exc:
        _retry(jobs, str(exc))
        _mark_router(router, online=False, error=str(exc))
        return f"router unavailable: {exc}"
    except (routeros.RouterRefused, provisioning.NotApplied) as exc:
        # A profile the router would not take: every job waits, staff see why.
        _retry(jobs, str(exc), refused=True)
        return f"refused: {exc}"
    finished = timezone.now()
    for job in jobs:
        failure = failures.get(job.service_account_id)
        if failure:
            _retry([job], failure, refused=True)
            continue
        outcome = outcomes.get(job.service_account_id)
        job.result = (outcome.summary if outcome else "profile in place")[:255]
        job.state, job.finished_at, job.last_error = RouterJob.State.DONE, finished, ""
    RouterJob.objects.bulk_update(
        [j for j in jobs if j.state == RouterJob.State.DONE],
        ["state", "finished_at", "last_error", "result"],
        batch_size=2000,
    )
    _mark_router(router, online=True)
    return f"{len(jobs) - len(failures)} done, {len(failures)} refused"


def _apply_isolating_failures(session, accounts, router_id):
    """All accounts in one pass; if the router refuses something, again one by one so
    only the refused account's job waits."""
    try:
        return provisioning.apply_accounts(session, accounts, router_id), {}
    except (routeros.RouterRefused, provisioning.NotApplied) as exc:
        if len(accounts) == 1:
            return {}, {accounts[0].pk: str(exc)}
    outcomes, failures = {}, {}
    for account in accounts:
        try:
            outcomes.update(provisioning.apply_accounts(session, [account], router_id))
        except (routeros.RouterRefused, provisioning.NotApplied) as exc:
            failures[account.pk] = str(exc)
    return outcomes, failures


def _retry(jobs, error: str, *, refused: bool = False) -> None:
    now = timezone.now()
    for job in jobs:
        job.last_error = error[:2000]
        if refused and job.attempts >= MAX_REFUSED_ATTEMPTS:
            job.state, job.finished_at = RouterJob.State.FAILED, now
        else:
            job.state = RouterJob.State.RETRY
            job.next_attempt_at = now + backoff(job.attempts)
    RouterJob.objects.bulk_update(
        jobs, ["state", "next_attempt_at", "last_error", "finished_at"], batch_size=2000
    )


def _mark_router(router, *, online: bool, error: str = "") -> None:
    fields = {
        "status": Router.Status.ONLINE if online else Router.Status.OFFLINE,
        "last_error": error[:255],
    }
    if online:
        fields["last_seen_at"] = timezone.now()
    Router.objects.filter(pk=router.pk).update(**fields)


def retry_job(job: RouterJob, *, actor) -> RouterJob:
    """Staff asked to try again now."""
    RouterJob.objects.filter(pk=job.pk).exclude(state=RouterJob.State.RUNNING).update(
        state=RouterJob.State.PENDING, next_attempt_at=timezone.now(), finished_at=None
    )
    _, label = audit.describe_actor(actor)
    log.info("router job %s retried by %s", job.pk, label)
    transaction.on_commit(lambda: send_router_jobs(job.router_id))
    job.refresh_from_db()
    return job


def sweep_jobs() -> int:
    """Jobs whose task was lost go out again: those stuck running (a worker died) and
    every router with due jobs (Redis lost the message, or was down when sent)."""
    now = timezone.now()
    RouterJob.objects.filter(
        state=RouterJob.State.RUNNING, started_at__lt=now - STUCK_AFTER
    ).update(
        state=RouterJob.State.RETRY,
        next_attempt_at=now,
        last_error="the worker running this job stopped; retrying",
    )
    _jobs_from_pending_intents()
    router_ids = set(RouterJob.objects.due(now).values_list("router_id", flat=True))
    for router_id in router_ids:
        send_router_jobs(router_id)
    return len(router_ids)


def _jobs_from_pending_intents() -> None:
    """Router intents recorded before the network app existed become jobs, once."""
    from subscribers.models import ServiceIntent

    kinds = {
        ServiceIntent.Kind.PROVISION: RouterJob.Action.PROVISION,
        ServiceIntent.Kind.SUSPEND: RouterJob.Action.SUSPEND,
        ServiceIntent.Kind.RESTORE: RouterJob.Action.RESTORE,
        ServiceIntent.Kind.REMOVE: RouterJob.Action.REMOVE,
    }
    with transaction.atomic():
        pending = list(
            ServiceIntent.objects.select_for_update(skip_locked=True)
            .filter(kind__in=kinds, processed_at__isnull=True)
            .select_related("service_account")[:5000]
        )
        for intent in pending:
            account = intent.service_account
            if account.router_id:
                RouterJob.objects.create(
                    router_id=account.router_id,
                    service_account=account,
                    action=kinds[intent.kind],
                    created_by=intent.actor_label,
                )
        ServiceIntent.objects.filter(pk__in=[i.pk for i in pending]).update(
            processed_at=timezone.now()
        )


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
    checked = 0
    for router in Router.objects.all():
        try:
            check_drift(router)
            checked += 1
        except routeros.RouterError as exc:
            _mark_router(router, online=False, error=str(exc))
    return checked


def sync_router(router: Router, *, actor, disable_unbilled: bool = False) -> tuple:
    """Report the drift, then push the desired state of every account this router
    serves (one pass over one connection). Unbilled items are disabled only when asked.
    Returns (drift report before, outcomes)."""
    from subscribers.models import ServiceAccount

    report = check_drift(router)
    accounts = list(ServiceAccount.objects.filter(router=router).select_related("plan", "customer"))
    with routeros.connect(router) as api:
        session = provisioning.RouterSession(api)
        outcomes = provisioning.apply_accounts(session, accounts, router.pk)
        if disable_unbilled:
            _disable_unbilled(
                session, [i for i in report.items if i.kind == DriftItem.Kind.UNBILLED]
            )
    _mark_router(router, online=True)
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
    """The staff home page's network figures: routers online, open alerts, failed jobs."""
    from network.models import Alert

    routers = Router.objects.all()
    online = routers.filter(status=Router.Status.ONLINE).count()
    return [
        {"label": "Routers online", "value": f"{online}/{routers.count()}", "url": "/routers/"},
        {
            "label": "Open alerts",
            "value": Alert.objects.filter(resolved_at__isnull=True).count(),
            "url": "/alerts/",
        },
        {
            "label": "Router jobs waiting",
            "value": RouterJob.objects.filter(
                state__in=[RouterJob.State.RETRY, RouterJob.State.FAILED]
            ).count(),
            "url": "/routers/",
        },
    ]
