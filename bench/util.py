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
