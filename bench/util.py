"""Timing helpers shared by the benchmarks."""

import os
import socket
import statistics
import time

N = int(os.environ.get("BENCH_N", "200"))


def percentile(samples, fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def p95(samples_ms) -> float:
    return percentile(samples_ms, 0.95)


def production_env() -> dict:
    """The environment for a worker or web server a bench starts: this one, with DEBUG
    off as in production (and so the secret and encryption keys production must be
    given: this machine's development ones)."""
    from django.conf import settings

    from ispops.lib import crypto

    return {
        **os.environ,
        "ISPOPS_DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "ISPOPS_ENCRYPTION_KEY": ",".join(crypto.keys_in_use()),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples_ms) -> str:
    return (
        f"p50 {statistics.median(samples_ms):7.2f} ms   p95 {p95(samples_ms):7.2f} ms   "
        f"(n={len(samples_ms)})"
    )


def timed(fn, n=N):
    samples = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples
