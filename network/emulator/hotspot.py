"""The emulated router's hotspot, beyond plain tables (shared/hotspot.md B.2, D.2).

- `/ip/hotspot/active/login` (user, password, ip, mac-address): a session starts if the
  user exists, is enabled, the password is right, the user's limits are not reached and
  its profile's shared-users allows one more. The same user logging in again from the
  same MAC is answered `!done` without a second session (a captive page posting twice).
- Sessions' byte counters grow while they are up (a steady per-user rate, changeable with
  `set_rate`); the user's counters (bytes, uptime) move only when a session ends.
- limit-bytes-total and limit-uptime are enforced: a session is cut at the moment it
  reaches its user's limit (computed, not ticked: the counters then read exactly the
  limit), and a later login is refused.
- `/ip/hotspot/cookie` (a MAC cookie per login when the profile says add-mac-cookie),
  `/ip/hotspot/ip-binding`, `/ip/hotspot/walled-garden` and `/ip/hotspot/walled-garden/ip`.
- `reboot()`: every session vanishes with the counters it had not yet handed to its
  user, and session ids start again from the first one.

Error texts of a refused login are the hotspot's own page errors; whether the API trap
carries exactly these words is [unverified].
"""

import heapq
import ipaddress

from network.emulator.state import (
    RO,
    ApiError,
    F,
    Menu,
    Traffic,
    _mac_for,
    _rate_for,
    format_duration,
    format_id,
    parse_duration,
)

LOGIN = "/ip/hotspot/active/login"
ACTIVE, USER, PROFILE, COOKIE = (
    "/ip/hotspot/active",
    "/ip/hotspot/user",
    "/ip/hotspot/user/profile",
    "/ip/hotspot/cookie",
)
READ_VERBS = frozenset({"print", "getall"})
COUNTER_FIELDS = ("bytes-in", "bytes-out", "packets-in", "packets-out")


class LoginRefused(ApiError):
    pass


def menus() -> list[Menu]:
    walled = Menu(
        "/ip/hotspot/walled-garden",
        [
            F("action", "enum", "allow", choices=("allow", "deny")),
            F("server"),
            F("src-address"),
            F("method"),
            F("dst-host", default=""),
            F("dst-port"),
            F("path"),
            RO("dynamic", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=(),
    )
    walled_ip = Menu(
        "/ip/hotspot/walled-garden/ip",
        [
            F("action", "enum", "allow", choices=("allow", "deny", "reject")),
            F("server"),
            F("src-address"),
            F("dst-address"),
            F("dst-host"),
            F("dst-port"),
            F("protocol"),
            RO("dynamic", "false", "bool"),
            RO("invalid", "false", "bool"),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=(),
    )
    binding = Menu(
        "/ip/hotspot/ip-binding",
        [
            F("mac-address", "mac"),
            F("address"),
            F("to-address"),
            F("server", default="all"),
            F("type", "enum", "regular", choices=("regular", "bypassed", "blocked")),
            F("disabled", "bool", "false"),
            F("comment"),
        ],
        key=(),
    )
    cookie = Menu(
        COOKIE,
        [RO("user"), RO("domain", ""), RO("mac-address"), RO("expires-in")],
        key=(),
        verbs=READ_VERBS | {"remove"},
    )
    return [walled, walled_ip, binding, cookie]


class Hotspot:
    """Hotspot sessions of one RouterState (whose lock every public method takes)."""

    def __init__(self, state):
        self.state = state
        self.by_user: dict[str, list[int]] = {}  # user -> its /ip/hotspot/active ids
        # Limits: each user's next deadline in a heap of (moment, user, version); a user
        # whose sessions or limits changed is `stale` until the next tick.
        self.heap: list[tuple[float, str, int]] = []
        self.version: dict[str, int] = {}
        self.stale: set[str] = set()

    def attach(self):
        self.state.menus[COOKIE].live = self._live_cookie

    # ------------------------------------------------------------------ commands

    def execute(self, command, args):
        from network.emulator.state import Reply

        if command == LOGIN:
            known = {"user", "password", "ip", "mac-address", "domain"}
            for name in args:
                if name not in known:
                    raise ApiError(f"unknown parameter {name}")
            if not args.get("user"):
                raise ApiError("missing value(s) of argument(s) user")
            row_id = self.login(
                args["user"],
                password=args.get("password", ""),
                address=args.get("ip"),
                mac=args.get("mac-address"),
                check_password=True,
                login_by="api",
            )
            return Reply([], {"ret": format_id(row_id)})
        raise self.state.no_such_command(command)

    # ------------------------------------------------------------------ sessions

    def _user(self, name):
        users = self.state.menus[USER]
        user_id = users.by_name(name)
        return None if user_id is None else users.rows[user_id]

    def _profile(self, user):
        profiles = self.state.menus[PROFILE]
        return profiles.rows.get(profiles.by_name(user.get("profile", "default")), {})

    def login(
        self,
        name,
        *,
        password="",
        address=None,
        mac=None,
        check_password=False,
        login_by="http-chap",
    ) -> int:
        """Start a session for `name`; LoginRefused (an ApiError) with the hotspot's
        reason otherwise. Returns the /ip/hotspot/active id."""
        state = self.state
        with state.lock:
            self.tick()
            user = self._user(name)
            if user is None or (check_password and user.get("password", "") != password):
                raise LoginRefused("invalid username or password")
            if user.get("disabled") == "true":
                raise LoginRefused("user is disabled")
            if mac is not None:
                try:
                    mac = state._convert(
                        state.menus[USER], state.menus[USER].fields["mac-address"], mac
                    )
                except ApiError:
                    raise ApiError(
                        "invalid value of mac-address, mac address required", 1
                    ) from None
            if user.get("mac-address") and mac and user["mac-address"] != mac:
                raise LoginRefused("your MAC address is not allowed")
            active = state.menus[ACTIVE]
            mine = self.by_user.get(name, [])
            if mac and any(active.rows[i].get("mac-address") == mac for i in mine):
                return next(i for i in mine if active.rows[i].get("mac-address") == mac)
            profile = self._profile(user)
            shared = profile.get("shared-users", "1")
            if shared != "unlimited" and len(mine) >= int(shared):
                raise LoginRefused("no more sessions are allowed for user")
            limit_uptime = parse_duration(user.get("limit-uptime", "") or "")
            if limit_uptime and (parse_duration(user.get("uptime", "0s")) or 0) >= limit_uptime:
                raise LoginRefused(f"user {name} has reached uptime limit")
            limit_bytes = int(user.get("limit-bytes-total", "0") or 0)
            if limit_bytes and _user_bytes(user) >= limit_bytes:
                raise LoginRefused(f"user {name} has reached traffic limit")
            if address is None:
                address = user.get("address") or state._allocate(
                    profile.get("address-pool"), "10.5.50.2-10.5.50.254"
                )
            try:
                address = str(ipaddress.IPv4Address(address))
            except ValueError:
                raise ApiError("invalid value for argument ip", 1) from None
            mac = mac or user.get("mac-address") or _mac_for(name)
            now = state.clock()
            server = user.get("server", "all")
            row_id = active.insert(
                state._defaults(
                    active,
                    {
                        "server": server if server != "all" else "hotspot1",
                        "user": name,
                        "address": address,
                        "mac-address": mac.upper(),
                        "login-by": login_by,
                        "uptime": "0s",
                        "keepalive-timeout": profile.get("keepalive-timeout", "2m"),
                        "bytes-in": "0",
                        "bytes-out": "0",
                        "packets-in": "0",
                        "packets-out": "0",
                    },
                )
            )
            meta = {
                "started": now,
                "user": name,
                "rx_bps": _rate_for(name, "rx"),
                "tx_bps": _rate_for(name, "tx"),
            }
            timeout = parse_duration(profile.get("session-timeout", "") or "")
            if timeout:
                meta["session_timeout"] = timeout
            meta.update(
                state._session_extras("hotspot", name, profile, address, None, f"{address}/32")
            )
            active.meta[row_id] = meta
            self.by_user.setdefault(name, []).append(row_id)
            state.hotspot_sessions[name] = row_id
            state.addresses_in_use.add(address)
            if profile.get("add-mac-cookie", "true") == "true":
                self._add_cookie(name, mac.upper(), profile, now)
            self.stale.add(name)
            return row_id

    def _add_cookie(self, name, mac, profile, now):
        cookies = self.state.menus[COOKIE]
        for row_id, row in list(cookies.rows.items()):
            if row.get("user") == name and row.get("mac-address") == mac:
                cookies.delete(row_id)
        lifetime = parse_duration(profile.get("mac-cookie-timeout", "3d") or "3d") or 0
        row_id = cookies.insert({"user": name, "domain": "", "mac-address": mac, "expires-in": ""})
        cookies.expiring[row_id] = now + lifetime

    def cookie_login(self, mac, *, address=None) -> int:
        """A device with a MAC cookie comes back: logged in as the cookie's user, without
        a password (still within the user's limits). LoginRefused without a cookie."""
        state = self.state
        with state.lock:
            cookies = state.menus[COOKIE]
            state._expire(cookies)
            mac = mac.upper()
            for row in cookies.rows.values():
                if row.get("mac-address") == mac:
                    return self.login(row["user"], address=address, mac=mac, login_by="cookie")
            raise LoginRefused("no cookie for this device")

    def set_rate(self, name, rx_bps, tx_bps):
        """Change the traffic rate of `name`'s sessions from now on (bits per second)."""
        state = self.state
        with state.lock:
            self.tick()
            now = state.clock()
            active = state.menus[ACTIVE]
            for row_id in self.by_user.get(name, []):
                meta = active.meta[row_id]
                traffic = _traffic(meta)
                traffic.set_rates(now, int(rx_bps), int(tx_bps))
                meta.update(
                    rx_bps=traffic.rx_bps,
                    tx_bps=traffic.tx_bps,
                    since=traffic.since,
                    rx_base=traffic.rx_base,
                    tx_base=traffic.tx_base,
                )
            self.stale.add(name)

    def live_active(self, row_id, row, now):
        meta = self.state.menus[ACTIVE].meta.get(row_id, {})
        started = meta.get("started", now)
        bytes_in, bytes_out = _traffic(meta).totals(now)
        values = {
            "uptime": format_duration(now - started),
            "bytes-in": str(bytes_in),
            "bytes-out": str(bytes_out),
            "packets-in": str(bytes_in // 1000),
            "packets-out": str(bytes_out // 1000),
        }
        left = None
        if meta.get("session_timeout"):
            left = meta["session_timeout"] - (now - started)
        user = self._user(meta.get("user", ""))
        limit = parse_duration((user or {}).get("limit-uptime", "") or "")
        if limit:
            used = parse_duration((user or {}).get("uptime", "0s")) or 0
            by_limit = limit - used - (now - started)
            left = by_limit if left is None else min(left, by_limit)
        if left is not None:
            values["session-time-left"] = format_duration(left)
        return values

    def _live_cookie(self, row_id, row, now):
        until = self.state.menus[COOKIE].expiring.get(row_id)
        return {"expires-in": format_duration(until - now)} if until is not None else None

    def end_session(self, row_id, *, at=None, fold=True):
        """End a session: its counters (as they were at `at`, default now) go to its
        user unless `fold` is False (a reboot loses them)."""
        state = self.state
        active = state.menus[ACTIVE]
        meta = active.meta.get(row_id, {})
        at = state.clock() if at is None else at
        live = self.live_active(row_id, active.rows[row_id], at)
        row = active.delete(row_id)
        name = row["user"]
        ids = self.by_user.get(name, [])
        if row_id in ids:
            ids.remove(row_id)
        if not ids:
            self.by_user.pop(name, None)
        if state.hotspot_sessions.get(name) == row_id:
            if ids:
                state.hotspot_sessions[name] = ids[-1]
            else:
                del state.hotspot_sessions[name]
        state.addresses_in_use.discard(row["address"])
        state._drop_extras(meta)
        self.stale.add(name)
        user = self._user(name)
        if user is not None and fold:
            for field in COUNTER_FIELDS:
                user[field] = str(int(user.get(field, "0")) + int(live[field]))
            seconds = (parse_duration(user.get("uptime", "0s")) or 0) + (
                parse_duration(live["uptime"]) or 0
            )
            user["uptime"] = format_duration(seconds)

    def reindex(self):
        self.by_user = {}
        for row_id, row in self.state.menus[ACTIVE].rows.items():
            self.by_user.setdefault(row["user"], []).append(row_id)
        self.heap, self.stale = [], set(self.by_user)

    def reboot(self):
        """Sessions vanish with their unsaved counters; ids and router uptime restart."""
        state = self.state
        with state.lock:
            active = state.menus[ACTIVE]
            for row_id in list(active.rows):
                self.end_session(row_id, fold=False)
            active.next_id = active.first_id
            for row_id in list(state.menus["/ppp/active"].rows):
                state.remove(state.menus["/ppp/active"], row_id, reason="reboot")
            state.started = state.clock()

    # ------------------------------------------------------------------ limits

    def changed(self, path, verb, args):
        """A write is about to be applied on a hotspot menu: the users whose limits it
        may move get their deadlines computed again at the next tick (all of them for a
        profile change)."""
        if path == USER and verb == "add":
            self.stale.add(args.get("name", ""))
        elif path == USER:
            users = self.state.menus[USER]
            try:
                ids = self.state.resolve(users, args.get(".id", args.get("numbers", "")))
            except ApiError:
                return
            for row_id in ids:
                self.stale.add(users.rows[row_id].get("name", ""))
        elif path == PROFILE:
            self.stale.update(self.by_user)

    def tick(self):
        """Cut the sessions whose user reached limit-bytes-total or limit-uptime, at the
        moment they reached it. Each user's next deadline is kept in a heap (computed
        again only when its sessions or limits change), so a tick costs little."""
        state = self.state
        with state.lock:
            now = state.clock()
            if self.stale:
                for name in self.stale:
                    self._schedule(name, now)
                self.stale.clear()
            while self.heap and self.heap[0][0] <= now:
                _, name, version = heapq.heappop(self.heap)
                if self.version.get(name) != version:
                    continue  # superseded by a later computation
                for due_at, row_ids, limit in self._due(name, now):
                    if due_at > now:
                        continue
                    for row_id in row_ids:
                        if row_id in state.menus[ACTIVE].rows:
                            self.end_session(row_id, at=due_at)
                    user = self._user(name)
                    if limit and user is not None and _user_bytes(user) < limit:
                        # Counters round down per direction: the cut is at the limit.
                        user["bytes-out"] = str(
                            int(user.get("bytes-out", "0")) + limit - _user_bytes(user)
                        )
                self.stale.discard(name)
                self._schedule(name, now)

    def _schedule(self, name, now):
        self.version[name] = self.version.get(name, 0) + 1
        due = [at for at, _, _ in self._due(name, now)]
        if due:
            heapq.heappush(self.heap, (min(due), name, self.version[name]))

    def _due(self, name, now) -> list[tuple]:
        """(moment, session ids, byte limit or 0) at which `name`'s sessions reach its
        limits."""
        active = self.state.menus[ACTIVE]
        ids = self.by_user.get(name)
        user = self._user(name)
        if user is None or not ids:
            return []
        out = []
        limit_bytes = int(user.get("limit-bytes-total", "0") or 0)
        if limit_bytes:
            allowance = limit_bytes - _user_bytes(user)
            rate = 0.0
            offset = 0.0
            for row_id in ids:
                traffic = _traffic(active.meta.get(row_id, {}))
                per_second = (traffic.rx_bps + traffic.tx_bps) / 8
                rate += per_second
                offset += traffic.rx_base + traffic.tx_base - per_second * traffic.since
            if allowance <= 0:
                out.append((now, list(ids), limit_bytes))
            elif rate > 0:
                at = (allowance - offset) / rate
                # Never before a session began (the counters then read the limit).
                starts = max(active.meta.get(i, {}).get("started", now) for i in ids)
                out.append((max(at, starts), list(ids), limit_bytes))
        limit_uptime = parse_duration(user.get("limit-uptime", "") or "")
        if limit_uptime:
            left = limit_uptime - (parse_duration(user.get("uptime", "0s")) or 0)
            for row_id in ids:
                started = active.meta.get(row_id, {}).get("started", now)
                out.append((started + max(left, 0), [row_id], 0))
        return out


def _traffic(meta) -> Traffic:
    return Traffic(
        meta.get("rx_bps", 0),
        meta.get("tx_bps", 0),
        meta.get("since", meta.get("started", 0.0)),
        meta.get("rx_base", 0),
        meta.get("tx_base", 0),
    )


def _user_bytes(user) -> int:
    return int(user.get("bytes-in", "0") or 0) + int(user.get("bytes-out", "0") or 0)
