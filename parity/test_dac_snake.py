"""impl.ops.snake (the gemm path's polynomial sin^2) vs upstream's `dac.nn.layers.snake` (descript-audio-codec 1.0.0,
float32), MLX's plain ops and float64.

The gemm path computes sin(u)^2 with a polynomial after range reduction instead of libm. Contract: its max error
against float64 (over a large sample of inputs across scales, and per element relative to |x| + 1/alpha) is at
most twice upstream's own; hypothesis cases vs mx.sin and upstream use the element bound 8 u (|x| + |y| + 1/alpha):
rounding alpha*x moves sin^2 by up to |alpha x| u, i.e. |x| u after the division by alpha, and each of the few
roundings after it by u |y| or u/alpha.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlx.core as mx

from impl import ops

U = 2.0 ** -24
SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def _run(p: str, fn) -> np.ndarray:
    with ops.use_path(p):
        assert ops.path() == p
        return np.array(fn())


def _snake64(x, alpha):
    a = alpha.astype(np.float64)
    return x.astype(np.float64) + 1.0 / (a + 1e-9) * np.sin(a * x.astype(np.float64)) ** 2


def _snake_torch(x, alpha):
    """upstream's snake (descript-audio-codec 1.0.0 dac.nn.layers.snake, float32) on channels-last arrays."""
    import torch
    from dac.nn.layers import snake

    with torch.no_grad():
        y = snake(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))),
                  torch.from_numpy(alpha).reshape(1, -1, 1))
    return np.moveaxis(y.numpy(), 1, -1)


def _snake_bound(x, alpha, y64):
    return 8 * U * (np.abs(x) + np.abs(y64) + 1.0 / (alpha.astype(np.float64) + 1e-9))


def test_dac_snake_accuracy_at_most_twice_upstreams():
    """Max error vs float64 over 1.7 M inputs from |x| ~ 0.01 to 1000 and alpha from 0.01 to 50, in absolute terms
    and relative to |x| + 1/alpha: the gemm path's is at most twice upstream's float32 snake's."""
    rng = np.random.default_rng(0)
    C = 96
    alpha = np.exp(rng.uniform(np.log(0.01), np.log(50), C)).astype(np.float32)
    alpha[:6] = [0.01, 0.1, 1.0, 1.0001, 10.0, 50.0]
    x = np.concatenate([rng.standard_normal((6000, C)) * s for s in (0.01, 0.3, 1, 3, 30)]
                       + [rng.uniform(-1000, 1000, (3000, C))]).astype(np.float32)[None]
    y64 = _snake64(x, alpha)
    gemm = _run("gemm", lambda: ops.snake(mx.array(x), mx.array(alpha)))
    torch_y = _snake_torch(x, alpha)
    scale = np.abs(x) + 1.0 / alpha.astype(np.float64)
    errs = {}
    for name, y in (("gemm", gemm), ("torch", torch_y)):
        e = np.abs(y.astype(np.float64) - y64)
        errs[name] = (e.max(), (e / scale).max())
    assert errs["torch"][0] > 0 and errs["torch"][1] > 0, errs
    assert errs["gemm"][0] <= 2 * errs["torch"][0], errs
    assert errs["gemm"][1] <= 2 * errs["torch"][1], errs


@settings(**SETTINGS)
@given(st.integers(1, 3), st.integers(1, 300), st.integers(1, 64), st.sampled_from([0.01, 1.0, 10.0, 300.0]),
       st.floats(0.01, 50.0), st.integers(0, 2 ** 31 - 1))
def test_dac_snake_gemm_matches_native_upstream_float64(N, L, C, x_scale, alpha_hi, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, L, C)) * x_scale).astype(np.float32)
    alpha = rng.uniform(0.01, alpha_hi, C).astype(np.float32)
    y64 = _snake64(x, alpha)
    fn = lambda: ops.snake(mx.array(x), mx.array(alpha))  # noqa: E731
    gemm, native = _run("gemm", fn), _run("native", fn)
    bound = _snake_bound(x, alpha, y64)
    for name, want, factor in (("float64", y64, 1), ("native", native, 2), ("torch", _snake_torch(x, alpha), 2)):
        err = np.abs(gemm.astype(np.float64) - want)
        assert (err <= factor * bound).all(), (name, (err / bound).max())


def test_dac_snake_special_values():
    """Zeros stay zero, periods of pi give x back, non-finite inputs propagate as in torch."""
    alpha = np.array([1.0, 2.0, 0.5], np.float32)
    x = np.array([[[0.0, 0.0, 0.0], [np.pi, np.pi / 2, 2 * np.pi], [np.inf, -np.inf, np.nan]]], np.float32)
    got = _run("gemm", lambda: ops.snake(mx.array(x), mx.array(alpha)))
    assert (got[0, 0] == 0).all()
    np.testing.assert_allclose(got[0, 1], x[0, 1], rtol=0, atol=4e-7 * np.pi * 4)
    assert np.isnan(got[0, 2]).all() == np.isnan(_snake_torch(x, alpha)[0, 2]).all()


def test_dac_snake_alpha_zero_and_tiny_match_upstream():
    """Guards upstream's eps in 1/(alpha + 1e-9): at alpha = 0 (and -0) upstream returns x exactly (1e9 * sin(0)^2
    = 0), where a port without the eps returns inf * 0 = NaN; at alpha = +-1e-12 and 1e-30 the eps keeps the
    reciprocal near 1e9 (an eps of 1e-12 would give NaN at alpha = -1e-12). impl's Snake1d on both ops paths."""
    from impl.dac.layers import Snake1d

    alpha = np.array([0.0, -0.0, 1e-12, -1e-12, 1e-30], np.float32)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((200, alpha.size)) * s for s in (1e-6, 1.0, 1e3)]).astype(np.float32)
    x[:4] = [[0.0] * 5, [-1e3] * 5, [1e3] * 5, [1e-30] * 5]
    x = x[None]
    ref = _snake_torch(x, alpha)
    snake = Snake1d(alpha.size)
    snake.alpha = mx.array(alpha)
    # Bound 0 (exact): for |alpha| <= 1e-12 both sides' added term is t <= 1/(1e-9 - 1e-12) (alpha x)^2 (1 + 8 u)
    # <= 1.01e-15 x^2, below half an ulp of x (2^-24 |x|) for |x| < 3e7 (here |x| <= ~5e3): x + t rounds to x.
    np.testing.assert_array_equal(ref, x)  # upstream itself: finite, x back
    for p in ("native", "gemm"):
        got = _run(p, lambda: snake(mx.array(x)))
        bad = ~(got == ref)
        assert not bad.any(), (f"{p} path, alpha = {alpha[np.nonzero(bad)[-1][0]]!r}: {int(bad.sum())} values "
                               f"differ, e.g. {got[bad][:3]} vs upstream {ref[bad][:3]}")
