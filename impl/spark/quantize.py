"""BiCodec's quantizers in MLX: the semantic FactorizedVectorQuantize and the global ResidualFSQ.

Ports sparktts `modules/vq/factorized_vector_quantize.py` (eval-mode tokenize/detokenize: in_project, L2-normalised
nearest code by upstream's distance expression, raw codebook lookup, out_project) and `modules/fsq/
finite_scalar_quantization.py` + `residual_fsq.py` (FSQ bound/round with levels [4] * 6, indices in the mixed-radix
basis, implicit codebook; ResidualFSQ's project_in/out and per-quantizer scales (levels - 1)^-q). Channels-last.
"""
from __future__ import annotations

from typing import Any, Dict, List

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl.dac.layers import WNConv1d


def _l2_normalize(x: mx.array) -> mx.array:
    """torch.nn.functional.normalize(x, dim=-1): x / max(||x||, 1e-12)."""
    return x / mx.maximum(mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True)), 1e-12)


class Embedding(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = mx.zeros((n, dim))


class FactorizedVectorQuantize(nn.Module):
    """z (N, T, input_dim) -> ids (N, T) int32 (`tokenize`); ids -> z_q (N, T, input_dim) (`detokenize`)."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        self.input_dim, self.codebook_size, self.codebook_dim = c["input_dim"], c["codebook_size"], c["codebook_dim"]
        if self.input_dim == self.codebook_dim:
            raise ValueError("quantizer: input_dim == codebook_dim (identity projections) is not ported")
        self.in_project = WNConv1d(self.input_dim, self.codebook_dim, kernel_size=1)
        self.out_project = WNConv1d(self.codebook_dim, self.input_dim, kernel_size=1)
        self.codebook = Embedding(self.codebook_size, self.codebook_dim)

    def decode_latents(self, latents: mx.array):
        """(N, T, codebook_dim) -> ids (N, T): argmax of -(|e|^2 - 2 e.c + |c|^2) over L2-normalised e and c, the
        expression upstream evaluates (same rounding order), first index on ties as torch.max."""
        N, T, D = latents.shape
        e = _l2_normalize(latents.reshape(N * T, D))
        c = _l2_normalize(self.codebook.weight)
        dist = (mx.sum(e * e, axis=1, keepdims=True) - 2 * (e @ c.T)) + mx.sum(c * c, axis=1)[None, :]
        return mx.argmax(-dist, axis=1).astype(mx.int32).reshape(N, T)

    def tokenize(self, z: mx.array) -> mx.array:
        return self.decode_latents(self.in_project(z))

    def detokenize(self, indices: mx.array) -> mx.array:
        return self.out_project(self.codebook.weight[indices])

    def __call__(self, z: mx.array):
        """Upstream forward in eval mode, the parts that reach the output: (z_q, indices)."""
        z_e = self.in_project(z)
        indices = self.decode_latents(z_e)
        return self.out_project(self.codebook.weight[indices]), indices


class FSQ(nn.Module):
    """Finite scalar quantization without projections (BiCodec's: dim == len(levels)): (..., d) -> codes, ids."""

    def __init__(self, levels: List[int]):
        super().__init__()
        lv = np.asarray(levels, np.int64)
        self._levels = mx.array(lv.astype(np.int32))
        self._basis = mx.array(np.cumprod([1] + list(levels[:-1])).astype(np.int32))
        # torch: half_l = (levels - 1) * (1 + eps) / 2 and shift = atanh(offset / half_l), in float32
        half_l = ((lv - 1).astype(np.float32) * np.float32(1 + 1e-3)) / np.float32(2)
        offset = np.where(lv % 2 == 0, np.float32(0.5), np.float32(0.0)).astype(np.float32)
        self._half_l = mx.array(half_l.astype(np.float32))
        self._offset = mx.array(offset)
        self._shift = mx.arctanh(self._offset / self._half_l)
        self._half_width = mx.array((lv // 2).astype(np.float32))
        self.codebook_size = int(np.prod(lv))

    def bound(self, z: mx.array) -> mx.array:
        """Upstream `FSQ.bound`: the values `quantize` rounds, (..., d)."""
        return mx.tanh(z + self._shift) * self._half_l - self._offset

    def quantize(self, z: mx.array) -> mx.array:
        return mx.round(self.bound(z)) / self._half_width

    def codes_to_indices(self, codes: mx.array) -> mx.array:
        zhat = codes * self._half_width + self._half_width
        return mx.sum(zhat * self._basis.astype(mx.float32), axis=-1).astype(mx.int32)

    def indices_to_codes(self, indices: mx.array) -> mx.array:
        level = (indices[..., None] // self._basis) % self._levels
        return (level.astype(mx.float32) - self._half_width) / self._half_width

    def __call__(self, z: mx.array):
        codes = self.quantize(z)
        return codes, self.codes_to_indices(codes)


class ResidualFSQ(nn.Module):
    """Channels-last residual FSQ: x (N, T, dim) -> (quantized (N, T, dim), indices (N, T, num_quantizers))."""

    def __init__(self, levels: List[int], num_quantizers: int, dim: int):
        super().__init__()
        self.levels = list(levels)
        self.num_quantizers = num_quantizers
        if dim == len(levels):
            raise ValueError("speaker_encoder: latent_dim == len(fsq_levels) (no projections) is not ported")
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), dim)
        self.layers = [FSQ(levels) for _ in range(num_quantizers)]
        lv = np.asarray(levels, np.float32)
        self._scales = [mx.array((lv - 1) ** -float(q)) for q in range(num_quantizers)]

    def __call__(self, x: mx.array):
        x = self.project_in(x)
        quantized_out = None
        residual = x
        all_indices = []
        for layer, scale in zip(self.layers, self._scales):
            codes, indices = layer(residual / scale)
            quantized = codes * scale
            residual = residual - quantized
            quantized_out = quantized if quantized_out is None else quantized_out + quantized
            all_indices.append(indices)
        return self.project_out(quantized_out), mx.stack(all_indices, axis=-1)

    def get_output_from_indices(self, indices: mx.array) -> mx.array:
        """indices (N, T, num_quantizers) -> project_out(sum_q codes_q * scale_q) (N, T, dim)."""
        total = None
        for q, (layer, scale) in enumerate(zip(self.layers, self._scales)):
            codes = layer.indices_to_codes(indices[..., q]) * scale
            total = codes if total is None else total + codes
        return self.project_out(total)
