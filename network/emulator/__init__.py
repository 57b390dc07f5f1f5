"""A RouterOS v7 API emulator: the real wire protocol over TCP (and TLS), so tests and
demos drive the real librouteros client against it. See shared/routeros.md."""

from network.emulator.server import RouterOSEmulator

__all__ = ["RouterOSEmulator"]
