"""Convolutions and Snake (DAC), attention and SwiGLU (the LM), one plain function each, with two paths.

- "native": `mx.conv1d` / `mx.conv_transpose1d` / `mx.sin`. The path on Metal (Apple Silicon) and the oracle in
  the tests.
- "gemm": the same maths as matrix products and vectorisable elementwise kernels, for MLX on CPU, whose dilated
  conv1d and strided conv_transpose1d kernels are orders of magnitude slower than torch's and whose `mx.sin` is a
  scalar libm loop (`python -m bench.bench_dac`). A conv is a sum over taps k of
  `x[t*stride + k*dilation] @ W_k`:
  * stride 1 (the dilated residual convs): one matmul per tap on a contiguous row slice of the padded input,
    accumulated in place with `mx.addmm` (the bias is the first accumulator); when the input is short next to the
    weight the taps are gathered first (im2col) into one matmul;
  * stride > 1 (the encoder's downsampling convs): im2col through one strided view of the padded input, one
    matmul.
  A transposed conv with kernel R*stride (DAC's have R = 2) is a matmul whose output frames (stride samples
  each) overlap R-fold: either the R input frames that reach an output frame are gathered side by side and one
  matmul with the re-ordered weight writes whole output frames, or (when the input is short next to the weight)
  `x @ W` runs on the weight as stored and its R parts are shifted and added.
  Snake's sin(u)^2 is a polynomial after exact range reduction, in one fused compiled kernel whose inputs are all
  contiguous (mx.compile then emits a plain loop the C++ compiler vectorises; a broadcast input would make it a
  strided scalar loop).

  Attention over several queries and SwiGLU on large inputs (the LM's prefill) run in numpy on the same
  buffers: MLX's CPU `exp`/`sigmoid` are scalar loops (numpy's are vectorised), and its
  CPU scaled_dot_product_attention builds the full masked score matrix. numpy computes the softmax in query
  blocks that skip the keys a causal mask hides. One query (a decode step) and small inputs stay in MLX.

Weights use MLX's layouts: conv1d (C_out, K, C_in); conv_transpose1d (C_out, K, C_in). The gemm path multiplies
by a contiguous copy of each weight in the layout its matmul wants (conv1d: (K, C_in, C_out)), made once per weight
in a store the caller owns (`_gemm_weight`): MLX's CPU matmul copies a transposed or strided weight at every call.
`path()` tells which path runs: "gemm" on the CPU device, "native" on a GPU, unless `set_path(p)` or the context
manager `use_path(p)` chose one (VOICEPORT_CONV=native|gemm, read once at import, sets the starting choice).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
import numpy as np

_PATHS = ("native", "gemm")




def _checked(p: Optional[str], what: str) -> Optional[str]:
    if p is not None and p not in _PATHS:
        raise ValueError(f"{what}={p!r}: expected one of {_PATHS} (or None: by device)")
    return p


_forced: Optional[str] = _checked(os.environ.get("VOICEPORT_CONV") or None, "VOICEPORT_CONV")


def path() -> str:
    """The path used now: the one set_path/use_path chose, else "gemm" on the CPU device and "native" on a GPU."""
    if _forced is not None:
        return _forced
    return "gemm" if mx.default_device() == mx.cpu else "native"


def set_path(p: Optional[str]) -> None:
    """Choose the path for every op ("native" or "gemm"); None goes back to the choice by device."""
    global _forced
    _forced = _checked(p, "path")


@contextmanager
def use_path(p: Optional[str]) -> Iterator[None]:
    """`with ops.use_path("native"): ...` runs the block on that path and restores the previous choice."""
    old = _forced
    set_path(p)
    try:
        yield
    finally:
        set_path(old)


# ------------------------------------------------------------------------------------------------- conv1d

# The gemm path's weight layouts, made contiguous once per weight array: the CPU matmul copies a transposed or
# strided operand at every call (a (1536, 7*1024) weight read as .T ran at a quarter of the contiguous speed).
# The caller owns the store (`layouts`, a dict per module: impl.dac.layers keeps one beside each conv's weight),
# so the copies live and die with the model; each entry keeps the weight it was made from and is rebuilt when
# the module's weight is replaced (a reload). Without a store the layout is made for the call.
LayoutStore = Dict[str, Tuple[mx.array, mx.array]]


def _gemm_weight(weight: mx.array, kind: str, layout, layouts: Optional[LayoutStore]) -> mx.array:
    """layout(weight) as a contiguous, evaluated array, made once per (weight, kind) when `layouts` is given."""
    hit = None if layouts is None else layouts.get(kind)
    if hit is not None and hit[0] is weight:
        return hit[1]
    w = mx.contiguous(layout(weight))
    if layouts is not None:
        mx.eval(w)
        layouts[kind] = (weight, w)
    return w


def _im2col(xp: mx.array, K: int, L_out: int, stride: int, dilation: int) -> mx.array:
    """(N, L_out, K*C) with row t = [xp[t*stride + k*dilation] for k < K], one strided view of xp (N, Lp, C)."""
    N, Lp, C = xp.shape
    xp = mx.contiguous(xp)
    view = mx.as_strided(xp, (N, L_out, K, C), (Lp * C, stride * C, dilation * C, 1))
    return mx.contiguous(view).reshape(N, L_out, K * C)


def conv1d(x: mx.array, weight: mx.array, bias: Optional[mx.array] = None, stride: int = 1, padding: int = 0,
           dilation: int = 1, layouts: Optional[LayoutStore] = None) -> mx.array:
    """torch.nn.functional.conv1d on channels-last input. x (N, L, Cin), weight (Cout, K, Cin) -> (N, L_out, Cout).
    `layouts`: the caller's store for the gemm path's weight layout (see _gemm_weight)."""
    if path() == "native":
        y = mx.conv1d(x, weight, stride=stride, padding=padding, dilation=dilation)
        return y if bias is None else y + bias
    N, L, C_in = x.shape
    C_out, K, _ = weight.shape
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    if L_out <= 0:
        raise ValueError(f"conv1d: input of {L} samples is shorter than the kernel's span")
    xp = mx.pad(x, [(0, 0), (padding, padding), (0, 0)]) if padding else x
    c = mx.zeros((C_out,), x.dtype) if bias is None else bias
    wt = _gemm_weight(weight, "conv1d", lambda w: w.transpose(1, 2, 0), layouts)  # (K, C_in, C_out)
    if K == 1:
        return mx.addmm(c, xp[:, : (L_out - 1) * stride + 1: stride, :], wt[0])
    if stride == 1 and N * L_out >= C_out and C_in >= 16:
        # per tap: contiguous row slices of xp times the contiguous (C_in, C_out) block wt[k]
        y = None
        for k in range(K):
            xs = xp[:, k * dilation: k * dilation + L_out, :]
            y = mx.addmm(c if y is None else y, xs, wt[k])
        return y
    cols = _im2col(xp, K, L_out, stride, dilation)                              # (N, L_out, K*C_in), rows (k, ci)
    return mx.addmm(c, cols, wt.reshape(K * C_in, C_out))


# ------------------------------------------------------------------------------------------------- conv_transpose1d

def conv_transpose1d(x: mx.array, weight: mx.array, bias: Optional[mx.array] = None, stride: int = 1,
                     padding: int = 0, output_padding: int = 0, layouts: Optional[LayoutStore] = None) -> mx.array:
    """torch.nn.functional.conv_transpose1d on channels-last input: x (N, L, Cin), weight (Cout, K, Cin) ->
    (N, (L-1)*stride - 2*padding + K + output_padding, Cout). `layouts`: as conv1d's."""
    N, L, C_in = x.shape
    C_out, K, _ = weight.shape
    L_out = (L - 1) * stride - 2 * padding + K + output_padding
    if L_out <= 0:
        raise ValueError(f"conv_transpose1d: {L} input frames give no output")
    if path() != "native" and K % stride != 0:
        # zero taps up to the next multiple of the stride (the gemm form needs one), output cropped to torch's
        # length: a zero tap adds exact zeros, so the same sum in the same order
        wp = _gemm_weight(weight, "conv_transpose1d_zero_taps", lambda w: mx.pad(w, [(0, 0), (0, -K % stride), (0, 0)]),
                          layouts)
        y = conv_transpose1d(x, wp, bias, stride, padding, output_padding, layouts)
        return y[:, :L_out, :]
    if path() == "native":
        # keyword arguments: a positional `groups` would land in `output_padding` (a known port's length bug)
        y = mx.conv_transpose1d(x, weight, stride=stride, padding=padding, output_padding=output_padding)
        return y if bias is None else y + bias
    # Output frame t (stride samples) = sum_j x[t - j] @ W[:, j*stride:(j+1)*stride] for j < R; frames 0..L+R-2.
    R, s = K // stride, stride
    F = L + R - 1
    # the bias rides in the matmul, unless output_padding appends samples that only the bias reaches
    c = mx.zeros((C_out,), x.dtype) if bias is None or output_padding else bias
    if N * L >= C_in:
        # gather the R input frames of each output frame: cols[t] = [x[t-R+1], ..., x[t]] (zero outside)
        xp = mx.pad(x, [(0, 0), (R - 1, R - 1), (0, 0)]) if R > 1 else x
        cols = _im2col(xp, R, F, 1, 1)                                        # (N, F, R*Cin), j' = R-1-j
        # (Cout, j', q, Cin) -> rows (j', ci), cols (q, co)
        wm = _gemm_weight(weight, "conv_transpose1d", lambda w: w.reshape(C_out, R, s, C_in)[:, ::-1]
                          .transpose(1, 3, 2, 0).reshape(R * C_in, s * C_out), layouts)
        full = mx.addmm(mx.tile(c, (s,)), cols, wm).reshape(N, F * s, C_out)
    else:
        # short input: x @ W (columns (co, m)), then shift-and-add the R parts of each frame
        wz = _gemm_weight(weight, "conv_transpose1d_short", lambda w: w.reshape(C_out * K, C_in).T, layouts)
        z = (x @ wz).reshape(N, L, C_out, R, s)
        full = None
        for j in range(R):
            part = mx.pad(z[:, :, :, j, :], [(0, 0), (j, R - 1 - j), (0, 0), (0, 0)])   # (N, F, Cout, s)
            full = part if full is None else full + part
        full = (full.transpose(0, 1, 3, 2) + c).reshape(N, F * s, C_out)
    if output_padding:
        full = mx.pad(full, [(0, 0), (0, output_padding), (0, 0)])
    y = full[:, padding: padding + L_out, :]
    return y + bias if output_padding and bias is not None else y


# ------------------------------------------------------------------------------------------------- snake

# sin(pi f)^2 = sum_i _SIN2[i] w^(i+1), w = f^2, |f| <= 1/2: a near-minimax fit (iteratively reweighted least
# squares over [0, 1/2] in float64, coefficients rounded to float32), max abs error 3e-8, below float32 rounding.
_SIN2 = (9.869603, -32.46958, 42.725384, -30.085953, 12.990732, -3.272948)
_INV_PI = 0.31830987  # float32(1/pi)
_ROUND = 12582912.0   # 1.5 * 2**23: (t + _ROUND) - _ROUND rounds t to the nearest integer for |t| < 2**22


def _sin2_poly(u: mx.array) -> mx.array:
    """sin(u)^2 for float32 u: t = u/pi, f = t - round(t) (exact), sin(u)^2 = sin(pi f)^2. Written with at most
    10 levels of operations, so that mx.compile keeps it one kernel (its fusion stops at depth 11)."""
    c0, c1, c2, c3, c4, c5 = _SIN2
    t = u * _INV_PI
    f = t - ((t + _ROUND) - _ROUND)
    w = f * f
    w2 = w * w
    w3 = w * w2
    return (w * (c0 + c1 * w) + w3 * (c2 + c3 * w)) + (w3 * w2) * (c4 + c5 * w)


_sin2 = mx.compile(_sin2_poly, shapeless=True)
_axpy = mx.compile(lambda x, s, r: x + s * r, shapeless=True)


@mx.compile
def _snake_native(x: mx.array, alpha: mx.array) -> mx.array:
    return x + mx.reciprocal(alpha + 1e-9) * mx.square(mx.sin(alpha * x))


def snake(x: mx.array, alpha: mx.array) -> mx.array:
    """DAC's Snake activation x + 1/(alpha + 1e-9) * sin(alpha * x)^2 with one alpha per channel; alpha (C,)."""
    if path() == "native":
        return _snake_native(x, alpha)
    u = x * alpha  # rounded as upstream's alpha * x; contiguous, so the next kernel is the vectorised one
    return _axpy(x, _sin2(u), mx.reciprocal(alpha + 1e-9))


# ------------------------------------------------------------------------------------------------- gelu, depthwise conv

# GELU (torch's default, the erf form) on the CPU: MLX's CPU erf is a scalar libm loop, so erf(u) = u P(u^2) / Q(u^2)
# on |u| <= 3.925 (beyond, erf rounds to +-1 in float32): a rational fit of erf(u)/u (iteratively reweighted least
# squares on the relative error, float64, coefficients rounded to float32), relative error 4.7e-9 in float64. In
# float32 the GELU is within 2.9 ulp of max(|x|, 1e-3) of the float64 truth over [-12, 12] (MLX's own GELU 4.3 ulp,
# torch's 4.2). Evaluated in four compiled elementwise kernels of contiguous inputs, which mx.compile emits as
# vectorisable loops (u; P; Q; the rest): one kernel holding both P and Q compiles to a scalar loop.
_ERF_P = (1.1283792, 0.18509294, 0.05421954, 0.0038345424, 0.00037590376, 4.586586e-06, -1.267514e-08)
_ERF_Q = (1.0, 0.49736774, 0.113839604, 0.015418766, 0.0012995658, 6.218797e-05)
_SQRT1_2 = 0.70710677  # float32(1 / sqrt(2)), as torch's x * M_SQRT1_2


def _poly(c):
    """t = u^2 -> c0 + c1 t + ... (Estrin's scheme: few levels, one kernel)."""
    c = tuple(c) + (0.0,) * (8 - len(c))

    def f(u: mx.array) -> mx.array:
        t = u * u
        t2 = t * t
        return ((c[0] + c[1] * t) + t2 * (c[2] + c[3] * t)) + (t2 * t2) * ((c[4] + c[5] * t) + t2 * (c[6] + c[7] * t))

    return mx.compile(f, shapeless=True)


_erf_u = mx.compile(lambda x: mx.clip(x * _SQRT1_2, -3.925, 3.925), shapeless=True)
_erf_p, _erf_q = _poly(_ERF_P), _poly(_ERF_Q)
_gelu_out = mx.compile(lambda x, u, p, q: x * 0.5 * (1.0 + u * p / q), shapeless=True)


def gelu(x: mx.array) -> mx.array:
    """torch.nn.GELU() (exact): x/2 (1 + erf(x / sqrt 2)). `mx.nn.gelu` on the native path; the rational erf above
    on the gemm path (float32)."""
    if path() == "native" or x.dtype != mx.float32:
        return nn.gelu(x)
    x = mx.contiguous(x)
    u = _erf_u(x)
    return _gelu_out(x, u, _erf_p(u), _erf_q(u))


def _shifted_sum(xp: mx.array, w: mx.array, bias: mx.array) -> mx.array:
    """bias + sum_k xp[:, k:k + L_out] * w[k], in k order (upstream's depthwise conv as K shifted products)."""
    K = w.shape[0]
    L_out = xp.shape[1] - K + 1
    y = bias
    for k in range(K):
        y = y + xp[:, k:k + L_out, :] * w[k]
    return y


# On a GPU each product and sum above is an operation of its own, each dispatched separately; MLX's grouped conv1d is
# one operation and the faster form there (`python -m bench.gpu_loop --part spark-detok-ref` compares the forms;
# stored runs: bench/gpu_runs/). The CPU (impl.ops' gemm path) keeps the shifted products: MLX's compiled CPU kernels
# over strided inputs run as scalar loops (see gelu above).


def depthwise_conv1d(x: mx.array, weight: mx.array, bias: mx.array, padding: int = 0) -> mx.array:
    """torch nn.Conv1d with groups = channels on channels-last input: x (N, L, C), weight (C, K, 1), bias (C,) ->
    (N, L + 2 padding - K + 1, C). Native: MLX's grouped convolution (one kernel on a GPU); gemm: K shifted
    products in k order, upstream's summation (MLX's CPU grouped conv is a scalar loop)."""
    if path() == "native":
        return mx.conv1d(x, weight, padding=padding, groups=weight.shape[0]) + bias
    xp = mx.pad(x, [(0, 0), (padding, padding), (0, 0)])
    return _shifted_sum(xp, weight[:, :, 0].T, bias)


# ------------------------------------------------------------------------------------------------- attention

_ATT_BLOCK = 64  # queries per block at least: scores (n_kv, group * 64, keys); measured fastest of 64..512 (1B)
# Fewer heads take more queries per block, up to this many score elements a block (the 1B LM, 32 heads, keeps 64
# queries from 128 keys on): each block is one mx.eval, a hand-off to MLX's stream thread, which on a busy host
# costs more than a small model's arithmetic (the bench's small config: 4 heads, 512 queries, 4 blocks, not 8)
_ATT_SCORES = 1 << 18


def attention(q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Optional[str] = None) -> mx.array:
    """mx.fast.scaled_dot_product_attention: q (B, H, L, D), k and v (B, KV, S, D), H a multiple of KV (GQA);
    mask None or "causal" (query i sees keys up to S - L + i) -> (B, H, L, D).

    CPU path, several queries: per block of queries, scores and the product with v are MLX matmuls (the one BLAS
    thread pool: numpy's own BLAS threads would compete with it for the cores), the softmax is numpy's."""
    B, H, L, D = q.shape
    if path() == "native" or L == 1 or L > k.shape[2] or q.dtype != mx.float32 or mask not in (None, "causal"):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    S, KV = k.shape[2], k.shape[1]
    G, offset = H // KV, S - L
    block = min(L, max(_ATT_BLOCK, _ATT_SCORES // (H * S)))
    causal = np.triu(np.full((block, block), -np.inf, np.float32), 1)  # -inf above the diagonal, else 0
    buf = np.empty(KV * G * block * S, np.float32)  # one block's probabilities, reused by each block
    out = []
    for b in range(B):
        qg = (q[b] * scale).reshape(KV, G, L, D)
        kt = k[b].transpose(0, 2, 1)  # (KV, D, S)
        blocks = []
        for s0 in range(0, L, block):
            s1 = min(L, s0 + block)
            n, keys = s1 - s0, (S if mask is None else offset + s1)  # keys past offset + s1 - 1: all hidden
            scores = mx.matmul(qg[:, :, s0:s1].reshape(KV, G * n, D), kt[:, :, :keys])  # (KV, G * n, keys)
            mx.eval(scores)
            e = buf[: KV * G * n * keys].reshape(KV, G, n, keys)
            np.copyto(e, np.array(scores, copy=False).reshape(KV, G, n, keys))  # MLX's buffer is only read
            if mask is not None:  # query s0 + i sees keys up to offset + s0 + i: only the last n keys hide any
                e[..., keys - n:] += causal[:n, :n]
            total = exp_rows(e)  # contiguous passes: a strided one costs several times more
            o = mx.matmul(mx.array(e.reshape(KV, G * n, keys)), v[b][:, :keys]) / mx.array(total.reshape(KV, G * n, 1))
            blocks.append(o.reshape(KV, G, n, D))
        out.append(mx.concatenate(blocks, axis=2).reshape(H, L, D))
    return mx.stack(out)


def exp_rows(e: np.ndarray) -> np.ndarray:
    """exp(e - its row maximum) in place over the last axis (float32) and the row sums (..., 1): a softmax's
    numerators and denominator, the division left to the caller (here after the product with v)."""
    np.subtract(e, e.max(axis=-1, keepdims=True), out=e)
    np.exp(e, out=e)
    return e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------- swiglu

_SWIGLU_NUMPY_MIN = 1 << 16  # elements; below this (a decode step: 8192) MLX's own kernel costs less than a trip


@mx.compile
def _swiglu_native(gate: mx.array, up: mx.array) -> mx.array:
    return gate * mx.sigmoid(gate) * up


def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up, the Llama MLP's activation; gate and up of one shape."""
    if path() == "native" or gate.size < _SWIGLU_NUMPY_MIN or gate.dtype != mx.float32 or up.dtype != mx.float32:
        return _swiglu_native(gate, up)
    mx.eval(gate, up)
    return mx.array(swiglu_numpy(np.array(gate, copy=False), np.array(up, copy=False)))


def swiglu_numpy(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """silu(gate) * up in NumPy, float32: gate / (1 + exp(-gate)) * up (a new array; the inputs are only read)."""
    with np.errstate(over="ignore"):  # exp(-g) = inf for g < -88: g / inf = -0
        y = np.exp(-gate)
    y += 1
    np.divide(gate, y, out=y)
    y *= up
    return y
