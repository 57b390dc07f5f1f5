"""The pipeline board shows every lead of a stage when asked: a crowded column links to
itself shown whole (?all=STAGE), keeping the board's filters; a bad stage is a 400."""

import pytest
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, Role
from subscribers import services
from subscribers.models import Installation, Plan
from subscribers.views.pipeline import COLUMN_LIMIT

Stage = Installation.Stage


@pytest.fixture
def owner(alpha):
    return alpha.client(alpha.people[Role.OWNER])


@pytest.fixture
def crowd(alpha):
    """COLUMN_LIMIT + 5 leads in the first stage, and one in survey."""
    with tenant_context(alpha.isp):
        plan = Plan.objects.create(name="Home 5M", price=1500, download_kbps=5000, upload_kbps=2000)
        branch = Branch.objects.create(name="Crowded", code="alpha-crowd")
        for i in range(COLUMN_LIMIT + 5):
            services.create_lead(
                services.LeadDetails(
                    name=f"Queue {i:03}", phone="0712 000 111", plan=plan, branch=branch
                ),
                actor=alpha.owner,
            )
        surveyed = services.create_lead(
            services.LeadDetails(name="Surveyed One", phone="0712 000 222", plan=plan),
            actor=alpha.owner,
        )
        services.advance_installation(surveyed, Stage.SURVEY, actor=alpha.owner, note="ok")
        return branch


def column(response, stage):
    (found,) = [c for c in response.context["columns"] if c["stage"] == stage]
    return found


def test_a_crowded_column_links_to_all_its_leads(alpha, owner, crowd):
    with tenant_context(alpha.isp):
        response = owner.get("/pipeline/")
        lead = column(response, Stage.LEAD)
        assert len(lead["cards"]) == COLUMN_LIMIT
        page = response.content.decode()
        assert f"Show all {COLUMN_LIMIT + 5}" in page
        assert 'href="?all=lead#col-lead"' in page

        response = owner.get("/pipeline/", {"all": "lead"})
        lead = column(response, Stage.LEAD)
        assert len(lead["cards"]) == COLUMN_LIMIT + 5 and lead["more"] == 0
        page = response.content.decode()
        assert all(f"Queue {i:03}" in page for i in range(COLUMN_LIMIT + 5))
        assert "Surveyed One" in page  # the other stages are still there


def test_every_stage_is_named_with_its_count_at_the_top(alpha, owner, crowd):
    with tenant_context(alpha.isp):
        page = owner.get("/pipeline/").content.decode()
    strip = page.split('class="board-stages"', 1)[1].split("</ul>", 1)[0]
    for stage in services.STAGE_ORDER:
        assert f'href="#col-{stage}"' in strip
    assert f"Lead <strong>{COLUMN_LIMIT + 5}</strong>" in strip
    assert "Site survey <strong>1</strong>" in strip


def test_show_all_keeps_the_boards_filters(alpha, owner, crowd):
    with tenant_context(alpha.isp):
        page = owner.get("/pipeline/", {"branch": crowd.pk}).content.decode()
    assert f'href="?branch={crowd.pk}&amp;all=lead#col-lead"' in page


def test_a_stage_that_does_not_exist_is_a_400(alpha, owner):
    with tenant_context(alpha.isp):
        response = owner.get("/pipeline/", {"all": "nonsense"})
    assert response.status_code == 400
    assert b"stage" in response.content


def test_the_board_answers_for_a_technician_with_403(alpha):
    client = alpha.client(alpha.people[Role.TECHNICIAN])
    with tenant_context(alpha.isp):
        assert client.get("/pipeline/", {"all": "lead"}).status_code == 403
