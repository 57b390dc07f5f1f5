"""The imports page: upload a CSV, a worker task runs it, the page shows its progress and
its report. The task is called in-process: the test's transaction is invisible to a worker."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from ispops.staff.models import Role
from network import services as network_services
from subscribers.imports import import_plans
from subscribers.models import Customer, ImportJob, ServiceAccount, StatusChange
from subscribers.tasks import run_import
from tests.subscribers import csvdata


@pytest.fixture
def catalogue(alpha):
    with tenant_context(alpha.isp):
        assert import_plans(csvdata.plans_csv(), actor="test").ok
        network_services.add_router(
            actor="test",
            name=csvdata.ROUTER,
            host="127.0.0.1",
            port=8728,
            username="api",
            password="router-secret",
        )
    return alpha


def upload(client, text: str | bytes, *, kind="subscribers", dry_run=False, name="subs.csv"):
    data = text.encode() if isinstance(text, str) else text
    form = {"kind": kind, "file": SimpleUploadedFile(name, data, content_type="text/csv")}
    if dry_run:
        form["dry_run"] = "on"
    return client.post("/imports/", form)


def upload_and_run(alpha, client, capture, text, **kwargs) -> ImportJob:
    """Upload through the page, check the task was queued for after the commit, run it."""
    with capture(execute=False) as callbacks:
        response = upload(client, text, **kwargs)
    assert response.status_code == 302
    assert len(callbacks) == 1
    with tenant_context(alpha.isp):
        job = ImportJob.objects.latest("id")
        assert response["Location"] == f"/imports/{job.pk}/"
        assert job.state == ImportJob.State.PENDING
        run_import(job.id)
        job.refresh_from_db()
    return job


def test_owner_uploads_a_file_and_the_task_imports_it(
    catalogue, django_capture_on_commit_callbacks
):
    alpha = catalogue
    client = alpha.client(alpha.owner)

    job = upload_and_run(
        alpha, client, django_capture_on_commit_callbacks, csvdata.subscribers_csv(12)
    )

    assert job.state == ImportJob.State.DONE
    assert job.filename == "subs.csv"
    assert (job.total_rows, job.processed_rows, job.created_rows) == (12, 12, 12)
    assert job.percent == 100
    assert job.message == "imported 12 of 12 row(s)"
    assert job.finished_at is not None
    with tenant_context(alpha.isp):
        assert ServiceAccount.objects.filter(username__startswith="user000").count() == 12 - 1
        change = StatusChange.objects.get(service_account__customer__account=csvdata.account(0))
        assert change.actor == alpha.owner
    page = client.get(f"/imports/{job.pk}/")
    assert page.status_code == 200
    assert "Imported 12 of 12 row(s)." in page.content.decode()
    assert 'hx-trigger="every 1s"' not in page.content.decode()


def test_a_bad_upload_shows_every_bad_row_and_imports_nothing(
    catalogue, django_capture_on_commit_callbacks
):
    alpha = catalogue
    client = alpha.client(alpha.admin)
    rows = [
        csvdata.subscriber_row(0),
        csvdata.subscriber_row(1, plan="Gold"),
        csvdata.subscriber_row(2, phone="12"),
        csvdata.subscriber_row(3, account=csvdata.account(0)),
    ]
    with tenant_context(alpha.isp):
        before = Customer.objects.count()

    job = upload_and_run(
        alpha,
        client,
        django_capture_on_commit_callbacks,
        csvdata.to_csv(csvdata.SUBSCRIBERS_HEADER, rows),
    )

    assert job.state == ImportJob.State.FAILED
    assert [e["line"] for e in job.errors] == [3, 4, 5]
    assert job.created_rows == 0
    assert job.message == "3 bad row(s) in 4; nothing imported"
    with tenant_context(alpha.isp):
        assert Customer.objects.count() == before
    html = client.get(f"/imports/{job.pk}/").content.decode()
    assert "Nothing was imported" in html
    assert "upload the whole file again" in html
    line = '<td class="num" data-label="Line">{}</td><td class="long" data-label="Reason">{}</td>'
    assert line.format(3, "unknown plan &#x27;Gold&#x27;") in html
    assert line.format(5, "duplicate account IMP00000 (also on line 2)") in html
    assert "Download error report (CSV)" in html
    assert f'href="/imports/{job.pk}/errors.csv"' in html

    report = client.get(f"/imports/{job.pk}/errors.csv")

    assert report["Content-Type"].startswith("text/csv")
    assert 'filename="subs-errors.csv"' in report["Content-Disposition"]
    lines = report.content.decode().splitlines()
    assert lines[0] == "line,reason"
    assert lines[1] == "3,unknown plan 'Gold'"
    assert [line.split(",")[0] for line in lines[1:]] == ["3", "4", "5"]


def test_a_missing_column_upload_reports_line_1(catalogue, django_capture_on_commit_callbacks):
    alpha = catalogue
    job = upload_and_run(
        alpha,
        alpha.client(alpha.owner),
        django_capture_on_commit_callbacks,
        "account,name\nA1,Jane\n",
    )
    assert job.state == ImportJob.State.FAILED
    assert job.errors == [
        {
            "line": 1,
            "reason": "missing column(s): phone, email, plan, username, password, router, status",
        }
    ]


def test_a_dry_run_upload_counts_rows_and_writes_nothing(
    catalogue, django_capture_on_commit_callbacks
):
    alpha = catalogue
    client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        before = Customer.objects.count()

    job = upload_and_run(
        alpha, client, django_capture_on_commit_callbacks, csvdata.subscribers_csv(7), dry_run=True
    )

    assert job.state == ImportJob.State.DONE
    assert job.message == "would import 7 of 7 row(s)"
    with tenant_context(alpha.isp):
        assert Customer.objects.count() == before
    assert "nothing was written" in client.get(f"/imports/{job.pk}/").content.decode()


def test_plans_upload_imports_plans(alpha, django_capture_on_commit_callbacks):
    job = upload_and_run(
        alpha,
        alpha.client(alpha.owner),
        django_capture_on_commit_callbacks,
        csvdata.plans_csv(),
        kind="plans",
        name="plans.csv",
    )
    assert job.state == ImportJob.State.DONE
    assert job.message == "imported 3 of 3 row(s)"


def test_a_second_run_of_the_same_job_does_nothing(catalogue, django_capture_on_commit_callbacks):
    alpha = catalogue
    job = upload_and_run(
        alpha,
        alpha.client(alpha.owner),
        django_capture_on_commit_callbacks,
        csvdata.subscribers_csv(3),
    )
    with tenant_context(alpha.isp):
        customers = Customer.objects.count()
        job.state = ImportJob.State.RUNNING  # a duplicate delivery while it still runs
        ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.State.RUNNING)

        assert run_import(job.id) == "nothing to do"

        ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.State.DONE)
        assert run_import(job.id) == "nothing to do"
        assert Customer.objects.count() == customers
        finished = ImportJob.objects.get(pk=job.pk)
        assert finished.finished_at == job.finished_at
        assert finished.created_rows == 3


def test_an_unexpected_error_marks_the_job_failed_and_is_raised(alpha):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(kind="bogus", filename="x.csv", content="a\n")
        with pytest.raises(KeyError):
            run_import(job.id)
        job.refresh_from_db()
    assert job.state == ImportJob.State.FAILED
    assert job.message == "KeyError: 'bogus'"
    assert job.finished_at is not None
    html = alpha.client(alpha.owner).get(f"/imports/{job.pk}/").content.decode()
    assert "unexpected error" in html


def test_a_file_that_is_not_utf8_is_a_form_error(alpha, django_capture_on_commit_callbacks):
    with tenant_context(alpha.isp):
        before = ImportJob.objects.count()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(alpha.client(alpha.owner), "account,name\nA1,Jos\xe9\n".encode("cp1252"))
    assert response.status_code == 200
    assert "not UTF-8" in response.content.decode()
    assert callbacks == []
    with tenant_context(alpha.isp):
        assert ImportJob.objects.count() == before


def test_an_empty_file_is_a_form_error(alpha):
    response = upload(alpha.client(alpha.owner), b"")
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()


def test_a_file_over_20_mb_is_a_form_error(alpha):
    big = b"name,price\n" + b"x" * (20 * 1024 * 1024)
    response = upload(alpha.client(alpha.owner), big, kind="plans")
    assert response.status_code == 200
    assert "at most 20.0" in response.content.decode()


def test_htmx_polling_gets_only_the_progress_partial(alpha):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(
            kind="subscribers",
            filename="big.csv",
            content="x",
            state=ImportJob.State.RUNNING,
            total_rows=1000,
            processed_rows=500,
        )
    client = alpha.client(alpha.owner)

    partial = client.get(f"/imports/{job.pk}/", headers={"HX-Request": "true"})
    full = client.get(f"/imports/{job.pk}/")

    html = partial.content.decode()
    assert html.lstrip().startswith('<div id="import-progress"')
    assert "<html" not in html
    assert 'hx-trigger="every 1s"' in html
    assert f'hx-get="/imports/{job.pk}/"' in html
    assert '<progress max="1000" value="500">' in html
    assert "Checked 500 of 1000 rows (50%)" in html
    assert "<html" in full.content.decode()
    assert 'id="import-progress"' in full.content.decode()


def test_a_pending_job_says_it_waits_for_a_worker(alpha):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(kind="plans", filename="p.csv", content="x")
    html = alpha.client(alpha.owner).get(f"/imports/{job.pk}/").content.decode()
    assert "Waiting for a worker" in html
    assert 'hx-trigger="every 1s"' in html


def test_the_page_lists_recent_imports_and_the_expected_columns(alpha):
    with tenant_context(alpha.isp):
        for i in range(30):
            ImportJob.objects.create(kind="plans", filename=f"file-{i:02d}.csv", content="x")
    client = alpha.client(alpha.owner)

    html = client.get("/imports/").content.decode()

    assert "name,price,cycle,download,upload,service[,billing][,data_cap_gb]" in html
    assert "account,name,phone,email,plan,username,password,router,status[,expires]" in html
    assert 'enctype="multipart/form-data"' in html
    assert "file-29.csv" in html
    assert "file-00.csv" not in html
    assert "file-00.csv" in client.get("/imports/?page=2").content.decode()


@pytest.mark.parametrize("role", Role.values)
def test_only_owners_and_admins_may_use_the_import_pages(alpha, role):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(kind="plans", filename="p.csv", content="x")
    client = alpha.client(alpha.people[role])
    expected = 200 if role in (Role.OWNER, Role.ADMIN) else 403
    for url in ("/imports/", f"/imports/{job.pk}/", f"/imports/{job.pk}/errors.csv"):
        assert client.get(url).status_code == expected, url


def test_support_cannot_upload_a_file(alpha):
    with tenant_context(alpha.isp):
        before = ImportJob.objects.count()
    response = upload(alpha.client(alpha.support), csvdata.plans_csv(), kind="plans")
    assert response.status_code == 403
    with tenant_context(alpha.isp):
        assert ImportJob.objects.count() == before


def test_another_isps_owner_cannot_see_an_import(alpha, beta):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(kind="plans", filename="secret.csv", content="x")
    client = beta.client(beta.owner)
    assert client.get(f"/imports/{job.pk}/").status_code == 404
    assert client.get(f"/imports/{job.pk}/errors.csv").status_code == 404
    assert "secret.csv" not in client.get("/imports/").content.decode()


def test_formula_like_reasons_are_defused_in_the_csv_report(alpha):
    with tenant_context(alpha.isp):
        job = ImportJob.objects.create(
            kind="plans",
            filename="p.csv",
            content="x",
            state=ImportJob.State.FAILED,
            errors=[{"line": 2, "reason": "=HYPERLINK(1)"}],
        )
    body = alpha.client(alpha.owner).get(f"/imports/{job.pk}/errors.csv").content.decode()
    assert body.splitlines()[1] == "2,'=HYPERLINK(1)"
