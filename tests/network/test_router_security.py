"""Routers as an attack surface (issue 12, findings 1 and 12): the router form once wrote
commands into Redis through a password holding CR/LF, told open, closed and silent
ports apart, and the job retry followed any `next`. Every path that dials a router
(form check, test button, jobs, monitoring, import, drift) goes through one guard in
network.routeros; these tests dial real TCP listeners and the RouterOS emulator."""

import re
import socket
import threading
from contextlib import suppress

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from network import monitoring, router_import, routeros, services
from network.models import Router, RouterJob
from subscribers import services as subscribers
from subscribers.models import Plan
from tests.conftest import free_port
from tests.network.conftest import EMULATOR_PASSWORD, EMULATOR_USER

INJECTION = "x\r\nSELECT 13\r\nSET k v\r\nQUIT\r\n"


class Listener:
    """A TCP server on 127.0.0.1 that records every connection and byte it receives.
    `reply` is sent on each connection and the connection closed (another service
    answering); without it the server reads and never answers (a silent port)."""

    def __init__(self, reply: bytes | None = None):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self.open: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self.open.append(conn)
            conn.settimeout(0.5)
            with suppress(OSError):
                self.received += conn.recv(65536)
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(2)
        for conn in self.open:
            conn.close()
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.stop()


@pytest.fixture
def local_not_allowed():
    """Production: routers may not be on this machine or special-purpose addresses."""
    routeros.own_service_addresses.cache_clear()
    with override_settings(ROUTER_ALLOW_LOCAL=False):
        yield
    routeros.own_service_addresses.cache_clear()


def new_router_form(**changes) -> dict:
    data = {
        "name": "edge-1",
        "host": "192.0.2.10",
        "port": "8728",
        "username": "api",
        "password": "pass",
        "check_connection": "on",
    }
    data.update(changes)
    return data


def routers_named(alpha, name) -> int:
    with tenant_context(alpha.isp):
        count = Router.objects.filter(name=name).count()
    connection.set_schema_to_public()
    return count


# --- control characters -----------------------------------------------------------------


def test_router_form_refuses_a_password_with_line_breaks_and_sends_nothing(alpha, listener):
    # ROUTER_ALLOW_LOCAL is on in tests: only the control characters stop this one.
    response = alpha.client(alpha.admin).post(
        "/routers/new/", new_router_form(host="127.0.0.1", port=listener.port, password=INJECTION)
    )
    assert response.status_code == 200
    assert "control characters" in response.content.decode()
    assert routers_named(alpha, "edge-1") == 0
    assert listener.connections == 0 and listener.received == b""


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "edge\r\n1"),
        ("host", "10.0.\n0.1"),
        ("username", "api\x00"),
        ("username", "api\x7f"),
        ("notes", "line one\x00"),
    ],
)
def test_router_form_refuses_control_characters_in_every_field(alpha, field, value):
    response = alpha.client(alpha.admin).post(
        "/routers/new/", new_router_form(check_connection="", **{field: value})
    )
    assert response.status_code == 200
    # Django's own "Null characters are not allowed." answers a NUL first.
    assert "characters are not allowed" in response.content.decode()
    assert routers_named(alpha, "edge-1") == 0


def test_add_router_service_refuses_control_characters_whatever_the_caller(in_alpha):
    with override_settings(ROUTER_ALLOW_LOCAL=False), pytest.raises(services.RouterError):
        services.add_router(
            actor="t", name="m", host="::ffff:127.0.0.1", port=8728, username="a", password="b"
        )
    with pytest.raises(services.RouterError, match=r"control characters.*password"):
        services.add_router(
            actor="import", name="e", host="10.0.0.1", port=8728, username="a", password=INJECTION
        )
    router = services.add_router(
        actor="t", name="e", host="10.0.0.1", port=8728, username="a", password="ok"
    )
    with pytest.raises(services.RouterError, match=r"control characters.*username"):
        services.update_router(
            router, actor="t", name="e", host="10.0.0.1", port=8728, username="a\r\nb"
        )
    assert not Router.objects.filter(username="a\r\nb").exists()


def test_a_stored_password_with_line_breaks_is_never_sent_to_a_socket(in_alpha, listener):
    # A row written by some path that skipped the service (an old import, SQL): the
    # connection itself refuses it.
    router = Router.objects.create(
        name="raw", host="127.0.0.1", port=listener.port, username="a", password=INJECTION
    )
    refused = pytest.raises(routeros.RouterTargetRefused, match="control characters")
    with refused, routeros.connect(router, timeout=2):
        pass
    assert listener.connections == 0 and listener.received == b""


# --- addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "localhost",
        "::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "169.254.169.254",
        "fe80::1",
        "224.0.0.1",
        "255.255.255.255",
    ],
)
def test_router_form_refuses_loopback_link_local_and_multicast_addresses(
    alpha, local_not_allowed, host
):
    response = alpha.client(alpha.admin).post(
        "/routers/new/", new_router_form(host=host, check_connection="")
    )
    assert response.status_code == 200
    html = response.content.decode()
    # ::ffff:127.0.0.1 is already no valid host to the form; the service checks it too.
    assert "not a router" in html or "invalid host" in html
    assert routers_named(alpha, "edge-1") == 0


def test_router_form_refuses_the_address_of_this_installations_redis(alpha, local_not_allowed):
    with override_settings(REDIS_URL="redis://192.0.2.77:6379/0"):
        routeros.own_service_addresses.cache_clear()
        response = alpha.client(alpha.admin).post(
            "/routers/new/", new_router_form(host="192.0.2.77", port="6379", check_connection="")
        )
        routeros.own_service_addresses.cache_clear()
    assert "own servers" in response.content.decode()
    assert routers_named(alpha, "edge-1") == 0


def test_an_ordinary_private_address_is_accepted(alpha, local_not_allowed):
    response = alpha.client(alpha.admin).post(
        "/routers/new/", new_router_form(host="10.20.0.1", check_connection="")
    )
    assert response.status_code == 302
    assert routers_named(alpha, "edge-1") == 1


def test_a_host_name_is_checked_where_it_points_at_dial_time(
    in_alpha, local_not_allowed, listener, monkeypatch
):
    # Saved while the name pointed elsewhere; now it resolves to this machine (DNS
    # rebinding): the connection is refused and nothing reaches the listener.
    router = services.add_router(
        actor="t",
        name="named",
        host="router.isp.example",
        port=listener.port,
        username="a",
        password="b",
    )
    real = socket.getaddrinfo

    def rebound(host, *args, **kwargs):
        if host == "router.isp.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    refused = pytest.raises(routeros.RouterTargetRefused, match="this server itself")
    with refused, routeros.connect(router, timeout=2):
        pass
    assert listener.connections == 0


# --- one error whatever the port state ---------------------------------------------------


def _check_error(port: int) -> str:
    """What the router form says when `check_connection` fails at 127.0.0.1:port, with
    the port number (which the user typed) taken out."""
    with pytest.raises(services.RouterError) as refused:
        services.add_router(
            actor="t",
            name=f"probe-{port}",
            host="127.0.0.1",
            port=port,
            username="admin",
            password="pw",
            check_connection=True,
        )
    return re.sub(rf"\b{port}\b", "PORT", str(refused.value))


def test_closed_silent_and_foreign_ports_give_one_and_the_same_error(in_alpha):
    silent = Listener()
    redis_like = Listener(reply=b"-ERR unknown command '\x06/login'\r\n")
    http_like = Listener(reply=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    tls_only = Listener(reply=b"\x16\x03\x01\x00\x05hello")
    try:
        errors = {
            "closed": _check_error(free_port()),
            "silent": _check_error(silent.port),
            "redis": _check_error(redis_like.port),
            "http": _check_error(http_like.port),
            "garbage": _check_error(tls_only.port),
        }
    finally:
        for server in (silent, redis_like, http_like, tls_only):
            server.stop()
    assert len(set(errors.values())) == 1, errors
    assert "cannot be reached" in errors["closed"]


def test_router_form_shows_the_generic_error_for_a_closed_port(alpha):
    port = free_port()
    response = alpha.client(alpha.admin).post(
        "/routers/new/", new_router_form(host="127.0.0.1", port=port)
    )
    html = response.content.decode()
    assert "cannot be reached as a RouterOS API" in html
    assert "refused" not in html
    assert routers_named(alpha, "edge-1") == 0


def test_a_wrong_password_on_a_real_router_still_says_so(in_alpha, emulator):
    with pytest.raises(services.RouterError, match="wrong username or password"):
        services.add_router(
            actor="t",
            name="edge",
            host="127.0.0.1",
            port=emulator.port,
            username=EMULATOR_USER,
            password="not-" + EMULATOR_PASSWORD,
            check_connection=True,
        )


# --- every path that dials ----------------------------------------------------------------


@pytest.fixture
def local_router(in_alpha, listener):
    """A router recorded at this machine's address (allowed at the time), then the
    installation refuses local addresses: every path must refuse to dial it."""
    router = services.add_router(
        actor="t", name="local", host="127.0.0.1", port=listener.port, username="a", password="b"
    )
    routeros.own_service_addresses.cache_clear()
    with override_settings(ROUTER_ALLOW_LOCAL=False):
        yield router
    routeros.own_service_addresses.cache_clear()


def test_test_button_refuses_a_local_router(alpha, local_router, listener):
    page = alpha.client(alpha.support).post(f"/routers/{local_router.pk}/test/").content.decode()
    assert "this server itself" in page
    assert listener.connections == 0


def test_router_job_refuses_a_local_router(local_router, listener):
    plan = Plan.objects.create(name="Sec 10M", price=1000, download_kbps=10_000, upload_kbps=5_000)
    customer = subscribers.create_customer(actor="t", name="Sec Person", phone="0712000111")
    account = subscribers.create_service_account(
        actor="t",
        customer=customer,
        plan=plan,
        username="sec",
        password="pw",
        router=local_router,
        status="installing",
    )
    subscribers.activate(account, actor="t")
    services.run_jobs(local_router.pk)
    job = RouterJob.objects.get(service_account=account)
    assert job.state != RouterJob.State.DONE
    assert "this server itself" in job.last_error
    assert listener.connections == 0


def test_monitoring_poll_refuses_a_local_router(local_router, listener):
    monitoring.poll_router(local_router)
    local_router.refresh_from_db()
    assert local_router.status == Router.Status.OFFLINE
    assert "this server itself" in local_router.last_error
    assert listener.connections == 0


def test_router_import_refuses_a_local_router(alpha, local_router, listener):
    with pytest.raises(routeros.RouterTargetRefused):
        router_import.read_router(local_router)
    page = alpha.client(alpha.owner).get(f"/routers/{local_router.pk}/import/")
    assert "this server itself" in page.content.decode()
    assert listener.connections == 0


def test_drift_check_refuses_a_local_router(local_router, listener):
    with pytest.raises(routeros.RouterTargetRefused):
        services.check_drift(local_router)
    assert listener.connections == 0


def test_the_emulator_is_reachable_when_local_addresses_are_allowed(router):
    with routeros.connect(router, timeout=5) as api:
        assert routeros.identify(api)["identity"]


# --- finding 12: the retry redirect ------------------------------------------------------


@pytest.fixture
def failed_job(in_alpha, router):
    return RouterJob.objects.create(
        router=router, action=RouterJob.Action.SYNC_PLAN, state=RouterJob.State.FAILED
    )


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/",
        "https://evil.example/routers/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "http://alpha.localhost.evil.example/",
    ],
)
def test_job_retry_ignores_a_next_that_leaves_the_site(alpha, failed_job, target):
    response = alpha.client(alpha.support).post(
        f"/router-jobs/{failed_job.pk}/retry/", {"next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/routers/{failed_job.router_id}/jobs/"


def test_job_retry_goes_back_to_a_page_of_this_site(alpha, failed_job):
    back = "/accounts/1/router-jobs/?page=2"
    response = alpha.client(alpha.support).post(
        f"/router-jobs/{failed_job.pk}/retry/", {"next": back}
    )
    assert response["Location"] == back
