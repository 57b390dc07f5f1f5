"""Byte counters read from a router, turned into usage without losing or doubling any:
the one rule both usage polls use (hotspot.usage for hotspot sessions, network.pppoe_usage
for PPPoE sessions).

A router session's counters start from zero when the session starts; a reconnection
restarts them, and a reboot restarts both the counters and the session ids. So a poll
remembers, per session id, the counters it saw and the session's start (poll time
minus uptime, which tells a session from a new one that got the same id after a
reboot), and counts:

    continuing session   counters now - counters seen
    new session          counters now (it started from zero)

A session is continuing when its id was seen, its start is within SAME_SESSION_SECONDS
of the one seen (the poll moment and a whole-second uptime make it a little uncertain)
and no counter went down.
"""

SAME_SESSION_SECONDS = 10


def session_deltas(seen: dict, sessions: dict, counters: int) -> tuple[list[int], set]:
    """(what each of the `counters` counters moved since `seen`, the ids of the
    continuing sessions). Both map a session id to [counter, ..., start epoch]."""
    used, continuing = [0] * counters, set()
    for sid, (*now, start) in sessions.items():
        old = seen.get(sid)
        same = (
            old is not None
            and abs(old[-1] - start) <= SAME_SESSION_SECONDS
            and all(n >= o for n, o in zip(now, old[:-1], strict=True))
        )
        if same:
            continuing.add(sid)
        for i, value in enumerate(now):
            used[i] += value - old[i] if same else value
    return used, continuing
