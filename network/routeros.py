"""Talking to a MikroTik over its API with librouteros: one connection per unit of work,
and failures turned into three plain kinds staff can act on.

- RouterUnreachable: refused, timed out, dropped (retry later; the job waits);
- RouterLoginFailed: the router refused our API username or password (fix the record);
- RouterRefused: the router rejected a command (its own message is kept).
"""

import ssl
from contextlib import contextmanager, suppress

import librouteros
from django.conf import settings
from librouteros.exceptions import (
    ConnectionClosed,
    FatalError,
    LibRouterosError,
    MultiTrapError,
    TrapError,
)


class RouterError(Exception):
    """Base of the three failures below; str() is a sentence for staff."""


class RouterUnreachable(RouterError):
    pass


class RouterLoginFailed(RouterError):
    pass


class RouterRefused(RouterError):
    pass


def _tls_wrapper():
    # MikroTik api-ssl runs on a self-signed certificate almost everywhere.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket


@contextmanager
def connect(router, timeout: float | None = None):
    """An open librouteros Api for `router` (a network.models.Router), closed afterwards."""
    timeout = timeout or settings.ROUTER_API_TIMEOUT
    where = f"{router.host}:{router.port}"
    try:
        api = librouteros.connect(
            router.host,
            router.username,
            router.password or "",
            port=router.port,
            timeout=timeout,
            ssl_wrapper=_tls_wrapper() if router.use_tls else None,
        )
    except TrapError as exc:
        if "invalid user name or password" in str(exc.message) or "cannot log in" in str(
            exc.message
        ):
            raise RouterLoginFailed(
                f"{router.name} refused the API login for user {router.username!r}: "
                "wrong username or password"
            ) from None
        raise RouterRefused(f"{router.name} refused the login: {exc.message}") from None
    except (ConnectionClosed, FatalError) as exc:
        raise RouterUnreachable(f"{router.name} ({where}) closed the connection: {exc}") from None
    except TimeoutError:
        raise RouterUnreachable(
            f"{router.name} ({where}) did not answer within {timeout:g} s"
        ) from None
    except ConnectionRefusedError:
        raise RouterUnreachable(
            f"{router.name} ({where}) refused the connection: is the "
            "API service enabled and the port right?"
        ) from None
    except OSError as exc:
        raise RouterUnreachable(
            f"{router.name} ({where}) cannot be reached: {exc.strerror or exc}"
        ) from None
    try:
        yield api
    except (TrapError, MultiTrapError) as exc:
        raise RouterRefused(f"{router.name}: {exc}") from None
    except (ConnectionClosed, FatalError, TimeoutError, OSError) as exc:
        raise RouterUnreachable(f"{router.name} ({where}) dropped the connection: {exc}") from None
    except LibRouterosError as exc:
        raise RouterUnreachable(f"{router.name} ({where}): {exc}") from None
    finally:
        # Closing a broken socket must not mask the error being raised.
        with suppress(Exception):
            api.close()


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


def parse_duration(text) -> int:
    """RouterOS durations ("1w2d3h4m5s", "44m55s") in seconds."""
    if isinstance(text, int):
        return text
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    total, number = 0, ""
    for ch in str(text or ""):
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            number = ""
    return total
