"""BiCodec's ConvNeXt side in MLX, channels-last (N, L, C): the semantic encoder and the prenet.

Ports sparktts `modules/blocks/vocos.py` (ConvNeXtBlock, AdaLayerNorm, VocosBackbone), `modules/blocks/samper.py`
(SamplingBlock at ratio 1, the only one Spark-TTS-0.5B uses), `modules/encoder_decoder/feat_encoder.py` (Encoder)
and `feat_decoder.py` (Decoder, the prenet). Upstream names kept: `encoder.encoder.convnext.3.pwconv1`.
Quirks kept: a SamplingBlock at ratio 1 returns 3 x its input (conv_res + skip1 + skip2, all the input); the
Encoder/Decoder's `downsample` stages (ratio 1 + a 2-layer backbone each) run even though they resample nothing.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import mlx.core as mx
import mlx.nn as nn

from impl import ops

# ------------------------------------------------------------------------------------------------- gelu

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
    """torch.nn.GELU() (exact): x/2 (1 + erf(x / sqrt 2)). nn.gelu on the native path (a GPU); the rational erf
    above on impl.ops' gemm path (the CPU)."""
    if ops.path() == "native" or x.dtype != mx.float32:
        return nn.gelu(x)
    x = mx.contiguous(x)
    u = _erf_u(x)
    return _gelu_out(x, u, _erf_p(u), _erf_q(u))


# ------------------------------------------------------------------------------------------------- layers

class Conv1d(nn.Module):
    """torch nn.Conv1d (groups 1): weight (C_out, K, C_in) in MLX layout, bias (C_out,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.weight = mx.zeros((out_channels, kernel_size, in_channels))
        self.bias = mx.zeros((out_channels,))
        self.padding, self.dilation = padding, dilation
        self._layouts: ops.LayoutStore = {}

    def __call__(self, x: mx.array) -> mx.array:
        return ops.conv1d(x, self.weight, self.bias, padding=self.padding, dilation=self.dilation,
                          layouts=self._layouts)


class DepthwiseConv1d(nn.Module):
    """torch nn.Conv1d with groups = channels: weight (C, K, 1) in MLX layout; a sum of K shifted products."""

    def __init__(self, channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.weight = mx.zeros((channels, kernel_size, 1))
        self.bias = mx.zeros((channels,))
        self.padding = padding

    def __call__(self, x: mx.array) -> mx.array:
        if ops.path() == "native":  # a GPU: MLX's grouped convolution, one kernel (see _shifted_sum)
            return mx.conv1d(x, self.weight, padding=self.padding, groups=self.weight.shape[0]) + self.bias
        xp = mx.pad(x, [(0, 0), (self.padding, self.padding), (0, 0)])
        return _shifted_sum(xp, self.weight[:, :, 0].T, self.bias)


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


class LayerNorm(nn.Module):
    """torch nn.LayerNorm(dim, eps) with affine weight/bias."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = mx.ones((dim,))
        self.bias = mx.zeros((dim,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.layer_norm(x, self.weight, self.bias, self.eps)


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, then x * scale(c) + shift(c) with c the condition (N, condition_dim)."""

    def __init__(self, condition_dim: int, embedding_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Linear(condition_dim, embedding_dim)
        self.shift = nn.Linear(condition_dim, embedding_dim)

    def __call__(self, x: mx.array, cond_embedding: mx.array) -> mx.array:
        scale = self.scale(cond_embedding)
        shift = self.shift(cond_embedding)
        x = mx.fast.layer_norm(x, None, None, self.eps)
        return x * scale[:, None, :] + shift[:, None, :]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, condition_dim: Optional[int] = None):
        super().__init__()
        self.dwconv = DepthwiseConv1d(dim, 7, padding=3)
        self.adanorm = condition_dim is not None
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = mx.ones((dim,))  # upstream: None when layer_scale_init_value <= 0, never in BiCodec

    def __call__(self, x: mx.array, cond_embedding_id: Optional[mx.array] = None) -> mx.array:
        residual = x
        x = self.dwconv(x)
        x = self.norm(x, cond_embedding_id) if self.adanorm else self.norm(x)
        x = self.pwconv2(gelu(self.pwconv1(x)))
        return residual + self.gamma * x


class VocosBackbone(nn.Module):
    """(N, L, input_channels) -> (N, L, dim); `condition` (N, condition_dim) when conditioned (AdaLayerNorm)."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 condition_dim: Optional[int] = None):
        super().__init__()
        self.embed = Conv1d(input_channels, dim, 7, padding=3)
        self.adanorm = condition_dim is not None
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else LayerNorm(dim)
        self.convnext = [ConvNeXtBlock(dim, intermediate_dim, condition_dim) for _ in range(num_layers)]
        self.final_layer_norm = LayerNorm(dim)

    def __call__(self, x: mx.array, condition: Optional[mx.array] = None) -> mx.array:
        x = self.embed(x)
        x = self.norm(x, condition) if self.adanorm else self.norm(x)
        for block in self.convnext:
            x = block(x, condition)
        return self.final_layer_norm(x)


class SamplingBlock(nn.Module):
    """Ratio 1 (no resampling): conv_res + skip1_res + skip2_res, each the input itself -> 3 x."""

    def __call__(self, x: mx.array) -> mx.array:
        return x + x + x


def _stages(c: Dict[str, Any]) -> List[list]:
    """`downsample`: per sample ratio, upstream's nn.Sequential(SamplingBlock, VocosBackbone(2 layers)) as a list,
    so that `downsample.0.1.embed` names the same conv in both trees."""
    return [[SamplingBlock(), VocosBackbone(c["vocos_dim"], c["vocos_dim"], c["vocos_intermediate_dim"], 2)]
            for _ in c.get("sample_ratios", [1, 1])]


def _run_stages(stages: List[list], x: mx.array) -> mx.array:
    for sampling, backbone in stages:
        x = backbone(sampling(x))
    return x


class Encoder(nn.Module):
    """The semantic encoder: wav2vec2 features (N, T, input_channels) -> z (N, T, out_channels)."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        self.encoder = VocosBackbone(c["input_channels"], c["vocos_dim"], c["vocos_intermediate_dim"],
                                     c["vocos_num_layers"])
        self.downsample = _stages(c)
        self.project = nn.Linear(c["vocos_dim"], c["out_channels"])

    def __call__(self, x: mx.array) -> mx.array:
        return self.project(_run_stages(self.downsample, self.encoder(x)))


class Decoder(nn.Module):
    """The prenet: z_q (N, T, input_channels) and the d-vector (N, condition_dim) -> (N, T, out_channels)."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        self.linear_pre = nn.Linear(c["input_channels"], c["vocos_dim"])
        self.downsample = _stages(c)
        self.vocos_backbone = VocosBackbone(c["vocos_dim"], c["vocos_dim"], c["vocos_intermediate_dim"],
                                            c["vocos_num_layers"], c.get("condition_dim"))
        self.linear = nn.Linear(c["vocos_dim"], c["out_channels"])
        self.use_tanh_at_final = bool(c.get("use_tanh_at_final", False))

    def __call__(self, x: mx.array, c: Optional[mx.array] = None) -> mx.array:
        x = _run_stages(self.downsample, self.linear_pre(x))
        x = self.linear(self.vocos_backbone(x, condition=c))
        return mx.tanh(x) if self.use_tanh_at_final else x
