"""Absolute links for emails and SMS, on the right host, scheme and port."""

from django.conf import settings


def absolute_url(path: str, *, request=None, host: str | None = None) -> str:
    """`path` on `host` (default: the request's host), keeping the request's scheme and
    port so a development link to demo.localhost:8000 works as well as a production one."""
    if request is not None:
        scheme = request.scheme
        current = request.get_host()
        port = current.rsplit(":", 1)[1] if ":" in current else ""
        host = host or current.split(":")[0]
    else:
        scheme = settings.PUBLIC_SCHEME
        port = settings.PUBLIC_PORT
    if port and port not in ("80", "443"):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{path}"
