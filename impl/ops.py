"""Convolutions for channels-last (N, L, C) arrays, one plain function each, with two paths.

- "native": `mx.conv1d` / `mx.conv_transpose1d`. The path on Metal (Apple Silicon) and the oracle in the tests.
- "gemm": the same maths as matrix products over shifted views, for MLX on CPU, whose dilated conv1d and strided
  conv_transpose1d kernels are 100-300x slower than torch (../shared/install-notes.md). A (dilated, strided) conv
  is a sum over taps k of `x[t*stride + k*dilation] @ W_k`; taps are grouped into one wide matmul (im2col over
  a few taps) so the BLAS sees large products. A transposed conv with kernel 2*stride (every DAC one) is one
  matmul `x @ [W_0 .. W_2s-1]` followed by an overlap-add of two frames.

Weights use MLX's layouts: conv1d (C_out, K, C_in); conv_transpose1d (C_out, K, C_in). `path()` tells which
path runs; VOICEPORT_CONV=native|gemm overrides the choice (default: gemm on CPU, native on GPU).
"""
from __future__ import annotations

import os
from typing import Optional

import mlx.core as mx

_PATHS = ("native", "gemm")
# Taps per matmul in the gemm path: wider products use the BLAS better, but copy K times the input.
_TAPS_PER_MATMUL = int(os.environ.get("VOICEPORT_CONV_TAPS", "7"))


def path() -> str:
    """The conv path used now: VOICEPORT_CONV if set, else "gemm" on the CPU device and "native" on a GPU."""
    forced = os.environ.get("VOICEPORT_CONV")
    if forced:
        if forced not in _PATHS:
            raise ValueError(f"VOICEPORT_CONV={forced!r}: expected one of {_PATHS}")
        return forced
    return "gemm" if mx.default_device() == mx.cpu else "native"


def _taps_matmul(xp: mx.array, w: mx.array, L_out: int, stride: int, dilation: int) -> mx.array:
    """sum_k xp[:, t*stride + k*dilation, :] @ w[:, k, :].T for t < L_out; xp (N, Lp, Cin), w (Cout, K, Cin)."""
    N, _, C_in = xp.shape
    C_out, K, _ = w.shape
    out = None
    for k0 in range(0, K, _TAPS_PER_MATMUL):
        k1 = min(K, k0 + _TAPS_PER_MATMUL)
        views = [xp[:, k * dilation: k * dilation + (L_out - 1) * stride + 1: stride, :] for k in range(k0, k1)]
        cols = views[0] if len(views) == 1 else mx.concatenate(views, axis=-1)  # (N, L_out, (k1-k0)*Cin)
        wk = w[:, k0:k1, :].reshape(C_out, -1)                                   # (Cout, (k1-k0)*Cin)
        part = cols @ wk.T
        out = part if out is None else out + part
    return out


def conv1d(x: mx.array, weight: mx.array, bias: Optional[mx.array] = None, stride: int = 1, padding: int = 0,
           dilation: int = 1) -> mx.array:
    """torch.nn.functional.conv1d on channels-last input. x (N, L, Cin), weight (Cout, K, Cin) -> (N, L_out, Cout)."""
    if path() == "native":
        y = mx.conv1d(x, weight, stride=stride, padding=padding, dilation=dilation)
    else:
        K = weight.shape[1]
        L_out = (x.shape[1] + 2 * padding - dilation * (K - 1) - 1) // stride + 1
        if L_out <= 0:
            raise ValueError(f"conv1d: input of {x.shape[1]} samples is shorter than the kernel's span")
        xp = mx.pad(x, [(0, 0), (padding, padding), (0, 0)]) if padding else x
        if K == 1 and stride == 1:
            y = xp @ weight[:, 0, :].T
        else:
            y = _taps_matmul(xp, weight, L_out, stride, dilation)
    return y if bias is None else y + bias


def conv_transpose1d(x: mx.array, weight: mx.array, bias: Optional[mx.array] = None, stride: int = 1,
                     padding: int = 0, output_padding: int = 0) -> mx.array:
    """torch.nn.functional.conv_transpose1d on channels-last input: x (N, L, Cin), weight (Cout, K, Cin) ->
    (N, (L-1)*stride - 2*padding + K + output_padding, Cout)."""
    N, L, C_in = x.shape
    C_out, K, _ = weight.shape
    L_out = (L - 1) * stride - 2 * padding + K + output_padding
    if L_out <= 0:
        raise ValueError(f"conv_transpose1d: {L} input frames give no output")
    if path() == "native" or K % stride != 0:
        # keyword arguments: a positional `groups` would land in `output_padding` (a known port's length bug)
        y = mx.conv_transpose1d(x, weight, stride=stride, padding=padding, output_padding=output_padding)
    else:
        # Output frame t (stride samples) = sum_j x[t - j] @ W[:, j*stride:(j+1)*stride] for j < K/stride.
        R = K // stride
        wm = weight.transpose(1, 0, 2).reshape(K * C_out, C_in)            # rows: (k, c_out)
        a = (x @ wm.T).reshape(N, L, R, stride * C_out)                     # (N, L, R, stride*Cout)
        full = None
        for j in range(R):
            part = mx.pad(a[:, :, j, :], [(0, 0), (j, R - 1 - j), (0, 0)])  # shift by j frames
            full = part if full is None else full + part
        full = full.reshape(N, (L + R - 1) * stride, C_out)                 # (N, (L-1)*stride + K, Cout)
        if output_padding:
            full = mx.pad(full, [(0, 0), (0, output_padding), (0, 0)])
        y = full[:, padding: padding + L_out, :]
    return y if bias is None else y + bias


@mx.compile
def snake(x: mx.array, alpha: mx.array) -> mx.array:
    """DAC's Snake activation x + 1/(alpha + 1e-9) * sin(alpha * x)^2, one fused kernel; alpha (C,)."""
    return x + mx.reciprocal(alpha + 1e-9) * mx.square(mx.sin(alpha * x))
