"""The machine's own ceilings, measured: memory bandwidth and fp32 matmul FLOP/s (numpy and MLX).

Used to say how close decode (bandwidth-bound: weight bytes per token / bandwidth) and conv/matmul layers
(compute-bound) come to what the machine can do. `python -m bench.roofline` prints them.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from bench.timing import best_time


def memory_bandwidth(mbytes: int = 512) -> Dict[str, float]:
    """Read bandwidth, GB/s: the best of a float32 sum of a large array split over 1..cpu_count threads (numpy
    releases the GIL in reductions) and numpy's BLAS matrix-vector product over the same bytes, stored row- and
    column-major, as `read_GBps`
    (a roofline must bound what any program reaches: one thread alone leaves half of it unused here); one
    thread's sum as `read_1t_GBps`; and copy (read + write), one thread."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(mbytes * 2**20 // 4, dtype=np.float32)
    b = np.empty_like(a)
    out = {"read_1t_GBps": a.nbytes / best_time(lambda: a.sum()) / 1e9}
    best = out["read_1t_GBps"]
    for k in range(2, (os.cpu_count() or 1) + 1):
        parts = np.array_split(a, k)
        with ThreadPoolExecutor(k) as pool:
            best = max(best, a.nbytes / best_time(lambda: list(pool.map(np.sum, parts))) / 1e9)
    # a matrix-vector product in numpy's own BLAS (its threads): streams the matrix once, as a decode step does;
    # on this machine it reads faster than the threaded sum, so a roofline without it would be too low
    v = np.ones(4096, dtype=np.float32)
    rows = a.reshape(-1, 4096)
    out["read_gemv_GBps"] = a.nbytes / best_time(lambda: rows @ v) / 1e9
    # the same product on the matrix stored column-major (the layout impl's CPU LM keeps its weights in,
    # llama.cpu_layout): OpenBLAS's other sgemv kernel, measured ~25 % faster here (load 4.8: 22.7 vs 18.6 GB/s)
    cols = np.asfortranarray(rows)
    del rows
    out["read_gemv_colmajor_GBps"] = a.nbytes / best_time(lambda: cols @ v) / 1e9
    del cols
    out["read_GBps"] = max(best, out["read_gemv_GBps"], out["read_gemv_colmajor_GBps"])
    out["copy_GBps"] = 2 * a.nbytes / best_time(lambda: np.copyto(b, a)) / 1e9
    return out


def matmul_flops(n: int = 1024) -> Dict[str, float]:
    """fp32 n x n matmul GFLOP/s: numpy (its OpenBLAS) and MLX (whatever BLAS impl attached)."""
    from impl.accel import blas

    blas.enable_fast_blas()
    import mlx.core as mx

    flop = 2.0 * n**3
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    t_np = best_time(lambda: a @ a)
    x = mx.array(a)
    t_mx = best_time(lambda: mx.eval(x @ x))
    return {"numpy_GFLOPs": flop / t_np / 1e9, "mlx_GFLOPs": flop / t_mx / 1e9}


def measure(quick: bool = False) -> Dict[str, float]:
    out = memory_bandwidth(128 if quick else 512)
    out.update(matmul_flops(512 if quick else 1024))
    return out


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k:>14}: {v:8.1f}")
