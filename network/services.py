"""Network operations other apps call. Provisioning, drift and monitoring come with the
network issue; here: router records."""

import re

from django.db import transaction

from ispops import audit
from network.models import Router

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[?[0-9a-fA-F:]+\]?$")


class RouterError(ValueError):
    """Input refused; str() is the reason."""


def valid_host(host: str) -> bool:
    return bool(_HOST_RE.match(host or ""))


def _check(name: str, host: str, port, username: str, exclude_pk=None) -> None:
    if not name:
        raise RouterError("a router needs a name")
    if not valid_host(host):
        raise RouterError(f"invalid host {host!r}")
    if not 1 <= int(port) <= 65535:
        raise RouterError(f"invalid port {port}")
    if not username:
        raise RouterError("a router needs an API username")
    if Router.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise RouterError(f"a router named {name!r} already exists")


def add_router(
    *,
    actor,
    name: str,
    host: str,
    port: int,
    username: str,
    password: str,
    use_tls: bool = False,
    branch=None,
    site=None,
    notes: str = "",
) -> Router:
    name, host, username = (name or "").strip(), (host or "").strip(), (username or "").strip()
    _check(name, host, port, username)
    with transaction.atomic(), audit.acting_as(actor):
        return Router.objects.create(
            name=name,
            host=host,
            port=int(port),
            username=username,
            password=password,
            use_tls=use_tls,
            branch=branch,
            site=site,
            notes=notes,
        )


def update_router(
    router: Router,
    *,
    actor,
    name: str,
    host: str,
    port: int,
    username: str,
    password: str = "",
    use_tls: bool = False,
    branch=None,
    site=None,
    notes: str = "",
) -> Router:
    """Change a router's record. A blank password keeps the stored one."""
    name, host, username = (name or "").strip(), (host or "").strip(), (username or "").strip()
    _check(name, host, port, username, exclude_pk=router.pk)
    with transaction.atomic(), audit.acting_as(actor):
        router.name, router.host, router.port, router.username = name, host, int(port), username
        router.use_tls, router.branch, router.site, router.notes = use_tls, branch, site, notes
        fields = ["name", "host", "port", "username", "use_tls", "branch", "site", "notes"]
        if password:
            router.password = password
            fields.append("password")
        router.save(update_fields=fields)
    return router
