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

gelu = ops.gelu  # torch.nn.GELU() (exact), impl.ops' path-independent call


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
    """torch nn.Conv1d with groups = channels: weight (C, K, 1) in MLX layout (`impl.ops.depthwise_conv1d`)."""

    def __init__(self, channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.weight = mx.zeros((channels, kernel_size, 1))
        self.bias = mx.zeros((channels,))
        self.padding = padding

    def __call__(self, x: mx.array) -> mx.array:
        return ops.depthwise_conv1d(x, self.weight, self.bias, padding=self.padding)


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
