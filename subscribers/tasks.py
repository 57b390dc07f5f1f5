"""Worker side of the imports page: run an uploaded CSV through the import code."""

from celery import shared_task
from django.utils import timezone

from subscribers import bulk_actions
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import ImportJob

IMPORTERS = {
    ImportJob.Kind.PLANS: import_plans,
    ImportJob.Kind.SUBSCRIBERS: import_subscribers,
}


@shared_task
def run_import(job_id: int) -> str:
    # Claim: only a pending job is worked on, so a duplicate delivery does nothing.
    claimed = ImportJob.objects.filter(pk=job_id, state=ImportJob.State.PENDING).update(
        state=ImportJob.State.RUNNING
    )
    if claimed != 1:
        return "nothing to do"
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)

    def progress(done: int, total: int) -> None:
        # Called outside the import's write transaction while rows are checked, so each
        # update commits at once and the page's polling sees it.
        ImportJob.objects.filter(pk=job_id).update(processed_rows=done, total_rows=total)

    try:
        report = IMPORTERS[job.kind](
            job.content,
            actor=job.created_by or "import",
            dry_run=job.dry_run,
            progress=progress,
        )
    except Exception as exc:
        ImportJob.objects.filter(pk=job_id).update(
            state=ImportJob.State.FAILED,
            content="",
            message=f"{type(exc).__name__}: {exc}"[:255],
            finished_at=timezone.now(),
        )
        raise
    ImportJob.objects.filter(pk=job_id).update(
        state=ImportJob.State.DONE if report.ok else ImportJob.State.FAILED,
        # The file is read once; its passwords are not kept after the job.
        content="",
        total_rows=report.total,
        processed_rows=report.total,
        created_rows=report.created,
        errors=report.errors,
        message=report.summary()[:255],
        finished_at=timezone.now(),
    )
    return report.summary()


@shared_task
def run_bulk_job(job_id: str) -> dict:
    """A bulk action of the subscribers list (bulk_actions.run_bulk_job claims each item)."""
    return bulk_actions.run_bulk_job(job_id)
