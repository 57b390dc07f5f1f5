"""The PPPoE walled garden (network.walled_garden) pushed by a router sync, with the real
librouteros client against the RouterOS emulator over TCP: exactly the generated rules,
a second sync writes nothing, the operator's rules are left alone and ours act before
them, drift of ours is put back, and the emulator refuses what a router refuses."""

from urllib.parse import urlsplit

import librouteros
import pytest
from django.conf import settings
from librouteros.exceptions import TrapError

from network import services, walled_garden
from network.models import Router
from network.provisioning import RouterSession
from tests.network.conftest import EMULATOR_PASSWORD, EMULATOR_USER

WRITES = {"add", "set", "remove", "move", "unset", "enable", "disable"}
RULE_MENUS = (walled_garden.FILTER, walled_garden.NAT, walled_garden.PROXY_ACCESS)


def ours(emulator, menu):
    return [r for r in emulator.rows(menu) if r.get("comment") == walled_garden.COMMENT]


def rule_set(rows):
    return {tuple(sorted(walled_garden.significant(r).items())) for r in rows}


def writes(emulator, since=0):
    return [(path, verb) for path, verb in emulator.commands[since:] if verb in WRITES]


def sync(router):
    return services.sync_router(router, actor="test")


@pytest.fixture
def api(emulator):
    """The real librouteros client, logged in to the emulator."""
    client = librouteros.connect("127.0.0.1", EMULATOR_USER, EMULATOR_PASSWORD, port=emulator.port)
    yield client
    client.close()


def test_after_a_sync_the_router_holds_exactly_the_generated_walled_garden(router, emulator):
    sync(router)
    wanted = walled_garden.garden()
    assert wanted.hosts == ("alpha.localhost",)
    url = urlsplit(wanted.pay_url)
    assert (url.hostname, url.path) == ("alpha.localhost", "/my/pay/")
    for menu, rules in walled_garden.desired(wanted).items():
        assert rules, menu
        have = ours(emulator, menu)
        assert rule_set(have) == rule_set(rules) and len(have) == len(rules)
        # In the generated order: the accepts come before the reject.
        assert [walled_garden.significant(r) for r in have] == rules
    listed = ours(emulator, walled_garden.ADDRESS_LIST)
    assert {(r["list"], r["address"]) for r in listed} == {
        (walled_garden.WALLED_LIST, "alpha.localhost")
    }
    proxy = emulator.rows(walled_garden.PROXY)[0]
    assert proxy["enabled"] == "true" and proxy["port"] == walled_garden.PROXY_PORT
    # The rules name the list provisioning puts suspended addresses in.
    forward = ours(emulator, walled_garden.FILTER)
    assert {r["src-address-list"] for r in forward} == {settings.SUSPENDED_ADDRESS_LIST}
    assert forward[-2]["action"] == "reject"  # the last forward rule: everything else
    nat = ours(emulator, walled_garden.NAT)[0]
    assert nat["action"] == "redirect" and nat["to-ports"] == walled_garden.PROXY_PORT
    assert nat["dst-address-list"] == f"!{walled_garden.WALLED_LIST}"
    access = ours(emulator, walled_garden.PROXY_ACCESS)[0]
    assert access["action"] == "deny" and access["redirect-to"] == wanted.pay_url
    router.refresh_from_db()
    assert router.status == Router.Status.ONLINE and router.last_error == ""


def test_a_second_sync_writes_nothing(router, emulator):
    sync(router)
    before = {menu: emulator.rows(menu) for menu in RULE_MENUS}
    mark = len(emulator.commands)
    sync(router)
    assert writes(emulator, mark) == []
    assert {menu: emulator.rows(menu) for menu in RULE_MENUS} == before


def test_the_walled_garden_sync_reports_nothing_the_second_time(in_alpha, api):
    session = RouterSession(api)
    assert walled_garden.sync(session)
    first = session.writes
    assert first > 0
    assert walled_garden.sync(session) == []
    assert session.writes == first


def test_the_operators_rules_are_untouched_and_ours_sit_before_them(router, emulator, api):
    theirs = {
        walled_garden.FILTER: emulator.add_row(
            walled_garden.FILTER,
            chain="forward",
            action="accept",
            **{"connection-state": "established,related", "comment": "defconf: accept"},
        ),
        walled_garden.NAT: emulator.add_row(
            walled_garden.NAT, chain="srcnat", action="masquerade", **{"out-interface": "ether1"}
        ),
        walled_garden.PROXY_ACCESS: emulator.add_row(
            walled_garden.PROXY_ACCESS, action="allow", **{"dst-host": "*.example.com"}
        ),
    }
    saved = {
        menu: next(r for r in emulator.rows(menu) if r[".id"] == row_id)
        for menu, row_id in theirs.items()
    }
    sync(router)
    for menu, row_id in theirs.items():
        rows = emulator.rows(menu)
        ids = [r[".id"] for r in rows]
        assert next(r for r in rows if r[".id"] == row_id) == saved[menu]
        mine = [r[".id"] for r in rows if r.get("comment") == walled_garden.COMMENT]
        assert mine and max(ids.index(i) for i in mine) < ids.index(row_id)
        assert ids[: len(mine)] == mine  # ours first, the operator's after
    # An operator's rule added at the very top later is moved past by the next sync,
    # which moves ours, never theirs.
    top = emulator.add_row(
        walled_garden.FILTER, chain="forward", action="drop", **{"src-address": "10.9.9.9"}
    )
    first = emulator.rows(walled_garden.FILTER)[0][".id"]
    tuple(api.path("ip", "firewall", "filter")("move", numbers=top, destination=first))
    assert emulator.rows(walled_garden.FILTER)[0][".id"] == top
    mark = len(emulator.commands)
    sync(router)
    rows = emulator.rows(walled_garden.FILTER)
    n = len(walled_garden.filter_rules())
    assert all(r.get("comment") == walled_garden.COMMENT for r in rows[:n])
    assert rows[n][".id"] == top and rows[n]["src-address"] == "10.9.9.9"
    assert {verb for _, verb in writes(emulator, mark)} == {"move"}


def test_a_deleted_or_edited_rule_of_ours_is_restored_by_the_next_sync(router, emulator):
    operator = emulator.add_row(walled_garden.FILTER, chain="input", action="drop")
    sync(router)
    forward = ours(emulator, walled_garden.FILTER)
    emulator.remove_row(walled_garden.FILTER, forward[0][".id"])  # DNS accept deleted
    emulator.set_row(walled_garden.FILTER, forward[3][".id"], action="accept")  # reject edited
    emulator.set_row(walled_garden.FILTER, forward[2][".id"], disabled="yes")
    nat = ours(emulator, walled_garden.NAT)[0]
    emulator.set_row(walled_garden.NAT, nat[".id"], **{"dst-port": "8080"})
    access = ours(emulator, walled_garden.PROXY_ACCESS)[0]
    emulator.remove_row(walled_garden.PROXY_ACCESS, access[".id"])
    emulator.remove_row(
        walled_garden.ADDRESS_LIST, ours(emulator, walled_garden.ADDRESS_LIST)[0][".id"]
    )
    emulator.set_row(walled_garden.PROXY, "*0", enabled="no")

    sync(router)
    wanted = walled_garden.garden()
    for menu, rules in walled_garden.desired(wanted).items():
        rows = emulator.rows(menu)
        assert [walled_garden.significant(r) for r in rows[: len(rules)]] == rules
        assert len(ours(emulator, menu)) == len(rules)
    assert [r["address"] for r in ours(emulator, walled_garden.ADDRESS_LIST)] == ["alpha.localhost"]
    assert emulator.rows(walled_garden.PROXY)[0]["enabled"] == "true"
    kept = [r for r in emulator.rows(walled_garden.FILTER) if r[".id"] == operator]
    assert kept and kept[0]["action"] == "drop" and "comment" not in kept[0]
    mark = len(emulator.commands)
    sync(router)
    assert writes(emulator, mark) == []


def test_a_proxy_the_operator_runs_keeps_its_port_and_gains_ours(router, emulator):
    emulator.set_row(walled_garden.PROXY, "*0", enabled="yes", port="8080")
    sync(router)
    assert emulator.rows(walled_garden.PROXY)[0]["port"] == f"8080,{walled_garden.PROXY_PORT}"


def test_an_operators_own_entry_in_the_walled_list_is_kept_and_counts(router, emulator):
    emulator.add_row(
        walled_garden.ADDRESS_LIST, list=walled_garden.WALLED_LIST, address="alpha.localhost"
    )
    emulator.add_row(
        walled_garden.ADDRESS_LIST, list=walled_garden.WALLED_LIST, address="203.0.113.10"
    )
    sync(router)
    entries = [
        r
        for r in emulator.rows(walled_garden.ADDRESS_LIST)
        if r["list"] == walled_garden.WALLED_LIST
    ]
    assert sorted(r["address"] for r in entries) == ["203.0.113.10", "alpha.localhost"]
    assert not any(r.get("comment") == walled_garden.COMMENT for r in entries)
    router.refresh_from_db()
    assert router.last_error == ""


@pytest.mark.parametrize(
    ("menu", "fields"),
    [
        ("/ip/firewall/filter", {"chain": "forward", "action": "allow"}),
        ("/ip/firewall/filter", {"chain": "forward", "action": "redirect"}),
        ("/ip/firewall/filter", {"chain": "dstnat", "action": "drop"}),
        ("/ip/firewall/filter", {"chain": "forward", "action": "jump"}),
        ("/ip/firewall/filter", {"chain": "forward", "reject-with": "icmp-nope"}),
        ("/ip/firewall/filter", {"chain": "forward", "dst-port": "80"}),
        ("/ip/firewall/filter", {"chain": "forward", "colour": "red"}),
        ("/ip/firewall/nat", {"chain": "dstnat", "action": "reject"}),
        ("/ip/firewall/nat", {"chain": "forward", "action": "redirect"}),
        ("/ip/firewall/nat", {"chain": "dstnat", "protocol": "tcp", "to-ports": "70000"}),
        ("/ip/proxy/access", {"action": "accept"}),
        ("/ip/hotspot/walled-garden", {"dst-host": "a.example", "action": "accept"}),
        ("/ip/hotspot/walled-garden/ip", {"dst-host": "a.example", "action": "accept"}),
        ("/ip/hotspot/walled-garden/ip", {"dst-host": "a.example", "action": "drop"}),
    ],
)
def test_the_emulator_refuses_what_a_router_refuses_and_adds_nothing(emulator, api, menu, fields):
    with pytest.raises(TrapError):
        api.path(*menu.strip("/").split("/")).add(**fields)
    assert emulator.rows(menu) == []


def test_the_emulator_takes_the_real_walled_garden_ip_actions(emulator):
    for action in ("allow", "deny", "reject"):
        emulator.add_row("/ip/hotspot/walled-garden/ip", **{"dst-host": "x.example"}, action=action)
    assert [r["action"] for r in emulator.rows("/ip/hotspot/walled-garden/ip")] == [
        "allow",
        "deny",
        "reject",
    ]


def test_place_before_an_unknown_rule_is_refused_and_adds_nothing(emulator, api):
    with pytest.raises(TrapError) as refused:
        api.path("ip", "firewall", "filter").add(
            chain="forward", action="drop", **{"place-before": "*99"}
        )
    assert refused.value.message == "no such item"
    assert emulator.rows("/ip/firewall/filter") == []


def test_without_a_host_suspended_subscribers_are_only_blocked(in_alpha, emulator, api):
    session = RouterSession(api)
    walled_garden.sync(session)
    assert ours(emulator, walled_garden.NAT) and ours(emulator, walled_garden.PROXY_ACCESS)
    # The ISP lost its host: nothing to redirect to, no host to let through.
    walled_garden.sync(session, walled_garden.Garden((), ""))
    assert ours(emulator, walled_garden.NAT) == []
    assert ours(emulator, walled_garden.PROXY_ACCESS) == []
    assert ours(emulator, walled_garden.ADDRESS_LIST) == []
    rules = [walled_garden.significant(r) for r in ours(emulator, walled_garden.FILTER)]
    assert rules == walled_garden.filter_rules()


def test_the_periodic_check_puts_the_garden_on_a_router_nobody_synced(router, emulator):
    assert not ours(emulator, walled_garden.FILTER)
    assert services.check_drift_all() == 1
    for menu, rules in walled_garden.desired(walled_garden.garden()).items():
        assert [walled_garden.significant(r) for r in ours(emulator, menu)] == rules
    mark = len(emulator.commands)
    services.check_drift_all()
    assert writes(emulator, mark) == []  # already right: the check only reads
