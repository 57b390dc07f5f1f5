"""The RouterOS emulator, driven by the real librouteros client over TCP (and a raw socket
speaking the wire protocol where librouteros cannot: tags, !empty, !fatal)."""

import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from librouteros import connect
from librouteros.exceptions import (
    ConnectionClosed,
    FatalError,
    LibRouterosError,
    MultiTrapError,
    TrapError,
)
from librouteros.login import token
from librouteros.query import And, Key, Or

from network.emulator import RouterOSEmulator
from network.emulator.protocol import (
    decode_length,
    encode_length,
    read_sentence,
    write_sentence,
)

USER, PASSWORD = "admin", "secret"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu():
    with RouterOSEmulator(users={USER: PASSWORD}) as emulator:
        yield emulator


@pytest.fixture
def api(emu):
    client = connect("127.0.0.1", USER, PASSWORD, port=emu.port)
    yield client
    client.close()


class Raw:
    """A bare socket speaking the API with the emulator's own framing functions."""

    def __init__(self, port, login=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")
        if login:
            self.send("/login", f"=name={USER}", f"=password={PASSWORD}")
            assert self.read() == ["!done"]

    def send(self, *words):
        write_sentence(self.sock, words)

    def read(self):
        return read_sentence(self.reader)

    def until_done(self):
        sentences = []
        while True:
            sentence = self.read()
            sentences.append(sentence)
            if sentence is None or sentence[0] == "!done":
                return sentences

    def close(self):
        self.reader.close()
        self.sock.close()


def secrets(api):
    return api.path("ppp", "secret")


# ---------------------------------------------------------------------------- framing


def test_length_prefixes_match_the_protocol_table():
    cases = {
        0: b"\x00",
        127: b"\x7f",
        128: b"\x80\x80",
        256: b"\x81\x00",
        0x3FFF: b"\xbf\xff",
        0x4000: b"\xc0\x40\x00",
        0x1FFFFF: b"\xdf\xff\xff",
        0x200000: b"\xe0\x20\x00\x00",
    }
    for length, encoded in cases.items():
        assert encode_length(length) == encoded
        assert decode_length(encoded) == length
    assert decode_length(b"\xf0\x10\x00\x00\x00") == 0x10000000


def test_long_utf8_words_round_trip_through_librouteros(emu):
    comment = "c" * 256 + "é" * 10000  # 20,256 bytes: a 3-byte length prefix
    utf8 = connect("127.0.0.1", USER, PASSWORD, port=emu.port, encoding="UTF-8")
    item = secrets(utf8).add(name="long", comment=comment)
    row = next(r for r in secrets(utf8) if r[".id"] == item)
    assert row["comment"] == comment
    utf8.close()


# ---------------------------------------------------------------------------- login


def test_login_with_the_right_password_works(emu):
    api = connect("127.0.0.1", USER, PASSWORD, port=emu.port)
    assert list(api("/system/identity/print")) == [{"name": "MikroTik"}]
    api.close()


def test_wrong_password_gets_the_routers_trap_message(emu):
    with pytest.raises(TrapError) as exc:
        connect("127.0.0.1", USER, "wrong", port=emu.port)
    assert exc.value.message == "invalid user name or password (6)"


def test_refuse_logins_fails_even_the_right_password(emu):
    emu.refuse_logins = True
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        connect("127.0.0.1", USER, PASSWORD, port=emu.port)
    emu.refuse_logins = False
    connect("127.0.0.1", USER, PASSWORD, port=emu.port).close()


def test_legacy_challenge_login_works(emu):
    api = connect("127.0.0.1", USER, PASSWORD, port=emu.port, login_method=token)
    assert list(api("/system/identity/print")) == [{"name": "MikroTik"}]
    api.close()


def test_command_before_login_is_fatal_and_closes(emu):
    raw = Raw(emu.port, login=False)
    raw.send("/ppp/secret/print")
    assert raw.read() == ["!fatal", "not logged in"]
    assert raw.read() is None
    raw.close()


def test_quit_is_fatal_session_terminated(api):
    with pytest.raises(FatalError, match="session terminated on request"):
        list(api("/quit"))


# ---------------------------------------------------------------------------- secrets


def test_secret_add_print_set_remove(api, emu):
    path = secrets(api)
    bob = path.add(name="bob", password="pw1", service="pppoe", **{"remote-address": "10.0.0.9"})
    alice = path.add(name="alice", password="pw2")
    assert (bob, alice) == ("*1", "*2")
    row = next(
        iter(path.select(Key(".id"), Key("name"), Key("password")).where(Key("name") == "bob"))
    )
    assert row == {".id": "*1", "name": "bob", "password": "pw1"}

    full = {r["name"]: r for r in path}
    assert full["alice"]["service"] == "any"
    assert full["alice"]["profile"] == "default"
    assert full["alice"]["disabled"] is False
    assert "remote-address" not in full["alice"]  # unset optional properties are left out
    assert "comment" not in full["alice"]
    assert full["bob"]["remote-address"] == "10.0.0.9"

    path.update(**{".id": bob, "disabled": True, "comment": "unpaid"})
    assert emu.rows("/ppp/secret")[0]["disabled"] == "true"  # printed as true, not yes
    assert emu.rows("/ppp/secret")[0]["comment"] == "unpaid"
    disabled = list(path.select(Key("name")).where(Key("disabled") == True))  # noqa: E712
    assert disabled == [{"name": "bob"}]

    path.update(**{".id": "alice", "password": "by-name"})  # .id accepts a name
    assert emu.rows("/ppp/secret")[1]["password"] == "by-name"

    path.remove(bob, alice)  # a comma list of ids
    assert list(path) == []
    assert path.add(name="carol") == "*3"  # ids are never reused


def test_duplicate_secret_gets_the_exact_router_message(api):
    secrets(api).add(name="bob")
    with pytest.raises(TrapError) as exc:
        secrets(api).add(name="bob")
    assert exc.value.message == "failure: secret with the same name already exists"
    assert exc.value.category is None


def test_secret_with_unknown_profile_is_refused(api):
    with pytest.raises(TrapError) as exc:
        secrets(api).add(name="bob", profile="50M")
    assert exc.value.message == "input does not match any value of profile"
    assert exc.value.category == 1
    api.path("ppp", "profile").add(name="50M", **{"rate-limit": "50M/50M"})
    assert secrets(api).add(name="bob", profile="50M") == "*1"


def test_secret_with_malformed_address_is_refused(api):
    with pytest.raises(TrapError, match="invalid value for argument remote-address"):
        secrets(api).add(name="bob", **{"remote-address": "10.0.0.300"})


def test_set_of_missing_item_and_unknown_parameter_are_trapped(api):
    with pytest.raises(TrapError, match=r"^no such item$"):
        secrets(api).update(**{".id": "*99", "password": "x"})
    secrets(api).add(name="bob")
    with pytest.raises(TrapError, match=r"^unknown parameter speed$"):
        secrets(api).update(**{".id": "bob", "speed": "10M"})
    with pytest.raises(TrapError, match=r"^unknown parameter speed$"):
        secrets(api).add(name="alice", speed="10M")


def test_enable_disable_verbs(api, emu):
    item = secrets(api).add(name="bob")
    list(api("/ppp/secret/disable", **{".id": item}))
    assert emu.rows("/ppp/secret")[0]["disabled"] == "true"
    list(api("/ppp/secret/enable", **{".id": "bob"}))
    assert emu.rows("/ppp/secret")[0]["disabled"] == "false"


def test_count_only_returns_ret(api):
    for name in ("a", "b", "c"):
        secrets(api).add(name=name)
    assert list(api("/ppp/secret/print", **{"count-only": ""})) == [{"ret": 3}]
    rows = list(api.rawCmd("/ppp/secret/print", "=count-only=", "?=name=b"))
    assert rows == [{"ret": 1}]


def test_profiles_have_the_builtin_ids_and_unique_names(api):
    rows = list(api.path("ppp", "profile").select(Key(".id"), Key("name"), Key("default")))
    assert rows == [
        {".id": "*0", "name": "default", "default": True},
        {".id": "*FFFFFFFE", "name": "default-encryption", "default": True},
    ]
    api.path("ppp", "profile").add(name="10M")
    with pytest.raises(TrapError, match=r"^failure: already have such name$"):
        api.path("ppp", "profile").add(name="10M")


# ---------------------------------------------------------------------------- queries


@pytest.fixture
def people(api):
    path = secrets(api)
    path.add(name="ann", service="pppoe", **{"limit-bytes-in": 500})
    path.add(name="ben", service="pppoe", disabled=True, **{"limit-bytes-in": 1500})
    path.add(name="cat", service="l2tp", comment="vip", **{"limit-bytes-in": 20000})
    return path


def names(rows):
    return sorted(row["name"] for row in rows)


def test_boolean_query_matches_rows_printed_false(people):
    assert names(people.select(Key("name")).where(Key("disabled") == False)) == ["ann", "cat"]  # noqa: E712


def test_or_not_equal_and_in_queries(people):
    either = people.select(Key("name")).where(Or(Key("name") == "ann", Key("name") == "cat"))
    assert names(either) == ["ann", "cat"]
    assert names(people.select(Key("name")).where(Key("name") != "ben")) == ["ann", "cat"]
    assert names(people.select(Key("name")).where(Key("name").In("ben", "cat", "zed"))) == [
        "ben",
        "cat",
    ]
    both = people.select(Key("name")).where(
        And(Key("service") == "pppoe", Key("disabled") == False)  # noqa: E712
    )
    assert names(both) == ["ann"]


def test_numbers_compare_numerically(people):
    # as strings "20000" < "500"; as numbers it is the largest
    assert names(people.select(Key("name")).where(Key("limit-bytes-in") > 1000)) == ["ben", "cat"]
    assert names(people.select(Key("name")).where(Key("limit-bytes-in") < 1000)) == ["ann"]


def test_presence_and_stack_operations(api, people):
    def raw(*words):
        return names(api.rawCmd("/ppp/secret/print", "=.proplist=name", *words))

    assert raw("?comment") == ["cat"]
    assert raw("?-comment") == ["ann", "ben"]
    assert raw("?>comment=") == ["cat"]
    assert raw("?name=ann") == ["ann"]  # the form without a leading "="
    # NOT(service=pppoe AND disabled=yes)
    assert raw("?service=pppoe", "?disabled=yes", "?#&!") == ["ann", "cat"]
    # a trailing index keeps only that value of the stack (0 is the top)
    assert raw("?name=ann", "?name=ben", "?#0") == ["ben"]
    assert raw("?name=ann", "?name=ben", "?#1") == ["ann"]
    assert raw("?name=ann", "?name=ben", "?#|") == ["ann", "ben"]
    # "1" then "|": push a copy of index 1 (ann) and OR it with ben; ann stays below
    assert raw("?name=ann", "?name=ben", "?#1|") == ["ann"]


def test_lookups_through_an_index_answer_as_a_scan_would(api, emu):
    path = secrets(api)
    for name in ("ann", "Ann", "007", "yes"):
        path.add(name=name, service="pppoe")
    emu.add_row("/ip/firewall/address-list", list="cut", address="10.0.0.1")
    emu.add_row("/ip/firewall/address-list", list="cut", address="10.0.0.2", comment="x")

    def ids(menu, *words):
        return sorted(r[".id"] for r in api.rawCmd(f"{menu}/print", "=.proplist=.id", *words))

    def same_as_a_scan(menu, *words):
        # The same conditions ANDed by `?#&`: a stack operation makes the emulator test
        # every row.
        scanned = ids(menu, *words, *["?#&"] * (len(words) - 1))
        return ids(menu, *words) == scanned

    for value in ("ann", "Ann", "7", "007", "true", "yes", "nobody"):
        assert same_as_a_scan("/ppp/secret", f"?=name={value}", "?=service=pppoe"), value
    assert len(ids("/ppp/secret", "?name=7")) == 1  # numbers compare as numbers: 007
    for words in (
        ["?=list=cut", "?=address=10.0.0.2"],
        ["?=address=10.0.0.1", "?=list=cut"],
        ["?=list=cut", "?=address=10.0.0.2", "?=comment=y"],
        ["?=list=other", "?=address=10.0.0.1"],
    ):
        assert same_as_a_scan("/ip/firewall/address-list", *words), words


def test_empty_result_is_harmless_for_librouteros(api, emu):
    assert list(secrets(api).select(Key("name")).where(Key("name") == "nobody")) == []
    raw = Raw(emu.port)
    raw.send("/ppp/secret/print", "?=name=nobody")
    assert raw.until_done() == [["!empty"], ["!done"]]
    raw.close()


def test_empty_reply_can_be_switched_off():
    with RouterOSEmulator(users={USER: PASSWORD}, empty_reply=False) as emu:
        raw = Raw(emu.port)
        raw.send("/ppp/secret/print")
        assert raw.until_done() == [["!done"]]
        raw.close()


def test_tag_is_echoed_on_every_reply_sentence_only_when_sent(emu):
    emu.add_row("/ppp/secret", name="bob")
    raw = Raw(emu.port)
    raw.send("/ppp/secret/print", "=.proplist=name", ".tag=7")
    assert raw.until_done() == [["!re", "=name=bob", ".tag=7"], ["!done", ".tag=7"]]
    raw.send("/ppp/secret/add", "=name=bob", ".tag=8")
    assert raw.until_done() == [
        ["!trap", "=message=failure: secret with the same name already exists", ".tag=8"],
        ["!done", ".tag=8"],
    ]
    raw.send("/ppp/secret/print", "=.proplist=name")
    assert raw.until_done() == [["!re", "=name=bob"], ["!done"]]
    raw.close()


def test_monitor_traffic_streams_until_cancelled(emu):
    emu.set_traffic("ether1", 8_000_000, 2_000_000)
    raw = Raw(emu.port)
    raw.send("/interface/monitor-traffic", "=interface=ether1", "=interval=0.2", ".tag=m")
    first = raw.read()
    assert first[0] == "!re" and "=rx-bits-per-second=8000000" in first and first[-1] == ".tag=m"
    raw.send("/cancel", "=tag=m", ".tag=c")
    replies = []
    while ["!done", ".tag=c"] not in replies:
        replies.append(raw.read())
    assert ["!trap", "=category=2", "=message=interrupted", ".tag=m"] in replies
    assert ["!done", ".tag=m"] in replies
    raw.close()


# ---------------------------------------------------------------------------- errors


def test_unknown_command_gets_two_traps(api):
    with pytest.raises(MultiTrapError) as exc:
        list(api("/ip/route/print"))
    assert [trap.message for trap in exc.value.traps] == [
        "no such command or directory (route)",
        "no such command prefix",
    ]
    assert exc.value.traps[0].category == 0
    with pytest.raises(MultiTrapError, match=r"\(frobnicate\)"):
        list(api("/ppp/secret/frobnicate"))
    with pytest.raises(MultiTrapError, match=r"\(add\)"):  # /ppp/active has no add
        list(api("/ppp/active/add", name="x"))


# ---------------------------------------------------------------------------- TLS


def test_tls_listener_serves_the_same_router():
    with RouterOSEmulator(users={USER: PASSWORD}, tls_port=0) as emu:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        api = connect(
            "127.0.0.1", USER, PASSWORD, port=emu.tls_port, ssl_wrapper=context.wrap_socket
        )
        assert api.protocol.transport.sock.version().startswith("TLS")
        secrets(api).add(name="over-tls")
        assert [r["name"] for r in emu.rows("/ppp/secret")] == ["over-tls"]
        api.close()
        assert emu.tls_port != emu.port


# ---------------------------------------------------------------------------- sessions


def test_dial_in_creates_an_active_session_and_a_growing_interface(api, emu):
    secrets(api).add(name="bob", **{"remote-address": "10.20.0.5"})
    emu.dial_in("bob", caller_id="AA:BB:CC:00:11:22")
    assert emu.active_names() == {"bob"}
    active = list(api.path("ppp", "active"))
    assert len(active) == 1
    assert active[0]["name"] == "bob"
    assert active[0]["service"] == "pppoe"
    assert active[0]["address"] == "10.20.0.5"
    assert active[0]["caller-id"] == "AA:BB:CC:00:11:22"

    def counters():
        where = Key("name") == "<pppoe-bob>"
        keys = (Key("type"), Key("dynamic"), Key("rx-byte"), Key("tx-byte"))
        return next(iter(api.path("interface").select(*keys).where(where)))

    started = time.monotonic()
    before = counters()
    between = time.monotonic()
    assert before["type"] == "pppoe-in" and before["dynamic"] is True
    time.sleep(0.3)
    ended_gap = time.monotonic()
    after = counters()
    ended = time.monotonic()
    for counter in ("rx-byte", "tx-byte"):
        grown = after[counter] - before[counter]
        # a steady 1-5 Mbit/s, i.e. 125-625 kB/s
        assert 125_000 * (ended_gap - between) <= grown <= 625_000 * (ended - started)


def test_dial_in_refuses_unknown_or_disabled_secrets(emu):
    with pytest.raises(ValueError):
        emu.dial_in("ghost")
    emu.add_row("/ppp/secret", name="off", disabled=True)
    with pytest.raises(ValueError):
        emu.dial_in("off")


def test_dial_in_allocates_distinct_addresses(emu):
    emu.add_row("/ppp/secret", name="a")
    emu.add_row("/ppp/secret", name="b")
    emu.dial_in("a")
    emu.dial_in("b")
    addresses = {row["address"] for row in emu.rows("/ppp/active")}
    assert len(addresses) == 2 and all(a.startswith("10.10.") for a in addresses)


def test_removing_ppp_active_disconnects_and_drops_the_interface(api, emu):
    emu.add_row("/ppp/secret", name="bob")
    emu.dial_in("bob")
    active = api.path("ppp", "active")
    (row,) = active.select(Key(".id")).where(Key("name") == "bob")
    active.remove(row[".id"])
    assert emu.active_names() == set()
    assert "<pppoe-bob>" not in [r["name"] for r in api.path("interface")]
    secret = emu.rows("/ppp/secret")[0]
    assert secret["last-disconnect-reason"] and secret["last-caller-id"]


def test_profile_pool_gives_sessions_its_addresses(emu):
    emu.add_row("/ip/pool", name="subs", ranges="100.64.0.10-100.64.0.11")
    emu.add_row("/ppp/profile", name="pooled", remote_address="subs")
    for name in ("a", "b", "c"):
        emu.add_row("/ppp/secret", name=name, profile="pooled")
        emu.dial_in(name)
    addresses = {row["name"]: row["address"] for row in emu.rows("/ppp/active")}
    assert addresses["a"] == "100.64.0.10" and addresses["b"] == "100.64.0.11"
    assert addresses["c"].startswith("10.10.")  # the pool is full


def test_hang_up_ends_the_session(emu):
    emu.add_row("/ppp/secret", name="bob")
    emu.dial_in("bob")
    assert emu.hang_up("bob") is True
    assert emu.rows("/ppp/active") == []
    assert emu.hang_up("bob") is False


def test_profile_rate_limit_and_address_list_follow_the_session(emu):
    emu.add_row("/ppp/profile", name="10M", rate_limit="10M/5M", address_list="subs")
    emu.add_row("/ppp/secret", name="bob", profile="10M")
    emu.dial_in("bob", address="10.9.9.9")
    (queue,) = emu.rows("/queue/simple")
    assert queue["name"] == "<pppoe-bob>" and queue["max-limit"] == "10000000/5000000"
    assert queue["dynamic"] == "true"
    (entry,) = emu.rows("/ip/firewall/address-list")
    assert (entry["list"], entry["address"], entry["dynamic"]) == ("subs", "10.9.9.9", "true")
    emu.hang_up("bob")
    assert emu.rows("/queue/simple") == [] and emu.rows("/ip/firewall/address-list") == []


def test_hotspot_login_and_logout(api, emu):
    users = api.path("ip", "hotspot", "user")
    users.add(name="guest", password="g")
    with pytest.raises(
        TrapError, match="failure: already have user with this name for this server"
    ):
        users.add(name="guest")
    with pytest.raises(TrapError, match="input does not match any value of profile"):
        users.add(name="other", profile="nope")
    emu.dial_in("guest", service="hotspot", caller_id="aa:bb:cc:dd:ee:ff")
    (row,) = api.path("ip", "hotspot", "active")
    assert row["user"] == "guest" and row["mac-address"] == "AA:BB:CC:DD:EE:FF"
    time.sleep(0.2)
    (later,) = api.path("ip", "hotspot", "active")
    assert later["bytes-in"] > 0 and later["bytes-out"] > 0
    api.path("ip", "hotspot", "active").remove(row[".id"])
    assert emu.active_names() == set()
    (user,) = users
    assert user["bytes-in"] > 0  # the session's bytes are added to the user on logout


def test_hotspot_profile_has_a_builtin_default(api):
    profiles = api.path("ip", "hotspot", "user", "profile")
    assert [r["name"] for r in profiles] == ["default"]
    profiles.add(name="1h", **{"rate-limit": "2M/2M", "shared-users": 2, "session-timeout": "1h"})
    with pytest.raises(TrapError, match="invalid time value for argument session-timeout"):
        profiles.add(name="bad", **{"session-timeout": ""})


# ---------------------------------------------------------------------------- other menus


def test_address_list_duplicate_is_refused(api):
    lists = api.path("ip", "firewall", "address-list")
    lists.add(list="blocked", address="10.0.0.5", comment="unpaid")
    with pytest.raises(TrapError) as exc:
        lists.add(list="blocked", address="10.0.0.5")
    assert exc.value.message == "failure: already have such entry"
    lists.add(list="other", address="10.0.0.5")  # same address, another list
    lists.add(list="blocked", address="10.1.2.3/24")  # host bits are dropped
    printed = [(r["list"], r["address"]) for r in lists]
    assert ("blocked", "10.1.2.0/24") in printed
    assert all("creation-time" in r for r in lists)


def test_address_list_timeout_counts_down_and_expires(api):
    lists = api.path("ip", "firewall", "address-list")
    lists.add(list="tmp", address="10.0.0.1", timeout="1s")
    (row,) = lists
    assert row["dynamic"] is True and row["timeout"] in ("1s", "0s")
    time.sleep(1.1)
    assert list(lists) == []


def test_queue_max_limit_is_printed_in_bits(api):
    queues = api.path("queue", "simple")
    queues.add(name="bob", target="10.0.0.5", **{"max-limit": "10M/5M"})
    queues.add(target="10.0.0.6", **{"max-limit": "512k"})
    rows = {r["name"]: r for r in queues}
    assert rows["bob"]["max-limit"] == "10000000/5000000"
    assert rows["bob"]["target"] == "10.0.0.5/32"
    assert rows["queue2"]["max-limit"] == "512000/512000"
    with pytest.raises(TrapError, match=r"^failure: already have such name$"):
        queues.add(name="bob", target="10.0.0.7")
    with pytest.raises(TrapError, match="missing value"):
        queues.add(name="no-target")


def test_system_resource_and_identity(api, emu):
    emu.cpu_load = 42
    (resource,) = api("/system/resource/print")
    assert resource["cpu-load"] == 42
    assert resource["version"] == "7.16.2 (stable)"
    assert resource["board-name"] == "CCR2004-1G-12S+2XS"
    assert resource["platform"] == "MikroTik"
    assert resource["total-memory"] > resource["free-memory"] > 0
    list(api("/system/identity/set", name="core-1"))
    assert list(api("/system/identity/print")) == [{"name": "core-1"}]


def test_interfaces_and_set_traffic(api, emu):
    names_ = [r["name"] for r in api.path("interface")]
    assert names_ == ["ether1", "ether2", "ether3", "ether4", "ether5", "bridge1"]
    emu.set_traffic("ether1", 80_000_000, 16_000_000)
    (once,) = api.path("interface")("monitor-traffic", interface="ether1", once=True)
    assert once["rx-bits-per-second"] == 80_000_000 and once["tx-bits-per-second"] == 16_000_000
    ether1 = api.path("interface").select(Key("rx-byte")).where(Key("name") == "ether1")
    started = time.monotonic()
    (first,) = ether1
    between = time.monotonic()
    time.sleep(0.2)
    ended_gap = time.monotonic()
    (later,) = ether1
    ended = time.monotonic()
    grown = later["rx-byte"] - first["rx-byte"]
    assert 10_000_000 * (ended_gap - between) <= grown <= 10_000_000 * (ended - started)
    api.path("interface").update(**{".id": "ether5", "disabled": True})
    (ether5,) = api.path("interface").select(Key("running")).where(Key("name") == "ether5")
    assert ether5["running"] is False


def test_commands_are_recorded(api, emu):
    emu.commands.clear()
    secrets(api).add(name="a")
    list(secrets(api))
    assert emu.commands == [("/ppp/secret", "add"), ("/ppp/secret", "print")]


# ---------------------------------------------------------------------------- faults


def test_go_down_refuses_and_come_up_keeps_state(emu):
    emu.add_row("/ppp/secret", name="bob")
    port = emu.port
    emu.go_down()
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.1", USER, PASSWORD, port=port, timeout=2)
    emu.come_up()
    assert emu.port == port
    api = connect("127.0.0.1", USER, PASSWORD, port=port)
    assert [r["name"] for r in secrets(api)] == ["bob"]
    api.close()


def test_go_down_cuts_open_connections(api, emu):
    emu.go_down()
    with pytest.raises((LibRouterosError, OSError)):
        list(secrets(api))
    emu.come_up()


def test_drop_connections_closes_at_once(emu):
    emu.drop_connections = True
    with pytest.raises((ConnectionClosed, OSError)):
        connect("127.0.0.1", USER, PASSWORD, port=emu.port, timeout=2)
    emu.drop_connections = False
    connect("127.0.0.1", USER, PASSWORD, port=emu.port).close()


def test_delay_makes_every_reply_slow(api, emu):
    emu.delay = 0.3
    started = time.monotonic()
    list(api("/system/identity/print"))
    assert time.monotonic() - started >= 0.3
    emu.delay = 0.0


def test_stop_closes_client_connections():
    emu = RouterOSEmulator(users={USER: PASSWORD}).start()
    api = connect("127.0.0.1", USER, PASSWORD, port=emu.port)
    assert emu.open_connections == 1
    emu.stop()
    with pytest.raises((LibRouterosError, OSError)):
        list(api("/system/identity/print"))


# ---------------------------------------------------------------------------- persistence


def test_state_file_round_trip(tmp_path):
    state = tmp_path / "router.json"
    with RouterOSEmulator(users={USER: PASSWORD}, state_file=state) as emu:
        api = connect("127.0.0.1", USER, PASSWORD, port=emu.port)
        api.path("ppp", "profile").add(name="10M", **{"rate-limit": "10M/10M"})
        secrets(api).add(name="bob", profile="10M")
        secrets(api).add(name="gone")
        secrets(api).remove("gone")
        list(api("/system/identity/set", name="saved"))
        api.close()
    assert state.exists()

    again = RouterOSEmulator.load(state, users={USER: PASSWORD})
    with again:
        api = connect("127.0.0.1", USER, PASSWORD, port=again.port)
        assert [(r["name"], r["profile"]) for r in secrets(api)] == [("bob", "10M")]
        assert secrets(api).add(name="next") == "*3"  # the id counter survived too
        assert list(api("/system/identity/print")) == [{"name": "saved"}]
        with pytest.raises(TrapError, match="already exists"):
            secrets(api).add(name="bob")  # the name index was rebuilt
        api.close()


def test_add_row_validates_like_the_api(emu):
    assert emu.add_row("/ppp/secret", name="bob", remote_address="10.0.0.1") == "*1"
    with pytest.raises(ValueError, match="failure: secret with the same name already exists"):
        emu.add_row("/ppp/secret", name="bob")
    with pytest.raises(ValueError, match="input does not match any value of profile"):
        emu.add_row("/ppp/secret", name="x", profile="missing")


# ---------------------------------------------------------------------------- speed


def test_ten_thousand_secrets_over_one_connection(api, capsys):
    path = secrets(api)
    started = time.perf_counter()
    for number in range(10_000):
        path.add(name=f"sub{number:05d}", password="pw", service="pppoe", profile="default")
    added = time.perf_counter() - started

    started = time.perf_counter()
    rows = list(path.select(Key(".id"), Key("name"), Key("disabled")))
    printed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n10,000 /ppp/secret/add: {added:.2f} s; print with .proplist: {printed:.2f} s")
    assert len(rows) == 10_000
    assert rows[-1] == {".id": "*2710", "name": "sub09999", "disabled": False}
    assert added < 60
    assert printed < 10


# ---------------------------------------------------------------------------- command


def test_command_serves_until_sigterm_and_saves_the_state(tmp_path):
    state = tmp_path / "var" / "router.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "routeros_emulator",
            "--port",
            "0",
            "--state",
            str(state),
            "--password",
            PASSWORD,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"RouterOS emulator on 127\.0\.0\.1:(\d+) \(user admin\)\n", line)
        assert match, line
        api = connect("127.0.0.1", USER, PASSWORD, port=int(match.group(1)))
        secrets(api).add(name="kept")
        api.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
    saved = json.loads(state.read_text())
    assert [row["name"] for _, row in saved["menus"]["/ppp/secret"]["rows"]] == ["kept"]
