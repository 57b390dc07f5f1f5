"""Network fixtures: a RouterOS emulator on an ephemeral port, talked to over TCP by the
real librouteros client, and a router record in alpha pointing at it."""

import pytest

from network.services import add_router

EMULATOR_USER, EMULATOR_PASSWORD = "admin", "router-pass-1"


@pytest.fixture
def emulator():
    from network.emulator import RouterOSEmulator

    emu = RouterOSEmulator(port=0, users={EMULATOR_USER: EMULATOR_PASSWORD}).start()
    yield emu
    emu.stop()


@pytest.fixture
def router(in_alpha, emulator):
    return add_router(
        actor="test",
        name="core-test",
        host="127.0.0.1",
        port=emulator.port,
        username=EMULATOR_USER,
        password=EMULATOR_PASSWORD,
    )
