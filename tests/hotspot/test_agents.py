"""Voucher agents: an agent sees only their own batches, cards, sales and ledger (another
agent's ids are a 404 that changes nothing), records sales, and is kept out of the ISP's
staff pages; staff give float, record payouts and set the commission per batch; the
ledger's balance is the sum of its rows."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from hotspot import agents, vouchers
from hotspot.models import AgentEntry, Voucher

State = Voucher.State


@pytest.fixture
def two_agents(in_alpha, make_batch, other_agent):
    """alpha.agent holds batch `mine` (10 % commission); other_agent holds `theirs`."""
    mine = make_batch(count=3, agent=in_alpha.agent, commission_percent=10, note="MINE-BATCH")
    theirs = make_batch(count=2, agent=other_agent, note="THEIRS-BATCH")
    mine.cards = list(mine.vouchers.order_by("id"))
    theirs.cards = list(theirs.vouchers.order_by("id"))
    connection.set_schema_to_public()
    return in_alpha, mine, theirs, theirs.cards[0].code


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


# --- the ledger ---------------------------------------------------------------------------


def test_cards_given_to_an_agent_are_charged_and_a_sale_earns_the_commission(in_alpha, make_batch):
    agent = in_alpha.agent
    agents.give_float(agent, "100", note="M-Pesa QWE123", actor=in_alpha.finance)
    batch = make_batch(count=5, agent=agent, commission_percent="12.5")
    assert agents.balance(agent) == Decimal("0.00")  # 100 float - 5 x 20
    vouchers.sell(batch.vouchers.first(), actor=agent)
    assert agents.balance(agent) == Decimal("2.50")
    agents.record_payout(agent, "2.50", actor=in_alpha.finance)
    assert agents.balance(agent) == Decimal("0.00")
    kinds = list(AgentEntry.objects.filter(agent=agent).values_list("kind", "amount"))
    assert sorted(kinds) == sorted(
        [
            ("float", Decimal("100.00")),
            ("cards", Decimal("-100.00")),
            ("commission", Decimal("2.50")),
            ("payout", Decimal("-2.50")),
        ]
    )


def test_cards_revoked_or_expired_unsold_go_back_off_the_agents_ledger(in_alpha, make_batch):
    agent = in_alpha.agent
    now = timezone.now()
    batch = make_batch(count=4, agent=agent, unsold_expire_at=now + timezone.timedelta(days=1))
    first, second, *_ = batch.vouchers.order_by("id")
    vouchers.sell(first, actor=agent)
    vouchers.revoke_voucher(second, actor=in_alpha.owner)
    assert agents.balance(agent) == Decimal("-60.00")
    import time_machine

    with time_machine.travel(now + timezone.timedelta(days=2), tick=False):
        assert vouchers.expire_unsold() == 2
    assert agents.balance(agent) == Decimal("-20.00")  # the one card sold


def test_a_batch_stays_with_its_agent(in_alpha, make_batch, other_agent):
    batch = make_batch(count=2, agent=in_alpha.agent)
    with pytest.raises(vouchers.VoucherError):
        vouchers.assign_batch(batch, other_agent, actor=in_alpha.owner)


def test_only_an_active_agent_takes_cards_or_float(in_alpha, make_batch):
    with pytest.raises(agents.AgentError):
        make_batch(count=1, agent=in_alpha.support)
    with pytest.raises(agents.AgentError):
        agents.give_float(in_alpha.technician, "10", actor=in_alpha.owner)
    with pytest.raises(agents.AgentError):
        agents.give_float(in_alpha.agent, "0", actor=in_alpha.owner)


def test_the_agents_list_sums_without_multiplying(in_alpha, make_batch):
    agent = in_alpha.agent
    agents.give_float(agent, "500", actor=in_alpha.owner)
    batch = make_batch(count=4, agent=agent)
    make_batch(count=3, agent=agent)
    vouchers.sell(batch.vouchers.first(), actor=agent)
    row = agents.with_figures(agents.agents()).get(pk=agent.pk)
    assert row.balance == Decimal("360.00") and row.held == 6 and row.sold == 1


# --- isolation ----------------------------------------------------------------------------


def test_an_agents_pages_show_only_their_own_batches(two_agents):
    alpha, mine, theirs, theirs_code = two_agents
    client = alpha.client(alpha.agent)
    for url in ("/", "/hotspot/my/", "/hotspot/batches/"):
        page = _page(client, url)
        assert f"#{mine.pk}" in page, url
        assert f"#{theirs.pk}" not in page and "THEIRS-BATCH" not in page, url
    detail = _page(client, f"/hotspot/batches/{mine.pk}/")
    assert theirs_code not in detail


def test_another_agents_ids_are_not_found_and_change_nothing(two_agents):
    alpha, _mine, theirs, _code = two_agents
    client = alpha.client(alpha.agent)
    card = theirs.cards[0]
    for url in (
        f"/hotspot/batches/{theirs.pk}/",
        f"/hotspot/batches/{theirs.pk}/cards.pdf",
        f"/hotspot/batches/{theirs.pk}/cards.csv",
        f"/hotspot/vouchers/{card.pk}/sell/",
        f"/hotspot/vouchers/{card.pk}/sms/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/hotspot/vouchers/{card.pk}/sell/", {"phone": ""}).status_code == 404
    sms = {"phone": "0712345678"}
    assert client.post(f"/hotspot/vouchers/{card.pk}/sms/", sms).status_code == 404
    with connection_in(alpha):
        card.refresh_from_db()
        assert card.state == State.ASSIGNED
        assert not AgentEntry.objects.filter(agent=alpha.agent, voucher=card).exists()


def test_an_agent_cannot_open_staff_pages_or_act_as_staff(two_agents):
    alpha, mine, _theirs, _code = two_agents
    client = alpha.client(alpha.agent)
    for url in (
        "/subscribers/",
        "/tickets/",
        "/hotspot/packages/",
        "/hotspot/agents/",
        f"/hotspot/agents/{alpha.agent.pk}/",
        "/hotspot/batches/new/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/hotspot/batches/{mine.pk}/revoke/").status_code == 403
    card = mine.cards[0]
    assert client.post(f"/hotspot/vouchers/{card.pk}/revoke/").status_code == 403
    with connection_in(alpha):
        assert not Voucher.objects.filter(batch=mine, state=State.REVOKED).exists()


def test_an_agent_sells_a_card_they_hold_and_sees_the_sale_and_commission(two_agents):
    alpha, mine, _theirs, _code = two_agents
    client = alpha.client(alpha.agent)
    card = mine.cards[0]
    response = client.post(
        f"/hotspot/vouchers/{card.pk}/sell/", {"phone": "0722 000 111", "send_sms": "on"}
    )
    assert response.status_code == 302
    with connection_in(alpha):
        card.refresh_from_db()
        assert card.state == State.SOLD and card.sold_to == "254722000111"
        from ispops.messaging.models import Message

        assert Message.objects.filter(to="254722000111", template_key="hotspot_voucher").exists()
    page = _page(client, "/hotspot/my/")
    assert "Commission" in page and "KES 2.00" in page
    # Sold once: a second sale is refused.
    again = client.post(f"/hotspot/vouchers/{card.pk}/sell/", {"phone": ""})
    assert again.status_code == 200 and "Only a card you hold" in again.content.decode()


def test_an_agent_sees_only_their_own_ledger(two_agents, other_agent):
    alpha, _mine, _theirs, _code = two_agents
    with connection_in(alpha):
        agents.give_float(other_agent, "777", note="THEIR-FLOAT", actor=alpha.owner)
    page = _page(alpha.client(alpha.agent), "/hotspot/my/")
    assert "THEIR-FLOAT" not in page and "777" not in page


def test_the_agent_lands_on_their_own_page_and_nav(two_agents):
    alpha, _mine, _theirs, _code = two_agents
    page = _page(alpha.client(alpha.agent), "/")
    assert "My cards" in page and "Subscribers" not in page and "Active staff" not in page


# --- staff side ---------------------------------------------------------------------------


def test_finance_records_float_and_a_payout_on_the_agents_page(two_agents):
    alpha, _mine, _theirs, _code = two_agents
    client = alpha.client(alpha.finance)
    url = f"/hotspot/agents/{alpha.agent.pk}/"
    assert client.post(url, {"kind": "float", "amount": "500", "note": "QAZ1"}).status_code == 302
    assert client.post(url, {"kind": "payout", "amount": "20"}).status_code == 302
    bad = client.post(url, {"kind": "payout", "amount": "-5"})
    assert bad.status_code == 200
    with connection_in(alpha):
        # 500 float - 20 paid - 3 cards x 20
        assert agents.balance(alpha.agent) == Decimal("420.00")
    listing = _page(client, "/hotspot/agents/")
    assert "KES 420.00" in listing and "Second Agent" in listing


def test_staff_make_a_batch_for_an_agent_on_the_page(alpha, package):
    connection.set_schema_to_public()
    client = alpha.client(alpha.finance)
    response = client.post(
        "/hotspot/batches/new/",
        {
            "package": package.pk,
            "count": "7",
            "price": "",
            "agent": alpha.agent.pk,
            "commission_percent": "5",
            "unsold_expire_on": "",
            "note": "",
        },
    )
    assert response.status_code == 302
    with connection_in(alpha):
        batch = alpha.agent.voucher_batches.get()
        assert batch.count == 7 and batch.commission_percent == 5
        assert batch.vouchers.filter(state=State.ASSIGNED).count() == 7
    page = _page(client, response["Location"])
    assert "assigned 7" in page


def test_a_batch_is_given_to_an_agent_later(in_alpha, make_batch):
    batch = make_batch(count=3)
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.owner)
    response = client.post(f"/hotspot/batches/{batch.pk}/assign/", {"agent": in_alpha.agent.pk})
    assert response.status_code == 302
    with connection_in(in_alpha):
        assert agents.balance(in_alpha.agent) == Decimal("-60.00")


def test_staff_revoke_a_batch_on_the_page(in_alpha, make_batch):
    batch = make_batch(count=3)
    connection.set_schema_to_public()
    response = in_alpha.client(in_alpha.admin).post(f"/hotspot/batches/{batch.pk}/revoke/")
    assert response.status_code == 302
    with connection_in(in_alpha):
        assert vouchers.state_counts(batch)[State.REVOKED] == 3
    refused = in_alpha.client(in_alpha.admin).get(f"/hotspot/batches/{batch.pk}/revoke/")
    assert refused.status_code == 405


# --- helpers ------------------------------------------------------------------------------


def connection_in(tenant):
    from django_tenants.utils import tenant_context

    return tenant_context(tenant.isp)
