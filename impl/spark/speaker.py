"""BiCodec's global (speaker) path in MLX, channels-last: ECAPA-TDNN -> Perceiver resampler -> residual FSQ.

Ports sparktts `modules/speaker/ecapa_tdnn.py` (ECAPA_TDNN_GLOB_c512: Conv1dReluBn, SE_Res2Block with Res2Conv1dReluBn
scale 8, SE_Connect; the 1536-channel latent; ASTP pooling with global context for the x-vector),
`pooling_layers.py` (ASTP), `perceiver_encoder.py` (PerceiverResampler: 2 layers of cross attention over
[latents; context] (8 heads x 64) and a GEGLU feed-forward, RMSNorm) and `speaker_encoder.py` (SpeakerEncoder:
tokenize mel -> 32 global ids; detokenize ids -> d-vector = project(codes), codes flattened channel-major as
upstream's (N, latent_dim, token_num).reshape: the transpose mlx-audio's port once missed).
Eval mode: BatchNorm uses its running statistics (eps 1e-5).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import mlx.core as mx
import mlx.nn as nn

from impl.spark.quantize import ResidualFSQ, _l2_normalize
from impl.spark.vocos import Conv1d


class BatchNorm1d(nn.Module):
    """torch nn.BatchNorm1d in eval mode over the last axis."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dim,))
        self.bias = mx.zeros((dim,))
        self.running_mean = mx.zeros((dim,))
        self.running_var = mx.ones((dim,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return (x - self.running_mean) * mx.rsqrt(self.running_var + self.eps) * self.weight + self.bias


class Conv1dReluBn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__()
        self.conv = Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.bn = BatchNorm1d(out_channels)

    def __call__(self, x: mx.array) -> mx.array:
        return self.bn(nn.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int):
        super().__init__()
        self.scale = scale
        self.width = channels // scale
        self.nums = scale if scale == 1 else scale - 1
        self.convs = [Conv1d(self.width, self.width, kernel_size, padding=padding, dilation=dilation)
                      for _ in range(self.nums)]
        self.bns = [BatchNorm1d(self.width) for _ in range(self.nums)]

    def __call__(self, x: mx.array) -> mx.array:
        w = self.width
        spx = [x[:, :, i * w:(i + 1) * w] for i in range(self.scale)]
        out = []
        sp = spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i >= 1:
                sp = sp + spx[i]
            sp = bn(nn.relu(conv(sp)))
            out.append(sp)
        if self.scale != 1:
            out.append(spx[self.nums])
        return mx.concatenate(out, axis=-1)


class SE_Connect(nn.Module):
    def __init__(self, channels: int, se_bottleneck_dim: int = 128):
        super().__init__()
        self.linear1 = nn.Linear(channels, se_bottleneck_dim)
        self.linear2 = nn.Linear(se_bottleneck_dim, channels)

    def __call__(self, x: mx.array) -> mx.array:
        out = mx.mean(x, axis=1)
        out = mx.sigmoid(self.linear2(nn.relu(self.linear1(out))))
        return x * out[:, None, :]


class SE_Res2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int):
        super().__init__()
        self.se_res2block = [Conv1dReluBn(channels, channels),
                             Res2Conv1dReluBn(channels, kernel_size, padding, dilation, scale),
                             Conv1dReluBn(channels, channels),
                             SE_Connect(channels)]

    def __call__(self, x: mx.array) -> mx.array:
        y = x
        for layer in self.se_res2block:
            y = layer(y)
        return x + y


class ASTP(nn.Module):
    """Attentive statistics pooling with global context: (N, T, C) -> (N, 2C) = [weighted mean, weighted std]."""

    def __init__(self, in_dim: int, bottleneck_dim: int = 128):
        super().__init__()
        self.linear1 = Conv1d(in_dim * 3, bottleneck_dim, 1)
        self.linear2 = Conv1d(bottleneck_dim, in_dim, 1)

    def __call__(self, x: mx.array) -> mx.array:
        T = x.shape[1]
        mean = mx.mean(x, axis=1, keepdims=True)
        var = mx.sum((x - mean) ** 2, axis=1, keepdims=True) / (T - 1)  # torch.var: unbiased
        std = mx.sqrt(var + 1e-7)
        x_in = mx.concatenate([x, mx.broadcast_to(mean, x.shape), mx.broadcast_to(std, x.shape)], axis=-1)
        alpha = mx.softmax(self.linear2(mx.tanh(self.linear1(x_in))), axis=1)
        mu = mx.sum(alpha * x, axis=1)
        v = mx.sum(alpha * (x * x), axis=1) - mu * mu
        return mx.concatenate([mu, mx.sqrt(mx.maximum(v, 1e-7))], axis=-1)


class ECAPA_TDNN(nn.Module):
    """ECAPA_TDNN_GLOB_c512: mel (N, T, feat_dim) -> (x-vector (N, embed_dim), latent (N, T, 1536))."""

    def __init__(self, feat_dim: int, embed_dim: int, channels: int = 512):
        super().__init__()
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5, padding=2)
        self.layer2 = SE_Res2Block(channels, 3, padding=2, dilation=2, scale=8)
        self.layer3 = SE_Res2Block(channels, 3, padding=3, dilation=3, scale=8)
        self.layer4 = SE_Res2Block(channels, 3, padding=4, dilation=4, scale=8)
        self.conv = Conv1d(channels * 3, 512 * 3, 1)
        self.pool = ASTP(512 * 3)
        self.bn = BatchNorm1d(512 * 3 * 2)
        self.linear = nn.Linear(512 * 3 * 2, embed_dim)

    def __call__(self, x: mx.array, return_latent: bool = False):
        out1 = self.layer1(x)
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        latent = nn.relu(self.conv(mx.concatenate([out2, out3, out4], axis=-1)))
        out = self.linear(self.bn(self.pool(latent)))
        return (out, latent) if return_latent else out


class Attention(nn.Module):
    """Cross attention of the latents over [latents; context] (cross_attn_include_queries), no mask, no bias."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def __call__(self, x: mx.array, context: mx.array) -> mx.array:
        N, n, _ = x.shape
        context = mx.concatenate([x, context], axis=1)
        kv = self.to_kv(context)
        k, v = mx.split(kv, 2, axis=-1)
        h, d = self.heads, self.dim_head
        q = self.to_q(x).reshape(N, n, h, d).transpose(0, 2, 1, 3)
        k = k.reshape(N, -1, h, d).transpose(0, 2, 1, 3)
        v = v.reshape(N, -1, h, d).transpose(0, 2, 1, 3)
        sim = (q @ k.transpose(0, 1, 3, 2)) * (d ** -0.5)
        out = mx.softmax(sim, axis=-1) @ v
        return self.to_out(out.transpose(0, 2, 1, 3).reshape(N, n, h * d))


class GEGLU(nn.Module):
    def __call__(self, x: mx.array) -> mx.array:
        x, gate = mx.split(x, 2, axis=-1)
        return nn.gelu(gate) * x


class RMSNorm(nn.Module):
    """F.normalize(x, dim=-1) * sqrt(dim) * gamma."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = mx.ones((dim,))

    def __call__(self, x: mx.array) -> mx.array:
        return _l2_normalize(x) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    """Context (N, T, dim_context) -> (N, num_latents, dim)."""

    def __init__(self, dim: int, dim_context: int, num_latents: int, depth: int = 2, ff_mult: int = 4):
        super().__init__()
        self.proj_context = nn.Linear(dim_context, dim)
        self.latents = mx.zeros((num_latents, dim))
        ff_inner = int(dim * ff_mult * 2 / 3)
        self.layers = [[Attention(dim), [nn.Linear(dim, ff_inner * 2), GEGLU(), nn.Linear(ff_inner, dim)]]
                       for _ in range(depth)]
        self.norm = RMSNorm(dim)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.proj_context(x)
        latents = mx.broadcast_to(self.latents[None], (x.shape[0],) + self.latents.shape)
        for attn, ff in self.layers:
            latents = attn(latents, x) + latents
            y = latents
            for layer in ff:
                y = layer(y)
            latents = y + latents
        return self.norm(latents)


class SpeakerEncoder(nn.Module):
    """mel (N, T, input_dim) -> global ids (N, token_num * num_quantizers); ids -> d-vector (N, out_dim)."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        self.latent_dim, self.token_num = c["latent_dim"], c["token_num"]
        self.speaker_encoder = ECAPA_TDNN(c["input_dim"], c["out_dim"])
        self.perceiver_sampler = PerceiverResampler(c["latent_dim"], 512 * 3, c["token_num"])
        self.quantizer = ResidualFSQ(c["fsq_levels"], c["fsq_num_quantizers"], c["latent_dim"])
        self.project = nn.Linear(c["latent_dim"] * c["token_num"], c["out_dim"])

    def _d_vector(self, zq: mx.array) -> mx.array:
        """zq (N, token_num, latent_dim) -> project(zq as upstream's (N, latent_dim, token_num), flattened)."""
        return self.project(zq.transpose(0, 2, 1).reshape(zq.shape[0], -1))

    def tokenize(self, mels: mx.array) -> mx.array:
        """(N, T, input_dim) -> ids (N, num_quantizers, token_num) int32, upstream's layout."""
        _, features = self.speaker_encoder(mels, True)
        _, indices = self.quantizer(self.perceiver_sampler(features))
        return indices.transpose(0, 2, 1)

    def detokenize(self, indices: mx.array) -> mx.array:
        """ids (N, num_quantizers, token_num) -> d-vector (N, out_dim)."""
        return self._d_vector(self.quantizer.get_output_from_indices(indices.transpose(0, 2, 1)))

    def __call__(self, mels: mx.array) -> Tuple[mx.array, mx.array]:
        """(x-vector, d-vector), upstream's forward."""
        x_vector, features = self.speaker_encoder(mels, True)
        zq, _ = self.quantizer(self.perceiver_sampler(features))
        return x_vector, self._d_vector(zq)
