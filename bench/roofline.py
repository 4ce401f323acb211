"""The machine's own ceilings, measured: memory bandwidth and fp32 matmul FLOP/s (numpy and MLX).

Used to say how close decode (bandwidth-bound: weight bytes per token / bandwidth) and conv/matmul layers
(compute-bound) come to what the machine can do. `python -m bench.roofline` prints them.
"""
from __future__ import annotations

import time
from typing import Dict

import numpy as np


def _best(fn, repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def memory_bandwidth(mbytes: int = 512) -> Dict[str, float]:
    """Read bandwidth (sum of a large fp32 array) and copy bandwidth (read + write), GB/s, one thread."""
    a = np.ones(mbytes * 2**20 // 4, dtype=np.float32)
    b = np.empty_like(a)
    t_read = _best(lambda: a.sum(dtype=np.float64))
    t_copy = _best(lambda: np.copyto(b, a))
    return {"read_GBps": a.nbytes / t_read / 1e9, "copy_GBps": 2 * a.nbytes / t_copy / 1e9}


def matmul_flops(n: int = 1024) -> Dict[str, float]:
    """fp32 n x n matmul GFLOP/s: numpy (its OpenBLAS) and MLX (whatever BLAS impl attached)."""
    import impl  # noqa: F401 -- binds the fast BLAS before mlx
    import mlx.core as mx

    flop = 2.0 * n**3
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    t_np = _best(lambda: a @ a)
    x = mx.array(a)
    t_mx = _best(lambda: mx.eval(x @ x))
    return {"numpy_GFLOPs": flop / t_np / 1e9, "mlx_GFLOPs": flop / t_mx / 1e9}


def measure(quick: bool = False) -> Dict[str, float]:
    out = memory_bandwidth(128 if quick else 512)
    out.update(matmul_flops(512 if quick else 1024))
    return out


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k:>14}: {v:8.1f}")
