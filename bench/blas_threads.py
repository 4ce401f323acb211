"""The quick-bench cases' matrix products at 1 and 2 OpenBLAS threads (MLX on the bound BLAS), torch beside them.

The profile behind issue 17's quick-bench cases below 1.0x (26e4378): on a shared 2-core host, OpenBLAS's threaded sgemm
waits for its second thread at every panel of K, and each wait costs a scheduler slice when the cores are busy;
products with few rows (the DAC encoder's last 75-frame convs at 1 s), few columns x depth (the tiny DAC's 8-16
channel convs) or little work (the small LM's 64-wide projections) then run 4-150x slower on 2 threads than on 1.

    python -m bench.blas_threads [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable, Tuple

import numpy as np

from impl.accel import blas

# (rows, depth, columns) and where the quick bench runs them
SHAPES = [
    ((75, 8192, 1024), "DAC 24 kHz encoder block 4 stride-8 conv, 1 s (im2col)"),
    ((75, 3072, 1024), "DAC 24 kHz encoder last conv k3, 1 s"),
    ((600, 3584, 512), "DAC 24 kHz encoder block 4 residual conv, 1 s (per tap: 512 deep)"),
    ((24000, 448, 64), "DAC 24 kHz encoder first convs, 1 s"),
    ((170000, 56, 8), "tiny DAC (quick speaker profile) 8-channel conv, 7 s"),
    ((512, 64, 192), "small LM prefill MLP projection, 512 tokens"),
]


def _set_threads() -> Callable[[int], None]:
    fns = blas.openblas_threads()  # enable_fast_blas loaded OpenBLAS with RTLD_GLOBAL
    if fns is None:
        raise RuntimeError(f"no OpenBLAS bound to MLX ({blas.blas_info()})")
    return fns[1]


def _min_med(fn: Callable[[], object], n: int) -> Tuple[float, float]:
    fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t), float(np.median(t))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.blas_threads", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    blas.enable_fast_blas()
    import mlx.core as mx
    import torch

    set_threads = _set_threads()
    print(f"MLX matmul on {blas.blas_info()['blas']}, 1 vs 2 OpenBLAS threads; torch {torch.get_num_threads()} "
          f"threads; ms min / median of {args.rounds}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'M x K x N':>18} {'1 thread':>15} {'2 threads':>15} {'torch':>15}  where")
    rng = np.random.default_rng(0)
    for (M, K, N), where in SHAPES:
        a, b = rng.random((M, K), np.float32), rng.random((K, N), np.float32)
        A, B = mx.array(a), mx.array(b)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        cells = []
        for n in (1, 2):
            set_threads(n)
            cells.append(_min_med(lambda: mx.eval(A @ B), args.rounds))
        cells.append(_min_med(lambda: ta @ tb, args.rounds))
        print(f"{f'{M}x{K}x{N}':>18} " + " ".join(f"{lo * 1e3:7.1f}/{md * 1e3:7.1f}" for lo, md in cells) + f"  {where}")
    set_threads(os.cpu_count() or 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
