"""Wall-clock timing shared by the bench suites: warm-up calls, then n timed calls of a callable that returns
only when its work is done (the callers evaluate MLX graphs / synchronise devices inside `fn`)."""
from __future__ import annotations

import time
from typing import Callable, List

import numpy as np


def times(fn: Callable[[], object], n: int = 5, warmup: int = 1) -> List[float]:
    """Seconds of each of n calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median_time(fn: Callable[[], object], n: int = 5, warmup: int = 1) -> float:
    return float(np.median(times(fn, n, warmup)))


def best_time(fn: Callable[[], object], n: int = 5, warmup: int = 1) -> float:
    return min(times(fn, n, warmup))
