"""Router jobs: every change a router must make is a RouterJob row, written in the
transaction of the change that needs it and applied by a worker over a pooled connection
(queue, send, run, retry, sweep). Other apps reach these through network.services."""

import logging
import time
import zlib
from contextlib import contextmanager, suppress
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from librouteros.exceptions import MultiTrapError, TrapError

from ispops import audit
from network import provisioning, routeros
from network.models import Router, RouterJob

MAX_REFUSED_ATTEMPTS = 8
STUCK_AFTER = timedelta(minutes=10)
# How long one task may keep a router before handing on to a new task.
HOLD_ROUTER_SECONDS = 120.0
# How long a router's "sent" mark lasts if nobody clears it (a task lost on the way).
SENT_MARK_MS = 5000
SEEN_FRESH = timedelta(seconds=30)
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


def queue_accounts(accounts, *, actor, action=RouterJob.Action.PROVISION) -> int:
    """`queue_account` for many accounts at once (a bulk suspension): one insert, and
    one hand-over per router once the caller's transaction commits."""
    _, label = audit.describe_actor(actor)
    jobs = [
        RouterJob(router_id=a.router_id, service_account=a, action=action, created_by=label)
        for a in accounts
        if a.router_id is not None
    ]
    RouterJob.objects.bulk_create(jobs)
    for router_id in {job.router_id for job in jobs}:
        transaction.on_commit(lambda r=router_id: send_router_jobs(r))
    return len(jobs)


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
    and the sweep sends them when it is back.

    A task already on its way to (or running for) the router will see these jobs too,
    so none is sent while the router's "sent" mark stands (run_jobs says why that loses
    nothing): a thousand suspensions in a row make a few tasks, not a thousand that each
    find the router taken."""
    from ispops.tasks import hand_to_worker
    from network.tasks import run_router_jobs

    key = _sent_key(router_id)
    try:
        if not _redis().set(key, "1", nx=True, px=SENT_MARK_MS):
            return
    except redis.RedisError:
        pass  # no mark, no saving: send
    if not hand_to_worker(run_router_jobs, router_id, what=f"router jobs for router {router_id}"):
        _clear_sent(router_id)


def _sent_key(router_id: int) -> str:
    return f"ispops:router-jobs-sent:{connection.schema_name}:{router_id}"


def _clear_sent(router_id: int) -> None:
    with suppress(redis.RedisError):
        _redis().delete(_sent_key(router_id))


_redis_client = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    return _redis_client


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
    """Apply the router's due jobs over one (pooled) connection.

    One worker at a time holds a router (an advisory lock). The holder keeps claiming
    until no job is due; then it lets the lock go, clears the router's "sent" mark and
    looks once more. So a job committed while it ran, whose task found the lock taken and
    returned (or was never sent, the mark standing), is taken by the holder instead of
    waiting for the sweep. Every job is seen: its task was turned away by a holder, or
    skipped because of a mark that a task set, and that holder, or that task (holding
    the router, or turned away by a holder), clears the mark and looks after the job was
    committed. Claiming stays a conditional UPDATE, so no job is applied twice.
    """
    results: list[str] = []
    deadline = time.monotonic() + HOLD_ROUTER_SECONDS
    while True:
        with _router_lock(router_id) as got:
            if not got:
                return "; ".join(results) or "another worker has this router"
            while (result := _run_due(router_id, limit)) is not None:
                results.append(result)
                if time.monotonic() > deadline:
                    break
        _clear_sent(router_id)
        if not RouterJob.objects.due().filter(router_id=router_id).exists():
            break
        if time.monotonic() > deadline:
            # A router busy for this long is handed to a fresh task rather than held by
            # one for ever (a broker redelivers tasks that run past its timeout).
            send_router_jobs(router_id)
            break
    return "; ".join(results) or "nothing due"


def _run_due(router_id: int, limit: int) -> str | None:
    """Claim and apply one batch of the router's due jobs; None when none were due."""
    now = timezone.now()
    due = (
        RouterJob.objects.due(now)
        .filter(router_id=router_id)
        .order_by("created_at", "id")
        .values("id")[:limit]
    )
    due_sql, due_params = due.query.sql_with_params()
    table = connection.ops.quote_name(RouterJob._meta.db_table)
    # Claimed by one conditional UPDATE: a duplicate delivery finds nothing to claim,
    # and a restoration waits a statement less than a select then an update.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, started_at = %s, attempts = attempts + 1 "
            f"WHERE id IN ({due_sql}) AND state = ANY(%s) RETURNING id",
            [RouterJob.State.RUNNING, now, *due_params, list(RouterJob.DUE_STATES)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return None
    jobs = list(
        RouterJob.objects.filter(id__in=ids)
        .select_related("router", "service_account__plan", "service_account__customer", "plan")
        .order_by("created_at", "id")
    )
    return _apply_jobs(jobs[0].router, jobs)


def _apply_jobs(router, jobs) -> str:
    accounts = {j.service_account_id: j.service_account for j in jobs if j.service_account_id}
    plans = {j.plan for j in jobs if j.plan_id}
    for attempt in (1, 2):
        reused = False
        try:
            with routeros.pooled(router) as link:
                reused = link.reused
                session = provisioning.RouterSession(link.api, cache=link.cache)
                if plans:
                    # A plan's speeds changed: look at the router, whatever was checked.
                    provisioning.ensure_profiles(session, plans, recheck=True)
                outcomes, failures = _apply_isolating_failures(
                    session, list(accounts.values()), router.pk
                )
            break
        except routeros.RouterUnreachable as exc:
            if reused and attempt == 1:
                # The router may have dropped the pooled connection while it sat idle:
                # once more on a new one (applying is idempotent, so nothing doubles).
                log.info("router %s: pooled connection failed (%s); reconnecting", router, exc)
                continue
            _retry(jobs, str(exc))
            mark_router(router, online=False, error=str(exc))
            return f"router unavailable: {exc}"
        except routeros.RouterLoginFailed as exc:
            _retry(jobs, str(exc))
            mark_router(router, online=False, error=str(exc))
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
    _mark_done([j for j in jobs if j.state == RouterJob.State.DONE], finished)
    mark_router(router, online=True)
    return f"{len(jobs) - len(failures)} done, {len(failures)} refused"


def _mark_done(jobs, finished) -> None:
    """One UPDATE for the batch. (bulk_update writes a CASE per row and field, whose
    building costs seconds of Python for a thousand jobs: the next batch would wait.)"""
    if not jobs:
        return
    table = connection.ops.quote_name(RouterJob._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS j SET state = %s, finished_at = %s, last_error = '', "
            "result = v.result FROM unnest(%s::bigint[], %s::text[]) AS v(id, result) "
            "WHERE j.id = v.id",
            [RouterJob.State.DONE, finished, [j.id for j in jobs], [j.result for j in jobs]],
        )


# The router said no to something (librouteros traps are raised as they are inside a
# connection block; routeros turns them into RouterRefused only on the way out).
_REFUSALS = (routeros.RouterRefused, provisioning.NotApplied, TrapError, MultiTrapError)


def _apply_isolating_failures(session, accounts, router_id):
    """All accounts in one pass; if the router refuses something, again one by one so
    only the refused account's job waits."""
    try:
        return provisioning.apply_accounts(session, accounts, router_id), {}
    except _REFUSALS as exc:
        # What this connection believed (a profile in place) may be what went wrong.
        session.cache.clear()
        if len(accounts) == 1:
            return {}, {accounts[0].pk: str(exc)}
    outcomes, failures = {}, {}
    for account in accounts:
        try:
            outcomes.update(provisioning.apply_accounts(session, [account], router_id))
        except _REFUSALS as exc:
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


def mark_router(router, *, online: bool, error: str = "") -> None:
    """Record whether the router answered. A router seen online, without error, in the
    last SEEN_FRESH is left as it is: a burst of job batches needs no write each."""
    now = timezone.now()
    fields = {
        "status": Router.Status.ONLINE if online else Router.Status.OFFLINE,
        "last_error": error[:255],
    }
    if online:
        fields["last_seen_at"] = now
        seen = router.last_seen_at
        if (
            router.status == Router.Status.ONLINE
            and not router.last_error
            and seen is not None
            and now - seen < SEEN_FRESH
        ):
            return
    Router.objects.filter(pk=router.pk).update(**fields)
    for name, value in fields.items():
        setattr(router, name, value)


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
