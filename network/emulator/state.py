"""The emulated router's configuration and live state (shared/routeros.md §5, §6).

Every menu is a table of rows kept as the router prints them: dicts of strings, `.id`
first, booleans `true`/`false`, unset optional properties left out. Ids are `*HEX`,
counted up per menu and never reused. Unique keys (a name, or list+address) have a dict
index, so add/set/remove cost O(1) whatever the table size.

Values that change with time (uptime, interface counters, session bytes, address-list
timeouts) are not stored: they are computed from wall-clock timestamps when a row is
printed, so nothing has to tick in the background.

All public methods take `self.lock`; callers from other threads may also hold it to
make several calls atomic.
"""

import ipaddress
import json
import os
import re
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass

from network.emulator.query import Query, QueryError, is_plain_string

# ---------------------------------------------------------------------------- errors


class ApiError(Exception):
    """The command fails with one or more `!trap` sentences, then `!done`.

    `traps` is a list of (message, category) with category None when the router sends
    none. str() is the first message, which is what ValueError users of `add_row` see.
    """

    def __init__(self, message: str, category: int | None = None, *, more=()):
        self.traps = [(message, category), *more]
        super().__init__(message)

    @property
    def message(self) -> str:
        return self.traps[0][0]


NOT_FOUND = "no such item"
LOGIN_FAILED = "invalid user name or password (6)"


def _invalid(name):
    return ApiError(f"invalid value for argument {name}", 1)


def _no_match(name):
    return ApiError(f"input does not match any value of {name}", 1)


def _bad_time(name):
    return ApiError(f"invalid time value for argument {name}", 1)


# ---------------------------------------------------------------------------- values

_DURATION_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)?")
_CLOCK = re.compile(r"(?:(\d+)d\s*)?(\d+):(\d\d):(\d\d)\Z")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
_BITS = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)\Z")
_RATE_TOKEN = re.compile(r"[0-9][0-9.]*[a-zA-Z]*(?:/[0-9][0-9.]*[a-zA-Z]*)?\Z")
_MAC = re.compile(r"([0-9A-Fa-f]{2})[:-]?" * 5 + r"([0-9A-Fa-f]{2})\Z")
_HOSTNAME = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})\Z")
_MULTIPLIER = {"": 1, "k": 1000, "m": 1000000, "g": 1000000000}


def parse_duration(text: str) -> int | None:
    """Seconds in a RouterOS time value (`1w2d3h4m5s`, `90`, `00:30:00`, `1d 02:00:00`),
    or None when it is not one."""
    text = text.strip()
    if not text:
        return None
    clock = _CLOCK.match(text)
    if clock:
        days, hours, minutes, seconds = clock.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    total, pos = 0, 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if not part:
            return None
        number, unit = int(part.group(1)), part.group(2) or ""
        total += number // 1000 if unit == "ms" else number * _UNITS[unit]
        pos = part.end()
    return total


def format_duration(seconds: float) -> str:
    """`1w2d3h4m5s`, leaving out zero parts; `0s` for nothing."""
    seconds = max(0, int(seconds))
    out = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def parse_bits(text: str) -> int | None:
    """Bits per second from `10M`, `512k`, `1.5M`, `2000000`; None when malformed."""
    match = _BITS.match(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _MULTIPLIER[match.group(2).lower()])


def format_clock(epoch: float) -> str:
    """A timestamp as RouterOS 7.10+ prints dates (router local time)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _rate_for(name: str, salt: str) -> int:
    """A steady, per-name traffic rate between 1 and 5 Mbit/s."""
    return 1_000_000 + zlib.crc32(f"{salt}:{name}".encode()) % 4_000_001


def _mac_for(name: str) -> str:
    digest = zlib.crc32(name.encode()).to_bytes(4, "big")
    return "02:00:" + ":".join(f"{b:02X}" for b in digest)


def format_id(number: int) -> str:
    return f"*{number:X}"


def parse_id(text: str) -> int | None:
    if len(text) > 1 and text[0] == "*":
        try:
            return int(text[1:], 16)
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "str"
    default: str | None = None  # printed when not set; None: left out of the row
    required: bool = False
    writable: bool = True
    choices: tuple[str, ...] = ()
    ref: str = ""  # the menu whose names this property refers to
    none_ok: bool = False  # time values that also accept "none"


def F(name, kind="str", default=None, **kwargs) -> Field:
    return Field(name, kind, default, **kwargs)


def RO(name, default=None, kind="str") -> Field:
    return Field(name, kind, default, writable=False)


YES_NO_DEFAULT = ("default", "no", "yes")
YES_NO_REQUIRED = ("default", "no", "yes", "required")
PPP_SERVICES = ("any", "async", "l2tp", "ovpn", "pppoe", "pptp", "sstp")
LIST_VERBS = frozenset({"add", "set", "remove", "print", "getall", "unset", "enable", "disable"})
READ_VERBS = frozenset({"print", "getall"})
PRINT_FLAGS = {
    "count-only",
    "detail",
    "stats",
    "terse",
    "brief",
    "without-paging",
    "follow",
    "follow-only",
    "interval",
    "as-value",
    "value-list",
    "show-ids",
    "stats-detail",
}
COUNTERS = (
    "rx-byte",
    "tx-byte",
    "rx-packet",
    "tx-packet",
    "rx-drop",
    "tx-drop",
    "tx-queue-drop",
    "rx-error",
    "tx-error",
    "fp-rx-byte",
    "fp-tx-byte",
    "fp-rx-packet",
    "fp-tx-packet",
)
PAIR_ZERO = "0/0"


class Menu:
    """One list menu: schema, rows, unique index and id counter."""

    def __init__(
        self,
        path,
        fields,
        *,
        key=("name",),
        key_defaults=None,
        verbs=LIST_VERBS,
        duplicate="failure: already have such name",
        first_id=1,
        auto_name="",
    ):
        self.path = path
        self.fields = {field.name: field for field in fields}
        self.order = [field.name for field in fields]
        self.key = key
        self.key_defaults = key_defaults or {}
        self.verbs = verbs
        self.duplicate = duplicate
        self.first_id = first_id
        self.auto_name = auto_name  # e.g. "queue": unnamed rows become queue1, queue2...
        self.live = None  # set by RouterState: (id, row, now) -> dict of computed values
        self.sorted = False  # print in id order instead of insertion order
        self.reset()

    def reset(self):
        self.rows: dict[int, dict] = {}
        self.meta: dict[int, dict] = {}
        self.index: dict[tuple, int] = {}  # unique key -> id
        self.names: dict[str, list[int]] = {}  # name -> ids, for `.id=NAME` lookups
        self.builtin: set[int] = set()
        self.expiring: dict[int, float] = {}
        self.next_id = self.first_id

    def key_of(self, row) -> tuple | None:
        if not self.key:
            return None
        return tuple(row.get(k, self.key_defaults.get(k, "")) for k in self.key)

    def by_name(self, name: str) -> int | None:
        ids = self.names.get(name)
        return ids[0] if ids else None

    def index_row(self, row_id: int, row: dict):
        if self.key:
            self.index[self.key_of(row)] = row_id
        if "name" in row:
            self.names.setdefault(row["name"], []).append(row_id)

    def unindex_row(self, row_id: int, row: dict):
        if self.key and self.index.get(self.key_of(row)) == row_id:
            del self.index[self.key_of(row)]
        ids = self.names.get(row.get("name"))
        if ids and row_id in ids:
            ids.remove(row_id)
            if not ids:
                del self.names[row["name"]]

    def insert(self, values: dict, *, row_id: int | None = None, builtin=False) -> int:
        if row_id is None:
            row_id = self.next_id
            self.next_id += 1
        row = {".id": format_id(row_id)}
        for name in self.order:
            if name in values:
                row[name] = values[name]
        for name, value in values.items():
            if name not in row:
                row[name] = value
        self.rows[row_id] = row
        self.index_row(row_id, row)
        if builtin:
            self.builtin.add(row_id)
        return row_id

    def delete(self, row_id: int) -> dict:
        row = self.rows.pop(row_id)
        self.unindex_row(row_id, row)
        self.meta.pop(row_id, None)
        self.expiring.pop(row_id, None)
        return row

    def ordered(self):
        if self.sorted:
            return sorted(self.rows.items())
        return self.rows.items()


class Traffic:
    """Byte counters that grow at a set rate from a wall-clock moment."""

    __slots__ = ("rx_base", "rx_bps", "since", "tx_base", "tx_bps")

    def __init__(self, rx_bps=0, tx_bps=0, since=0.0, rx_base=0, tx_base=0):
        self.rx_bps, self.tx_bps, self.since = rx_bps, tx_bps, since
        self.rx_base, self.tx_base = rx_base, tx_base

    def totals(self, now) -> tuple[int, int]:
        elapsed = max(0.0, now - self.since)
        return (
            self.rx_base + int(self.rx_bps * elapsed / 8),
            self.tx_base + int(self.tx_bps * elapsed / 8),
        )

    def set_rates(self, now, rx_bps, tx_bps):
        self.rx_base, self.tx_base = self.totals(now)
        self.since, self.rx_bps, self.tx_bps = now, rx_bps, tx_bps

    def dump(self):
        return [self.rx_bps, self.tx_bps, self.since, self.rx_base, self.tx_base]


def _menus():
    secret = Menu(
        "/ppp/secret",
        [
            F("name", required=True),
            F("password", default=""),
            F("service", "enum", "any", choices=PPP_SERVICES),
            F("profile", "ref", "default", ref="/ppp/profile"),
            F("caller-id", default=""),
            F("local-address", "ip"),
            F("remote-address", "ip"),
            F("remote-ipv6-prefix"),
            F("routes", default=""),
            F("ipv6-routes", default=""),
            F("limit-bytes-in", "int", "0"),
            F("limit-bytes-out", "int", "0"),
            RO("last-logged-out"),
            RO("last-caller-id"),
            RO("last-disconnect-reason"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        duplicate="failure: secret with the same name already exists",
    )
    profile = Menu(
        "/ppp/profile",
        [
            F("name", required=True),
            F("local-address", "ip_or_pool"),
            F("remote-address", "ip_or_pool"),
            F("bridge"),
            F("incoming-filter"),
            F("outgoing-filter"),
            F("address-list", default=""),
            F("interface-list"),
            F("dns-server"),
            F("wins-server"),
            F("rate-limit", "rate"),
            F("session-timeout", "time"),
            F("idle-timeout", "time"),
            F("only-one", "enum", "default", choices=YES_NO_DEFAULT),
            F("change-tcp-mss", "enum", "default", choices=YES_NO_DEFAULT),
            F("use-compression", "enum", "default", choices=YES_NO_DEFAULT),
            F("use-encryption", "enum", "default", choices=YES_NO_REQUIRED),
            F("use-ipv6", "enum", "yes", choices=YES_NO_REQUIRED),
            F("use-mpls", "enum", "default", choices=YES_NO_REQUIRED),
            F("use-upnp", "enum", "default", choices=YES_NO_DEFAULT),
            F("insert-queue-before", default="first"),
            F("parent-queue"),
            F("queue-type"),
            F("on-up", default=""),
            F("on-down", default=""),
            F("comment"),
            RO("default", "false", "bool"),
        ],
        verbs=LIST_VERBS - {"enable", "disable"},
    )
    profile.sorted = True  # default-encryption (*FFFFFFFE) prints last
    active = Menu(
        "/ppp/active",
        [
            RO("name"),
            RO("service"),
            RO("caller-id"),
            RO("address"),
            RO("uptime"),
            RO("encoding", ""),
            RO("session-id"),
            RO("limit-bytes-in", "0"),
            RO("limit-bytes-out", "0"),
            RO("radius", "false", "bool"),
        ],
        key=(),
        verbs=READ_VERBS | {"remove"},
        first_id=0x80000001,
    )
    pool = Menu(
        "/ip/pool",
        [
            F("name", required=True),
            F("ranges", "ranges", required=True),
            F("next-pool", "pool", "none"),
            F("comment"),
        ],
        verbs=LIST_VERBS - {"enable", "disable"},
    )
    hotspot = Menu(
        "/ip/hotspot",
        [
            F("name", required=True),
            F("interface", "ref", required=True, ref="/interface"),
            F("address-pool", "pool", "none"),
            F("profile", default="default"),
            F("idle-timeout", "time", "5m", none_ok=True),
            F("keepalive-timeout", "time", "none", none_ok=True),
            F("login-timeout", "time", "none", none_ok=True),
            F("addresses-per-mac", default="2"),
            RO("invalid", "false", "bool"),
            RO("HTTPS", "false", "bool"),
            F("disabled", "bool", "false"),
        ],
    )
    hs_user = Menu(
        "/ip/hotspot/user",
        [
            F("server", "hotspot_server"),
            F("name", required=True),
            F("password", default=""),
            F("profile", "ref", "default", ref="/ip/hotspot/user/profile"),
            F("address", "ip"),
            F("mac-address", "mac"),
            F("email"),
            F("routes"),
            F("limit-uptime", "time"),
            F("limit-bytes-in", "int"),
            F("limit-bytes-out", "int"),
            F("limit-bytes-total", "int"),
            RO("uptime", "0s"),
            RO("bytes-in", "0"),
            RO("bytes-out", "0"),
            RO("packets-in", "0"),
            RO("packets-out", "0"),
            RO("dynamic", "false", "bool"),
            RO("default", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=("server", "name"),
        key_defaults={"server": "all"},
        duplicate="failure: already have user with this name for this server",
    )
    hs_profile = Menu(
        "/ip/hotspot/user/profile",
        [
            F("name", required=True),
            F("address-pool", "pool", "none"),
            F("idle-timeout", "time", "none", none_ok=True),
            F("keepalive-timeout", "time", "2m", none_ok=True),
            F("status-autorefresh", "time", "1m"),
            F("shared-users", "count", "1"),
            F("rate-limit", "rate"),
            F("session-timeout", "time"),
            F("address-list"),
            F("mac-cookie-timeout", "time", "3d"),
            F("add-mac-cookie", "bool", "true"),
            F("on-login"),
            F("on-logout"),
            F("transparent-proxy", "bool", "false"),
            F("open-status-page", "enum", "always", choices=("always", "http-login")),
            F("advertise", "bool", "false"),
            F("insert-queue-before"),
            F("parent-queue"),
            F("queue-type"),
            F("incoming-filter"),
            F("outgoing-filter"),
            F("incoming-packet-mark"),
            F("outgoing-packet-mark"),
            RO("default", "false", "bool"),
        ],
        verbs=LIST_VERBS - {"enable", "disable"},
    )
    hs_active = Menu(
        "/ip/hotspot/active",
        [
            RO("server"),
            RO("user"),
            RO("domain", ""),
            RO("address"),
            RO("mac-address"),
            RO("login-by"),
            RO("uptime"),
            RO("session-time-left"),
            RO("idle-time", "0s"),
            RO("keepalive-timeout", "2m"),
            RO("bytes-in"),
            RO("bytes-out"),
            RO("packets-in"),
            RO("packets-out"),
            RO("radius", "false", "bool"),
            RO("blocked", "false", "bool"),
        ],
        key=(),
        verbs=READ_VERBS | {"remove"},
    )
    queue = Menu(
        "/queue/simple",
        [
            F("name"),
            F("target", "target", required=True),
            F("dst"),
            F("parent", "queue_parent", "none"),
            F("packet-marks", default=""),
            F("priority", "priority", "8/8"),
            F("queue", default="default-small/default-small"),
            F("limit-at", "pair", PAIR_ZERO),
            F("max-limit", "pair", PAIR_ZERO),
            F("burst-limit", "pair", PAIR_ZERO),
            F("burst-threshold", "pair", PAIR_ZERO),
            F("burst-time", "time_pair", "0s/0s"),
            F("bucket-size", default="0.1/0.1"),
            F("time"),
            RO("invalid", "false", "bool"),
            RO("dynamic", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        auto_name="queue",
    )
    address_list = Menu(
        "/ip/firewall/address-list",
        [
            F("list", required=True),
            F("address", "address", required=True),
            F("timeout", "time"),
            RO("creation-time"),
            RO("dynamic", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=("list", "address"),
        duplicate="failure: already have such entry",
    )
    interface = Menu(
        "/interface",
        [
            F("name", required=True),
            RO("default-name"),
            RO("type"),
            F("mtu", default="1500"),
            RO("actual-mtu"),
            RO("l2mtu"),
            RO("max-l2mtu"),
            RO("mac-address"),
            RO("last-link-up-time"),
            RO("link-downs", "0"),
            *(RO(counter) for counter in COUNTERS),
            RO("running", "true", "bool"),
            RO("slave", "false", "bool"),
            RO("dynamic", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        verbs=frozenset({"print", "getall", "set", "unset", "enable", "disable"}),
        duplicate="failure: already have interface with such name",
    )
    return {
        menu.path: menu
        for menu in (
            secret,
            profile,
            active,
            pool,
            hotspot,
            hs_user,
            hs_profile,
            hs_active,
            queue,
            address_list,
            interface,
        )
    }


SINGLETONS = {
    "/system/resource": READ_VERBS,
    "/system/identity": READ_VERBS | {"set"},
}
SPECIAL_COMMANDS = {"/interface/monitor-traffic"}
HOTSPOT_COMMANDS = frozenset({"/ip/hotspot/active/login"})
HOTSPOT_WRITES = frozenset({"add", "set", "remove", "unset", "enable", "disable"})


@dataclass
class Reply:
    """What a command answers: `!re` rows, then `!done` with `done` attributes.

    `listing` marks print-like replies, which send `!empty` when there are no rows.
    """

    rows: list
    done: dict
    listing: bool = False


def _indexed(menu: Menu, queries) -> list[int] | None:
    """The ids of the only rows a print query can match, found through the menu's name
    or unique-key index; None when every row must be tested. What a real router does in
    its own code, a table scan here would make every `?name=` query cost the whole table.

    Only plain conditions qualify (no `?#` operation, so they are ANDed: any one of them
    narrows the rows) with a non-empty string value (booleans and numbers compare typed,
    `yes` equals `true`, which an exact-string index would miss)."""
    equal = {}
    for word in queries:
        body = word[1:]
        if body.startswith("#"):
            return None
        body = body[1:] if body.startswith("=") else body
        if body[:1] in ("<", ">", "-") or "=" not in body:
            continue
        name, _, value = body.partition("=")
        if name and value and is_plain_string(name, value):
            equal.setdefault(name, value)
    if menu.key and all(k in equal for k in menu.key):
        row_id = menu.index.get(tuple(equal[k] for k in menu.key))
        return [] if row_id is None else [row_id]
    if "name" in equal:
        return list(menu.names.get(equal["name"], ()))
    return None


# ---------------------------------------------------------------------------- state


class RouterState:
    def __init__(
        self,
        *,
        identity="MikroTik",
        version="7.16.2 (stable)",
        board_name="CCR2004-1G-12S+2XS",
        lock=None,
        clock=time.time,
    ):
        self.lock = lock if lock is not None else threading.RLock()
        self.clock = clock
        self.identity = identity
        self.version = version
        self.board_name = board_name
        self.cpu_load = 3
        self.started = clock()
        self.menus = _menus()
        # The hotspot's sessions, limits, cookies and walled garden (emulator.hotspot).
        from network.emulator import hotspot

        self.hotspot = hotspot.Hotspot(self)
        self.menus.update({menu.path: menu for menu in hotspot.menus()})
        # PPPoE session counters within the profile's limit, ids after a reboot.
        from network.emulator import pppoe_usage

        self.pppoe = pppoe_usage.PppoeUsage(self)
        # Firewall filter/nat rules in order, and the web proxy (emulator.firewall).
        from network.emulator import firewall

        self.menus.update({menu.path: menu for menu in firewall.menus()})
        self.firewall = firewall.Firewall(self)
        self.traffic: dict[int, Traffic] = {}  # /interface id -> counters
        self.session_counter = 0
        self.ppp_sessions: dict[str, int] = {}  # name -> /ppp/active id
        self.hotspot_sessions: dict[str, int] = {}  # user -> /ip/hotspot/active id
        self.addresses_in_use: set[str] = set()
        self._next_free: dict[tuple[int, int], int] = {}  # range -> where to look next
        self._refs = [
            (menu, field.name, field.ref)
            for menu in self.menus.values()
            for field in menu.fields.values()
            if field.ref
        ]
        self._commands = self._command_tree()
        self.menus["/ppp/active"].live = self._live_ppp_active
        self.menus["/ip/hotspot/active"].live = self.hotspot.live_active
        self.hotspot.attach()
        self.menus["/interface"].live = self._live_interface
        self.menus["/queue/simple"].live = self._live_queue
        self.menus["/ip/firewall/address-list"].live = self._live_address_list
        self._seed()

    # ------------------------------------------------------------------ seed data

    def _seed(self):
        now = self.started
        profiles = self.menus["/ppp/profile"]
        profiles.insert(
            self._defaults(profiles, {"name": "default", "default": "true"}), row_id=0, builtin=True
        )
        profiles.insert(
            self._defaults(
                profiles,
                {"name": "default-encryption", "use-encryption": "yes", "default": "true"},
            ),
            row_id=0xFFFFFFFE,
            builtin=True,
        )
        hs_profiles = self.menus["/ip/hotspot/user/profile"]
        hs_profiles.insert(
            self._defaults(hs_profiles, {"name": "default", "default": "true"}),
            row_id=0,
            builtin=True,
        )
        for number in range(1, 6):
            self._add_interface(
                {
                    "name": f"ether{number}",
                    "default-name": f"ether{number}",
                    "type": "ether",
                    "actual-mtu": "1500",
                    "l2mtu": "1568",
                    "max-l2mtu": "9796",
                    "mac-address": f"48:A9:8A:10:00:{number:02X}",
                    "last-link-up-time": format_clock(now),
                },
                builtin=True,
            )
        self._add_interface(
            {
                "name": "bridge1",
                "type": "bridge",
                "mtu": "auto",
                "actual-mtu": "1500",
                "l2mtu": "1568",
                "mac-address": "48:A9:8A:10:00:02",
                "last-link-up-time": format_clock(now),
            },
            builtin=True,
        )
        hotspots = self.menus["/ip/hotspot"]
        hotspots.insert(self._defaults(hotspots, {"name": "hotspot1", "interface": "bridge1"}))

    def _add_interface(self, values, *, builtin=False, traffic=None) -> int:
        menu = self.menus["/interface"]
        row_id = menu.insert(self._defaults(menu, values), builtin=builtin)
        self.traffic[row_id] = traffic or Traffic(since=self.clock())
        return row_id

    def _defaults(self, menu: Menu, values: dict) -> dict:
        out = {}
        for name in menu.order:
            if name in values:
                out[name] = values[name]
            elif menu.fields[name].default is not None:
                out[name] = menu.fields[name].default
        for name, value in values.items():
            out.setdefault(name, value)
        return out

    # ------------------------------------------------------------------ dispatch

    def _command_tree(self):
        dirs, commands = set(), set()
        paths = {path: menu.verbs for path, menu in self.menus.items()} | SINGLETONS
        for path, verbs in paths.items():
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                dirs.add("/" + "/".join(parts[:i]))
            for verb in verbs:
                commands.add(f"{path}/{verb}")
        commands |= SPECIAL_COMMANDS | HOTSPOT_COMMANDS | self.firewall.commands
        return dirs, commands

    def is_command(self, command: str) -> bool:
        return command in self._commands[1]

    def no_such_command(self, command: str) -> ApiError:
        """The two traps a router sends for an unknown command word."""
        dirs, commands = self._commands
        parts = [part for part in command.strip("/").split("/") if part]
        word = parts[-1] if parts else command
        prefix = ""
        for i, part in enumerate(parts):
            prefix = f"{prefix}/{part}"
            last = i == len(parts) - 1
            if (last and prefix not in commands) or (not last and prefix not in dirs):
                word = part
                break
        return ApiError(
            f"no such command or directory ({word})", 0, more=[("no such command prefix", None)]
        )

    def execute(self, command: str, args: dict, queries=()) -> Reply:
        """Run one API command (already logged in) and return its reply, or raise ApiError."""
        path, _, verb = command.rpartition("/")
        with self.lock:
            if not self.is_command(command):
                raise self.no_such_command(command)
            if path.startswith("/ip/hotspot"):
                self.hotspot.tick()
                if verb in HOTSPOT_WRITES:
                    self.hotspot.changed(path, verb, args)
                if command in HOTSPOT_COMMANDS:
                    return self.hotspot.execute(command, args)
            if command == "/interface/monitor-traffic":
                return Reply(self.monitor_traffic(args), {})
            if command in self.firewall.commands:
                return self.firewall.execute(command, args, queries)
            if path in SINGLETONS:
                return self._singleton(path, verb, args, queries)
            menu = self.menus[path]
            self._expire(menu)
            if verb in ("print", "getall"):
                return self._print(menu, args, queries)
            if verb == "add":
                return Reply([], {"ret": format_id(self.add(menu, args))})
            ids = self._resolve(menu, args)
            if verb == "set":
                self._check_args(menu, args, skip={".id", "numbers"})
                for row_id in ids:
                    self.update(menu, row_id, args)
            elif verb in ("enable", "disable"):
                for row_id in ids:
                    self.update(
                        menu, row_id, {"disabled": "true" if verb == "disable" else "false"}
                    )
            elif verb == "unset":
                self._unset(menu, ids, args)
            elif verb == "remove":
                self.remove_items(menu, ids)
            return Reply([], {})

    def _singleton(self, path, verb, args, queries) -> Reply:
        if path == "/system/identity" and verb == "set":
            self._check_args_known(args, {"name"})
            if "name" in args:
                if not args["name"]:
                    raise _invalid("name")
                self.identity = args["name"]
            return Reply([], {})
        row = self.resource() if path == "/system/resource" else {"name": self.identity}
        return self._listing([row], args, queries)

    # ------------------------------------------------------------------ print

    def _print(self, menu: Menu, args, queries) -> Reply:
        candidates = _indexed(menu, queries)
        rows = self.printed(menu, candidates)
        wanted = args.get(".id") or args.get("numbers") or args.get("from")
        if wanted:
            keep = {format_id(row_id) for row_id in self.resolve(menu, wanted)}
            rows = [row for row in rows if row[".id"] in keep]
        return self._listing(rows, args, queries)

    def _listing(self, rows, args, queries) -> Reply:
        for name in args:
            if name not in PRINT_FLAGS and name not in (".proplist", ".id", "numbers", "from"):
                raise ApiError(f"unknown parameter {name}")
        try:
            query = Query(queries)
        except QueryError as exc:
            raise ApiError(str(exc)) from None
        rows = query.filter(rows)
        if "count-only" in args:
            return Reply([], {"ret": str(len(rows))})
        proplist = args.get(".proplist")
        if proplist:
            names = [name for name in proplist.split(",") if name]
            rows = [{name: row[name] for name in names if name in row} for row in rows]
        else:
            rows = [dict(row) for row in rows]
        return Reply(rows, {}, listing=True)

    def printed(self, menu: Menu, ids=None) -> list[dict]:
        """Rows as the router prints them now, live values included (only rows `ids`, in
        print order, when given). Not copies: do not change them, and use them only while
        holding the lock."""
        if ids is not None:
            items = sorted((i, menu.rows[i]) for i in ids if i in menu.rows)
            if len(items) > 1 and not menu.sorted:
                order = {row_id: n for n, row_id in enumerate(menu.rows)}
                items.sort(key=lambda item: order[item[0]])
        elif menu.live is None:
            return list(menu.rows.values()) if not menu.sorted else [r for _, r in menu.ordered()]
        else:
            items = menu.ordered()
        if menu.live is None:
            return [row for _, row in items]
        now = self.clock()
        out = []
        for row_id, row in items:
            extra = menu.live(row_id, row, now)
            out.append({**row, **extra} if extra else row)
        return out

    # ------------------------------------------------------------------ writes

    def _check_args_known(self, args, known):
        for name in args:
            if name not in known:
                raise ApiError(f"unknown parameter {name}")

    def _check_args(self, menu: Menu, args, skip=frozenset()):
        for name in args:
            if name in skip:
                continue
            field = menu.fields.get(name)
            if field is None or not field.writable:
                raise ApiError(f"unknown parameter {name}")

    def _clean(self, menu: Menu, args, skip=frozenset()) -> dict:
        """Validated, normalised values; None means "unset this property"."""
        self._check_args(menu, args, skip)
        return {
            name: self._convert(menu, menu.fields[name], value)
            for name, value in args.items()
            if name not in skip
        }

    def add(self, menu: Menu, args: dict) -> int:
        if "add" not in menu.verbs:
            raise self.no_such_command(f"{menu.path}/add")
        values = self._clean(menu, args, skip={"place-before", "copy-from"})
        values = {name: value for name, value in values.items() if value is not None}
        if menu.auto_name and not values.get("name"):
            values["name"] = self._auto_name(menu)
        missing = [
            field.name
            for field in menu.fields.values()
            if field.required and field.name not in values
        ]
        if missing:
            raise ApiError(f"missing value(s) of argument(s) {', '.join(missing)}")
        values = self._defaults(menu, values)
        self._validate_row(menu, values, None)
        if menu.key and menu.key_of(values) in menu.index:
            raise ApiError(menu.duplicate)
        self._on_write(menu, values)
        row_id = menu.insert(values)
        self._after_insert(menu, row_id)
        return row_id

    def update(self, menu: Menu, row_id: int, args: dict):
        changes = self._clean(menu, args, skip={".id", "numbers"})
        row = menu.rows[row_id]
        new = dict(row)
        for name, value in changes.items():
            field = menu.fields[name]
            if value is None:
                if field.default is not None:
                    new[name] = field.default
                elif field.required:
                    raise _invalid(name)
                else:
                    new.pop(name, None)
            else:
                new[name] = value
        self._replace(menu, row_id, row, new)

    def _replace(self, menu: Menu, row_id: int, row: dict, new: dict):
        self._validate_row(menu, new, row_id)
        old_key, new_key = menu.key_of(row), menu.key_of(new)
        if menu.key and new_key != old_key and new_key in menu.index:
            raise ApiError(menu.duplicate)
        self._on_write(menu, new, row_id, row)
        renamed = new.get("name") != row.get("name")
        if renamed and menu.key == ("name",):
            self._rename_refs(menu.path, row.get("name"), new.get("name"))
        menu.unindex_row(row_id, row)
        row.clear()
        row.update(new)
        menu.index_row(row_id, row)

    def _unset(self, menu: Menu, ids, args):
        names = [name for name in args.get("value-name", "").split(",") if name]
        if not names:
            raise ApiError("missing value(s) of argument(s) value-name")
        for name in names:
            field = menu.fields.get(name)
            if field is None or not field.writable or field.required:
                raise ApiError(f"unknown parameter {name}")
        for row_id in ids:
            row = menu.rows[row_id]
            new = dict(row)
            for name in names:
                field = menu.fields[name]
                if field.default is not None:
                    new[name] = field.default
                else:
                    new.pop(name, None)
            self._replace(menu, row_id, row, new)

    def remove_items(self, menu: Menu, ids):
        """Remove all of them or, when one is built in, none."""
        if any(row_id in menu.builtin for row_id in ids):
            raise ApiError("failure: can not remove built-in item")
        for row_id in ids:
            self.remove(menu, row_id)

    def remove(self, menu: Menu, row_id: int, *, reason="hung-up"):
        if menu.path == "/ppp/active":
            self._end_ppp(row_id, reason)
        elif menu.path == "/ip/hotspot/active":
            self._end_hotspot(row_id)
        else:
            menu.delete(row_id)
            if menu.path == "/interface":
                self.traffic.pop(row_id, None)

    def _auto_name(self, menu: Menu) -> str:
        number = menu.next_id
        while (f"{menu.auto_name}{number}",) in menu.index:
            number += 1
        return f"{menu.auto_name}{number}"

    def _rename_refs(self, path, old, new):
        for menu, field, ref in self._refs:
            if ref == path:
                for row in menu.rows.values():
                    if row.get(field) == old:
                        row[field] = new

    def _validate_row(self, menu: Menu, row: dict, row_id):
        """Checks that involve more than one property."""
        if menu.path.startswith(("/ip/firewall/filter", "/ip/firewall/nat", "/ip/proxy")):
            self.firewall.validate(menu, row)
        if menu.path == "/queue/simple":
            limit_at = row.get("limit-at", PAIR_ZERO).split("/")
            max_limit = row.get("max-limit", PAIR_ZERO).split("/")
            for side, at, top in zip(("upload", "download"), limit_at, max_limit, strict=True):
                if int(top) and int(at) > int(top):
                    raise ApiError(f"failure: {side}-max-limit less than {side}-limit")
            if row.get("parent") == row.get("name"):
                raise _no_match("parent")

    def _on_write(self, menu: Menu, row: dict, row_id=None, old=None):
        if menu.path == "/ip/firewall/address-list":
            if row_id is None:
                row["creation-time"] = format_clock(self.clock())
            if "timeout" in row:
                row["dynamic"] = "true"
            if old is not None and old.get("timeout") != row.get("timeout"):
                self._set_expiry(menu, row_id, row)

    def _after_insert(self, menu: Menu, row_id: int):
        if menu.path == "/ip/firewall/address-list":
            self._set_expiry(menu, row_id, menu.rows[row_id])

    def _set_expiry(self, menu: Menu, row_id: int, row: dict):
        if "timeout" in row:
            menu.expiring[row_id] = self.clock() + (parse_duration(row["timeout"]) or 0)
        else:
            menu.expiring.pop(row_id, None)

    def _expire(self, menu: Menu):
        if not menu.expiring:
            return
        now = self.clock()
        for row_id, until in list(menu.expiring.items()):
            if until <= now:
                menu.delete(row_id)

    # ------------------------------------------------------------------ ids

    def _resolve(self, menu: Menu, args) -> list[int]:
        text = args.get(".id", args.get("numbers"))
        if text is None:
            raise ApiError(NOT_FOUND)
        return self.resolve(menu, text)

    def resolve(self, menu: Menu, text: str) -> list[int]:
        ids = []
        for part in text.split(","):
            part = part.strip()
            row_id = parse_id(part)
            if row_id is None:
                row_id = menu.by_name(part)
            if row_id is None or row_id not in menu.rows:
                raise ApiError(NOT_FOUND)
            if row_id not in ids:
                ids.append(row_id)
        return ids

    # ------------------------------------------------------------------ values

    def _convert(self, menu: Menu, field: Field, value: str) -> str | None:
        name, kind = field.name, field.kind
        if kind == "str":
            return value if value or field.default is not None else None
        if kind == "bool":
            low = value.lower()
            if low in ("yes", "true"):
                return "true"
            if low in ("no", "false"):
                return "false"
            raise _invalid(name)
        if kind == "int":
            if value == "" and field.default is None:
                return None
            if not value.isdigit():
                raise _invalid(name)
            return str(int(value))
        if kind in ("time", "time_pair"):
            if field.none_ok and value == "none":
                return value
            parts = value.split("/") if kind == "time_pair" else [value]
            seconds = [parse_duration(part) for part in parts]
            if None in seconds or len(parts) > 2:
                raise _bad_time(name)
            out = [format_duration(s) for s in seconds]
            return "/".join(out * 2 if kind == "time_pair" and len(out) == 1 else out)
        if value == "":
            if field.default is not None or field.required or kind in ("enum", "ref"):
                if kind in ("enum", "ref"):
                    raise _no_match(name)
                raise _invalid(name)
            return None
        if kind == "enum":
            if value not in field.choices:
                raise _no_match(name)
            return value
        if kind == "ref":
            if self.menus[field.ref].by_name(value) is None:
                raise _no_match(name)
            return value
        if kind == "ip":
            try:
                return str(ipaddress.IPv4Address(value))
            except ValueError:
                raise _invalid(name) from None
        if kind == "ip_or_pool":
            if re.fullmatch(r"[\d.]+", value):
                try:
                    return str(ipaddress.IPv4Address(value))
                except ValueError:
                    raise _invalid(name) from None
            if self.menus["/ip/pool"].by_name(value) is None:
                raise _no_match(name)
            return value
        if kind == "pool":
            if value != "none" and self.menus["/ip/pool"].by_name(value) is None:
                raise _no_match(name)
            return value
        if kind == "hotspot_server":
            if value != "all" and self.menus["/ip/hotspot"].by_name(value) is None:
                raise _no_match(name)
            return value
        if kind == "queue_parent":
            if value != "none" and self.menus["/queue/simple"].by_name(value) is None:
                raise _no_match(name)
            return value
        if kind == "pair":
            parts = value.split("/")
            bits = [parse_bits(part) for part in parts]
            if len(parts) > 2 or None in bits:
                raise _invalid(name)
            return "/".join(str(b) for b in (bits * 2 if len(bits) == 1 else bits))
        if kind == "priority":
            parts = value.split("/")
            if len(parts) > 2 or not all(p.isdigit() and 1 <= int(p) <= 8 for p in parts):
                raise _invalid(name)
            return "/".join(parts * 2 if len(parts) == 1 else parts)
        if kind == "rate":
            tokens = value.split()
            if len(tokens) > 6 or not all(_RATE_TOKEN.match(t) for t in tokens):
                raise _invalid(name)
            return " ".join(tokens)
        if kind == "count":
            if value == "unlimited" or value.isdigit():
                return value
            raise _invalid(name)
        if kind == "mac":
            match = _MAC.match(value)
            if not match:
                raise ApiError("invalid value of mac-address, mac address required", 1)
            return ":".join(match.groups()).upper()
        if kind == "address":
            return self._list_address(value, name)
        if kind == "target":
            return ",".join(self._target(part, name) for part in value.split(","))
        if kind == "ranges":
            for part in value.split(","):
                if not self._range(part.strip()):
                    raise ApiError(f"value of {name} expects range of ip addresses", 1)
            return ",".join(part.strip() for part in value.split(","))
        raise AssertionError(f"unknown kind {kind}")

    @staticmethod
    def _network(text: str):
        network = ipaddress.ip_network(text, strict=False)
        host = network.prefixlen == network.max_prefixlen
        return network, host

    def _list_address(self, value: str, name: str) -> str:
        if "-" in value and re.fullmatch(r"[\d.]+-[\d.]+", value):
            try:
                low, high = (ipaddress.IPv4Address(part) for part in value.split("-"))
            except ValueError:
                raise _invalid(name) from None
            if low > high:
                raise ApiError(f"value of {name} expects range of ip addresses", 1)
            return value
        try:
            network, host = self._network(value)
        except ValueError:
            if _HOSTNAME.match(value) and not re.fullmatch(r"[\d./]+", value):
                return value
            raise _invalid(name) from None
        return str(network.network_address) if host else str(network)

    def _target(self, value: str, name: str) -> str:
        value = value.strip()
        try:
            network, _ = self._network(value)
        except ValueError:
            if self.menus["/interface"].by_name(value) is None:
                raise _no_match(name) from None
            return value
        return str(network)

    @staticmethod
    def _range(text: str) -> list[tuple[int, int]] | None:
        try:
            if "-" in text:
                low, high = (int(ipaddress.IPv4Address(p.strip())) for p in text.split("-"))
            elif "/" in text:
                network = ipaddress.IPv4Network(text, strict=False)
                low, high = int(network.network_address), int(network.broadcast_address)
                if network.prefixlen < 31:
                    low, high = low + 1, high - 1
            else:
                low = high = int(ipaddress.IPv4Address(text))
        except ValueError:
            return None
        return [(low, high)] if low <= high else None

    # ------------------------------------------------------------------ live values

    def _live_interface(self, row_id, row, now):
        traffic = self.traffic.get(row_id)
        rx, tx = traffic.totals(now) if traffic else (0, 0)
        rx_packets, tx_packets = rx // 1000, tx // 1000
        values = {
            "rx-byte": str(rx),
            "tx-byte": str(tx),
            "rx-packet": str(rx_packets),
            "tx-packet": str(tx_packets),
            "rx-drop": "0",
            "tx-drop": "0",
            "tx-queue-drop": "0",
            "rx-error": "0",
            "tx-error": "0",
            "fp-rx-byte": str(rx),
            "fp-tx-byte": str(tx),
            "fp-rx-packet": str(rx_packets),
            "fp-tx-packet": str(tx_packets),
        }
        if row.get("disabled") == "true":
            values["running"] = "false"
        return values

    def _live_ppp_active(self, row_id, row, now):
        meta = self.menus["/ppp/active"].meta.get(row_id, {})
        return {"uptime": format_duration(now - meta.get("started", now))}

    def _live_queue(self, row_id, row, now):
        meta = self.menus["/queue/simple"].meta.get(row_id)
        if not meta or meta.get("interface") not in self.traffic:
            return {
                "rate": PAIR_ZERO,
                "packet-rate": PAIR_ZERO,
                "bytes": PAIR_ZERO,
                "packets": PAIR_ZERO,
                "queued-bytes": PAIR_ZERO,
                "queued-packets": PAIR_ZERO,
                "dropped": PAIR_ZERO,
            }
        traffic = self.traffic[meta["interface"]]
        rx, tx = traffic.totals(now)
        return {
            # queue upload is what the router receives from the client
            "rate": f"{traffic.rx_bps}/{traffic.tx_bps}",
            "packet-rate": f"{traffic.rx_bps // 8000}/{traffic.tx_bps // 8000}",
            "bytes": f"{rx}/{tx}",
            "packets": f"{rx // 1000}/{tx // 1000}",
            "queued-bytes": PAIR_ZERO,
            "queued-packets": PAIR_ZERO,
            "dropped": PAIR_ZERO,
        }

    def _live_address_list(self, row_id, row, now):
        until = self.menus["/ip/firewall/address-list"].expiring.get(row_id)
        if until is None:
            return None
        return {"timeout": format_duration(until - now)}

    def resource(self) -> dict:
        now = self.clock()
        total = 4 * 1024**3
        sessions = len(self.menus["/ppp/active"].rows) + len(self.menus["/ip/hotspot/active"].rows)
        used = 300 * 1024**2 + sessions * 96 * 1024 + (int(now) % 7) * 1024 * 1024
        return {
            "uptime": format_duration(now - self.started),
            "version": self.version,
            "build-time": "2024-11-26 12:44:41",
            "factory-software": "7.1",
            "free-memory": str(total - used),
            "total-memory": str(total),
            "cpu": "ARM64",
            "cpu-count": "4",
            "cpu-frequency": "1700",
            "cpu-load": str(int(self.cpu_load)),
            "free-hdd-space": "87715840",
            "total-hdd-space": "134217728",
            "write-sect-since-reboot": str(1200 + int(now - self.started) // 60),
            "write-sect-total": "918432",
            "bad-blocks": "0",
            "architecture-name": "arm64",
            "board-name": self.board_name,
            "platform": "MikroTik",
        }

    def monitor_traffic(self, args) -> list[dict]:
        known = {"interface", "once", "duration", "interval", "freeze-frame-interval", ".proplist"}
        self._check_args_known(args, known)
        wanted = args.get("interface")
        if not wanted:
            raise ApiError("missing value(s) of argument(s) interface")
        menu = self.menus["/interface"]
        names, aggregate = [], False
        for part in wanted.split(","):
            if part == "all":
                names.extend(row["name"] for row in menu.rows.values())
            elif part == "aggregate":
                aggregate = True
            elif menu.by_name(part) is None:
                raise _no_match("interface")
            else:
                names.append(part)
        rows = []
        total_rx = total_tx = 0
        for name in names:
            row_id = menu.by_name(name)
            row = menu.rows[row_id]
            traffic = self.traffic.get(row_id)
            up = row.get("disabled") != "true" and row.get("running") == "true"
            rx = traffic.rx_bps if traffic and up else 0
            tx = traffic.tx_bps if traffic and up else 0
            total_rx, total_tx = total_rx + rx, total_tx + tx
            rows.append(self._monitor_row(name, rx, tx))
        if aggregate:
            rows.append(self._monitor_row("aggregate", total_rx, total_tx))
        proplist = args.get(".proplist")
        if proplist:
            keys = proplist.split(",")
            rows = [{k: row[k] for k in keys if k in row} for row in rows]
        return rows

    @staticmethod
    def _monitor_row(name, rx, tx):
        rx_pps, tx_pps = rx // 8000, tx // 8000
        return {
            "name": name,
            "rx-packets-per-second": str(rx_pps),
            "rx-bits-per-second": str(rx),
            "fp-rx-packets-per-second": str(rx_pps),
            "fp-rx-bits-per-second": str(rx),
            "rx-drops-per-second": "0",
            "rx-errors-per-second": "0",
            "tx-packets-per-second": str(tx_pps),
            "tx-bits-per-second": str(tx),
            "fp-tx-packets-per-second": str(tx_pps),
            "fp-tx-bits-per-second": str(tx),
            "tx-drops-per-second": "0",
            "tx-queue-drops-per-second": "0",
            "tx-errors-per-second": "0",
        }

    # ------------------------------------------------------------------ sessions

    def _reindex_sessions(self):
        self.ppp_sessions = {
            row["name"]: row_id for row_id, row in self.menus["/ppp/active"].rows.items()
        }
        self.hotspot_sessions = {
            row["user"]: row_id for row_id, row in self.menus["/ip/hotspot/active"].rows.items()
        }
        self.hotspot.reindex()
        self.addresses_in_use = {
            row["address"]
            for path in ("/ppp/active", "/ip/hotspot/active")
            for row in self.menus[path].rows.values()
        }

    def _allocate(self, pool_name: str | None, fallback: str) -> str:
        """The next free address of the pool (if it exists) or of the fallback range.
        Scanning resumes where the last allocation stopped, so each costs about O(1)."""
        ranges = []
        pool_id = self.menus["/ip/pool"].by_name(pool_name) if pool_name else None
        if pool_id is not None:
            for part in self.menus["/ip/pool"].rows[pool_id]["ranges"].split(","):
                ranges.extend(self._range(part) or [])
        ranges.extend(self._range(fallback) or [])
        for low, high in ranges:
            start = self._next_free.get((low, high), low)
            size = high - low + 1
            for step in range(size):
                number = low + (start - low + step) % size
                address = str(ipaddress.IPv4Address(number))
                if address not in self.addresses_in_use:
                    self._next_free[(low, high)] = number + 1 if number < high else low
                    return address
        raise ValueError("no free address left to assign")

    def _session_extras(self, kind, name, profile, address, interface_id, target):
        """The dynamic queue and address-list entry a session's profile asks for."""
        extras = {}
        rate = (profile or {}).get("rate-limit")
        if rate:
            first = rate.split()[0].split("/")
            rx, tx = parse_bits(first[0]), parse_bits(first[-1])
            queues = self.menus["/queue/simple"]
            queue_name = f"<{kind}-{name}>"
            if rx is not None and tx is not None and (queue_name,) not in queues.index:
                queue_id = queues.insert(
                    self._defaults(
                        queues,
                        {
                            "name": queue_name,
                            "target": target,
                            "max-limit": f"{rx}/{tx}",
                            "dynamic": "true",
                        },
                    )
                )
                queues.meta[queue_id] = {"interface": interface_id}
                extras["queue"] = queue_id
        list_name = (profile or {}).get("address-list")
        if list_name:
            entries = self.menus["/ip/firewall/address-list"]
            if (list_name, address) not in entries.index:
                extras["address_list"] = entries.insert(
                    self._defaults(
                        entries,
                        {
                            "list": list_name,
                            "address": address,
                            "creation-time": format_clock(self.clock()),
                            "dynamic": "true",
                        },
                    )
                )
        return extras

    def _drop_extras(self, meta):
        queues = self.menus["/queue/simple"]
        if meta.get("queue") in queues.rows:
            queues.delete(meta["queue"])
        entries = self.menus["/ip/firewall/address-list"]
        if meta.get("address_list") in entries.rows:
            entries.delete(meta["address_list"])

    def dial_in(self, name, *, address=None, caller_id=None, service="pppoe") -> str:
        with self.lock:
            if service == "hotspot":
                return self._hotspot_login(name, address=address, mac=caller_id)
            secrets = self.menus["/ppp/secret"]
            secret_id = secrets.by_name(name)
            if secret_id is None:
                raise ValueError(f"no /ppp/secret named {name!r}")
            secret = secrets.rows[secret_id]
            if secret.get("disabled") == "true":
                raise ValueError(f"the /ppp/secret {name!r} is disabled")
            if secret.get("service") not in ("any", service):
                raise ValueError(f"the /ppp/secret {name!r} is for service {secret['service']}")
            if name in self.ppp_sessions:
                raise ValueError(f"{name!r} is already connected")
            profiles = self.menus["/ppp/profile"]
            profile_id = profiles.by_name(secret.get("profile", "default"))
            profile = profiles.rows.get(profile_id, {})
            if address is None:
                address = secret.get("remote-address")
            if address is None:
                remote = profile.get("remote-address")
                if remote and re.fullmatch(r"[\d.]+", remote):
                    address = remote
                else:
                    address = self._allocate(remote, "10.10.0.2-10.10.255.254")
            address = str(ipaddress.IPv4Address(address))
            caller_id = caller_id or _mac_for(name)
            now = self.clock()
            interface_name = f"<{service}-{name}>"
            interface_id = self._add_interface(
                {
                    "name": interface_name,
                    "type": f"{service}-in",
                    "mtu": "1480",
                    "actual-mtu": "1480",
                    "last-link-up-time": format_clock(now),
                    "dynamic": "true",
                },
                traffic=Traffic(_rate_for(name, "rx"), _rate_for(name, "tx"), now),
            )
            self.session_counter += 1
            active = self.menus["/ppp/active"]
            row_id = active.insert(
                self._defaults(
                    active,
                    {
                        "name": name,
                        "service": service,
                        "caller-id": caller_id,
                        "address": address,
                        "uptime": "0s",
                        "session-id": f"0x81{self.session_counter:06X}",
                        "limit-bytes-in": secret.get("limit-bytes-in", "0"),
                        "limit-bytes-out": secret.get("limit-bytes-out", "0"),
                    },
                )
            )
            meta = {"started": now, "interface": interface_id, "secret": name}
            meta.update(
                self._session_extras(service, name, profile, address, interface_id, interface_name)
            )
            active.meta[row_id] = meta
            self.ppp_sessions[name] = row_id
            self.addresses_in_use.add(address)
            secret["last-caller-id"] = caller_id
            self.pppoe.session_up(name)
            return format_id(row_id)

    def _end_ppp(self, row_id, reason):
        active = self.menus["/ppp/active"]
        meta = active.meta.get(row_id, {})
        row = active.delete(row_id)
        self._forget_session(self.ppp_sessions, row["name"], row_id, row["address"])
        interfaces = self.menus["/interface"]
        if meta.get("interface") in interfaces.rows:
            interfaces.delete(meta["interface"])
            self.traffic.pop(meta["interface"], None)
        self._drop_extras(meta)
        secrets = self.menus["/ppp/secret"]
        secret_id = secrets.by_name(row["name"])
        if secret_id is not None:
            secret = secrets.rows[secret_id]
            secret["last-logged-out"] = format_clock(self.clock())
            secret["last-caller-id"] = row.get("caller-id", "")
            secret["last-disconnect-reason"] = reason
        self.pppoe.session_down(reason)

    def _hotspot_login(self, name, *, address, mac) -> str:
        from network.emulator.hotspot import LoginRefused

        if self.menus["/ip/hotspot/user"].by_name(name) is None:
            raise ValueError(f"no /ip/hotspot/user named {name!r}")
        if name in self.hotspot_sessions and not mac:
            raise ValueError(f"{name!r} is already logged in")
        try:
            return format_id(self.hotspot.login(name, address=address, mac=mac))
        except LoginRefused as exc:
            raise ValueError(f"{name!r}: {exc.message}") from None

    def _end_hotspot(self, row_id):
        self.hotspot.end_session(row_id)

    def _forget_session(self, sessions, name, row_id, address):
        if sessions.get(name) == row_id:
            del sessions[name]
        self.addresses_in_use.discard(address)

    def hang_up(self, name) -> bool:
        with self.lock:
            ended = False
            for path, sessions in (
                ("/ppp/active", self.ppp_sessions),
                ("/ip/hotspot/active", self.hotspot_sessions),
            ):
                if name in sessions:
                    self.remove(self.menus[path], sessions[name])
                    ended = True
            return ended

    def active_names(self) -> set[str]:
        with self.lock:
            return set(self.ppp_sessions) | set(self.hotspot_sessions)

    def set_traffic(self, interface, rx_bps, tx_bps):
        with self.lock:
            row_id = self.menus["/interface"].by_name(interface)
            if row_id is None:
                raise ValueError(f"no interface named {interface!r}")
            traffic = self.traffic.setdefault(row_id, Traffic(since=self.clock()))
            traffic.set_rates(self.clock(), int(rx_bps), int(tx_bps))

    # ------------------------------------------------------------------ persistence

    def dump(self) -> dict:
        with self.lock:
            return {
                "format": 1,
                "identity": self.identity,
                "session_counter": self.session_counter,
                "menus": {
                    path: {
                        "next_id": menu.next_id,
                        "rows": [[row_id, row] for row_id, row in menu.rows.items()],
                        "meta": [[row_id, meta] for row_id, meta in menu.meta.items()],
                        "expiring": [[row_id, until] for row_id, until in menu.expiring.items()],
                        "builtin": sorted(menu.builtin),
                    }
                    for path, menu in self.menus.items()
                },
                "traffic": [[row_id, traffic.dump()] for row_id, traffic in self.traffic.items()],
            }

    def restore(self, data: dict):
        with self.lock:
            if data.get("format") != 1:
                raise ValueError("not a RouterOS emulator state file")
            self.identity = data.get("identity", self.identity)
            self.session_counter = data.get("session_counter", 0)
            for path, saved in data["menus"].items():
                menu = self.menus.get(path)
                if menu is None:
                    continue
                menu.reset()
                menu.next_id = saved["next_id"]
                for row_id, row in saved["rows"]:
                    menu.rows[row_id] = row
                    menu.index_row(row_id, row)
                menu.meta = {row_id: meta for row_id, meta in saved.get("meta", [])}
                menu.expiring = {row_id: until for row_id, until in saved.get("expiring", [])}
                menu.builtin = set(saved.get("builtin", []))
            self.traffic = {row_id: Traffic(*values) for row_id, values in data["traffic"]}
            self._reindex_sessions()

    def save(self, path):
        """Write the state as JSON, atomically (a temp file renamed over the old one)."""
        data = self.dump()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".routeros-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path):
        with open(path) as src:
            self.restore(json.load(src))

    # ------------------------------------------------------------------ direct access

    def menu(self, path: str) -> Menu:
        path = "/" + path.strip("/")
        menu = self.menus.get(path)
        if menu is None:
            raise ValueError(f"no such menu {path}")
        return menu

    def rows(self, path: str) -> list[dict]:
        with self.lock:
            path = "/" + path.strip("/")
            if path in SINGLETONS:
                return [self.resource() if path == "/system/resource" else {"name": self.identity}]
            menu = self.menu(path)
            if path.startswith("/ip/hotspot"):
                self.hotspot.tick()
            self._expire(menu)
            return [dict(row) for row in self.printed(menu)]
