"""Helpers for benchmarks: interleaved rounds and medians, because this machine is noisy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """Mean microseconds per call over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def interleaved(cases: dict[str, Callable[[], object]], number: int = 2000, rounds: int = 7) -> dict[str, float]:
    """Median per-call microseconds of each case, measured in alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        per_call_us(fn, number // 10 or 1)  # warm up
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(per_call_us(fn, number))
    return {name: statistics.median(values) for name, values in samples.items()}
