"""The counter rule both usage polls share (network.counters): over any sequence of
polls, with sessions that grow, reconnect under the same or a new id and restart after
a reboot, the usage counted equals the bytes the router showed, once."""

from hypothesis import given, settings
from hypothesis import strategies as st

from network.counters import session_deltas

# One step between two polls: a session grows, reconnects (same id, new start, counters
# from zero), or the router reboots (ids restart: id "1" is a new session again).
STEPS = st.lists(
    st.tuples(st.sampled_from(["grow", "reconnect", "reboot"]), st.integers(0, 10**9)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_usage_counted_equals_the_bytes_seen_across_reconnects_and_reboots(steps):
    clock, start, counter, seen_total, before = 0, 0, 0, 0, {}
    counted = 0
    for kind, moved in steps:
        clock += 60
        if kind == "grow":
            counter += moved
            seen_total += moved
        else:  # a new session from zero that moved `moved` bytes before this poll
            start, counter = clock - 30, moved
            seen_total += moved
        now = {"1": [counter, start]}
        (used,), _ = session_deltas(before, now, counters=1)
        counted += used
        before = now
    assert counted == seen_total


def test_a_session_id_reused_after_a_reboot_is_a_new_session():
    before = {"*1": [5000, 2000, 1_000]}
    used, continuing = session_deltas(before, {"*1": [300, 100, 9_000]}, counters=2)
    assert used == [300, 100] and continuing == set()


def test_a_continuing_session_counts_its_difference_in_each_counter():
    before = {"*1": [5000, 2000, 1_000]}
    used, continuing = session_deltas(before, {"*1": [5600, 2100, 1_004]}, counters=2)
    assert used == [600, 100] and continuing == {"*1"}


def test_a_counter_that_went_down_is_a_new_session_even_with_the_same_start():
    used, continuing = session_deltas({"a": [900, 50]}, {"a": [100, 50]}, counters=1)
    assert used == [100] and continuing == set()


def test_no_sessions_no_usage():
    assert session_deltas({"a": [900, 50]}, {}, counters=2) == ([0, 0], set())
