"""fp32 matmul: MLX (with the BLAS impl attached) vs torch, same shapes, same run. The LM's and the
rewritten convs' hot path is this call."""
import os

import numpy as np
import pytest

from impl.accel import blas
from bench.timing import median_time

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
SHAPES = [(512, 512, 512)] if QUICK else [(512, 2048, 8192), (1, 2048, 8192), (1024, 1024, 1024)]


@pytest.mark.parametrize("m,k,n", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def bench_blas_matmul(benchmark, m, k, n):
    import mlx.core as mx
    import torch

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    xa, xb = mx.array(a), mx.array(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ref_s = median_time(lambda: ta @ tb)
    benchmark(lambda: mx.eval(xa @ xb))
    impl_s = benchmark.stats.stats.median
    benchmark.extra_info.update(ratio=ref_s / impl_s, reference_s=ref_s, impl_s=impl_s,
                                blas=blas.blas_info()["blas"], gflops=2 * m * k * n / impl_s / 1e9)
