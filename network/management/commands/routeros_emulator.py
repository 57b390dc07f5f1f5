"""Run the RouterOS API emulator until Ctrl-C or SIGTERM (no --schema: it is not an ISP's).

    python manage.py routeros_emulator --port 8728 --state var/router.json

The state file is loaded at start when it exists and saved on exit (and every minute,
so a killed process loses little).
"""

import random
import signal
import threading
from contextlib import suppress

from django.core.management.base import BaseCommand, CommandError

from network.emulator import RouterOSEmulator
from network.emulator.state import parse_bits

AUTOSAVE_SECONDS = 60


class Command(BaseCommand):
    help = "Serve a RouterOS v7 API emulator (the real wire protocol) on a local port."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", type=int, default=8728, help="API port (8728; 0: any)")
        parser.add_argument("--tls-port", type=int, default=None, help="also serve api-ssl here")
        parser.add_argument("--state", default=None, help="JSON file to load and save the state")
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="")
        parser.add_argument("--identity", default="MikroTik")
        parser.add_argument(
            "--uplink-traffic",
            default="40M/8M",
            help="rx/tx rate of ether1 in bits per second, e.g. 40M/8M (0/0 for none)",
        )
        parser.add_argument(
            "--online",
            type=int,
            default=0,
            help="keep about this percent of the enabled PPPoE secrets dialled in (demos)",
        )

    def handle(self, *args, **opts):
        emulator = RouterOSEmulator(
            host=opts["host"],
            port=opts["port"],
            users={opts["username"]: opts["password"]},
            state_file=opts["state"],
            tls_port=opts["tls_port"],
            identity=opts["identity"],
        )
        rx, tx = _rates(opts["uplink_traffic"])
        emulator.set_traffic("ether1", rx, tx)
        try:
            emulator.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from None

        stopping = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        self.stdout.write(
            f"RouterOS emulator on {opts['host']}:{emulator.port} (user {opts['username']})"
        )
        if emulator.tls_port is not None:
            self.stdout.write(f"api-ssl on {opts['host']}:{emulator.tls_port}")
        self.stdout.flush()
        if opts["online"]:
            threading.Thread(
                target=_simulate_subscribers,
                args=(emulator, opts["online"], stopping),
                daemon=True,
            ).start()
        try:
            while not stopping.wait(AUTOSAVE_SECONDS):
                emulator.commands.clear()  # only tests read it; do not let it grow for days
                if emulator.state_file:
                    emulator.save()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            emulator.stop()


def _rates(text: str) -> tuple[int, int]:
    parts = text.split("/")
    values = [parse_bits(part) for part in parts]
    if len(parts) > 2 or None in values:
        raise CommandError(f"--uplink-traffic: expected rx/tx like 40M/8M, not {text!r}")
    return values[0], values[-1]


def _simulate_subscribers(emulator, percent: int, stopping, every: float = 15.0) -> None:
    """Subscribers come and go: keep about `percent` of the enabled secrets online, and
    let a few drop and redial each round (what a demo's monitoring should show)."""
    rng = random.Random(percent)
    while not stopping.is_set():
        enabled = [r["name"] for r in emulator.rows("/ppp/secret") if r.get("disabled") != "true"]
        online = emulator.active_names()
        for name in rng.sample(sorted(online), k=min(len(online), 2)):
            emulator.hang_up(name)
        want = len(enabled) * percent // 100
        offline = [n for n in enabled if n not in emulator.active_names()]
        rng.shuffle(offline)
        for name in offline[: max(0, want - len(emulator.active_names()))]:
            with suppress(ValueError):  # disabled or already online meanwhile
                emulator.dial_in(name)
        stopping.wait(every)
