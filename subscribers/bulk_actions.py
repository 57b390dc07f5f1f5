"""Bulk actions on the subscribers list (views.bulk): what an action will do to the chosen
customers (plan_bulk), one item done through the one-account services (apply_bulk_item),
and the job a worker runs item by item, each claimed once (start_bulk_job, run_bulk_job;
kept in Redis for its progress page). Sending a message to them is a campaign
(ispops.messaging.campaigns)."""

import json
import re
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ispops import audit
from ispops.staff.models import Branch, User
from subscribers import services
from subscribers.models import Customer, Plan, ServiceAccount

Status = ServiceAccount.Status


class Bulk:
    """What a bulk action on the subscribers list does (views.bulk); sending a message to
    the chosen customers is a campaign (ispops.messaging.campaigns)."""

    SUSPEND = "suspend"
    PLAN = "plan"
    BRANCH = "branch"
    ACTIONS = (SUSPEND, PLAN, BRANCH)


@dataclass
class BulkPlan:
    """What a bulk action will do to the chosen customers, before it runs: the ids it
    acts on (service accounts, or customers for a branch move) and, by reason, how many
    it leaves alone."""

    action: str
    customers: int
    items: list[int]
    skipped: dict[str, int]
    target: str = ""

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())

    def sentence(self) -> str:
        n = len(self.items)
        s = "" if n == 1 else "s"
        what = {
            Bulk.SUSPEND: f"Suspend {n} active account{s}",
            Bulk.PLAN: f"Move {n} account{s} to {self.target}",
            Bulk.BRANCH: f"Move {n} customer{s} to {self.target}",
        }[self.action]
        parts = [what]
        for reason, count in self.skipped.items():
            parts.append(f"{count} {reason} {'is' if count == 1 else 'are'} skipped")
        return "; ".join(parts) + "."


def plan_bulk(customers, action: str, *, plan=None, branch=None) -> BulkPlan:
    """What `action` would do to `customers` (a queryset the caller has limited to the
    user's branches): one query."""
    count = customers.count()
    if action == Bulk.SUSPEND:
        rows = ServiceAccount.objects.filter(customer__in=customers).values_list("id", "status")
        items = sorted(pk for pk, status in rows if status == Status.ACTIVE)
        skipped: dict[str, int] = {}
        for _, status in rows:
            if status == Status.ACTIVE:
                continue
            reason = {
                Status.SUSPENDED: "already suspended",
                Status.TERMINATED: "terminated",
            }.get(status, "not active yet")
            skipped[reason] = skipped.get(reason, 0) + 1
        return BulkPlan(action, count, items, skipped)
    if action == Bulk.PLAN:
        if plan is None:
            raise services.SubscriberError("choose the plan to move them to")
        rows = (
            ServiceAccount.objects.filter(customer__in=customers)
            .exclude(status=Status.TERMINATED)
            .values_list("id", "plan_id")
        )
        items = sorted(pk for pk, plan_id in rows if plan_id != plan.pk)
        same = len(rows) - len(items)
        skipped = {f"already on {plan.name}": same} if same else {}
        return BulkPlan(action, count, items, skipped, target=plan.name)
    if action == Bulk.BRANCH:
        if branch is None:
            raise services.SubscriberError("choose the branch to move them to")
        rows = customers.values_list("id", "branch_id")
        items = sorted(pk for pk, branch_id in rows if branch_id != branch.pk)
        same = len(rows) - len(items)
        skipped = {f"already in {branch.name}": same} if same else {}
        return BulkPlan(action, count, items, skipped, target=branch.name)
    raise services.SubscriberError(f"unknown bulk action {action!r}")


def apply_bulk_item(
    action: str, item_id: int, *, actor, reason: str, plan=None, branch=None, allowed=None
) -> str:
    """Do `action` to one item of a BulkPlan, through the one-account services (status
    machine, plan change; audited with `reason`). Returns "done" or "skipped" (already
    so, or moved on meanwhile: a second run of the same action changes nothing);
    raises SubscriberError when the service refuses. `allowed`: the customers the
    actor may touch (checked again here, at the time of the change)."""
    reason = (reason or "").strip()
    if not reason:
        raise services.SubscriberError("say why")
    if action == Bulk.BRANCH:
        customers = allowed if allowed is not None else Customer.objects.all()
        customer = customers.filter(pk=item_id).first()
        if customer is None:
            return "skipped"
        if customer.branch_id == branch.pk:
            return "skipped"
        with transaction.atomic(), audit.acting_as(actor):
            before = customer.branch.name if customer.branch_id else ""
            services.update_customer(customer, actor=actor, branch=branch)
            audit.record(customer, "update", {"branch": [before, branch.name], "reason": reason})
        return "done"
    accounts = ServiceAccount.objects.select_related("customer", "plan")
    if allowed is not None:
        accounts = accounts.filter(customer__in=allowed)
    account = accounts.filter(pk=item_id).first()
    if account is None:
        return "skipped"
    if action == Bulk.SUSPEND:
        if account.status != Status.ACTIVE:
            return "skipped"
        try:
            services.change_status(
                account, Status.SUSPENDED, actor=actor, reason=reason, suspension="soft"
            )
        except services.IllegalTransition:
            return "skipped"  # moved meanwhile (a payment, another run)
        return "done"
    if action == Bulk.PLAN:
        if account.status == Status.TERMINATED or account.plan_id == plan.pk:
            return "skipped"
        with transaction.atomic(), audit.acting_as(actor):
            before = account.plan.name
            services.change_plan(account, plan, actor=actor)
            audit.record(account, "update", {"plan": [before, plan.name], "reason": reason})
        return "done"
    raise services.SubscriberError(f"unknown bulk action {action!r}")


# A bulk action's job lives in Redis (its spec, counters and the set of items claimed)
# for as long as anyone may look at its progress page.
BULK_JOB_TTL = 3 * 24 * 3600
BULK_ERRORS_KEPT = 50


def _bulk_redis():
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def _bulk_key(job_id: str) -> str:
    return f"ispops:bulk:{connection.schema_name}:{job_id}"


def start_bulk_job(plan: BulkPlan, *, actor, reason: str, plan_id=None, branch_id=None) -> str:
    """Write the job of a confirmed BulkPlan; returns its id (the caller hands it to a
    worker: tasks.run_bulk_job)."""
    reason = (reason or "").strip()
    if not reason:
        raise services.SubscriberError("say why")
    job_id = uuid.uuid4().hex
    key = _bulk_key(job_id)
    client = _bulk_redis()
    client.hset(
        key,
        mapping={
            "action": plan.action,
            "sentence": plan.sentence(),
            "actor_id": actor.pk,
            "reason": reason[:255],
            "plan_id": plan_id or "",
            "branch_id": branch_id or "",
            "items": json.dumps(plan.items),
            "total": len(plan.items),
            "done": 0,
            "skipped": 0,
            "failed": 0,
            "errors": "[]",
            "state": "queued",
            "started_at": timezone.now().isoformat(),
        },
    )
    client.expire(key, BULK_JOB_TTL)
    return job_id


def bulk_job(job_id: str) -> dict | None:
    """The job's progress as the page shows it; None if there is no such job (or it
    expired). Jobs are per ISP schema: another ISP's id finds nothing."""
    if not re.fullmatch(r"[0-9a-f]{32}", job_id or ""):
        return None
    data = _bulk_redis().hgetall(_bulk_key(job_id))
    if not data:
        return None
    for name in ("total", "done", "skipped", "failed"):
        data[name] = int(data[name])
    data["errors"] = json.loads(data["errors"])
    data["processed"] = data["done"] + data["skipped"] + data["failed"]
    data["finished"] = data["state"] == "finished"
    data["percent"] = round(100 * data["processed"] / data["total"]) if data["total"] else 100
    return data


def run_bulk_job(job_id: str) -> dict:
    """Do a bulk job's items, each claimed once (a Redis set): a duplicate or retried
    task skips every item a run already took, so nothing is done twice. Returns the
    job's counters."""
    key = _bulk_key(job_id)
    client = _bulk_redis()
    spec = client.hgetall(key)
    if not spec:
        return {}
    actor = User.objects.filter(pk=spec["actor_id"], is_active=True).first()
    if actor is None:
        client.hset(key, "state", "finished")
        return {}
    client.hset(key, "state", "running")
    allowed = Customer.objects.visible_to(actor)
    plan = Plan.objects.filter(pk=spec["plan_id"]).first() if spec["plan_id"] else None
    branch = None
    if spec["branch_id"]:
        branch = Branch.objects.visible_to(actor).filter(pk=spec["branch_id"]).first()
    for item_id in json.loads(spec["items"]):
        if not client.sadd(f"{key}:claimed", item_id):
            continue  # another run took it
        client.expire(f"{key}:claimed", BULK_JOB_TTL)
        try:
            if (spec["action"] == Bulk.PLAN and plan is None) or (
                spec["action"] == Bulk.BRANCH and branch is None
            ):
                raise services.SubscriberError("the plan or branch chosen is gone")
            outcome = apply_bulk_item(
                spec["action"],
                item_id,
                actor=actor,
                reason=spec["reason"],
                plan=plan,
                branch=branch,
                allowed=allowed,
            )
        except services.SubscriberError as exc:
            client.hincrby(key, "failed", 1)
            errors = json.loads(client.hget(key, "errors") or "[]")
            if len(errors) < BULK_ERRORS_KEPT:
                errors.append({"id": item_id, "error": str(exc)})
                client.hset(key, "errors", json.dumps(errors))
            continue
        client.hincrby(key, outcome, 1)
    job = bulk_job(job_id) or {}
    if job and job["processed"] >= job["total"]:
        client.hset(key, "state", "finished")
        job["state"], job["finished"] = "finished", True
    return job
