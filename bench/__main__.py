"""`python -m bench [NAME ...]`: run the benchmarks (all, or the named ones) and print figures.

They run against the development database (make bench seeds it first), never in
`make test`. With no argument every benchmark runs.
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ispops.settings")
# The benches run RouterOS emulators on 127.0.0.1 (settings.ROUTER_ALLOW_LOCAL).
os.environ.setdefault("ISPOPS_ROUTER_ALLOW_LOCAL", "1")
django.setup()

from django.conf import settings  # noqa: E402

# Measure what production runs: DEBUG off (a development process also logs every SQL
# statement it sends, which costs a payment about 2 ms). Workers a bench starts get the
# same through bench.util.production_env.
settings.DEBUG = False

from bench import (  # noqa: E402
    billing,
    expiry,
    foundation,
    hotspot,
    payments,
    portal,
    properties,
    reports,
    routeros,
    subscribers,
)

SUITES = {
    "foundation": foundation.run,
    "subscribers": subscribers.run,
    "routeros": routeros.run,
    "billing": billing.run,
    "payments": payments.run,
    "expiry": expiry.run,
    "properties": properties.run,
    "portal": portal.run,
    "hotspot": hotspot.run,
    "reports": reports.run,
}


def main(names):
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise SystemExit(
            f"bench: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}"
        )
    from django.db import connection

    for name in names or SUITES:
        print(f"== {name}", flush=True)
        connection.set_schema_to_public()
        SUITES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
