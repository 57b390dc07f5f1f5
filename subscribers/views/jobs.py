"""The technician's pages, made for a phone: today's installation jobs and one job.

A technician sees only the installations assigned to them (another's job id is a 404,
whatever its branch); completing a job moves the lead to Installed, where the office
sees it on the pipeline.
"""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers import services
from subscribers.forms_pipeline import CompleteJobForm
from subscribers.models import Installation

Stage = Installation.Stage
# Technicians, and office staff who were given a job themselves.
FIELD = (Role.TECHNICIAN, Role.OWNER, Role.ADMIN, Role.SUPPORT)
_OPEN = {Stage.SCHEDULED, Stage.EQUIPPED}


def _with_details(installations):
    return installations.select_related("service_account__customer", "service_account__plan")


def get_job_for(request, pk) -> Installation:
    """An installation assigned to the requester, or 404 (never someone else's)."""
    return get_object_or_404(
        _with_details(Installation.objects.filter(technician=request.user)), pk=pk
    )


def group_jobs(jobs, today) -> list[dict]:
    """The job list's sections, in the order a technician reads them."""
    groups = {"today": [], "upcoming": [], "overdue": [], "done": []}
    for job in jobs:
        if job.stage == Stage.INSTALLED:
            groups["done"].append(job)
        elif job.scheduled_for is None or job.scheduled_for > today:
            groups["upcoming"].append(job)
        elif job.scheduled_for < today:
            groups["overdue"].append(job)
        else:
            groups["today"].append(job)
    return [
        {"key": "today", "title": "Today", "jobs": groups["today"]},
        {"key": "upcoming", "title": "Upcoming", "jobs": groups["upcoming"]},
        {"key": "overdue", "title": "Overdue", "jobs": groups["overdue"]},
        {"key": "done", "title": "Done today", "jobs": groups["done"]},
    ]


@roles(*FIELD)
@require_GET
def my_jobs(request):
    today = timezone.localdate()
    jobs = _with_details(services.jobs_for(request.user)).order_by("scheduled_for", "id")
    sections = group_jobs(jobs, today)
    return render(
        request,
        "subscribers/jobs/my_jobs.html",
        {"sections": sections, "today": today, "count": sum(len(s["jobs"]) for s in sections)},
    )


def _job_page(request, job, *, form=None, refusal="", status=200):
    if form is None and job.stage in _OPEN:
        form = CompleteJobForm()
    context = {
        "job": job,
        "customer": job.service_account.customer,
        "account": job.service_account,
        "form": form if job.stage in _OPEN else None,
        "can_start": job.stage in _OPEN and job.started_at is None,
        "refusal": refusal,
    }
    return render(request, "subscribers/jobs/job.html", context, status=status)


@roles(*FIELD)
@require_GET
def job(request, pk):
    return _job_page(request, get_job_for(request, pk))


@roles(*FIELD)
@require_POST
def job_start(request, pk):
    job = get_job_for(request, pk)
    try:
        services.start_job(job, actor=request.user)
    except services.SubscriberError as exc:
        return _job_page(request, job, refusal=str(exc), status=400)
    messages.success(request, "Job started.")
    return redirect("subscribers:job", pk=job.pk)


@roles(*FIELD)
@require_POST
def job_complete(request, pk):
    job = get_job_for(request, pk)
    form = CompleteJobForm(request.POST)
    if job.stage not in _OPEN:
        return _job_page(request, job, refusal="this job is not waiting to be done", status=400)
    if not form.is_valid():
        return _job_page(request, job, form=form)
    try:
        services.complete_job(
            job,
            actor=request.user,
            notes=form.cleaned_data["notes"].strip(),
            serials=form.cleaned_data["serials"],
        )
    except services.IllegalTransition as exc:
        return _job_page(request, job, refusal=str(exc), status=400)
    except services.SubscriberError as exc:
        form.add_error(None, str(exc))
        return _job_page(request, job, form=form)
    messages.success(request, f"Installed for {job.service_account.customer.name}. Well done.")
    return redirect("subscribers:my_jobs")


urls = [
    path("jobs/", my_jobs, name="my_jobs"),
    path("jobs/<int:pk>/", job, name="job"),
    path("jobs/<int:pk>/start/", job_start, name="job_start"),
    path("jobs/<int:pk>/complete/", job_complete, name="job_complete"),
]
