"""Imports pages: upload a CSV of plans or subscribers, watch it run, read its report.

The upload only stores the file as an ImportJob; a worker (subscribers.tasks.run_import)
checks and writes it, updating the job's progress, which the detail page polls.
"""

import csv
from pathlib import PurePath

from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from ispops.lib import csvexport
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers.forms_imports import COLUMN_NOTES, COLUMNS, ImportForm
from subscribers.models import ImportJob
from subscribers.tasks import run_import

ERRORS_PER_PAGE = 500


def visible_imports(user):
    """Import jobs this manager may see: all of them, or for staff limited to some
    branches only their own (a job's rows and errors name customers of any branch)."""
    jobs = ImportJob.objects.select_related("created_by")
    return jobs if user.branch_ids() is None else jobs.filter(created_by=user)


def get_import_for(request, pk) -> ImportJob:
    """An import job this manager may see, without the file itself: the detail page is
    polled every second and never shows it."""
    return get_object_or_404(visible_imports(request.user).defer("content"), pk=pk)


@roles(Role.OWNER, Role.ADMIN)
def import_list(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        job = ImportJob.objects.create(
            kind=data["kind"],
            filename=PurePath(data["file"].name).name[:255],
            content=form.text,
            dry_run=data["dry_run"],
            created_by=request.user,
        )
        transaction.on_commit(lambda: run_import.delay(job.id))
        return redirect("subscribers:import_detail", pk=job.pk)
    jobs = visible_imports(request.user).defer("content", "errors")
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    columns = [
        {"label": label, "columns": COLUMNS[kind], "notes": COLUMN_NOTES[kind]}
        for kind, label in ImportJob.Kind.choices
    ]
    return render(
        request,
        "subscribers/imports/import_list.html",
        {"form": form, "page": page, "columns": columns},
    )


@roles(Role.OWNER, Role.ADMIN)
def import_detail(request, pk):
    job = get_import_for(request, pk)
    finished = job.state in (ImportJob.State.DONE, ImportJob.State.FAILED)
    page = Paginator(job.errors, ERRORS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"job": job, "finished": finished, "page": page}
    return render_partial(request, "subscribers/imports/import_detail.html", "progress", context)


@roles(Role.OWNER, Role.ADMIN)
def import_errors(request, pk):
    job = get_import_for(request, pk)
    stem = PurePath(job.filename).stem or "import"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_safe_name(stem)}-errors.csv"'
    writer = csv.writer(response)
    writer.writerow(["line", "reason"])
    for error in job.errors:
        writer.writerow([error["line"], csvexport.cell(error["reason"])])
    return response


def _safe_name(stem: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[:100]


urls = [
    path("imports/", import_list, name="import"),
    path("imports/<int:pk>/", import_detail, name="import_detail"),
    path("imports/<int:pk>/errors.csv", import_errors, name="import_errors"),
]
