"""Run the Daraja sandbox simulator until Ctrl-C or SIGTERM (no --schema: it is Safaricom's).

    python manage.py daraja_simulator --port 8090

Point an ISP at it with `configure_mpesa --base-url http://127.0.0.1:8090 ...` and the same
consumer key, secret, shortcode and passkey. Callbacks only ever go to loopback URLs.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from payments.simulator import DarajaSimulator
from payments.simulator.server import SANDBOX_PASSKEY

HOUSEKEEPING_SECONDS = 60


class Command(BaseCommand):
    help = "Serve an offline Safaricom Daraja sandbox (OAuth, STK push, C2B, status) locally."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", type=int, required=True, help="port (0: any free one)")
        parser.add_argument("--consumer-key", default="ck")
        parser.add_argument("--consumer-secret", default="cs")
        parser.add_argument("--shortcode", default="174379")
        parser.add_argument("--passkey", default=SANDBOX_PASSKEY)
        parser.add_argument(
            "--callback-delay",
            type=float,
            default=2.0,
            help="seconds before an STK callback is sent (the customer typing the PIN)",
        )
        parser.add_argument(
            "--stk-also-c2b",
            action="store_true",
            help="follow a paid STK push to a paybill with its C2B confirmation, as M-Pesa does",
        )

    def handle(self, *args, **opts):
        if not opts["shortcode"].isdigit():
            raise CommandError(f"--shortcode must be digits, not {opts['shortcode']!r}")
        if not 0 <= opts["port"] <= 65535:
            raise CommandError(f"--port must be 0..65535, not {opts['port']}")
        sim = DarajaSimulator(
            host=opts["host"],
            port=opts["port"],
            consumer_key=opts["consumer_key"],
            consumer_secret=opts["consumer_secret"],
            shortcode=opts["shortcode"],
            passkey=opts["passkey"],
        )
        sim.callback_delay = max(0.0, opts["callback_delay"])
        sim.stk_confirms_c2b = opts["stk_also_c2b"]
        try:
            sim.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from None

        stopping = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        self.stdout.write(f"Daraja simulator on {sim.base_url}")
        self.stdout.flush()
        try:
            while not stopping.wait(HOUSEKEEPING_SECONDS):
                # only tests read these; do not let them grow for days
                sim.requests.clear()
                sim.callbacks.clear()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            sim.stop()
