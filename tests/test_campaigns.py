"""Campaigns to a saved filter of the subscribers list: the preview's counts and sample
text, opt-outs respected, each recipient claimed once (a retried task sends nobody
twice), branch limits, and the pages."""

import itertools
from types import SimpleNamespace

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.messaging import campaigns, preferences
from ispops.messaging.models import Campaign, CampaignRecipient, Message
from ispops.staff.models import Branch, Role
from subscribers import services
from subscribers.models import Customer, Plan
from tests.probe_world import limited_user

_n = itertools.count(1)


def _customer(plan, branch, name=None):
    n = next(_n)
    customer = services.create_customer(
        actor="test", name=name or f"Camp Person {n}", phone=f"0744{n:06d}", branch=branch
    )
    services.create_service_account(
        actor="test", customer=customer, plan=plan, username=f"camp{n}", password="pw"
    )
    return customer


@pytest.fixture
def world(alpha):
    """Alpha: five customers on plan "Camp" in branch 0 (one opted out of reminders by
    SMS, one with no phone), two in another branch on the same plan."""
    with tenant_context(alpha.isp):
        home = Branch.objects.get(code="alpha-0")
        away = Branch.objects.create(name="Camp away", code="camp-away")
        plan = Plan.objects.create(
            name="Camp", price="1000.00", download_kbps=5000, upload_kbps=5000
        )
        mine = [_customer(plan, home, name=f"Wanjiru Camp{i}") for i in range(5)]
        theirs = [_customer(plan, away) for _ in range(2)]
        preferences.set_preferences(mine[1], {(preferences.REMINDERS, "sms"): False}, actor="test")
        Customer.objects.filter(pk=mine[2].pk).update(phone="")
        limited = limited_user(Role.SUPPORT, home)
    connection.set_schema_to_public()
    return SimpleNamespace(
        alpha=alpha, home=home, away=away, plan=plan, mine=mine, theirs=theirs, limited=limited
    )


def _campaign(world, user, filters, kind=preferences.REMINDERS, body=None):
    return campaigns.create(
        actor=user,
        name="Maintenance",
        channel="sms",
        kind=kind,
        subject="",
        body=body or "Hi {{ customer.first_name }}, pay {{ isp_name }} via {{ customer.account }}",
        filters=filters,
    )


def test_the_preview_counts_recipients_opt_outs_and_renders_a_sample(world):
    with tenant_context(world.alpha.isp):
        campaign = _campaign(
            world, world.alpha.owner, {"plan": str(world.plan.pk), "branch": str(world.home.pk)}
        )
        preview = campaigns.preview(campaign)
        assert (preview.matching, preview.refused, preview.no_address) == (5, 1, 1)
        assert preview.recipients == 3
        first = world.mine[0]
        assert preview.body == f"Hi Wanjiru, pay Alpha Net via {first.account}"


def test_a_campaign_sends_each_recipient_once_and_honours_the_opt_out(world):
    with tenant_context(world.alpha.isp):
        campaign = _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
        assert campaigns.start(campaign, actor=world.alpha.owner)
        assert not campaigns.start(campaign, actor=world.alpha.owner)  # once
        campaigns.send(campaign.pk)
        campaigns.send(campaign.pk)  # a retried task
        Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.SENDING)
        campaigns.send(campaign.pk)  # even one that finds it "sending" again
        messages = Message.objects.filter(related=campaign.related)
        assert messages.count() == 6  # 7 on the plan, one with no phone
        per_customer = messages.values_list("customer_id", flat=True)
        assert len(set(per_customer)) == 6
        opted_out = messages.get(customer=world.mine[1])
        assert opted_out.state == Message.State.SKIPPED
        assert messages.filter(state=Message.State.QUEUED).count() == 5
        progress = campaigns.progress(Campaign.objects.get(pk=campaign.pk))
        assert progress["skipped"] == 1 and progress["no_address"] == 1
        assert progress["recipients"] == 7 and progress["pending"] == 0
        assert CampaignRecipient.objects.filter(campaign=campaign).count() == 7


def test_offers_go_only_to_customers_who_said_yes(world):
    with tenant_context(world.alpha.isp):
        preferences.set_preferences(
            world.mine[0], {(preferences.MARKETING, "sms"): True}, actor="test"
        )
        campaign = _campaign(
            world, world.alpha.owner, {"plan": str(world.plan.pk)}, kind=preferences.MARKETING
        )
        assert campaigns.preview(campaign).recipients == 1
        campaigns.start(campaign, actor="test")
        campaigns.send(campaign.pk)
        queued = Message.objects.filter(related=campaign.related, state=Message.State.QUEUED)
        assert list(queued.values_list("customer_id", flat=True)) == [world.mine[0].pk]


def test_a_branch_limited_campaign_reaches_only_their_branch(world):
    with tenant_context(world.alpha.isp):
        everyone = [c.pk for c in world.mine + world.theirs]
        campaign = _campaign(world, world.limited, {"ids": everyone}, kind="service")
        campaigns.start(campaign, actor=world.limited)
        campaigns.send(campaign.pk)
        reached = set(
            Message.objects.filter(related=campaign.related).values_list("customer_id", flat=True)
        )
        assert reached and reached <= {c.pk for c in world.mine}
        with pytest.raises(campaigns.CampaignError):
            campaigns.audience({"branch": str(world.away.pk)}, world.limited)


def test_the_pages_preview_send_and_show_progress(world):
    client = world.alpha.client(world.alpha.support)
    new = client.get("/messages/campaigns/new/", {"plan": world.plan.pk, "overdue": ""})
    assert new.status_code == 200 and new.context["matching"] == 7
    created = client.post(
        "/messages/campaigns/new/",
        {
            "plan": world.plan.pk,
            "name": "Outage Sunday",
            "channel": "sms",
            "kind": "service",
            "body": "Dear {{ customer.name }}, no internet on Sunday 2-4 am.",
        },
    )
    assert created.status_code == 302
    page = client.get(created["Location"])
    html = page.content.decode()
    assert page.context["preview"].recipients == 6  # a service notice: no opt-outs
    assert "Dear Wanjiru Camp0, no internet on Sunday" in html
    sent = client.post(created["Location"] + "send/")
    assert sent.status_code == 302
    with tenant_context(world.alpha.isp):
        campaign = Campaign.objects.get(name="Outage Sunday")
        assert campaign.state == Campaign.State.SENDING
        campaigns.send(campaign.pk)
    progress = client.get(created["Location"], HTTP_HX_REQUEST="true")
    fragment = progress.content.decode()
    assert 'data-testid="written">6<' in fragment and 'data-testid="skipped">0<' in fragment
    assert "<html" not in fragment


def test_bad_filters_and_templates_are_clear_errors(world):
    client = world.alpha.client(world.limited)
    other = client.get("/messages/campaigns/new/", {"branch": world.away.pk})
    assert other.status_code == 400 and "branch" in other.content.decode()
    junk = client.get("/messages/campaigns/new/", {"ids": "1,two"})
    assert junk.status_code == 400
    broken = client.post(
        "/messages/campaigns/new/",
        {"name": "x", "channel": "sms", "kind": "service", "body": "{% if %}"},
    )
    assert broken.status_code == 400 and "template error" in broken.content.decode()
    wrong_kind = client.post(
        "/messages/campaigns/new/",
        {"name": "x", "channel": "sms", "kind": "money", "body": "hi"},
    )
    assert wrong_kind.status_code == 400


def test_who_may_see_and_send_campaigns(world):
    with tenant_context(world.alpha.isp):
        campaign = _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
    assert world.alpha.client(world.alpha.technician).get("/messages/campaigns/").status_code == 403
    # A branch-limited clerk does not see (or send) a campaign made by someone else.
    limited = world.alpha.client(world.limited)
    assert limited.get(f"/messages/campaigns/{campaign.pk}/").status_code == 404
    assert limited.post(f"/messages/campaigns/{campaign.pk}/send/").status_code == 404
    assert world.alpha.client(world.alpha.owner).get("/messages/campaigns/").status_code == 200


def test_a_campaign_whose_task_was_lost_is_handed_to_a_worker_again(world):
    from datetime import timedelta

    from django.utils import timezone

    with tenant_context(world.alpha.isp):
        lost = _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
        fresh = _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
        done = _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
        for campaign in (lost, fresh, done):
            campaigns.start(campaign, actor="test")
        campaigns.send(done.pk)
        old = timezone.now() - timedelta(minutes=11)
        Campaign.objects.filter(pk__in=[lost.pk, done.pk]).update(started_at=old)
        assert campaigns.resume_stalled() == [lost.pk]
        # Sent by the worker it was handed to, it is no longer stalled.
        campaigns.send(lost.pk)
        assert campaigns.resume_stalled() == []
        assert Campaign.objects.get(pk=lost.pk).state == Campaign.State.DONE


def test_an_email_campaign_skips_customers_with_no_address(world):
    with tenant_context(world.alpha.isp):
        Customer.objects.filter(pk=world.mine[0].pk).update(email="wanjiru@example.com")
        campaign = campaigns.create(
            actor=world.alpha.owner,
            name="Newsletter",
            channel="email",
            kind="service",
            subject="News from {{ isp_name }}",
            body="Dear {{ customer.name }}",
            filters={"plan": str(world.plan.pk)},
        )
        preview = campaigns.preview(campaign)
        assert (preview.recipients, preview.no_address) == (1, 6)
        assert preview.subject == "News from Alpha Net"
        campaigns.start(campaign, actor="test")
        campaigns.send(campaign.pk)
        (message,) = Message.objects.filter(related=campaign.related)
        assert (message.to, message.subject) == ("wanjiru@example.com", "News from Alpha Net")
        notes = set(
            CampaignRecipient.objects.filter(campaign=campaign, state="skipped").values_list(
                "note", flat=True
            )
        )
        assert notes == {"no email address"}
        with pytest.raises(campaigns.CampaignError):
            campaigns.update(
                campaign,
                actor="test",
                name="x",
                channel="sms",
                kind="service",
                subject="",
                body="y",
            )


def test_the_campaign_list_is_a_responsive_list_of_the_readers_campaigns(world):
    with tenant_context(world.alpha.isp):
        mine = _campaign(world, world.limited, {"ids": [world.mine[0].pk]})
        _campaign(world, world.alpha.owner, {"plan": str(world.plan.pk)})
    response = world.alpha.client(world.limited).get("/messages/campaigns/")
    html = response.content.decode()
    assert 'class="list-wrap' in html and "table-wrap" not in html
    assert [c.pk for c in response.context["page"]] == [mine.pk]
    assert f'href="/messages/campaigns/{mine.pk}/"' in html
    owner = world.alpha.client(world.alpha.owner).get("/messages/campaigns/")
    assert len(owner.context["page"]) == 2
