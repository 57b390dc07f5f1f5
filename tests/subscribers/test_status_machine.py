"""The service account status machine: legal moves, refusals, records and intents."""

import pytest

from subscribers import services
from subscribers.models import ServiceAccount, ServiceIntent, StatusChange

Status = ServiceAccount.Status

ILLEGAL = [
    (Status.LEAD, Status.ACTIVE),
    (Status.LEAD, Status.SUSPENDED),
    (Status.SURVEY, Status.ACTIVE),
    (Status.INSTALLING, Status.SUSPENDED),
    (Status.ACTIVE, Status.LEAD),
    (Status.ACTIVE, Status.INSTALLING),
    (Status.SUSPENDED, Status.INSTALLING),
    (Status.TERMINATED, Status.ACTIVE),
    (Status.TERMINATED, Status.LEAD),
]


def _account(make_customer, status):
    return make_customer(status=status).service_accounts.get()


@pytest.mark.parametrize("start,target", ILLEGAL)
def test_state_machine_refuses_illegal_moves_and_changes_nothing(make_customer, start, target):
    account = _account(make_customer, start)
    before = StatusChange.objects.count(), ServiceIntent.objects.count()
    with pytest.raises(services.IllegalTransition):
        services.change_status(account, target, actor="test", reason="try")
    account.refresh_from_db()
    assert account.status == start
    assert (StatusChange.objects.count(), ServiceIntent.objects.count()) == before


def test_unknown_status_is_refused(make_customer):
    account = _account(make_customer, Status.ACTIVE)
    with pytest.raises(services.IllegalTransition, match="unknown status"):
        services.change_status(account, "frozen", actor="test", reason="x")


def test_a_reason_is_required(make_customer):
    account = _account(make_customer, Status.ACTIVE)
    with pytest.raises(services.SubscriberError, match="say why"):
        services.change_status(account, Status.SUSPENDED, actor="test", reason="  ")


def test_full_life_records_who_when_why(alpha, make_customer):
    account = _account(make_customer, Status.LEAD)
    owner = alpha.owner
    for target in (
        Status.SURVEY,
        Status.INSTALLING,
        Status.ACTIVE,
        Status.SUSPENDED,
        Status.ACTIVE,
        Status.TERMINATED,
    ):
        services.change_status(account, target, actor=owner, reason=f"to {target}")
    moves = list(
        account.status_changes.order_by("at", "id").values_list(
            "from_status", "to_status", "actor_id", "reason"
        )
    )
    assert moves[0][:2] == ("", Status.LEAD)
    assert [m[1] for m in moves[1:]] == [
        "survey",
        "installing",
        "active",
        "suspended",
        "active",
        "terminated",
    ]
    assert all(m[2] == owner.pk for m in moves[1:])
    account.refresh_from_db()
    assert account.activated_at and account.suspended_at and account.terminated_at


def test_moves_write_router_jobs(make_customer):
    from network.models import RouterJob
    from network.services import add_router

    router = add_router(
        actor="t", name="r1", host="127.0.0.1", port=8728, username="api", password="pw"
    )
    account = _account(make_customer, Status.INSTALLING)
    account.router = router
    account.save(update_fields=["router"])
    services.activate(account, actor="test")
    services.change_status(account, Status.SUSPENDED, actor="test", reason="unpaid")
    services.change_status(account, Status.ACTIVE, actor="test", reason="paid")
    services.change_status(account, Status.TERMINATED, actor="test", reason="left")
    actions = list(
        RouterJob.objects.filter(service_account=account)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["provision", "suspend", "restore", "remove"]


def test_activation_without_login_or_router_gets_them(make_customer, plan):
    from network.services import add_router

    router = add_router(
        actor="t", name="only", host="127.0.0.1", port=8728, username="api", password="pw"
    )
    customer = make_customer(status="active")
    account = services.create_service_account(
        actor="t", customer=customer, plan=plan, status=Status.INSTALLING
    )
    services.activate(account, actor="test")
    account.refresh_from_db()
    assert account.username == customer.account.lower() or account.username.startswith(
        customer.account.lower()
    )
    assert len(account.password) >= 8 and account.router == router


def test_customer_status_summarises_its_accounts(make_customer, plan):
    customer = make_customer(status=Status.SUSPENDED)
    services.create_service_account(
        actor="test", customer=customer, plan=plan, username="second", status=Status.ACTIVE
    )
    customer.refresh_from_db()
    assert customer.status == "active"
    assert "second" in customer.search


def test_terminated_accounts_free_their_username(make_customer, plan):
    customer = make_customer(username="shared", status=Status.ACTIVE)
    with pytest.raises(services.SubscriberError, match="already in use"):
        services.create_service_account(actor="t", customer=customer, plan=plan, username="shared")
    services.change_status(
        customer.service_accounts.get(), Status.TERMINATED, actor="t", reason="left"
    )
    again = services.create_service_account(
        actor="t", customer=customer, plan=plan, username="shared"
    )
    assert again.pk


def test_account_numbers_follow_the_pattern_and_skip_taken_ones(in_alpha):
    from subscribers.models import SubscriberSettings

    cfg = SubscriberSettings.load()
    cfg.account_pattern = "AN{seq:4}"
    cfg.next_account_seq = 7
    cfg.save()
    services.create_customer(actor="t", account="AN0008", name="Taken", phone="0711000001")
    first = services.create_customer(actor="t", name="A", phone="0711000002")
    second = services.create_customer(actor="t", name="B", phone="0711000003")
    assert (first.account, second.account) == ("AN0007", "AN0009")


@pytest.mark.parametrize("pattern", ["{seq}x!", "ABC", "{seq:5}{seq}", "TOOLONGPREFIX{seq:5}"])
def test_bad_account_patterns_are_refused(pattern):
    with pytest.raises(services.SubscriberError):
        services.validate_account_pattern(pattern)


@pytest.mark.parametrize(
    "text,kbps", [("10M", 10_000), ("512k", 512), ("1.5M", 1500), ("1G", 1_000_000), ("2048", 2048)]
)
def test_speeds_parse(text, kbps):
    assert services.parse_speed(text) == kbps
    assert services.parse_speed(services.format_speed(kbps)) == kbps


@pytest.mark.parametrize("text", ["", "fast", "0M", "-1M", "10X"])
def test_bad_speeds_are_refused(text):
    with pytest.raises(services.SubscriberError):
        services.parse_speed(text)
