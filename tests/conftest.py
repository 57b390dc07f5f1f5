"""Shared fixtures: two ISPs (alpha, beta) and the demo ISP, created once per session,
with a named staff member per role; a real Celery worker; a live server.

Tenants are created once (a schema costs about a second) and committed; every test
then runs inside a transaction that is rolled back, so tests never see each other's
rows. Tests that need another process (worker, browser) to see their data use the
committed session data only.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, Role, User
from ispops.tenancy.management.commands.seed_demo import ensure_public_tenant
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-9"
# Playwright's sync API runs an event loop in this thread; the ORM refuses to run
# beside one unless told that the tests know what they are doing.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@dataclass
class Tenant:
    isp: Isp
    host: str
    people: dict  # role -> User

    def __getattr__(self, role):
        try:
            return self.people[role]
        except KeyError:
            raise AttributeError(role) from None

    def client(self, user: User | None = None) -> Client:
        client = Client(HTTP_HOST=self.host)
        if user is not None:
            # Sessions live in the ISP's schema, so the login is made inside it.
            with tenant_context(self.isp):
                client.force_login(user)
            connection.set_schema_to_public()
        return client


def _make_tenant(schema: str, name: str, extra_branches: int = 0) -> Tenant:
    host = f"{schema}.localhost"
    isp, _ = create_isp(
        schema=schema,
        name=name,
        domain=host,
        owner_email=f"owner@{schema}.test",
        owner_password=PASSWORD,
    )
    with tenant_context(isp):
        people = {Role.OWNER: User.objects.get(email=f"owner@{schema}.test")}
        for role in (Role.ADMIN, Role.FINANCE, Role.SUPPORT, Role.TECHNICIAN, Role.AGENT):
            people[role] = User.objects.create_user(
                f"{role}@{schema}.test", PASSWORD, role=role, full_name=f"{role.title()} {name}"
            )
        for i in range(1 + extra_branches):
            Branch.objects.create(name=f"{name} branch {i}", code=f"{schema}-{i}")
    connection.set_schema_to_public()
    return Tenant(isp=isp, host=host, people=people)


def _make_base_schema(name: str) -> None:
    """The schema every test ISP is copied from (settings.TENANT_BASE_SCHEMA), made by
    the real migrations, data migrations included, so the migrations run every time."""
    from django.core.management import call_command

    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{name}"')
    call_command("migrate_schemas", tenant=True, schema_name=name, interactive=False, verbosity=0)
    connection.set_schema_to_public()


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """The test database with the platform host, alpha, beta and demo ISPs committed.

    pytest-django's own fixture creates only the databases the selected tests mark, so
    a run of `committed` tests alone (no django_db marker) would get none: this one
    always creates the default database."""
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    # Tasks queued by an earlier run name schemas that no longer exist: start clean.
    # (settings.REDIS_URL is the tests' own Redis database, see settings.TESTING.)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    with django_db_blocker.unblock():
        _make_base_schema(settings.TENANT_BASE_SCHEMA)
        ensure_public_tenant()
        tenants = {
            "alpha": _make_tenant("alpha", "Alpha Net"),
            # beta gets more rows so some of its ids exist nowhere in alpha.
            "beta": _make_tenant("beta", "Beta Wireless", extra_branches=5),
        }
        with open(os.devnull, "w") as quiet:
            call_command("seed_demo", "--subscribers", "40", stdout=quiet)
    yield tenants
    # Threads of the live server still parked on a browser's keep-alive socket hold
    # connections that would stop pytest-django from dropping the test database.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with django_db_blocker.unblock():
        try:
            teardown_databases(db_cfg, verbosity=0)
        except Exception as exc:  # a failed drop must not hide the test results
            request.node.warn(pytest.PytestWarning(f"test database not dropped: {exc!r}"))


@pytest.fixture(scope="session")
def tenants(django_db_setup):
    return django_db_setup


@pytest.fixture
def alpha(tenants, db):
    yield tenants["alpha"]
    connection.set_schema_to_public()


@pytest.fixture
def beta(tenants, db):
    yield tenants["beta"]
    connection.set_schema_to_public()


@pytest.fixture
def in_alpha(alpha):
    """Run the test body inside alpha's schema."""
    with tenant_context(alpha.isp):
        yield alpha


# --- real processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds: float = 20.0) -> bool:
    """Poll `predicate` until it is true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def start_redis_server(port: int) -> subprocess.Popen:
    """A private redis-server on `port` (keeping nothing on disk), once it answers."""
    import redis

    server = shutil.which("redis-server")
    assert server, "redis-server is installed by scripts/services.sh"
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    probe = redis.Redis(port=port, socket_connect_timeout=0.2)

    def pings() -> bool:
        try:
            return probe.ping()
        except redis.ConnectionError:
            return False

    assert wait_for(pings, 10), "redis-server did not start"
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def subprocess_database_url() -> str:
    settings_dict = connection.settings_dict
    user, password = settings_dict["USER"], settings_dict["PASSWORD"]
    auth = f"{user}:{password}@" if password else f"{user}@"
    return (
        f"postgres://{auth}{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
    )


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup):
    """A real `celery -A ispops worker` on the test database and the tests' Redis db."""
    from ispops.celery import app

    env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
    name = f"pytest-{os.getpid()}@%h"
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "test-worker.log", "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ispops",
            "worker",
            "--pool",
            "solo",
            "-n",
            name,
            "-l",
            "info",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the Celery worker exited at start; see var/test-worker.log")
        if app.control.ping(timeout=0.5):
            break
    else:
        proc.kill()
        raise RuntimeError("the Celery worker did not answer within 30 s")
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def live_server_url(django_db_setup):
    """A threaded live server on the test database, serving every host (session-wide).

    pytest-django's live_server needs transactional_db, whose flush would wipe the
    session's tenants; this one only reads what the session committed.
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield thread.port
    thread.terminate()


@pytest.fixture(scope="session")
def pay_world(django_db_setup, django_db_blocker, live_server_url):
    """The payments ISP ("paytest"), its Daraja simulator and router emulator (built on
    first use; here so that the payments and the browser tests share one)."""
    from tests.payments.world import make_pay_world

    world = make_pay_world(django_db_blocker, live_server_url)
    yield world
    world.sim.stop()
    world.emulator.stop()


def pytest_collection_modifyitems(items):
    """Every test gets the test database: a run that selected only tests without a db
    fixture would otherwise let the session fixtures write to the development one."""
    for item in items:
        # "committed" tests commit through django_db_blocker themselves (a worker or a
        # live server must see their rows) and clean up after themselves.
        if item.get_closest_marker("django_db") is None and not item.get_closest_marker(
            "committed"
        ):
            item.add_marker(pytest.mark.django_db)
