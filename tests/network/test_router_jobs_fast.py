"""Router jobs reach the router fast (issue 11): a job that arrives while another worker
holds the router is applied by that worker, not left for the sweep; connections stay
open between job batches with TCP_NODELAY set; a suspension or restoration costs a
bounded number of API commands, whatever else is on the router."""

import socket
import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from network import routeros, services
from network.models import Router, RouterJob
from subscribers import services as subscribers
from subscribers.models import Customer, Plan, ServiceAccount
from tests.network.conftest import EMULATOR_PASSWORD, EMULATOR_USER
from tests.network.test_provisioning import LIST, listed, make_account, secret


@pytest.fixture
def plan(in_alpha):
    return Plan.objects.create(
        name="Fibre 20M", price="3500.00", download_kbps=20_000, upload_kbps=10_000
    )


def commands_for(emulator, action) -> list[tuple[str, str]]:
    """The API commands the router received while `action` ran."""
    before = len(emulator.commands)
    action()
    return emulator.commands[before:]


def live_account(router, plan, emulator, username, address):
    """An active PPPoE subscriber, provisioned and dialled in."""
    account = make_account(router, plan, username=username)
    subscribers.activate(account, actor="test")
    services.run_jobs(router.pk)
    emulator.dial_in(username, address=address)
    return account


def nodelay(sock) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


# --- commands per account ---------------------------------------------------------------


def test_a_hard_suspension_and_its_restoration_cost_at_most_six_commands(router, plan, emulator):
    account = live_account(router, plan, emulator, "wanjiku", "10.64.0.7")

    def suspend():
        subscribers.change_status(account, "suspended", actor="test", reason="Expired")
        services.run_jobs(router.pk)

    # Secret read, disabled, read back; session looked up; address listed; session dropped.
    # (No login and no profile read: the connection and what it checked are kept.)
    assert commands_for(emulator, suspend) == [
        ("/ppp/secret", "print"),
        ("/ppp/secret", "set"),
        ("/ppp/secret", "print"),
        ("/ppp/active", "print"),
        ("/ip/firewall/address-list", "add"),
        ("/ppp/active", "remove"),
    ]
    assert secret(emulator, "wanjiku")["disabled"] == "true"
    assert len(listed(emulator, "10.64.0.7")) == 1
    assert "wanjiku" not in emulator.active_names()

    def restore():
        subscribers.change_status(account, "active", actor="test", reason="Paid")
        services.run_jobs(router.pk)

    assert len(commands_for(emulator, restore)) == 5
    assert secret(emulator, "wanjiku")["disabled"] == "false"
    assert listed(emulator, "10.64.0.7") == []


def test_a_soft_suspension_and_its_restoration_cost_four_and_three_commands(router, plan, emulator):
    account = live_account(router, plan, emulator, "otieno", "10.64.0.8")

    def suspend():
        subscribers.change_status(
            account, "suspended", actor="test", reason="Expired", suspension="soft"
        )
        services.run_jobs(router.pk)

    assert len(commands_for(emulator, suspend)) == 4
    assert secret(emulator, "otieno")["disabled"] == "false"  # walled garden, login kept
    assert len(listed(emulator, "10.64.0.8")) == 1

    def restore():
        subscribers.change_status(account, "active", actor="test", reason="Paid")
        services.run_jobs(router.pk)

    assert len(commands_for(emulator, restore)) == 3
    assert listed(emulator, "10.64.0.8") == []


def test_the_cost_of_a_suspension_does_not_grow_with_the_suspended_list(router, plan, emulator):
    for i in range(300):
        emulator.add_row(
            "/ip/firewall/address-list",
            list=LIST,
            address=f"10.99.{i // 250}.{i % 250 + 1}",
            comment=f"ispops:{10_000_000 + i} OLD",
        )
    account = live_account(router, plan, emulator, "kamau", "10.64.0.9")

    def suspend():
        subscribers.change_status(account, "suspended", actor="test", reason="Expired")
        services.run_jobs(router.pk)

    sent = commands_for(emulator, suspend)
    assert len(sent) == 6
    assert ("/ip/firewall/address-list", "print") not in sent
    assert len(listed(emulator, "10.64.0.9")) == 1


def test_many_suspensions_at_once_cost_few_commands_each(router, plan, emulator):
    accounts = []
    for i in range(45):
        account = make_account(router, plan, username=f"bulk{i}")
        subscribers.activate(account, actor="test")
        accounts.append(account)
    services.run_jobs(router.pk)
    for i, account in enumerate(accounts):
        emulator.dial_in(account.username, address=f"10.65.0.{i + 2}")

    def suspend_all():
        for account in accounts:
            subscribers.change_status(
                account, "suspended", actor="test", reason="Expired", suspension="soft"
            )
        assert services.run_jobs(router.pk) == "45 done, 0 refused"

    sent = commands_for(emulator, suspend_all)
    # Per account: address listed, session dropped; a few whole-table reads for the batch.
    assert len(sent) <= 2 * len(accounts) + 8
    assert all(len(listed(emulator, f"10.65.0.{i + 2}")) == 1 for i in range(len(accounts)))


# --- connections ------------------------------------------------------------------------


def test_job_batches_share_one_connection_with_tcp_nodelay(router, plan, emulator):
    first = make_account(router, plan, username="first")
    subscribers.activate(first, actor="test")
    services.run_jobs(router.pk)
    second = make_account(router, plan, username="second")
    subscribers.activate(second, actor="test")
    services.run_jobs(router.pk)
    assert emulator.commands.count(("", "login")) == 1
    assert emulator.open_connections == 1
    with routeros.pooled(router) as link:
        assert link.reused and nodelay(link.sock)
    with routeros.connect(router) as api:  # the one-off connections too
        assert nodelay(api.protocol.transport.sock)
    # The emulator answers without Nagle's delay as well.
    assert all(nodelay(s.sock) for s in list(emulator._sessions))


def test_a_connection_the_router_closed_is_replaced(router, plan, emulator):
    account = make_account(router, plan, username="comeback")
    subscribers.activate(account, actor="test")
    services.run_jobs(router.pk)
    emulator.go_down()  # a reboot: every connection is cut
    emulator.come_up()
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert services.run_jobs(router.pk) == "1 done, 0 refused"
    assert emulator.commands.count(("", "login")) == 2
    assert secret(emulator, "comeback")["disabled"] == "true"


def test_a_pooled_connection_that_fails_in_use_is_retried_once_on_a_new_one(
    router, plan, emulator, monkeypatch
):
    account = make_account(router, plan, username="stale")
    subscribers.activate(account, actor="test")
    services.run_jobs(router.pk)
    # The router went away without the socket showing it (a NAT forgot the connection).
    monkeypatch.setattr(routeros.Link, "alive", lambda self: True)
    emulator.go_down()
    emulator.come_up()
    subscribers.change_status(account, "suspended", actor="test", reason="Expired")
    assert services.run_jobs(router.pk) == "1 done, 0 refused"
    job = RouterJob.objects.filter(service_account=account).latest("id")
    assert job.state == "done" and job.attempts == 1
    assert secret(emulator, "stale")["disabled"] == "true"


def test_close_pool_says_goodbye_to_the_router(router, plan, emulator):
    account = make_account(router, plan, username="bye")
    subscribers.activate(account, actor="test")
    services.run_jobs(router.pk)
    assert emulator.open_connections == 1
    assert routeros.close_pool() >= 1
    deadline = time.monotonic() + 5
    while emulator.open_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.open_connections == 0


# --- the router lock --------------------------------------------------------------------


def broker(monkeypatch, *, accepts: bool) -> list:
    """Tasks handed to the broker (their arguments), which takes them or is down."""
    sent = []

    def hand_to_worker(task, *args, what):
        sent.append(args)
        return accepts

    monkeypatch.setattr("ispops.tasks.hand_to_worker", hand_to_worker)
    return sent


def test_jobs_queued_while_a_task_is_on_its_way_send_no_task_of_their_own(router, monkeypatch):
    sent = broker(monkeypatch, accepts=True)
    for _ in range(3):
        services.send_router_jobs(router.pk)
    assert sent == [(router.pk,)]
    # The task ran (and cleared the mark before its last look): the next job sends again.
    assert services.run_jobs(router.pk) == "nothing due"
    services.send_router_jobs(router.pk)
    assert sent == [(router.pk,), (router.pk,)]


def test_a_task_the_broker_refused_leaves_no_mark(router, monkeypatch):
    sent = broker(monkeypatch, accepts=False)
    services.send_router_jobs(router.pk)
    services.send_router_jobs(router.pk)
    assert len(sent) == 2


@pytest.mark.committed
def test_a_job_arriving_while_another_worker_holds_the_router_is_applied_at_once(
    tenants, django_db_blocker, emulator
):
    """Worker A is busy with the router; job 2 commits and its task (here: a direct call)
    finds the lock taken. A applies job 2 before it lets go: no wait for the sweep."""
    alpha = tenants["alpha"]
    tag = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock(), tenant_context(alpha.isp):
        router = services.add_router(
            actor="test",
            name=f"lock-{tag}",
            host="127.0.0.1",
            port=emulator.port,
            username=EMULATOR_USER,
            password=EMULATOR_PASSWORD,
        )
        plan = Plan.objects.create(
            name=f"Lock {tag}", price=1000, download_kbps=8000, upload_kbps=4000
        )
        customer = subscribers.create_customer(actor="test", name=f"Lock {tag}", phone="0712345671")
        accounts = [
            subscribers.create_service_account(
                actor="test",
                customer=customer,
                plan=plan,
                username=f"l{tag}{i}",
                password="pw",
                router=router,
                status="active",
            )
            for i in range(2)
        ]
        try:
            # Jobs written straight away, so no task reaches a worker another test started.
            first = RouterJob.objects.create(router=router, service_account=accounts[0])
            emulator.delay = 0.05  # worker A's batch takes a while
            results = {}

            def worker_a():
                with tenant_context(alpha.isp):
                    results["a"] = services.run_jobs(router.pk)
                connection.close()

            holder = threading.Thread(target=worker_a)
            started = time.monotonic()
            holder.start()
            deadline = time.monotonic() + 10
            while RouterJob.objects.get(pk=first.pk).state != "running":
                assert time.monotonic() < deadline, "worker A never started"
                time.sleep(0.01)
            with transaction.atomic():
                second = RouterJob.objects.create(router=router, service_account=accounts[1])
            assert services.run_jobs(router.pk) == "another worker has this router"
            holder.join(timeout=30)
            elapsed = time.monotonic() - started
            emulator.delay = 0
            assert not holder.is_alive()
            second.refresh_from_db()
            assert second.state == "done" and second.attempts == 1, results
            assert elapsed < 10
            assert results["a"] == "1 done, 0 refused; 1 done, 0 refused"
            assert secret(emulator, f"l{tag}1") is not None
        finally:
            emulator.delay = 0
            RouterJob.objects.filter(router=router).delete()
            ServiceAccount.objects.filter(customer=customer).delete()
            Customer.objects.filter(pk=customer.pk).delete()
            Plan.objects.filter(pk=plan.pk).delete()
            Router.objects.filter(pk=router.pk).delete()
    connection.set_schema_to_public()
