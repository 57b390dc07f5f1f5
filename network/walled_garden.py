"""The PPPoE / static walled garden on a router: what turns the suspended address list
(settings.SUSPENDED_ADDRESS_LIST, filled by network.provisioning) into "can reach only
the pay page", pushed and read back on every router sync (network.services.sync_router).

What ispops keeps on the router, every item commented `ispops walled garden`:

- `/ip/firewall/address-list` WALLED_LIST: the ISP's own hosts (its domains in
  ispops.tenancy, primary first: the portal, its pay page and static files live there).
  RouterOS (6.36+ and 7) resolves a DNS name in an address list and keeps its addresses
  as dynamic entries of the same list, so a host that moves is followed.
- `/ip/firewall/filter`, at the top of the table, in this order:
  forward: suspended -> DNS (udp and tcp 53) accept; suspended -> WALLED_LIST accept;
  everything else from suspended rejected with icmp-admin-prohibited (a browser gives
  up at once instead of waiting for a time-out);
  input: suspended -> the router's proxy port accept (an operator's "drop all not from
  LAN" would otherwise drop the redirected requests).
- `/ip/firewall/nat`, at the top: dstnat, suspended, tcp 80, not to WALLED_LIST ->
  `redirect` to PROXY_PORT (the router's own web proxy).
- `/ip/proxy` enabled with PROXY_PORT among its ports (a proxy that was off gets only
  ours, so no open proxy appears on 8080), and `/ip/proxy/access` at the top:
  local-port=PROXY_PORT action=deny redirect-to=<pay page>. Every request arriving on
  our port is answered with a redirect to the pay page and nothing is proxied.

Why the router's web proxy: a dst-nat straight to the ispops server would deliver a
request whose Host is the site the subscriber asked for, which the server cannot route
to the ISP; the proxy answers with an HTTP redirect to the pay page's real URL, which the
browser then opens by name. This is how billing systems for MikroTik do it, and it works
alike on RouterOS 6 and 7 (address lists, redirect, proxy access `redirect-to` exist in
both).

Limits, said plainly:
- HTTPS (and QUIC) cannot be redirected: the browser checks the certificate of the site
  it asked for, so a suspended subscriber's HTTPS is rejected, not redirected. Phones
  and browsers probe a plain-HTTP captive-portal URL, so most still show the pay page;
  otherwise any http:// page does.
- DNS through the router itself (its input chain) is left to the operator's rules, as
  for every paying subscriber; DNS to any other server is let through.
- Connections already fasttracked before the suspension skip the firewall until they
  end; provisioning drops a suspended PPPoE session, so that is only static IPs'.
- Our rules go before the operator's first rule (`place-before`, table-wide: rules of
  other chains do not change what ours do). A dynamic rule (the fasttrack counter
  dummy) is never moved or counted. An operator's rule is never changed, moved or
  removed; an operator's own entry in WALLED_LIST (not commented as ours) is kept and
  walls in that host as well.

Only differences are written (a rule of ours edited, disabled, moved or deleted on the
router is put back; a second sync writes nothing), and every write is read back
(provisioning.NotApplied otherwise).
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.urls import NoReverseMatch, reverse

from ispops.lib.urls import absolute_url
from ispops.tenancy.models import Domain
from network.provisioning import NotApplied, RouterSession, as_wire

log = logging.getLogger(__name__)

COMMENT = "ispops walled garden"
WALLED_LIST = "ispops-walled-garden"
# Not 8080 (the proxy's default, perhaps the operator's own use of it).
PROXY_PORT = "8082"
PAY_PATH = "portal:pay"
ADDRESS_LIST, FILTER, NAT = (
    "/ip/firewall/address-list",
    "/ip/firewall/filter",
    "/ip/firewall/nat",
)
PROXY, PROXY_ACCESS = "/ip/proxy", "/ip/proxy/access"
# What a printed rule carries besides what was written: counters, flags, defaults.
_PRINTED_ONLY = {".id", ".about", ".nextid", "bytes", "packets", "hits", "invalid", "dynamic"}
_DEFAULTS = {"log": "false", "log-prefix": "", "disabled": "false"}


@dataclass(frozen=True)
class Garden:
    """What the router should hold: the walled hosts and the pay page's URL ("" when the
    ISP has no host yet: suspended subscribers are then only blocked)."""

    hosts: tuple[str, ...]
    pay_url: str


def garden() -> Garden:
    """This ISP's walled garden, from its domains (the public schema's Domain rows)."""
    hosts = tuple(
        dict.fromkeys(
            d.lower()
            for d in Domain.objects.filter(tenant__schema_name=connection.schema_name)
            .order_by("-is_primary", "domain")
            .values_list("domain", flat=True)
        )
    )
    if not hosts:
        return Garden((), "")
    try:
        path = reverse(PAY_PATH)
    except NoReverseMatch:
        path = "/"
    return Garden(hosts, absolute_url(path, host=hosts[0]))


def filter_rules() -> list[dict]:
    suspended = settings.SUSPENDED_ADDRESS_LIST
    forward = {"chain": "forward", "src-address-list": suspended}
    return [
        {**forward, "action": "accept", "protocol": "udp", "dst-port": "53"},
        {**forward, "action": "accept", "protocol": "tcp", "dst-port": "53"},
        {**forward, "action": "accept", "dst-address-list": WALLED_LIST},
        {**forward, "action": "reject", "reject-with": "icmp-admin-prohibited"},
        {
            "chain": "input",
            "src-address-list": suspended,
            "action": "accept",
            "protocol": "tcp",
            "dst-port": PROXY_PORT,
        },
    ]


def nat_rules(wanted: Garden) -> list[dict]:
    if not wanted.pay_url:
        return []
    return [
        {
            "chain": "dstnat",
            "src-address-list": settings.SUSPENDED_ADDRESS_LIST,
            "dst-address-list": f"!{WALLED_LIST}",
            "protocol": "tcp",
            "dst-port": "80",
            "action": "redirect",
            "to-ports": PROXY_PORT,
        }
    ]


def proxy_rules(wanted: Garden) -> list[dict]:
    if not wanted.pay_url:
        return []
    return [{"local-port": PROXY_PORT, "action": "deny", "redirect-to": wanted.pay_url}]


def desired(wanted: Garden) -> dict[str, list[dict]]:
    """{menu: the rules of ours, in order} (without the comment)."""
    return {FILTER: filter_rules(), NAT: nat_rules(wanted), PROXY_ACCESS: proxy_rules(wanted)}


# --- comparing ---------------------------------------------------------------------------


def _dynamic(row: dict) -> bool:
    return as_wire(row.get("dynamic", False)) == "true"


def _disabled(row: dict) -> bool:
    return as_wire(row.get("disabled", False)) == "true"


def _is_ours(row: dict) -> bool:
    return str(row.get("comment", "")) == COMMENT and not _dynamic(row)


def significant(row: dict) -> dict:
    """What a printed rule says, without counters, flags, comment and default values."""
    out = {}
    for key, value in row.items():
        if key in _PRINTED_ONLY or key == "comment":
            continue
        value = as_wire(value)
        if _DEFAULTS.get(key) == value:
            continue
        out[key] = value
    return out


# --- writing ------------------------------------------------------------------------------


def sync(session: RouterSession, wanted: Garden | None = None) -> list[str]:
    """Make the router's walled garden the generated one, writing only differences, and
    read it back. Returns what changed (nothing on a second run)."""
    wanted = wanted if wanted is not None else garden()
    changes = []
    changes += _sync_hosts(session, wanted.hosts)
    for menu, rules in desired(wanted).items():
        changes += _sync_rules(session, menu, rules)
    if wanted.pay_url:
        changes += _sync_proxy(session)
    return changes


def _sync_hosts(session: RouterSession, hosts) -> list[str]:
    """Our entries in WALLED_LIST, one per host; a host the operator already put there
    (an entry without our comment) is walled in by theirs."""
    props = (".id", "address", "comment", "disabled", "dynamic")
    rows = [r for r in session.rows(ADDRESS_LIST, props=props, list=WALLED_LIST) if not _dynamic(r)]
    theirs = {
        str(r.get("address", "")).lower() for r in rows if not _is_ours(r) and not _disabled(r)
    }
    kept, extra = set(), []
    for row in filter(_is_ours, rows):
        address = str(row.get("address", "")).lower()
        if address in hosts and address not in kept and not _disabled(row):
            kept.add(address)
        else:
            extra.append(row[".id"])
    session.remove(ADDRESS_LIST, *extra)
    missing = [h for h in hosts if h not in kept and h not in theirs]
    for host in missing:
        session.add(ADDRESS_LIST, list=WALLED_LIST, address=host, comment=COMMENT)
    if not (extra or missing):
        return []
    after = session.rows(ADDRESS_LIST, props=props, list=WALLED_LIST)
    have = {str(r.get("address", "")).lower() for r in after if not (_dynamic(r) or _disabled(r))}
    if not set(hosts) <= have or sum(map(_is_ours, after)) != len(set(hosts) - theirs):
        raise NotApplied(f"{ADDRESS_LIST} {WALLED_LIST} does not hold the walled hosts")
    return [f"walled hosts: {len(missing)} added, {len(extra)} removed"]


def _sync_rules(session: RouterSession, menu: str, rules: list[dict]) -> list[str]:
    """Our rules, exactly `rules` in this order, before every rule of the operator's."""
    rows = session.rows(menu)
    ours = [r for r in rows if _is_ours(r)]
    matched: dict[int, str] = {}  # index in rules -> .id of a row that says exactly it
    for i, rule in enumerate(rules):
        for row in ours:
            if row[".id"] not in matched.values() and significant(row) == rule:
                matched[i] = row[".id"]
                break
    stale = [r[".id"] for r in ours if r[".id"] not in matched.values()]
    session.remove(menu, *stale)
    order = [r[".id"] for r in rows if not _dynamic(r) and r[".id"] not in stale]
    theirs = [row_id for row_id in order if row_id not in matched.values()]
    before = theirs[0] if theirs else None
    added = moved = 0
    # From the last rule up: each goes right before the one after it (the last right
    # before the operator's first rule), so rules already in place cost nothing.
    for i in reversed(range(len(rules))):
        row_id = matched.get(i)
        at = order.index(before) if before is not None else len(order)
        if row_id is None:
            fields = {**rules[i], "comment": COMMENT}
            if before is not None:
                fields["place-before"] = before
            row_id = str(session.add(menu, **fields))
            order.insert(at, row_id)
            added += 1
        elif order.index(row_id) + 1 != at:
            words = {"numbers": row_id}
            if before is not None:
                words["destination"] = before
            tuple(session.path(menu)("move", **words))
            session.writes += 1
            order.remove(row_id)
            order.insert(order.index(before) if before is not None else len(order), row_id)
            moved += 1
        before = row_id
    if not (stale or added or moved):
        return []
    _verify_rules(session, menu, rules)
    return [f"{menu}: {added} added, {moved} moved, {len(stale)} removed"]


def _verify_rules(session: RouterSession, menu: str, rules: list[dict]) -> None:
    rows = [r for r in session.rows(menu) if not _dynamic(r)]
    top = rows[: len(rules)]
    ours = [r for r in rows if _is_ours(r)]
    if (
        len(ours) != len(rules)
        or not all(_is_ours(r) for r in top)
        or [significant(r) for r in top] != rules
    ):
        raise NotApplied(f"{menu} does not hold the walled garden rules ispops wrote")


def _sync_proxy(session: RouterSession) -> list[str]:
    """The router's web proxy on, listening on our port too."""
    row = session.rows(PROXY)[0]
    enabled = as_wire(row.get("enabled")) == "true"
    ports = [p for p in as_wire(row.get("port", "")).split(",") if p]
    if enabled and PROXY_PORT in ports:
        return []
    # A proxy that was off served nobody: only our port, so none is left open.
    port = ",".join([*ports, PROXY_PORT]) if enabled else PROXY_PORT
    tuple(session.path(PROXY)("set", enabled="yes", port=port))
    session.writes += 1
    row = session.rows(PROXY)[0]
    ports = as_wire(row.get("port", "")).split(",")
    if as_wire(row.get("enabled")) != "true" or PROXY_PORT not in ports:
        raise NotApplied(f"{PROXY} is not enabled on port {PROXY_PORT}")
    return [f"web proxy enabled on port {PROXY_PORT}"]
