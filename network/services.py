"""Network operations other apps call. Provisioning, drift and monitoring come with the
network issue; here: router records."""

import re

from django.db import transaction

from ispops import audit
from network.models import Router

_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[?[0-9a-fA-F:]+\]?$")


class RouterError(ValueError):
    """Input refused; str() is the reason."""


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
) -> Router:
    name, host, username = (name or "").strip(), (host or "").strip(), (username or "").strip()
    if not name:
        raise RouterError("a router needs a name")
    if not _HOST_RE.match(host):
        raise RouterError(f"invalid host {host!r}")
    if not 1 <= int(port) <= 65535:
        raise RouterError(f"invalid port {port}")
    if not username:
        raise RouterError("a router needs an API username")
    if Router.objects.filter(name__iexact=name).exists():
        raise RouterError(f"a router named {name!r} already exists")
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
        )
