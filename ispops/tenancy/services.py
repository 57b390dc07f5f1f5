"""Creating an ISP: validate, record it, create its schema, give it an owner.

`create_isp` (the command) does it all at once; the platform page records the ISP and
lets a worker create the schema (`provision_isp`), since migrating a schema takes
seconds. Both share the validation, so bad input is refused the same way everywhere
and refused before anything is written.
"""

import re

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django_tenants.utils import schema_exists, tenant_context

from ispops import audit
from ispops.tenancy.middleware import forget_hosts
from ispops.tenancy.models import Domain, Isp

SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
RESERVED_SCHEMAS = {"public", "information_schema", "default", "template", "test"}
HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class IspInputError(ValueError):
    """Input refused; str() is the one-line reason shown to the operator."""


def validate_schema_name(schema: str) -> str:
    if not SCHEMA_RE.match(schema or ""):
        raise IspInputError(
            f"invalid schema {schema!r}: use 2-48 lowercase letters, digits or _, "
            "starting with a letter"
        )
    if schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise IspInputError(f"invalid schema {schema!r}: the name is reserved")
    return schema


def validate_host(host: str) -> str:
    host = (host or "").strip().lower().rstrip(".")
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(HOST_LABEL_RE.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise IspInputError(
            f"invalid domain {host!r}: give a host name such as fastnet.localhost "
            "(letters, digits and hyphens, no port or scheme)"
        )
    return host


def validate_new_isp(
    *, schema: str, name: str, domain: str, owner_email: str, owner_password: str | None = None
) -> dict:
    """Check everything about a new ISP; raise IspInputError with every reason at once."""
    errors = []
    cleaned = {"name": (name or "").strip(), "owner_email": (owner_email or "").strip().lower()}
    for key, check, value in (
        ("schema", validate_schema_name, schema),
        ("domain", validate_host, domain),
    ):
        try:
            cleaned[key] = check(value)
        except IspInputError as exc:
            errors.append(str(exc))
    if not cleaned["name"] or len(cleaned["name"]) > 120:
        errors.append("name is required (at most 120 characters)")
    try:
        validate_email(cleaned["owner_email"])
    except ValidationError:
        errors.append(f"invalid owner email {owner_email!r}")
    if owner_password is not None:
        try:
            validate_password(owner_password)
        except ValidationError as exc:
            errors.append("owner password: " + " ".join(exc.messages))
    if "schema" in cleaned:
        if Isp.objects.filter(schema_name=cleaned["schema"]).exists():
            errors.append(f"schema {cleaned['schema']!r} is already used by another ISP")
        elif schema_exists(cleaned["schema"]):
            errors.append(f"a PostgreSQL schema named {cleaned['schema']!r} already exists")
    if "domain" in cleaned and Domain.objects.filter(domain=cleaned["domain"]).exists():
        errors.append(f"domain {cleaned['domain']!r} is already used by another ISP")
    if errors:
        raise IspInputError("; ".join(errors))
    return cleaned


def register_isp(*, schema, name, domain, owner_email, actor=None) -> Isp:
    """Record a new ISP (status provisioning) and its host; no schema yet."""
    with transaction.atomic(), audit.acting_as(actor):
        isp = Isp.objects.create(
            schema_name=schema,
            name=name,
            owner_email=owner_email,
            status=Isp.Status.PROVISIONING,
        )
        Domain.objects.create(domain=domain, tenant=isp, is_primary=True)
    return isp


def provision_isp(isp: Isp, *, owner_password: str | None = None, request=None) -> Isp:
    """Create the ISP's schema and its owner login, then mark it active.

    With no password the owner is emailed a link to set one. Safe to run twice: an
    existing schema is kept and an existing owner is left alone.
    """
    from ispops.staff.models import User
    from ispops.staff.services import create_owner, send_invitation

    isp.create_schema(check_if_exists=True, verbosity=0)
    with tenant_context(isp), audit.acting_as("platform"):
        owner = User.objects.filter(email__iexact=isp.owner_email).first()
        if owner is None:
            owner = create_owner(isp.owner_email, owner_password)
            if owner_password is None:
                transaction.on_commit(
                    lambda: send_invitation(
                        owner, isp_name=isp.name, request=request, host=isp.primary_host
                    )
                )
    connection.set_schema_to_public()
    Isp.objects.filter(pk=isp.pk).update(status=Isp.Status.ACTIVE, provision_error="")
    isp.status = Isp.Status.ACTIVE
    forget_hosts()
    return isp


def create_isp(*, schema, name, domain, owner_email, owner_password, actor=None):
    """What `manage.py create_isp` does. Returns (isp, created).

    Idempotent on the schema: the same arguments again change nothing and return the
    existing ISP; a schema already taken with other details is refused.
    """
    # Tenants live in the public schema; a caller left in an ISP's schema is no reason
    # to fail.
    connection.set_schema_to_public()
    existing = Isp.objects.filter(schema_name=validate_schema_name(schema)).first()
    if existing is not None:
        if (
            existing.name == (name or "").strip()
            and existing.primary_host == (domain or "").strip().lower()
            and existing.owner_email == (owner_email or "").strip().lower()
            and existing.status == Isp.Status.ACTIVE
        ):
            return existing, False
        raise IspInputError(
            f"schema {schema!r} is already used by ISP {existing.name!r} "
            f"at {existing.primary_host or 'no domain'}"
        )
    cleaned = validate_new_isp(
        schema=schema,
        name=name,
        domain=domain,
        owner_email=owner_email,
        owner_password=owner_password,
    )
    isp = register_isp(actor=actor, **cleaned)
    try:
        provision_isp(isp, owner_password=owner_password)
    except BaseException:
        # Nothing half-made survives a failure: drop what was created.
        connection.set_schema_to_public()
        isp.delete(force_drop=True)
        raise
    return isp, True


def mark_failed(isp_id: int, error: str) -> None:
    Isp.objects.filter(pk=isp_id).update(status=Isp.Status.FAILED, provision_error=error[:2000])
