"""impl.ops, the gemm path (MLX on CPU), vs the plain MLX ops (the oracle), torch.nn.functional and float64.

Tolerances. A conv output is an inner product of n = K * C_in weight-input products plus the bias. Whatever the
summation order (blocked BLAS, per-tap accumulation, FMA), the float32 result lies within gamma_{n+1} * sum|terms|
of the exact value, gamma_m = m u / (1 - m u), u = 2^-24 (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., eq. 3.5). So each path is held to that bound against float64 of the same float32 inputs, and
two float32 paths (gemm vs native MLX, gemm vs torch) to twice it, per output element, with sum|terms| computed in
float64 as the conv of |x| with |w| plus |b|. A wrong tap, shift, stride, crop or bias is an O(sum|terms|) error,
far outside (test_conv_bound_catches_a_shift shows the check failing).

Snake is held to upstream's own accuracy (descript-audio-codec's `dac.nn.layers.snake`): parity/test_dac_snake.py.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import mlx.core as mx

from impl import ops

U = 2.0 ** -24
SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def _gamma(m: int) -> float:
    return m * U / (1 - m * U)


def _run(p: str, fn) -> np.ndarray:
    with ops.use_path(p):
        assert ops.path() == p
        return np.array(fn())


# ------------------------------------------------------------------------------------------ float64 definitions

def _conv1d64(x, w, b, stride, padding, dilation):
    """torch's conv1d by its definition, channels-last, float64: y[t] = b + sum_k xp[t s + k d] @ w[:, k, :].T."""
    N, L, _ = x.shape
    C_out, K, _ = w.shape
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    xp = np.pad(x.astype(np.float64), [(0, 0), (padding, padding), (0, 0)])
    y = np.zeros((N, L_out, C_out)) + b
    for k in range(K):
        y += xp[:, k * dilation: k * dilation + (L_out - 1) * stride + 1: stride] @ w[:, k, :].T.astype(np.float64)
    return y


def _conv_transpose1d64(x, w, b, stride, padding, output_padding):
    """torch's conv_transpose1d by its definition, channels-last, float64: scatter x[t] @ w[:, m, :].T to t s + m,
    then crop `padding` at both ends (the end grown by output_padding)."""
    N, L, _ = x.shape
    C_out, K, _ = w.shape
    full = np.zeros((N, (L - 1) * stride + K + output_padding, C_out))
    for m in range(K):
        full[:, m: m + (L - 1) * stride + 1: stride] += x.astype(np.float64) @ w[:, m, :].T.astype(np.float64)
    L_out = (L - 1) * stride - 2 * padding + K + output_padding
    return full[:, padding: padding + L_out] + b


def _check(got: np.ndarray, want: np.ndarray, scale: np.ndarray, n_terms: int, factor: float, what: str):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    tol = factor * _gamma(n_terms + 1) * scale
    err = np.abs(got.astype(np.float64) - want)
    bad = err > tol
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} outside the bound, worst err/bound "
                           f"{(err / np.maximum(tol, 1e-300)).max():.3g}")


def _check_paths(gemm, native, torch_out, exact, scale, n_terms: int):
    """Both paths within the float32 bound of the float64 definition; gemm within twice it of native and torch."""
    _check(gemm, exact, scale, n_terms, 1, "gemm vs float64")
    _check(native, exact, scale, n_terms, 1, "native vs float64")
    _check(gemm, native.astype(np.float64), scale, n_terms, 2, "gemm vs native")
    _check(gemm, torch_out.astype(np.float64), scale, n_terms, 2, "gemm vs torch")


# ------------------------------------------------------------------------------------------ conv1d

@st.composite
def conv1d_case(draw):
    N = draw(st.integers(1, 3))
    C_in, C_out = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    K = draw(st.integers(1, 16))
    stride, dilation = draw(st.integers(1, 8)), draw(st.integers(1, 9))
    padding = draw(st.integers(0, (K - 1) * dilation))
    L = draw(st.integers(1, 160))
    assume(L + 2 * padding >= dilation * (K - 1) + 1)
    return N, L, C_in, C_out, K, stride, padding, dilation, draw(st.integers(0, 2 ** 31 - 1))


def _arrays(seed, x_shape, w_shape, C_out):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32),
            rng.standard_normal(C_out).astype(np.float32))


@settings(**SETTINGS)
@given(conv1d_case())
# DAC's shapes at small widths, every gemm route: per-tap (dilated residual convs), im2col (short input; C_in = 1),
# strided im2col (encoder downsampling, kernel 2 s), K = 1, batch > 1
@example((1, 90, 16, 16, 7, 1, 27, 9, 0))
@example((2, 40, 24, 24, 7, 1, 9, 3, 1))
@example((1, 5, 48, 64, 7, 1, 3, 1, 2))
@example((1, 200, 1, 8, 7, 1, 3, 1, 3))
@example((2, 80, 8, 16, 16, 8, 4, 1, 4))
@example((3, 25, 16, 32, 10, 5, 3, 1, 5))
@example((2, 30, 32, 8, 1, 1, 0, 1, 6))
@example((1, 1, 4, 4, 3, 1, 1, 1, 7))
def test_conv1d_gemm_matches_native_torch_float64(case):
    import torch

    N, L, C_in, C_out, K, stride, padding, dilation, seed = case
    x, w, b = _arrays(seed, (N, L, C_in), (C_out, K, C_in), C_out)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    fn = lambda: ops.conv1d(mx.array(x), mx.array(w), mx.array(b), **kw)  # noqa: E731
    gemm, native = _run("gemm", fn), _run("native", fn)
    with torch.no_grad():
        ref = torch.nn.functional.conv1d(torch.from_numpy(x.transpose(0, 2, 1).copy()),
                                         torch.from_numpy(w.transpose(0, 2, 1).copy()), torch.from_numpy(b),
                                         **kw).numpy().transpose(0, 2, 1)
    exact = _conv1d64(x, w, b, **kw)
    scale = _conv1d64(np.abs(x), np.abs(w), np.abs(b), **kw)
    n = K * C_in
    _check_paths(gemm, native, ref, exact, scale, n)


# ------------------------------------------------------------------------------------------ conv_transpose1d

@st.composite
def conv_transpose1d_case(draw):
    N = draw(st.integers(1, 3))
    C_in, C_out = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    stride = draw(st.integers(1, 8))
    # K = R * stride is the gemm route (DAC: R = 2); any other K falls back to mx.conv_transpose1d
    K = draw(st.one_of(st.integers(1, 3).map(lambda r: r * stride), st.integers(1, 16)))
    padding = draw(st.integers(0, K - 1))
    output_padding = draw(st.integers(0, stride - 1))
    L = draw(st.integers(1, 60))
    assume((L - 1) * stride - 2 * padding + K + output_padding >= 1)
    return N, L, C_in, C_out, K, stride, padding, output_padding, draw(st.integers(0, 2 ** 31 - 1))


@settings(**SETTINGS)
@given(conv_transpose1d_case())
# DAC's decoder upsampling (kernel 2 s, padding ceil(s/2)) at small widths: long input (gathered frames, the
# weight re-ordered) and short input next to C_in (x @ W as stored, shift-and-add); batch > 1; output_padding
@example((1, 30, 16, 8, 16, 8, 4, 0, 0))
@example((1, 3, 48, 24, 16, 8, 4, 0, 1))
@example((2, 40, 8, 4, 10, 5, 3, 0, 2))
@example((3, 4, 32, 16, 8, 4, 2, 0, 3))
@example((2, 20, 8, 8, 4, 2, 1, 1, 4))
@example((1, 1, 8, 8, 4, 2, 1, 0, 5))
def test_conv_transpose1d_gemm_matches_native_torch_float64(case):
    import torch

    N, L, C_in, C_out, K, stride, padding, output_padding, seed = case
    x, w, b = _arrays(seed, (N, L, C_in), (C_out, K, C_in), C_out)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding)
    fn = lambda: ops.conv_transpose1d(mx.array(x), mx.array(w), mx.array(b), **kw)  # noqa: E731
    gemm, native = _run("gemm", fn), _run("native", fn)
    with torch.no_grad():
        ref = torch.nn.functional.conv_transpose1d(torch.from_numpy(x.transpose(0, 2, 1).copy()),
                                                   torch.from_numpy(w.transpose(2, 0, 1).copy()),
                                                   torch.from_numpy(b), **kw).numpy().transpose(0, 2, 1)
    exact = _conv_transpose1d64(x, w, b, **kw)
    scale = _conv_transpose1d64(np.abs(x), np.abs(w), np.abs(b), **kw)
    n = -(-K // stride) * C_in  # input frames reaching one output sample, times C_in
    _check_paths(gemm, native, ref, exact, scale, n)


def test_conv_bound_catches_a_shift():
    """The bound can fail: the right conv's output moved by one sample, or with its bias dropped, is rejected."""
    x, w, b = _arrays(0, (1, 50, 16), (16, 7, 16), 16)
    kw = dict(stride=1, padding=9, dilation=3)
    y = _run("gemm", lambda: ops.conv1d(mx.array(x), mx.array(w), mx.array(b), **kw))
    exact, scale = _conv1d64(x, w, b, **kw), _conv1d64(np.abs(x), np.abs(w), np.abs(b), **kw)
    _check(y, exact, scale, 7 * 16, 1, "as computed")
    with pytest.raises(AssertionError):
        _check(np.roll(y, 1, axis=1), exact, scale, 7 * 16, 1, "shifted")
    with pytest.raises(AssertionError):
        _check(y - b, exact, scale, 7 * 16, 1, "no bias")


@pytest.mark.parametrize("route", ["per-tap", "im2col", "k1", "transpose", "transpose-short"])
def test_gemm_weight_layouts_follow_the_weight(route):
    """The gemm path keeps a contiguous copy of a weight's layout in the caller's store: a new weight array (even
    one that may reuse a freed array's id) gets its own copy, the same weight the same result twice; without a
    store nothing is kept."""
    N, L, C = {"per-tap": (1, 60, 16), "im2col": (1, 4, 16), "k1": (1, 30, 16), "transpose": (1, 40, 8),
               "transpose-short": (1, 3, 32)}[route]
    K = 1 if route == "k1" else (4 if route.startswith("transpose") else 7)
    x, w, b = _arrays(0, (N, L, C), (C, K, C), C)
    if route.startswith("transpose"):
        fn = lambda w_, s: ops.conv_transpose1d(mx.array(x), w_, mx.array(b), stride=2, padding=1,  # noqa: E731
                                                layouts=s)
    else:
        fn = lambda w_, s: ops.conv1d(mx.array(x), w_, mx.array(b), padding=(K - 1) // 2, layouts=s)  # noqa: E731
    store: ops.LayoutStore = {}
    with ops.use_path("gemm"):
        outs = []
        for scale in (1.0, 2.0, 1.0, -1.0):
            w_mx = mx.array(w * scale)  # a fresh array each time; the previous one is freed
            first = np.array(fn(w_mx, store))
            assert len(store) == 1 and next(iter(store.values()))[0] is w_mx
            np.testing.assert_array_equal(np.array(fn(w_mx, store)), first)
            np.testing.assert_array_equal(np.array(fn(w_mx, None)), first)
            outs.append(first)
    with ops.use_path("native"):
        for scale, got in zip((1.0, 2.0, 1.0, -1.0), outs):
            want = np.array(fn(mx.array(w * scale), None))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=f"x{scale}")


def test_dac_conv_layouts_live_on_the_module_not_in_parameters():
    """impl.dac's convs keep their store as a non-parameter attribute: saving, loading and parity see only
    weight and bias; reloading a weight replaces its layout."""
    from mlx.utils import tree_flatten

    from impl.dac.layers import WNConv1d

    conv = WNConv1d(8, 8, 7, padding=3)
    x = mx.array(np.random.default_rng(0).standard_normal((1, 40, 8)).astype(np.float32))
    with ops.use_path("gemm"):
        conv.load_weights([("weight", mx.ones((8, 7, 8))), ("bias", mx.zeros((8,)))])
        a = np.array(conv(x))
        assert sorted(k for k, _ in tree_flatten(conv.parameters())) == ["bias", "weight"]
        assert len(conv._layouts) == 1
        conv.load_weights([("weight", 2 * mx.ones((8, 7, 8))), ("bias", mx.zeros((8,)))])
        np.testing.assert_allclose(np.array(conv(x)), 2 * a, rtol=1e-6)


# ------------------------------------------------------------------------------------------ attention
#
# Bound, per output element (b, h, i, d), for a float32 path against the float64 definition on the same float32
# inputs. Scores s_ij = scale * q_i . k_j carry at most e_i = gamma_{D+1} * max_j scale * sum_d |q_id k_jd|
# (the scale's rounding included); a softmax of scores each off by at most e_i has p_j off by a factor within
# exp(+-2 e_i); exp's own relative error eps, the S-term sums (gamma_S each) and the division add theirs; the
# output's S-term sum adds gamma_S * sum_j p_j |v_jd|. So
#     |o - o64| <= 1.01 * (2 e_i + eps + 2 gamma_S + 2 u) * sum_j p_j |v_jd|.
# eps: numpy's float32 exp is within 2.52 ulp = 5.04 u (numpy's documented SIMD bound), so 6 u for the gemm path;
# MLX's CPU exp (mlx 0.32.4, simd exp) is within 64.9 u relative over every float32 input whose exp is a normal
# float32 (all 2.2e9 of them checked against float64; it returns inf from x = 88.00001 on), so 65 u for the native
# path.
EPS_EXP = {"gemm": 6 * U, "native": 65 * U}


def _attention64(q, k, v, scale, causal):
    """softmax(scale q k^T, causal aligned to the last key) v in float64; k, v repeated over each GQA group."""
    B, H, L, D = q.shape
    S, G = k.shape[2], H // k.shape[1]
    k64, v64 = (np.repeat(a.astype(np.float64), G, axis=1) for a in (k, v))
    s = scale * q.astype(np.float64) @ k64.transpose(0, 1, 3, 2)              # (B, H, L, S)
    a = scale * np.abs(q.astype(np.float64)) @ np.abs(k64).transpose(0, 1, 3, 2)
    if causal:
        hidden = np.arange(S)[None, :] > (S - L) + np.arange(L)[:, None]
        s = np.where(hidden, -np.inf, s)
        a = np.where(hidden, 0.0, a)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ v64, a.max(-1, keepdims=True), p @ np.abs(v64)


def _attention_bound(emax, pv, D, S, eps):
    return 1.01 * (2 * _gamma(D + 1) * emax + eps + 2 * _gamma(S) + 2 * U) * pv


@st.composite
def attention_case(draw):
    KV = draw(st.integers(1, 3))
    H = KV * draw(st.integers(1, 4))
    L = draw(st.integers(2, 150))  # one query is MLX's own kernel on both paths
    S = L + draw(st.sampled_from([0, 0, 1, 37]))  # S > L: a prefill after cached tokens
    return (draw(st.integers(1, 2)), H, KV, L, S, draw(st.sampled_from([8, 16, 64])),
            draw(st.sampled_from([None, "causal"])), draw(st.sampled_from([0.3, 1.0, 4.0])),
            draw(st.integers(0, 2 ** 31 - 1)))


def _qkv(B, H, KV, L, S, D, x_scale, seed):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((B, H, L, D)) * x_scale).astype(np.float32),
            (rng.standard_normal((B, KV, S, D)) * x_scale).astype(np.float32),
            rng.standard_normal((B, KV, S, D)).astype(np.float32))


@settings(**SETTINGS)
@given(attention_case())
# the LM's shapes: 32 query heads over 8 kv heads, head_dim 64, a prefill longer than one query block
@example((1, 32, 8, 130, 130, 64, "causal", 1.0, 0))
@example((1, 4, 2, 70, 107, "causal", 1.0, 1)[:5] + (16, "causal", 4.0, 1))
def test_attention_gemm_matches_native_float64(case):
    B, H, KV, L, S, D, mask, x_scale, seed = case
    q, k, v = _qkv(B, H, KV, L, S, D, x_scale, seed)
    scale = D ** -0.5
    o64, emax, pv = _attention64(q, k, v, scale, mask == "causal")
    fn = lambda: ops.attention(mx.array(q), mx.array(k), mx.array(v), scale, mask)  # noqa: E731
    got = {p: _run(p, fn) for p in ("gemm", "native")}
    bound = {p: _attention_bound(emax, pv, D, S, EPS_EXP[p]) for p in got}
    for p, y in got.items():
        assert y.shape == o64.shape, (p, y.shape)
        err = np.abs(y.astype(np.float64) - o64)
        assert (err <= bound[p]).all(), (p, "vs float64", (err / bound[p]).max())
    err = np.abs(got["gemm"].astype(np.float64) - got["native"])
    assert (err <= bound["gemm"] + bound["native"]).all(), ("gemm vs native", err.max())


def test_attention_bound_catches_a_mask_off_by_one():
    """The bound is tight enough to see a causal mask shifted by one key."""
    B, H, KV, L, S, D = 1, 4, 2, 40, 40, 16
    q, k, v = _qkv(B, H, KV, L, S, D, 1.0, 3)
    o64, emax, pv = _attention64(q, k, v, D ** -0.5, True)
    shifted, _, _ = _attention64(q[:, :, 1:], k[:, :, :-1], v[:, :, :-1], D ** -0.5, True)  # query i: keys < i
    err = np.abs(shifted - o64[:, :, 1:])
    assert (err > _attention_bound(emax, pv, D, S, EPS_EXP["native"])[:, :, 1:]).mean() > 0.9


def test_attention_one_query_and_bf16_use_mlx():
    """A decode step (one query) and half-precision inputs take MLX's kernel on the gemm path too."""
    q, k, v = _qkv(1, 4, 2, 1, 9, 16, 1.0, 4)
    fn = lambda: ops.attention(mx.array(q), mx.array(k), mx.array(v), 0.25, None)  # noqa: E731
    np.testing.assert_array_equal(_run("gemm", fn), _run("native", fn))
    q, k, v = _qkv(1, 4, 2, 5, 5, 16, 1.0, 5)
    half = [mx.array(a).astype(mx.bfloat16) for a in (q, k, v)]
    fn = lambda: ops.attention(*half, 0.25, "causal").astype(mx.float32)  # noqa: E731
    np.testing.assert_array_equal(_run("gemm", fn), _run("native", fn))


# ------------------------------------------------------------------------------------------ swiglu
#
# silu(g) * u = g * u / (1 + exp(-g)): exp's relative error eps, then four roundings (the add, the division, the
# product, and 1 + exp(-g) moving by at most eps itself), so |y - y64| <= 1.01 (eps + 4 u) |y64|; where exp(-g)
# overflows float32 (g < -88.72) y is 0 (in torch's float32 silu too) for a true |y| < 89 e^-88.72 |u| < 2^-120 |u|,
# an absolute 2^-120 |u| more.

def _swiglu64(g, u):
    g64 = g.astype(np.float64)
    return g64 / (1 + np.exp(-g64)) * u


@settings(**SETTINGS)
@given(st.sampled_from([(3, 5), (1, 8, 8192), (2, 100, 700)]), st.sampled_from([0.1, 1.0, 10.0, 100.0]),
       st.integers(0, 2 ** 31 - 1))
def test_swiglu_gemm_matches_native_float64(shape, g_scale, seed):
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(shape) * g_scale).astype(np.float32)
    u = rng.standard_normal(shape).astype(np.float32)
    y64 = _swiglu64(g, u)
    fn = lambda: ops.swiglu(mx.array(g), mx.array(u))  # noqa: E731
    got = {p: _run(p, fn) for p in ("gemm", "native")}
    for p, y in got.items():
        kernel = p if g.size >= ops._SWIGLU_NUMPY_MIN else "native"  # small inputs stay in MLX on both paths
        bound = 1.01 * (EPS_EXP[kernel] + 4 * U) * np.abs(y64) + 2.0 ** -120 * np.abs(u)
        err = np.abs(y.astype(np.float64) - y64)
        assert y.shape == shape and (err <= bound).all(), (p, (err / bound).max())


def test_swiglu_special_values():
    """Large negative gates give -0/0 (not NaN), large positive ones g * u; NaN propagates."""
    g = np.zeros((1, 70000), np.float32)
    g[0, :4] = [-1000.0, 1000.0, np.nan, np.inf]
    u = np.ones_like(g)
    y = _run("gemm", lambda: ops.swiglu(mx.array(g), mx.array(u)))
    assert y[0, 0] == 0 and y[0, 1] == 1000.0 and np.isnan(y[0, 2]) and (y[0, 4:] == 0).all()
