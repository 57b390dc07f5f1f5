"""Creating ISPs: the create_isp command and the platform page."""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from ispops.staff.models import Role, User
from ispops.tenancy import tasks
from ispops.tenancy.models import Domain, Isp
from ispops.tenancy.services import IspInputError, create_isp, validate_host
from tests.conftest import PASSWORD, ROOT, subprocess_database_url


def _state():
    return (
        sorted(Isp.objects.values_list("schema_name", "name")),
        sorted(Domain.objects.values_list("domain", flat=True)),
    )


def run_command(*args):
    """manage.py as an operator runs it: a real process, its exit code and output."""
    env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _create_args(schema="gamma", domain="gamma.localhost", name="Gamma", email="o@gamma.test"):
    return [
        "create_isp",
        "--schema",
        schema,
        "--name",
        name,
        "--domain",
        domain,
        "--owner-email",
        email,
        "--owner-password",
        PASSWORD,
    ]


def test_create_isp_with_bad_input_exits_nonzero_with_one_line_and_changes_nothing(tenants, db):
    """As an operator runs it: a real process (one is enough; the refusals below are the
    same command's, run in this process to spare a Django start each)."""
    before = _state()
    result = run_command(*_create_args(schema="alpha"))
    assert result.returncode != 0
    assert "schema 'alpha' is already used" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _state() == before


@pytest.mark.parametrize(
    "args,reason",
    [
        (_create_args(domain="not a host!"), "invalid domain"),
        (_create_args(domain="beta.localhost"), "domain 'beta.localhost' is already used"),
        (_create_args(schema="Bad-Schema"), "invalid schema"),
        (_create_args(schema="public"), "invalid schema"),
        (_create_args(email="not-an-email"), "invalid owner email"),
    ],
)
def test_create_isp_refuses_bad_input_in_one_line_and_changes_nothing(tenants, db, args, reason):
    before = _state()
    with pytest.raises(CommandError) as refused:
        call_command(*args)
    assert reason in str(refused.value) and "\n" not in str(refused.value)
    assert _state() == before
    assert not schema_exists("gamma")


def test_create_isp_refuses_an_existing_postgres_schema(tenants, db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA leftover")
    with pytest.raises(IspInputError, match="PostgreSQL schema named 'leftover' already exists"):
        create_isp(
            schema="leftover",
            name="L",
            domain="leftover.localhost",
            owner_email="o@l.test",
            owner_password=PASSWORD,
        )
    assert not Isp.objects.filter(schema_name="leftover").exists()


def test_create_isp_weak_password_is_refused_before_anything_is_made(tenants, db):
    with pytest.raises(IspInputError, match="owner password"):
        create_isp(
            schema="weak",
            name="W",
            domain="weak.localhost",
            owner_email="o@w.test",
            owner_password="123",
        )
    assert not schema_exists("weak")


def test_create_isp_makes_schema_domain_and_owner_and_is_idempotent(tenants, db):
    isp, created = create_isp(
        schema="delta",
        name="Delta",
        domain="delta.localhost",
        owner_email="Owner@Delta.test",
        owner_password=PASSWORD,
    )
    assert created and isp.status == Isp.Status.ACTIVE
    assert schema_exists("delta")
    with tenant_context(isp):
        owner = User.objects.get()
        assert owner.email == "owner@delta.test" and owner.role == Role.OWNER
        assert owner.check_password(PASSWORD)
    again, created = create_isp(
        schema="delta",
        name="Delta",
        domain="delta.localhost",
        owner_email="owner@delta.test",
        owner_password=PASSWORD,
    )
    assert not created and again.pk == isp.pk
    with pytest.raises(IspInputError, match="already used by ISP 'Delta'"):
        create_isp(
            schema="delta",
            name="Other",
            domain="other.localhost",
            owner_email="owner@delta.test",
            owner_password=PASSWORD,
        )


def test_create_isp_command_success_and_rerun(tenants, db):
    # Runs against the shared test database, so clean up what it commits.
    try:
        first = run_command(*_create_args(schema="epsilon", domain="epsilon.localhost"))
        assert first.returncode == 0, first.stderr
        assert "created" in first.stdout
        second = run_command(*_create_args(schema="epsilon", domain="epsilon.localhost"))
        assert second.returncode == 0, second.stderr
        assert "already exists, unchanged" in second.stdout
    finally:
        isp = Isp.objects.filter(schema_name="epsilon").first()
        if isp:
            isp.delete(force_drop=True)


@pytest.mark.parametrize("host", ["fastnet.localhost", "portal.fastnet.co.ke", "a-b.example.com"])
def test_valid_hosts(host):
    assert validate_host(host) == host


@pytest.mark.parametrize("host", ["localhost", "x..y", "-a.b", "a.b:8000", "http://a.b", "a.123"])
def test_invalid_hosts(host):
    with pytest.raises(IspInputError):
        validate_host(host)


@pytest.fixture
def platform_client(tenants, db, client):
    admin = User.objects.create_superuser("root@platform.test", PASSWORD)
    client.force_login(admin)
    client.defaults["HTTP_HOST"] = "localhost"
    return client


def test_platform_page_lists_isps(platform_client):
    page = platform_client.get("/platform/").content.decode()
    assert "Alpha Net" in page and "beta.localhost" in page


def test_platform_page_creates_an_isp_through_the_worker_task(
    platform_client, django_capture_on_commit_callbacks, mailoutbox
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = platform_client.post(
            "/platform/",
            {"name": "Zeta Fibre", "subdomain": "zeta", "owner_email": "boss@zeta.test"},
        )
    assert response.status_code == 302
    isp = Isp.objects.get(schema_name="zeta")
    assert isp.status == Isp.Status.PROVISIONING and isp.primary_host == "zeta.localhost"
    assert len(callbacks) == 1
    # What the worker runs for that callback (the real worker cannot see this
    # uncommitted row; tests/test_celery.py proves tasks reach a real worker).
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.provision_isp(isp.id) == "zeta"
    isp.refresh_from_db()
    assert isp.status == Isp.Status.ACTIVE
    with tenant_context(isp):
        owner = User.objects.get()
        assert owner.role == Role.OWNER and not owner.has_usable_password()
    assert "http://zeta.localhost:8000/password/set/" in mailoutbox[0].body
    # A second delivery of the same message does nothing.
    assert tasks.provision_isp(isp.id) == "nothing to do"


def test_platform_page_shows_form_errors_and_creates_nothing(platform_client):
    before = _state()
    response = platform_client.post(
        "/platform/", {"name": "Dup", "subdomain": "alpha", "owner_email": "x@y.test"}
    )
    assert response.status_code == 200
    assert "already used" in response.content.decode()
    assert _state() == before
