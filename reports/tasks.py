"""Celery wrappers for reports; each runs in the schema of the ISP that queued it."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from reports import movement, snapshots, tasks_money, tasks_summary  # noqa: F401  registers their tasks


@shared_task
def nightly_snapshot() -> str:
    """Yesterday's snapshot (not estimated), then any day the beat missed (estimated),
    then the MRR movement of the last 12 months and weeks kept for the reports."""
    now = timezone.now()
    yesterday = timezone.localdate(now) - timedelta(days=1)
    snap = snapshots.take(yesterday, as_of=now)
    filled = snapshots.fill_missing(yesterday, as_of=now)
    movement.work_out_current(yesterday)
    return f"{snap.day}: {snap.services} services, MRR {snap.mrr}; {len(filled)} days filled"


@shared_task
def work_out_movement() -> str:
    """The last 12 months' and weeks' MRR movement kept under the ISP's present rules
    (after the rules change)."""
    last = movement.last_day(timezone.localdate())
    if last is None:
        return "no snapshot yet"
    movement.work_out_current(last)
    return f"movement worked out to {last}"
