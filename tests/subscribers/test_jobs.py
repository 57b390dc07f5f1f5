"""The technician's job pages: their own jobs only, start, complete."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.staff.models import Role, User
from subscribers import services
from subscribers.models import Installation, Plan

Stage = Installation.Stage


@pytest.fixture
def plan(alpha):
    with tenant_context(alpha.isp):
        return Plan.objects.create(
            name="Home 10M", price=Decimal("2500"), download_kbps=10_000, upload_kbps=10_000
        )


@pytest.fixture
def other_tech(alpha):
    with tenant_context(alpha.isp):
        return User.objects.create_user(
            "tech2@alpha.test", "x", role=Role.TECHNICIAN, full_name="Second Tech"
        )


def make_job(alpha, plan, *, name, technician, day=None, stage=Stage.EQUIPPED, gps=True):
    """An installation scheduled for `technician` on `day`, moved to `stage`."""
    actor = alpha.owner
    inst = services.create_lead(
        services.LeadDetails(
            name=name,
            phone="0712 345 678",
            plan=plan,
            address=f"{name}'s house, Ruiru",
            latitude=Decimal("-1.150000") if gps else None,
            longitude=Decimal("36.960000") if gps else None,
        ),
        actor=actor,
    )
    services.advance_installation(inst, Stage.SURVEY, actor=actor, note="Roof mount, 20 m")
    services.advance_installation(inst, Stage.QUOTED, actor=actor, quote_amount=Decimal("3000"))
    services.advance_installation(
        inst,
        Stage.SCHEDULED,
        actor=actor,
        technician=technician,
        scheduled_for=day or timezone.localdate(),
    )
    if stage in (Stage.EQUIPPED, Stage.INSTALLED):
        services.advance_installation(inst, Stage.EQUIPPED, actor=actor, serials="ONU-77 RTR-78")
    if stage == Stage.INSTALLED:
        services.complete_job(inst, actor=technician, notes="Done")
    return inst


def test_technician_sees_only_their_own_jobs(alpha, plan, other_tech):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        mine = make_job(alpha, plan, name="Mine Today", technician=alpha.technician)
        theirs = make_job(alpha, plan, name="Theirs Today", technician=other_tech)
        response = client.get("/jobs/")
        assert response.status_code == 200
        listed = [j.pk for s in response.context["sections"] for j in s["jobs"]]
        assert listed == [mine.pk]
        page = response.content.decode()
        assert "Mine Today" in page
        assert "Theirs Today" not in page

        assert client.get(f"/jobs/{mine.pk}/").status_code == 200
        assert client.get(f"/jobs/{theirs.pk}/").status_code == 404
        assert client.post(f"/jobs/{theirs.pk}/start/").status_code == 404
        done = client.post(f"/jobs/{theirs.pk}/complete/", {"notes": "x", "serials": "A1"})
        assert done.status_code == 404
        theirs.refresh_from_db()
        assert (theirs.stage, theirs.started_at) == (Stage.EQUIPPED, None)


def test_office_staff_cannot_open_a_job_not_given_to_them(alpha, plan):
    client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        job = make_job(alpha, plan, name="Tech's Job", technician=alpha.technician)
        assert client.get("/jobs/").status_code == 200
        assert client.get(f"/jobs/{job.pk}/").status_code == 404


def test_jobs_are_grouped_today_upcoming_overdue_and_done(alpha, plan):
    client = alpha.client(alpha.technician)
    today = timezone.localdate()
    tech = alpha.technician
    with tenant_context(alpha.isp):
        make_job(alpha, plan, name="For Today", technician=tech)
        make_job(alpha, plan, name="Next Week", technician=tech, day=today + timedelta(days=7))
        make_job(alpha, plan, name="Missed", technician=tech, day=today - timedelta(days=2))
        make_job(alpha, plan, name="Finished", technician=tech, stage=Stage.INSTALLED)
        response = client.get("/jobs/")
        sections = {
            s["title"]: [j.service_account.customer.name for j in s["jobs"]]
            for s in response.context["sections"]
        }
        assert sections == {
            "Today": ["For Today"],
            "Upcoming": ["Next Week"],
            "Overdue": ["Missed"],
            "Done today": ["Finished"],
        }


def test_job_cards_link_directions_and_phone(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        make_job(alpha, plan, name="With GPS", technician=alpha.technician)
        page = client.get("/jobs/").content.decode()
        assert "https://www.google.com/maps/dir/?api=1&amp;destination=-1.150000,36.960000" in page
        assert 'href="tel:+254712345678"' in page
        assert "Directions" in page


def test_directions_are_hidden_without_gps(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(alpha, plan, name="No GPS", technician=alpha.technician, gps=False)
        assert "Directions" not in client.get("/jobs/").content.decode()
        assert "Directions" not in client.get(f"/jobs/{job.pk}/").content.decode()


def test_job_page_shows_survey_notes_serials_and_a_tickets_section(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(alpha, plan, name="Detail", technician=alpha.technician)
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        assert "Roof mount, 20 m" in page
        assert "ONU-77" in page
        assert "RTR-78" in page
        assert ">Start</button>" in page
        assert 'id="tickets"' in page


def test_start_is_recorded_once(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(alpha, plan, name="Start Me", technician=alpha.technician)
        steps = job.steps.count()
        response = client.post(f"/jobs/{job.pk}/start/")
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.started_at is not None
        assert job.steps.count() == steps + 1
        assert job.steps.last().actor == alpha.technician
        client.post(f"/jobs/{job.pk}/start/")
        assert job.steps.count() == steps + 1
        assert ">Start</button>" not in client.get(f"/jobs/{job.pk}/").content.decode()


def test_completing_a_job_moves_the_lead_to_installed(alpha, plan):
    client = alpha.client(alpha.technician)
    office = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        job = make_job(alpha, plan, name="Complete Me", technician=alpha.technician)
        response = client.post(
            f"/jobs/{job.pk}/complete/", {"notes": "Mounted on the roof, -62 dBm", "serials": ""}
        )
        assert response.status_code == 302
        assert response["Location"] == "/jobs/"
        job.refresh_from_db()
        assert job.stage == Stage.INSTALLED
        assert job.completed_at is not None
        assert job.technician_notes == "Mounted on the roof, -62 dBm"
        last = job.steps.last()
        assert (last.stage, last.actor) == (Stage.INSTALLED, alpha.technician)
        # The office sees it in the Installed column.
        columns = {c["stage"]: c for c in office.get("/pipeline/").context["columns"]}
        assert [i.pk for i in columns[Stage.INSTALLED]["cards"]] == [job.pk]
        # And the technician sees it under Done today, with nothing left to press.
        sections = {s["key"]: s["jobs"] for s in client.get("/jobs/").context["sections"]}
        assert [j.pk for j in sections["done"]] == [job.pk]
        assert "Complete the job" not in client.get(f"/jobs/{job.pk}/").content.decode()


def test_completing_without_serials_when_none_were_allocated_is_refused(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(
            alpha, plan, name="No Kit", technician=alpha.technician, stage=Stage.SCHEDULED
        )
        response = client.post(f"/jobs/{job.pk}/complete/", {"notes": "Done", "serials": ""})
        assert response.status_code == 200
        assert "record the serial numbers of the equipment installed" in response.content.decode()
        job.refresh_from_db()
        assert job.stage == Stage.SCHEDULED
        assert job.started_at is None
        assert job.technician_notes == ""


def test_completing_a_scheduled_job_with_serials_records_the_equipment(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(
            alpha, plan, name="Kit On Site", technician=alpha.technician, stage=Stage.SCHEDULED
        )
        response = client.post(
            f"/jobs/{job.pk}/complete/", {"notes": "", "serials": "onu-1\nrtr-2, onu-1"}
        )
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.stage == Stage.INSTALLED
        assert job.equipment_serials == ["ONU-1", "RTR-2"]
        assert [s.stage for s in job.steps.all()][-2:] == [Stage.EQUIPPED, Stage.INSTALLED]


def test_completing_a_finished_job_again_is_refused(alpha, plan):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        job = make_job(
            alpha, plan, name="Twice", technician=alpha.technician, stage=Stage.INSTALLED
        )
        steps = job.steps.count()
        response = client.post(f"/jobs/{job.pk}/complete/", {"notes": "again", "serials": "X"})
        assert response.status_code == 400
        assert client.post(f"/jobs/{job.pk}/start/").status_code == 400
        job.refresh_from_db()
        assert job.steps.count() == steps
        assert job.technician_notes == "Done"


@pytest.mark.parametrize("path", ["/jobs/", "/jobs/1/"])
def test_finance_cannot_open_the_job_pages(alpha, path):
    assert alpha.client(alpha.finance).get(path).status_code == 403


def test_job_list_queries_do_not_grow_with_jobs(alpha, plan, django_assert_max_num_queries):
    client = alpha.client(alpha.technician)
    with tenant_context(alpha.isp):
        for i in range(8):
            make_job(alpha, plan, name=f"Job {i}", technician=alpha.technician)
        client.get("/jobs/")
        with django_assert_max_num_queries(6):
            assert client.get("/jobs/").status_code == 200
