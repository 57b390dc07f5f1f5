"""The emulated router's PPPoE byte counters, as usage accounting reads them
(shared/routeros.md §5.3, §5.11; shared/hotspot.md D.2).

- /ppp/active has no byte counters in v7: a session's bytes are on its dynamic
  interface `<pppoe-NAME>` (rx-byte = what the router received, the subscriber's
  upload; tx-byte = download) and on its dynamic simple queue. state.dial_in makes both,
  counting from zero at a steady per-name rate; a reconnection makes new ones (counters
  from zero again).
- Here: a session never moves faster than its profile's rate-limit (rx/tx, the router's
  view), so a slower fair-usage profile shows in the counters after the redial, and
  `set_rate` changes a live session's traffic (capped the same way).
- A reboot (RouterOSEmulator.reboot) drops every session with its counters; once the
  last one is gone the /ppp/active ids and session-ids count from the start again, so a
  session after a reboot may carry the id of one before it.

Nothing ticks: counters are computed from the clock when printed (state.Traffic).
"""

from network.emulator.state import parse_bits

ACTIVE, PROFILE, SECRET = "/ppp/active", "/ppp/profile", "/ppp/secret"


def profile_limits(profile: dict) -> tuple[int | None, int | None]:
    """(rx, tx) bit/s of a profile's rate-limit, None where there is none."""
    rate = (profile or {}).get("rate-limit")
    if not rate:
        return None, None
    first = rate.split()[0].split("/")
    return parse_bits(first[0]), parse_bits(first[-1])


class PppoeUsage:
    """PPPoE counters of one RouterState (whose lock every public method takes)."""

    def __init__(self, state):
        self.state = state

    def _session(self, name) -> tuple[int, dict] | None:
        row_id = self.state.ppp_sessions.get(name)
        if row_id is None:
            return None
        return row_id, self.state.menus[ACTIVE].meta.get(row_id, {})

    def _limits(self, name) -> tuple[int | None, int | None]:
        menus = self.state.menus
        secret_id = menus[SECRET].by_name(name)
        secret = menus[SECRET].rows.get(secret_id, {}) if secret_id is not None else {}
        profile_id = menus[PROFILE].by_name(secret.get("profile", "default"))
        return profile_limits(menus[PROFILE].rows.get(profile_id, {}))

    def session_up(self, name):
        """A session came up (state.dial_in): its traffic within its profile's limit."""
        found = self._session(name)
        if found is None:
            return
        traffic = self.state.traffic.get(found[1].get("interface"))
        if traffic is not None:
            self._apply(name, traffic, traffic.rx_bps, traffic.tx_bps)

    def session_down(self, reason):
        """A session ended (state._end_ppp); after a reboot's last one, ids restart."""
        state = self.state
        active = state.menus[ACTIVE]
        if reason == "reboot" and not active.rows:
            active.next_id = active.first_id
            state.session_counter = 0

    def set_rate(self, name, rx_bps, tx_bps):
        """The subscriber's traffic from now on (bit/s, router's view), within the
        profile's rate-limit. ValueError when `name` has no session."""
        with self.state.lock:
            found = self._session(name)
            if found is None:
                raise ValueError(f"{name!r} is not connected")
            traffic = self.state.traffic[found[1]["interface"]]
            self._apply(name, traffic, int(rx_bps), int(tx_bps))

    def _apply(self, name, traffic, rx_bps, tx_bps):
        rx_limit, tx_limit = self._limits(name)
        rx = min(rx_bps, rx_limit) if rx_limit else rx_bps
        tx = min(tx_bps, tx_limit) if tx_limit else tx_bps
        traffic.set_rates(self.state.clock(), rx, tx)

    def counters(self, name) -> tuple[int, int] | None:
        """(bytes in, bytes out) of `name`'s session now; None when not connected."""
        with self.state.lock:
            found = self._session(name)
            if found is None:
                return None
            return self.state.traffic[found[1]["interface"]].totals(self.state.clock())
