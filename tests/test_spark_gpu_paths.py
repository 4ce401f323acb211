"""The GPU (native-path) forms of BiCodec layers equal the CPU (gemm-path) forms, run here on the CPU device."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
from hypothesis import given, settings, strategies as st

from impl import ops
from impl.spark.vocos import DepthwiseConv1d

EPS32 = float(np.finfo(np.float32).eps)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 70), channels=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_depthwise_conv_native_equals_shifted_products(length, channels, seed):
    """MLX's grouped conv1d (a GPU's path) vs the K = 7 shifted products (the CPU's path, upstream's sum): both round
    a sum of 8 terms (7 products + bias) in some order, so each differs from the exact sum by at most
    gamma_8 * sum|terms| (gamma_n = n u / (1 - n u), u = eps / 2): the two differ by at most twice that."""
    rng = np.random.default_rng(seed)
    conv = DepthwiseConv1d(channels, 7, padding=3)
    conv.weight = mx.array(rng.standard_normal((channels, 7, 1)).astype(np.float32))
    conv.bias = mx.array(rng.standard_normal(channels).astype(np.float32))
    x = rng.standard_normal((1, length, channels)).astype(np.float32)
    with ops.use_path("gemm"):
        a = np.array(conv(mx.array(x)))
    with ops.use_path("native"):
        b = np.array(conv(mx.array(x)))
    xp = np.pad(x.astype(np.float64), [(0, 0), (3, 3), (0, 0)])
    w = np.array(conv.weight, np.float64)[:, :, 0].T
    terms = sum(np.abs(xp[:, k:k + length] * w[k]) for k in range(7)) + np.abs(np.array(conv.bias, np.float64))
    u = EPS32 / 2
    bound = 2 * (8 * u / (1 - 8 * u)) * terms
    assert a.shape == b.shape == x.shape
    assert np.all(np.abs(a.astype(np.float64) - b) <= bound)
