"""The lead-to-activation pipeline pages: the board, a new lead, one lead and its moves."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.messaging.models import Message
from ispops.staff.models import Branch, Role, User
from subscribers import services
from subscribers.models import Installation, InstallationStep, Plan, ServiceIntent
from subscribers.views.pipeline import COLUMN_LIMIT

Stage = Installation.Stage


@pytest.fixture
def clients(alpha):
    """A logged-in client per role (made before the test enters alpha's schema)."""
    return {role: alpha.client(user) for role, user in alpha.people.items()}


@pytest.fixture
def plan(alpha):
    with tenant_context(alpha.isp):
        return Plan.objects.create(
            name="Home 10M", price=Decimal("2500"), download_kbps=10_000, upload_kbps=10_000
        )


def make_lead(alpha, plan, *, name="Wanjiru Kamau", stage=Stage.LEAD, technician=None, **extra):
    """A lead moved through the service to `stage` (call inside alpha's schema)."""
    actor = alpha.owner
    inst = services.create_lead(
        services.LeadDetails(name=name, phone="0712 345 678", plan=plan, **extra), actor=actor
    )
    if stage == Stage.CANCELLED:
        return services.advance_installation(inst, stage, actor=actor, note="Changed mind")
    for to in services.STAGE_ORDER[1 : services.STAGE_ORDER.index(stage) + 1]:
        services.advance_installation(
            inst,
            to,
            actor=actor,
            quote_amount=Decimal("3500"),
            technician=technician or alpha.technician,
            scheduled_for=timezone.localdate(),
            serials=["ONU-1", "RTR-1"],
        )
    return inst


def advance(client, inst, to, **fields):
    return client.post(f"/pipeline/{inst.pk}/advance/", {"to": to, **fields})


# --- moving a lead ---------------------------------------------------------------------


def test_each_stage_is_recorded_with_who_and_when(alpha, clients, plan):
    owner = clients[Role.OWNER]
    today = timezone.localdate().isoformat()
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan)
        steps = [
            (Stage.SURVEY, {"note": "Roof mount, 30 m cable"}),
            (Stage.QUOTED, {"quote_amount": "4500"}),
            (Stage.SCHEDULED, {"technician": alpha.technician.pk, "scheduled_for": today}),
            (Stage.EQUIPPED, {"serials": "onu-123, RTR-9\nonu-123"}),
            (Stage.INSTALLED, {"note": "Done by the office"}),
            (Stage.ACTIVATED, {"note": ""}),
            (Stage.CONFIRMED, {"note": "Streaming fine"}),
        ]
        for to, fields in steps:
            response = advance(owner, inst, to, **fields)
            assert response.status_code == 302, (to, response.content[:2000])
            assert response["Location"] == f"/pipeline/{inst.pk}/"
            inst.refresh_from_db()
            assert inst.stage == to

        recorded = list(InstallationStep.objects.filter(installation=inst).order_by("at", "id"))
        assert [s.stage for s in recorded] == services.STAGE_ORDER
        for step in recorded[1:]:
            assert step.actor == alpha.owner
            assert step.actor_label == alpha.owner.email
            assert step.at is not None
        assert inst.survey_notes == "Roof mount, 30 m cable"
        assert inst.quote_amount == Decimal("4500")
        assert inst.technician == alpha.technician
        assert inst.equipment_serials == ["ONU-123", "RTR-9"]
        assert inst.service_account.status == "active"

        page = owner.get(f"/pipeline/{inst.pk}/").content.decode()
        assert "Customer confirmed" in page
        assert "Streaming fine" in page


def test_skipping_a_stage_is_refused_with_400_and_changes_nothing(alpha, clients, plan):
    owner = clients[Role.OWNER]
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.SURVEY)
        before = inst.steps.count()
        response = advance(
            owner,
            inst,
            Stage.SCHEDULED,
            technician=alpha.technician.pk,
            scheduled_for=timezone.localdate().isoformat(),
        )
        assert response.status_code == 400
        assert "next is Quotation approved" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.SURVEY
        assert inst.technician is None
        assert inst.steps.count() == before


def test_activating_a_survey_is_refused_with_the_reason(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.SURVEY)
        response = advance(clients[Role.OWNER], inst, Stage.ACTIVATED)
        assert response.status_code == 400
        assert "cannot go from Site survey to Activated" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.SURVEY
        assert not ServiceIntent.objects.filter(service_account=inst.service_account).exists()


def test_activating_before_installed_is_refused(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.EQUIPPED)
        response = advance(clients[Role.OWNER], inst, Stage.ACTIVATED, note="Go")
        assert response.status_code == 400
        inst.refresh_from_db()
        assert inst.stage == Stage.EQUIPPED
        assert inst.service_account.status == "installing"
        assert not ServiceIntent.objects.filter(service_account=inst.service_account).exists()


def test_cancelling_after_activation_is_refused(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.ACTIVATED)
        steps = inst.steps.count()
        response = clients[Role.OWNER].post(
            f"/pipeline/{inst.pk}/cancel/", {"reason": "Customer moved"}
        )
        assert response.status_code == 400
        assert "terminated, not cancelled" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.ACTIVATED
        assert inst.service_account.status == "active"
        assert inst.steps.count() == steps


def test_cancelling_needs_a_reason_and_keeps_it(alpha, clients, plan):
    owner = clients[Role.OWNER]
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.QUOTED)
        response = owner.post(f"/pipeline/{inst.pk}/cancel/", {"reason": ""})
        assert response.status_code == 200
        assert "This field is required" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.QUOTED

        response = owner.post(f"/pipeline/{inst.pk}/cancel/", {"reason": "Too expensive"})
        assert response.status_code == 302
        inst.refresh_from_db()
        assert inst.stage == Stage.CANCELLED
        assert inst.service_account.status == "terminated"
        assert inst.steps.last().note == "Too expensive"
        # Nothing moves a cancelled lead any more.
        assert advance(owner, inst, Stage.SCHEDULED).status_code == 400


def test_a_quotation_needs_its_amount(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.SURVEY)
        response = advance(clients[Role.OWNER], inst, Stage.QUOTED, quote_amount="")
        assert response.status_code == 200
        assert "This field is required" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.SURVEY


def test_equipment_needs_serial_numbers(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.SCHEDULED)
        response = advance(clients[Role.OWNER], inst, Stage.EQUIPPED, serials=" , ")
        assert response.status_code == 200
        assert "list the serial numbers" in response.content.decode()
        inst.refresh_from_db()
        assert inst.stage == Stage.SCHEDULED


def test_scheduling_offers_only_active_technicians(alpha, clients, plan):
    with tenant_context(alpha.isp):
        gone = User.objects.create_user(
            "gone@alpha.test", "x", role=Role.TECHNICIAN, full_name="Gone Tech", is_active=False
        )
        inst = make_lead(alpha, plan, stage=Stage.QUOTED)
        page = clients[Role.OWNER].get(f"/pipeline/{inst.pk}/").content.decode()
        assert alpha.technician.full_name in page
        assert "Gone Tech" not in page
        assert alpha.support.full_name not in page
        response = advance(
            clients[Role.OWNER],
            inst,
            Stage.SCHEDULED,
            technician=gone.pk,
            scheduled_for=timezone.localdate().isoformat(),
        )
        assert response.status_code == 200
        inst.refresh_from_db()
        assert inst.stage == Stage.QUOTED


def test_activation_starts_billing_and_a_second_press_changes_nothing(alpha, clients, plan):
    owner = clients[Role.OWNER]
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.INSTALLED)
        response = advance(owner, inst, Stage.ACTIVATED, note="Signal good")
        assert response.status_code == 302
        account = inst.service_account
        account.refresh_from_db()
        assert account.status == "active"
        assert account.activated_at is not None
        # Billing started in the same transaction: a prepaid account's expiry clock runs.
        assert account.plan.billing == "prepaid" and account.expires_at is not None
        # alpha has no router, so none is asked; the page says so.
        assert not account.router_jobs.exists()

        # The welcome SMS, as a sign-up's "activate now" sends it: plan and login.
        (welcome,) = Message.objects.filter(customer=account.customer, template_key="welcome")
        assert account.username in welcome.body and plan.name in welcome.body

        # A second press (double click, stale tab) is refused and changes nothing.
        assert advance(owner, inst, Stage.ACTIVATED).status_code == 400
        assert account.status_changes.filter(to_status="active").count() == 1
        assert Message.objects.filter(template_key="welcome").count() == 1

        page = owner.get(f"/pipeline/{inst.pk}/").content.decode()
        assert "Prepaid" in page
        assert "No router serves this account" in page


def test_the_activate_step_says_what_activation_starts(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.INSTALLED)
        page = clients[Role.OWNER].get(f"/pipeline/{inst.pk}/").content.decode()
        assert "Activate service" in page
        assert "billing starts and the router is asked to provision" in page
        assert 'name="to" value="activated"' in page


def test_reschedule_changes_technician_and_date_and_is_recorded(alpha, clients, plan):
    tomorrow = timezone.localdate() + timedelta(days=1)
    with tenant_context(alpha.isp):
        other = User.objects.create_user(
            "tech2@alpha.test", "x", role=Role.TECHNICIAN, full_name="Second Tech"
        )
        inst = make_lead(alpha, plan, stage=Stage.EQUIPPED)
        response = clients[Role.SUPPORT].post(
            f"/pipeline/{inst.pk}/reschedule/",
            {"technician": other.pk, "scheduled_for": tomorrow.isoformat(), "note": "Rain"},
        )
        assert response.status_code == 302
        inst.refresh_from_db()
        assert (inst.technician, inst.scheduled_for, inst.stage) == (
            other,
            tomorrow,
            Stage.EQUIPPED,
        )
        assert inst.steps.last().note == "Rain"
        assert inst.steps.last().actor == alpha.support


def test_rescheduling_a_lead_not_yet_scheduled_is_refused(alpha, clients, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan, stage=Stage.SURVEY)
        response = clients[Role.OWNER].post(
            f"/pipeline/{inst.pk}/reschedule/",
            {"technician": alpha.technician.pk, "scheduled_for": "2030-01-01"},
        )
        assert response.status_code == 400
        inst.refresh_from_db()
        assert inst.technician is None


# --- a new lead ------------------------------------------------------------------------


def test_new_lead_is_created_and_shown(alpha, clients, plan):
    with tenant_context(alpha.isp):
        branch = Branch.objects.first()
        response = clients[Role.SUPPORT].post(
            "/pipeline/new/",
            {
                "name": "Achieng Otieno",
                "phone": "0722 000 111",
                "email": "",
                "address": "Kitengela, near the stage",
                "latitude": "-1.47",
                "longitude": "36.96",
                "plan": plan.pk,
                "branch": branch.pk,
                "source": "Walk-in",
            },
        )
        assert response.status_code == 302
        inst = Installation.objects.get(service_account__customer__name="Achieng Otieno")
        assert response["Location"] == f"/pipeline/{inst.pk}/"
        customer = inst.service_account.customer
        assert customer.phone == "254722000111"
        assert customer.branch == branch
        assert inst.stage == Stage.LEAD
        assert inst.source == "Walk-in"
        assert inst.steps.get().actor == alpha.support
        page = clients[Role.SUPPORT].get(response["Location"]).content.decode()
        assert "Achieng Otieno" in page
        assert "Next: Site survey" in page


def test_a_bad_phone_is_a_form_error(alpha, clients, plan):
    with tenant_context(alpha.isp):
        response = clients[Role.OWNER].post(
            "/pipeline/new/", {"name": "Bad Phone", "phone": "12345", "plan": plan.pk}
        )
        assert response.status_code == 200
        assert "not a" in response.content.decode()
        assert not Installation.objects.filter(service_account__customer__name="Bad Phone")


def test_new_lead_offers_only_active_plans(alpha, clients, plan):
    with tenant_context(alpha.isp):
        Plan.objects.create(
            name="Retired 2M", price=1, download_kbps=2000, upload_kbps=2000, is_active=False
        )
        page = clients[Role.OWNER].get("/pipeline/new/").content.decode()
        assert "Home 10M" in page
        assert "Retired 2M" not in page


# --- the board -------------------------------------------------------------------------


def test_board_shows_a_column_per_stage_and_leaves_out_old_and_cancelled(alpha, clients, plan):
    with tenant_context(alpha.isp):
        make_lead(alpha, plan, name="Fresh Lead")
        make_lead(alpha, plan, name="Gave Up", stage=Stage.CANCELLED)
        old = make_lead(alpha, plan, name="Long Happy", stage=Stage.CONFIRMED)
        make_lead(alpha, plan, name="Just Happy", stage=Stage.CONFIRMED)
        Installation.objects.filter(pk=old.pk).update(
            stage_since=timezone.now() - timedelta(days=15)
        )
        page = clients[Role.OWNER].get("/pipeline/").content.decode()
        for stage in services.STAGE_ORDER:
            assert f'data-stage="{stage}"' in page
        assert 'data-stage="cancelled"' not in page
        assert "Fresh Lead" in page
        assert "Just Happy" in page
        assert "Gave Up" not in page
        assert "Long Happy" not in page


def test_board_marks_leads_waiting_too_long(alpha, clients, plan):
    with tenant_context(alpha.isp):
        warn = make_lead(alpha, plan, name="Four Days", stage=Stage.SURVEY)
        bad = make_lead(alpha, plan, name="Ten Days", stage=Stage.QUOTED)
        now = timezone.now()
        Installation.objects.filter(pk=warn.pk).update(stage_since=now - timedelta(days=4))
        Installation.objects.filter(pk=bad.pk).update(stage_since=now - timedelta(days=10))
        response = clients[Role.OWNER].get("/pipeline/")
        columns = {c["stage"]: c for c in response.context["columns"]}
        (card,) = columns[Stage.SURVEY]["cards"]
        assert (card.waited, card.wait_level) == ("4 days", "warn")
        (card,) = columns[Stage.QUOTED]["cards"]
        assert (card.waited, card.wait_level) == ("10 days", "bad")
        page = response.content.decode()
        assert 'class="badge warn"' in page
        assert 'class="badge bad"' in page


def test_board_filters_by_branch_and_technician(alpha, clients, plan):
    with tenant_context(alpha.isp):
        east = Branch.objects.create(name="East", code="alpha-east")
        other = User.objects.create_user(
            "tech3@alpha.test", "x", role=Role.TECHNICIAN, full_name="Third Tech"
        )
        make_lead(alpha, plan, name="In East", branch=east)
        make_lead(alpha, plan, name="Mine Scheduled", stage=Stage.SCHEDULED)
        make_lead(alpha, plan, name="Theirs Scheduled", stage=Stage.SCHEDULED, technician=other)
        owner = clients[Role.OWNER]
        page = owner.get("/pipeline/", {"branch": east.pk}).content.decode()
        assert "In East" in page
        assert "Mine Scheduled" not in page
        page = owner.get("/pipeline/", {"technician": other.pk}).content.decode()
        assert "Theirs Scheduled" in page
        assert "Mine Scheduled" not in page
        assert "In East" not in page
        # htmx asks for the board alone.
        fragment = owner.get(
            "/pipeline/", {"technician": other.pk}, HTTP_HX_REQUEST="true"
        ).content.decode()
        assert fragment.lstrip().startswith('<div id="board"')
        assert "Theirs Scheduled" in fragment


def test_board_queries_are_bounded(alpha, clients, plan, django_assert_max_num_queries):
    owner = clients[Role.OWNER]
    with tenant_context(alpha.isp):
        branch = Branch.objects.first()
        stages = services.STAGE_ORDER
        for i in range(30):
            make_lead(
                alpha, plan, name=f"Lead {i:02}", stage=stages[i % len(stages)], branch=branch
            )
        owner.get("/pipeline/")  # warm caches (content types, session)
        with django_assert_max_num_queries(12):
            response = owner.get("/pipeline/")
        assert response.status_code == 200
        page = response.content.decode()
        assert all(f"Lead {i:02}" in page for i in range(30))


def test_a_crowded_column_shows_the_longest_waiting_and_counts_the_rest(alpha, clients, plan):
    with tenant_context(alpha.isp):
        leads = [make_lead(alpha, plan, name=f"Crowd {i:03}") for i in range(COLUMN_LIMIT + 2)]
        oldest = leads[-1]
        Installation.objects.filter(pk=oldest.pk).update(
            stage_since=timezone.now() - timedelta(days=2)
        )
        response = clients[Role.OWNER].get("/pipeline/")
        (column,) = [c for c in response.context["columns"] if c["stage"] == Stage.LEAD]
        assert len(column["cards"]) == COLUMN_LIMIT
        assert (column["total"], column["more"]) == (COLUMN_LIMIT + 2, 2)
        assert column["cards"][0].pk == oldest.pk
        assert "and 2 newer not shown" in response.content.decode()


def test_branch_limited_support_sees_only_their_branch(alpha, plan):
    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="Mine", code="alpha-mine")
        theirs = Branch.objects.create(name="Theirs", code="alpha-theirs")
        limited = User.objects.create_user(
            "limited@alpha.test", "x", role=Role.SUPPORT, full_name="Limited"
        )
        limited.branches.set([mine])
        visible = make_lead(alpha, plan, name="Near Lead", branch=mine)
        hidden = make_lead(alpha, plan, name="Far Lead", branch=theirs)
    client = alpha.client(limited)
    with tenant_context(alpha.isp):
        page = client.get("/pipeline/").content.decode()
        assert "Near Lead" in page
        assert "Far Lead" not in page
        assert client.get(f"/pipeline/{visible.pk}/").status_code == 200
        assert client.get(f"/pipeline/{hidden.pk}/").status_code == 404
        assert advance(client, hidden, Stage.SURVEY).status_code == 404
        hidden.refresh_from_db()
        assert hidden.stage == Stage.LEAD


# --- who may open it -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FINANCE, Role.TECHNICIAN])
def test_finance_and_technicians_cannot_open_the_pipeline(alpha, clients, plan, role):
    client = clients[role]
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan)
        assert client.get("/pipeline/").status_code == 403
        assert client.get("/pipeline/new/").status_code == 403
        assert client.get(f"/pipeline/{inst.pk}/").status_code == 403
        assert advance(client, inst, Stage.SURVEY).status_code == 403
        cancel = client.post(f"/pipeline/{inst.pk}/cancel/", {"reason": "x"})
        assert cancel.status_code == 403
        inst.refresh_from_db()
        assert inst.stage == Stage.LEAD


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.SUPPORT])
def test_office_staff_open_the_pipeline(clients, role):
    assert clients[role].get("/pipeline/").status_code == 200
    assert clients[role].get("/pipeline/new/").status_code == 200


def test_another_isps_lead_is_not_found(alpha, beta, plan):
    with tenant_context(alpha.isp):
        inst = make_lead(alpha, plan)
    client = beta.client(beta.owner)
    assert client.get(f"/pipeline/{inst.pk}/").status_code == 404
    assert client.post(f"/pipeline/{inst.pk}/advance/", {"to": "survey"}).status_code == 404
