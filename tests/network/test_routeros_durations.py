"""RouterOS time values as versions 6 and 7 print them, read by network.routeros.
parse_duration: units ("1w2d3h4m5s", "1s500ms", "3ms250us"), clocks ("00:30:00"),
days or weeks before a clock ("1d 02:00:00", "1w2d03:04:05"), bare seconds. Whole
seconds come back, always an int, and the emulator's own printing reads back exactly.

No router dates are read anywhere in ispops (network/ and hotspot/ parse none: expiry
is ispops's own clock and the router's guard is a duration), so there is no date form
to test here."""

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotspot.router import differences
from network.emulator.state import format_duration
from network.routeros import parse_duration

WEEK, DAY, HOUR, MINUTE = 604800, 86400, 3600, 60


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1w2d3h4m5s", WEEK + 2 * DAY + 3 * HOUR + 4 * MINUTE + 5),
        ("44m55s", 44 * MINUTE + 55),
        ("2h", 2 * HOUR),
        ("1m", MINUTE),
        ("1w", WEEK),
        ("0s", 0),
        ("300", 300),
        ("00:30:00", 30 * MINUTE),
        ("23:59:59", DAY - 1),
        ("1d 02:00:00", DAY + 2 * HOUR),
        ("1d02:00:00", DAY + 2 * HOUR),
        ("1w2d03:04:05", WEEK + 2 * DAY + 3 * HOUR + 4 * MINUTE + 5),
        ("3w 00:00:10", 3 * WEEK + 10),
        ("00:00:01.500", 1),
    ],
)
def test_routeros_6_and_7_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


def test_milliseconds_are_not_minutes():
    assert parse_duration("1s500ms") == 1  # was read as 1 s + 500 min
    assert parse_duration("4m1s999ms") == 4 * MINUTE + 1
    assert parse_duration("500ms") == 0
    assert parse_duration("1500ms") == 1


def test_micro_and_nanoseconds_add_up_to_whole_seconds_only():
    assert parse_duration("3ms250us") == 0
    assert parse_duration("10s100ms5us") == 10
    assert parse_duration("999ms999us1000ns") == 1


@pytest.mark.parametrize("text", [None, "", "none", "never", "  "])
def test_no_value_is_zero(text):
    assert parse_duration(text) == 0


def test_numbers_pass_through_as_ints():
    assert parse_duration(90) == 90
    assert parse_duration(90.7) == 90
    with pytest.raises(TypeError):
        parse_duration(True)


@pytest.mark.parametrize("text", ["garbage", "1h2", "12:3:4", "5m5h", "1x", "00:61:00"])
def test_text_that_is_no_duration_is_zero_and_logged(text, caplog):
    with caplog.at_level(logging.WARNING, logger="network.routeros"):
        assert parse_duration(text) == 0
    assert "not a RouterOS duration" in caplog.text


def test_a_hotspot_login_whose_router_prints_clocks_needs_no_rewrite():
    # A RouterOS 6 printing limit-uptime as a clock holds what ispops wrote as units:
    # comparing them must find no difference, or every sync would write again.
    row = {"limit-uptime": "1d 02:00:00", "idle-timeout": "00:05:00"}
    assert differences(row, {"limit-uptime": "1d2h", "idle-timeout": "5m"}) == {}
    assert differences(row, {"limit-uptime": "1d3h"}) == {"limit-uptime": "1d3h"}


seconds = st.integers(min_value=0, max_value=100 * WEEK)


@given(seconds)
def test_what_the_emulator_prints_reads_back_exactly(n):
    text = format_duration(n)
    got = parse_duration(text)
    assert type(got) is int and got == n, text


def clock(n: int, *, weeks: bool, space: str, fraction: str) -> str:
    days, rest = divmod(n, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, secs = divmod(rest, MINUTE)
    head = ""
    if weeks and days >= 7:
        head = f"{days // 7}w" + (f"{days % 7}d" if days % 7 else "")
    elif days:
        head = f"{days}d"
    tail = f".{fraction}" if fraction else ""
    return f"{head}{space if head else ''}{hours:02d}:{minutes:02d}:{secs:02d}{tail}"


@given(
    seconds,
    st.booleans(),
    st.sampled_from(["", " "]),
    st.text("0123456789", max_size=6),
)
def test_clock_forms_read_back_exactly(n, weeks, space, fraction):
    text = clock(n, weeks=weeks, space=space, fraction=fraction)
    assert parse_duration(text) == n, text


@given(seconds, st.integers(0, 999), st.integers(0, 999))
def test_sub_second_parts_after_the_units_are_dropped(n, ms, us):
    text = format_duration(n) + (f"{ms}ms" if ms else "") + (f"{us}us" if us else "")
    assert parse_duration(text) == n, text
