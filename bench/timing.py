"""Measuring helpers shared by the benchmarks: best-of-N rates and ratio lines."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], ops_per_call: int = 1, *, seconds: float = 0.5,
         repeats: int = 5) -> float:
    """Operations per second of ``fn``, the best of ``repeats`` timed batches.

    The best batch, not the mean, because on a shared 2-core machine noise
    only ever slows a batch down.
    """
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > 0.05:
            break
        calls *= 2
    per_batch = max(1, int(calls * seconds / 0.05 / repeats))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_batch):
            fn()
        elapsed = time.perf_counter() - start
        best = max(best, per_batch * ops_per_call / elapsed)
    return best


def report(name: str, value: float, floor: float, goal: float, unit: str = "/s") -> bool:
    """Print one line ``name: value (floor F) ratio R, goal >= G`` and return whether it met it."""
    ratio = value / floor
    ok = ratio >= goal
    print(
        f"{name:<44} {value:>12,.0f} {unit}   floor {floor:>12,.0f} {unit}   "
        f"ratio {ratio:5.2f}  goal >= {goal:.2f}  {'ok' if ok else 'BELOW GOAL'}"
    )
    return ok
