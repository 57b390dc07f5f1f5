"""Timing helpers shared by the benchmarks."""

import os
import statistics
import time

N = int(os.environ.get("BENCH_N", "200"))


def p95(samples_ms) -> float:
    ordered = sorted(samples_ms)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


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
