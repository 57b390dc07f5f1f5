"""The emulated router's firewall and web proxy: `/ip/firewall/filter`, `/ip/firewall/nat`,
`/ip/proxy` (settings, no `.id`) and `/ip/proxy/access`.

- Rules are kept in the router's order, which is the order they act in. `add` takes
  `place-before=<.id>` (the new rule goes right before that one; an unknown id is `no
  such item` and nothing is added); without it the rule goes last. `move
  numbers=<ids> destination=<.id>` puts the rules, in the order given, right before the
  destination, or last without one.
- Values are checked as RouterOS checks them: `action` one of the menu's real actions,
  `chain` required (a built-in chain of the table or a user chain: RouterOS makes a
  chain of any new name, so any other word is taken, except a built-in chain of the
  other table [unverified]), `protocol` a known name or 0..255, ports numbers or
  ranges up to 65535, addresses IPv4 (prefix or range), `!` negation where RouterOS
  allows it, `reject-with` one of its values; `jump` needs `jump-target`. Unknown
  properties are refused (`unknown parameter`), as on every other menu.
- Port matchers need a protocol with ports (RouterOS refuses them otherwise; the exact
  words of that refusal are [unverified]).
- No packet is filtered here: the emulator keeps configuration, as it does for queues.

The action lists are RouterOS 7's (help.mikrotik.com "Filter", "NAT"); v6 has the same
ones except endpoint-independent-nat.
"""

import ipaddress
import re

from network.emulator.state import RO, ApiError, F, Menu, Reply

FILTER, NAT = "/ip/firewall/filter", "/ip/firewall/nat"
PROXY, PROXY_ACCESS = "/ip/proxy", "/ip/proxy/access"
ORDERED = (FILTER, NAT, PROXY_ACCESS)
COMMANDS = frozenset(
    {f"{path}/{verb}" for path in ORDERED for verb in ("add", "move")}
    | {f"{PROXY}/print", f"{PROXY}/getall", f"{PROXY}/set"}
)

FILTER_ACTIONS = (
    "accept", "add-dst-to-address-list", "add-src-to-address-list", "drop",
    "fasttrack-connection", "jump", "log", "passthrough", "reject", "return", "tarpit",
)  # fmt: skip
NAT_ACTIONS = (
    "accept", "add-dst-to-address-list", "add-src-to-address-list", "dst-nat",
    "endpoint-independent-nat", "jump", "log", "masquerade", "netmap", "passthrough",
    "redirect", "return", "same", "src-nat",
)  # fmt: skip
CHAINS = {FILTER: ("input", "forward", "output"), NAT: ("srcnat", "dstnat")}
REJECT_WITH = (
    "icmp-admin-prohibited", "icmp-host-prohibited", "icmp-host-unreachable",
    "icmp-net-prohibited", "icmp-network-unreachable", "icmp-port-unreachable",
    "icmp-protocol-unreachable", "tcp-reset",
)  # fmt: skip
PROTOCOLS = (
    "dccp", "ddp", "egp", "encap", "etherip", "ggp", "gre", "hmp", "icmp", "icmpv6",
    "idpr-cmtp", "igmp", "ipencap", "ipip", "ipsec-ah", "ipsec-esp", "ipv6-encap",
    "ipv6-frag", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "iso-tp4", "l2tp", "ospf",
    "pim", "pup", "rdp", "rspf", "rsvp", "sctp", "st", "tcp", "udp", "udp-lite", "vmtp",
    "vrrp", "xns-idp", "xtp",
)  # fmt: skip
PORTED = frozenset({"tcp", "udp", "sctp", "dccp", "udp-lite", "6", "17", "33", "132", "136"})
CONNECTION_STATES = ("established", "invalid", "new", "related", "untracked")
_WORD = re.compile(r"[A-Za-z0-9_.:-]+\Z")


def _matchers(nat: bool) -> list:
    fields = [
        F("chain", required=True),
        F("action", "enum", "accept", choices=NAT_ACTIONS if nat else FILTER_ACTIONS),
        F("src-address"),
        F("dst-address"),
        F("src-address-list"),
        F("dst-address-list"),
        F("protocol"),
        F("src-port"),
        F("dst-port"),
        F("port"),
        F("in-interface"),
        F("out-interface"),
        F("in-interface-list"),
        F("out-interface-list"),
        F("connection-state"),
        F("connection-nat-state"),
        F("connection-mark"),
        F("jump-target"),
        F("address-list"),
        F("address-list-timeout"),
    ]
    if nat:
        fields += [F("to-addresses"), F("to-ports")]
    else:
        fields += [F("reject-with", "enum", choices=REJECT_WITH)]
    return [
        *fields,
        RO("bytes", "0"),
        RO("packets", "0"),
        RO("invalid", "false", "bool"),
        RO("dynamic", "false", "bool"),
        F("log", "bool", "false"),
        F("log-prefix", default=""),
        F("disabled", "bool", "false"),
        F("comment"),
    ]


def menus() -> list[Menu]:
    proxy = Menu(
        PROXY,
        [
            F("enabled", "bool", "false"),
            F("src-address", default="::"),
            F("port", default="8080"),
            F("anonymous", "bool", "false"),
            F("parent-proxy", default="::"),
            F("parent-proxy-port", default="0"),
            F("cache-administrator", default="webmaster"),
            F("max-cache-size", default="unlimited"),
            F("cache-on-disk", "bool", "false"),
            F("max-client-connections", "int", "600"),
            F("max-server-connections", "int", "600"),
            F("serialize-connections", "bool", "false"),
            F("always-from-cache", "bool", "false"),
        ],
        key=(),
        verbs=frozenset(),  # print and set only, answered by Firewall (a settings menu)
    )
    access = Menu(
        PROXY_ACCESS,
        [
            F("src-address"),
            F("dst-address"),
            F("dst-host"),
            F("dst-port"),
            F("local-port"),
            F("path"),
            F("method"),
            F("action", "enum", "allow", choices=("allow", "deny")),
            F("redirect-to"),
            RO("hits", "0"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=(),
    )
    filter_ = Menu(FILTER, _matchers(nat=False), key=())
    nat = Menu(NAT, _matchers(nat=True), key=())
    return [filter_, nat, proxy, access]


def _bad(name):
    return ApiError(f"invalid value for argument {name}", 1)


def _positive(value: str) -> tuple[bool, str]:
    return (False, value[1:]) if value.startswith("!") else (True, value)


def _check_ports(name: str, value: str):
    _, value = _positive(value)
    for part in value.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e.isdigit() and int(e) <= 65535 for e in ends):
            raise _bad(name)


def _check_address(name: str, value: str):
    _, value = _positive(value)
    try:
        if "-" in value:
            low, high = (ipaddress.IPv4Address(p) for p in value.split("-"))
            if low > high:
                raise ApiError(f"value of {name} expects range of ip addresses", 1)
        else:
            ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise _bad(name) from None


class Firewall:
    """Firewall rules and the web proxy of one RouterState (whose lock is held by
    RouterState.execute when these run)."""

    commands = COMMANDS

    def __init__(self, state):
        self.state = state
        proxy = state.menus[PROXY]
        proxy.insert(state._defaults(proxy, {}), row_id=0, builtin=True)

    def execute(self, command, args, queries) -> Reply:
        path, _, verb = command.rpartition("/")
        state, menu = self.state, self.state.menus[path]
        if path == PROXY:
            row = menu.rows[0]
            if verb == "set":
                state.update(menu, 0, args)
                return Reply([], {})
            return state._listing([{k: v for k, v in row.items() if k != ".id"}], args, queries)
        if verb == "add":
            values = {k: v for k, v in args.items() if k not in ("place-before", "copy-from")}
            before = None
            if "place-before" in args:
                before = state.resolve(menu, args["place-before"])[0]  # no such item
            row_id = state.add(menu, values)
            if before is not None:
                self._move(menu, [row_id], before)
            return Reply([], {"ret": menu.rows[row_id][".id"]})
        state._check_args_known(args, {"numbers", ".id", "destination"})
        ids = state._resolve(menu, args)
        destination = None
        if args.get("destination"):
            destination = state.resolve(menu, args["destination"])[0]
        self._move(menu, ids, destination)
        return Reply([], {})

    @staticmethod
    def _move(menu: Menu, ids: list[int], before: int | None):
        """Put `ids` (in this order) right before `before`, or last."""
        rest = [row_id for row_id in menu.rows if row_id not in ids]
        at = rest.index(before) if before in rest else len(rest)
        order = rest[:at] + list(ids) + rest[at:]
        menu.rows = {row_id: menu.rows[row_id] for row_id in order}

    def validate(self, menu: Menu, row: dict):
        """Checks of a rule as a whole, before it is stored (add and set)."""
        if menu.path == PROXY:
            for part in row.get("port", "").split(","):
                if not part.isdigit() or not 0 < int(part) <= 65535:
                    raise _bad("port")
            return
        if menu.path == PROXY_ACCESS:
            for name in ("dst-port", "local-port"):
                if name in row:
                    _check_ports(name, row[name])
            for name in ("src-address", "dst-address"):
                if name in row:
                    _check_address(name, row[name])
            return
        chain = row.get("chain", "")
        other = CHAINS[NAT if menu.path == FILTER else FILTER]
        if not _WORD.match(chain) or chain in other:
            raise ApiError("input does not match any value of chain", 1)
        if row.get("action") == "jump" and not row.get("jump-target"):
            raise ApiError("missing value(s) of argument(s) jump-target")
        for name in ("src-address", "dst-address", "to-addresses"):
            if name in row:
                _check_address(name, row[name])
        for name in ("src-address-list", "dst-address-list", "address-list"):
            if name in row and not _WORD.match(_positive(row[name])[1]):
                raise _bad(name)
        protocol = _positive(row.get("protocol", ""))[1]
        numbered = protocol.isdigit() and int(protocol) <= 255
        if protocol and protocol not in PROTOCOLS and not numbered:
            raise ApiError("input does not match any value of protocol", 1)
        for name in ("src-port", "dst-port", "port", "to-ports"):
            if name in row:
                _check_ports(name, row[name])
                if name != "to-ports" and protocol not in PORTED:
                    raise ApiError(f"failure: {name} can be set only for tcp, udp and the like")
        for state in row.get("connection-state", "").split(","):
            if state and _positive(state)[1] not in CONNECTION_STATES:
                raise ApiError("input does not match any value of connection-state", 1)
