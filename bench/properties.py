"""`python -m bench properties`: the money property test (tests/billing/
test_money_properties.py) with its larger hypothesis profile ("bench", 3,000 random
histories instead of `make test`'s 300), on pytest's own test database. Prints pytest's
summary and how long it took."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run():
    env = {**os.environ, "ISPOPS_HYPOTHESIS_PROFILE": os.environ.get("BENCH_PROFILE", "bench")}
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "tests/billing/test_money_properties.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(
        f"money properties ({env['ISPOPS_HYPOTHESIS_PROFILE']} profile): {summary}, {elapsed:.0f} s"
    )
    if result.returncode:
        print(result.stdout[-4000:])
        raise SystemExit("money properties: a random history broke an invariant")
