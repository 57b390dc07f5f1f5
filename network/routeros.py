"""Talking to a MikroTik over its API with librouteros, and failures turned into three
plain kinds staff can act on.

- RouterUnreachable: refused, timed out, dropped (retry later; the job waits);
- RouterLoginFailed: the router refused our API username or password (fix the record);
- RouterRefused: the router rejected a command (its own message is kept).

`connect()` opens a connection for one unit of work and closes it. `pooled()` keeps it
open afterwards for the next unit of work on the same router with the same credentials
(router jobs: a connection and login per job batch cost more than the job itself). Every
socket has TCP_NODELAY set: each API command is one small write answered by a small
reply, the pattern Nagle's algorithm and a delayed ACK turn into a ~40 ms stall.

Every connection is opened by `_open()`, and `_open()` dials only what `vetted_target()`
allows: no control characters in what is sent, and an address that is not this machine,
a special-purpose address or one of this installation's own services (PostgreSQL, Redis)
unless settings.ROUTER_ALLOW_LOCAL says so. A host name is resolved there, at dial time,
and the address checked is the address dialled (a name re-pointed after the router was
saved changes nothing). Whatever stops the login before a RouterOS answers (closed,
filtered or silent port, another service, TLS) gives one message, so the router form is
no port scanner.
"""

import functools
import hashlib
import ipaddress
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import librouteros
from django.conf import settings
from django.db import connection
from librouteros.exceptions import (
    ConnectionClosed,
    FatalError,
    LibRouterosError,
    MultiTrapError,
    TrapError,
)

from network.models import Router, has_control_characters

log = logging.getLogger(__name__)


class RouterError(Exception):
    """Base of the three failures below; str() is a sentence for staff."""


class RouterUnreachable(RouterError):
    pass


class RouterLoginFailed(RouterError):
    pass


class RouterRefused(RouterError):
    pass


class RouterTargetRefused(RouterUnreachable):
    """The router's record points somewhere ispops never connects to (or holds control
    characters); nothing was sent. Unreachable to the callers that retry."""


# --- where a router may be ---------------------------------------------------------------

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# 0.0.0.0/8 is "this network": Linux dials 0.x.y.z as this machine.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _url_hosts() -> set[str]:
    """The hosts of this installation's own services: its database, Redis (broker and
    results) and this machine's own name (the web server)."""
    hosts = {socket.gethostname()}
    database = settings.DATABASES["default"].get("HOST") or ""
    if database and not database.startswith("/"):
        hosts.add(database)
    for url in (getattr(settings, "REDIS_URL", ""), getattr(settings, "CELERY_BROKER_URL", "")):
        with suppress(ValueError):
            if urlsplit(url or "").hostname:
                hosts.add(urlsplit(url).hostname)
    return hosts


@functools.cache
def own_service_addresses() -> frozenset:
    """Every address the hosts above resolve to (once per process: they do not move while
    it runs). A name that does not resolve is skipped: nothing can be dialled at it."""
    found = set()
    for host in _url_hosts():
        with suppress(OSError, UnicodeError):
            for *_, sockaddr in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
                found.add(_plain(ipaddress.ip_address(sockaddr[0].split("%")[0])))
    return frozenset(found)


def _plain(address):
    # ::ffff:127.0.0.1 is 127.0.0.1 on the wire.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def address_problem(address) -> str | None:
    """Why ispops must not dial `address` (an ipaddress object), or None."""
    if settings.ROUTER_ALLOW_LOCAL:
        return None
    address = _plain(address)
    if address.is_loopback or address in _THIS_NETWORK or address.is_unspecified:
        return "is this server itself"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_multicast:
        return "is a multicast address"
    if address == _BROADCAST or address.is_reserved:
        return "is a broadcast or reserved address"
    if address in own_service_addresses():
        return "is one of this installation's own servers"
    return None


def numeric_addresses(host: str) -> list | None:
    """The addresses a host written as a number means (127.1 and 2130706433 included,
    as the resolver reads them), or None for a name. No DNS is asked."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):
        return None
    return [ipaddress.ip_address(sockaddr[0].split("%")[0]) for *_, sockaddr in infos]


def host_problem(host: str) -> str | None:
    """Why a router may not be recorded at `host`, judged without asking DNS (a name is
    checked again at every connection): a sentence for the form, or None."""
    if has_control_characters(host):
        return "the address holds control characters"
    if settings.ROUTER_ALLOW_LOCAL:
        return None
    name = host.strip().rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return f"{host} is this server itself, not a router"
    for address in numeric_addresses(host) or []:
        problem = address_problem(address)
        if problem:
            return f"{host} {problem}, not a router"
    return None


def vetted_target(router) -> str:
    """The address to dial for `router`, once its fields and every address its host
    resolves to are allowed. Raises RouterTargetRefused (nothing sent) otherwise."""
    bad = [f for f in Router.WIRE_FIELDS if has_control_characters(getattr(router, f, ""))]
    if bad:
        raise RouterTargetRefused(
            f"{_label(router)}: the router's {', '.join(bad)} hold control characters; "
            "fix the record"
        )
    problem = host_problem(router.host)
    if problem:
        raise RouterTargetRefused(f"{_label(router)}: {problem}")
    try:
        infos = socket.getaddrinfo(router.host.strip("[]"), router.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _unreachable(router, "the name does not resolve") from None
    addresses = [sockaddr[0] for *_, sockaddr in infos]
    for text in addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%")[0]))
        if problem:
            # Every address, not just the first: a name answering with a good and a bad
            # address is refused, not half-trusted.
            raise RouterTargetRefused(f"{_label(router)}: {router.host} {problem}")
    return addresses[0]


def _label(router) -> str:
    return f"{router.name} ({router.host}:{router.port})"


def _unreachable(router, detail) -> RouterUnreachable:
    """The one message for every way a connection fails before a RouterOS answers the
    login. The detail goes to the log for the operator, never to the page."""
    log.info("router %s unreachable: %s", _label(router), detail)
    return RouterUnreachable(
        f"{_label(router)} cannot be reached as a RouterOS API: check the address, the "
        "port, the TLS setting and that the API service is enabled and not firewalled"
    )


def _socket_wrapper(use_tls: bool):
    """librouteros hands the connected socket to this before logging in: the one place to
    set socket options on it."""
    if use_tls:
        # MikroTik api-ssl runs on a self-signed certificate almost everywhere.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    def wrap(sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(sock) if use_tls else sock

    return wrap


def _open(router, timeout: float | None = None):
    """A logged-in librouteros Api for `router` (a network.models.Router)."""
    timeout = timeout or settings.ROUTER_API_TIMEOUT
    address = vetted_target(router)
    try:
        return librouteros.connect(
            address,
            router.username,
            router.password or "",
            port=router.port,
            timeout=timeout,
            ssl_wrapper=_socket_wrapper(router.use_tls),
        )
    except TrapError as exc:
        # Only a RouterOS speaks in traps: telling a wrong login apart is no port scan.
        if "invalid user name or password" in str(exc.message) or "cannot log in" in str(
            exc.message
        ):
            raise RouterLoginFailed(
                f"{router.name} refused the API login for user {router.username!r}: "
                "wrong username or password"
            ) from None
        raise RouterRefused(f"{router.name} refused the login: {exc.message}") from None
    except Exception as exc:
        # Closed, filtered, silent, TLS failure, another protocol answering (whose bytes
        # librouteros may fail to decode in any way): all the same to the user.
        raise _unreachable(router, repr(exc)) from None


@contextmanager
def _translated(router):
    """librouteros and socket errors raised while using a connection, as RouterErrors."""
    where = f"{router.host}:{router.port}"
    try:
        yield
    except (TrapError, MultiTrapError) as exc:
        raise RouterRefused(f"{router.name}: {exc}") from None
    except (ConnectionClosed, FatalError, TimeoutError, OSError) as exc:
        raise RouterUnreachable(f"{router.name} ({where}) dropped the connection: {exc}") from None
    except LibRouterosError as exc:
        raise RouterUnreachable(f"{router.name} ({where}): {exc}") from None


def _close(api) -> None:
    # Closing a broken socket must not mask the error being raised.
    with suppress(Exception):
        api.close()


@contextmanager
def connect(router, timeout: float | None = None):
    """An open librouteros Api for `router` (a network.models.Router), closed afterwards."""
    api = _open(router, timeout)
    try:
        with _translated(router):
            yield api
    finally:
        _close(api)


# --- the connection pool ----------------------------------------------------------------

# A connection idle longer than this is closed rather than reused: firewalls and NAT on
# the way to a router forget quiet connections, and a dead one costs a full timeout.
POOL_MAX_IDLE = 300.0
# Idle connections kept per router and in all (a worker process uses one at a time).
POOL_PER_ROUTER = 2
POOL_MAX = 64


class Link:
    """A pooled connection: the Api, and what this connection has already learnt about
    the router (`cache`, e.g. the plan profiles checked), which lives as long as it."""

    def __init__(self, api):
        self.api = api
        self.cache: dict = {}
        self.reused = False
        self.idle_since = time.monotonic()

    @property
    def sock(self):
        return self.api.protocol.transport.sock

    def alive(self) -> bool:
        """True unless the router closed it or it sat idle too long. A closed socket reads
        as ready (EOF); so does a `!fatal` the router sent while we were away: either way
        the connection is not in a state to send a command on."""
        if time.monotonic() - self.idle_since > POOL_MAX_IDLE:
            return False
        try:
            sock = self.sock
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return False
            ready, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not ready


class _Pool:
    """Per process: idle Links by router (schema, id, where and credentials)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[Link]] = {}
        self.pid = os.getpid()

    def take(self, key) -> Link | None:
        with self.lock:
            self._check_pid()
            links = self.idle.get(key) or []
            while links:
                link = links.pop()
                if link.alive():
                    return link
                _close(link.api)
        return None

    def give(self, key, link: Link) -> None:
        link.idle_since = time.monotonic()
        with self.lock:
            self._check_pid()
            links = self.idle.setdefault(key, [])
            if len(links) < POOL_PER_ROUTER and self._count() < POOL_MAX:
                links.append(link)
                return
        _close(link.api)

    def close_all(self) -> int:
        with self.lock:
            links = [link for links in self.idle.values() for link in links]
            self.idle.clear()
        for link in links:
            _close(link.api)
        return len(links)

    def _count(self) -> int:
        return sum(len(links) for links in self.idle.values())

    def _check_pid(self):
        # A forked child must not talk over its parent's sockets: forget (not close) them.
        if self.pid != os.getpid():
            self.idle, self.pid = {}, os.getpid()


_pool = _Pool()


def _pool_key(router) -> tuple:
    # Router ids are per ISP schema; the credentials are part of the key so that a changed
    # password or address opens a new connection (the digest keeps them out of memory dumps).
    secret = hashlib.sha256(
        f"{router.host}\0{router.port}\0{router.username}\0{router.password}\0"
        f"{router.use_tls}".encode()
    ).hexdigest()
    return (connection.schema_name, router.pk, secret)


@contextmanager
def pooled(router, timeout: float | None = None):
    """A Link to `router`: a live pooled connection if there is one, else a new one. It
    goes back to the pool afterwards unless something failed on it (then it is closed,
    since a connection cut mid-reply cannot be trusted). `link.reused` says whether it had
    served before: a command failing on a reused connection may only mean the router
    dropped it while idle, so the caller can try once more on a fresh one."""
    key = _pool_key(router)
    link = _pool.take(key)
    if link is not None:
        link.reused = True
    else:
        link = Link(_open(router, timeout))
    healthy = False
    try:
        with _translated(router):
            yield link
        healthy = True
    except RouterRefused:
        # A trap is a whole reply: the connection is still in step.
        healthy = True
        raise
    finally:
        if healthy:
            _pool.give(key, link)
        else:
            _close(link.api)


def close_pool() -> int:
    """Close every pooled connection (a worker process shutting down); returns how many."""
    return _pool.close_all()


def identify(api) -> dict:
    """Identity, version, board and uptime of a connected router."""
    identity = next(iter(api.path("system", "identity")), {}).get("name", "")
    resource = next(iter(api.path("system", "resource")), {})
    return {
        "identity": identity,
        "version": str(resource.get("version", "")),
        "board": str(resource.get("board-name", "")),
        "uptime": str(resource.get("uptime", "")),
        "cpu_load": resource.get("cpu-load"),
    }


# RouterOS time values as versions 6 and 7 print them: units largest first, each at most
# once ("1w2d3h4m5s", "1s500ms", "3ms250us"; "m" is minutes, "ms" milliseconds), or
# weeks and days followed by a clock ("00:30:00", "1d 02:00:00", "1w2d03:04:05.250"),
# or bare seconds ("300", what a value typed without a unit means).
_UNIT_NS = {"w": 604800 * 10**9, "d": 86400 * 10**9, "h": 3600 * 10**9, "m": 60 * 10**9,
            "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}  # fmt: skip
_DURATION = re.compile(
    r"(?:(?P<w>\d+)w)?\s*(?:(?P<d>\d+)d)?\s*"
    r"(?:"
    r"(?P<clock>(?P<ch>\d+):(?P<cm>[0-5]\d):(?P<cs>[0-5]\d)(?:\.(?P<cf>\d{1,9}))?)"
    r"|(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m(?!s))?\s*(?:(?P<s>\d+)(?:\.(?P<sf>\d{1,9}))?s)?\s*"
    r"(?:(?P<ms>\d+)ms)?\s*(?:(?P<us>\d+)us)?\s*(?:(?P<ns>\d+)ns)?"
    r")"
)
_NO_DURATION = {"", "none", "never", "unlimited"}


def parse_duration(text) -> int:
    """A RouterOS time value in whole seconds (a fraction is dropped: "1s500ms" is 1).
    Reads every form RouterOS 6 and 7 print (see _DURATION); a number is taken as seconds.
    Nothing, "none" and "never" are 0, and so is text that is no time value at all (a
    poll must not fail on one odd row; it is logged)."""
    if isinstance(text, bool):
        raise TypeError("a duration is not a bool")
    if isinstance(text, int | float):
        return int(text)
    value = str(text if text is not None else "").strip().lower()
    if value in _NO_DURATION:
        return 0
    if value.isdigit():
        return int(value)
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.group(k) for k in ("w", "d", "clock", *_UNIT_NS)):
        log.warning("not a RouterOS duration: %r (read as 0)", value[:40])
        return 0
    parts = match.groupdict()
    if parts["clock"]:
        parts.update(h=parts["ch"], m=parts["cm"], s=parts["cs"], sf=parts["cf"])
    nanoseconds = sum(int(parts[unit] or 0) * size for unit, size in _UNIT_NS.items())
    if parts["sf"]:
        nanoseconds += int(parts["sf"].ljust(9, "0"))
    return nanoseconds // 10**9
