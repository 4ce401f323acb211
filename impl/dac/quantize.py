"""DAC residual vector quantizer in MLX, channels-last.

Ports descript-audio-codec 1.0.0 `dac/nn/quantize.py` (VectorQuantize, ResidualVectorQuantize) in eval mode:
factorized codes (in_proj to codebook_dim), l2-normalised nearest-codebook lookup, out_proj back to the latent.
"""
from __future__ import annotations

from typing import List, Tuple, Union

import mlx.core as mx
import mlx.nn as nn

from impl.dac.layers import WNConv1d


def _l2_normalize(x: mx.array) -> mx.array:
    """torch.nn.functional.normalize(x, dim=-1): x / max(||x||, 1e-12)."""
    return x / mx.maximum(mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True)), 1e-12)


class Codebook(nn.Module):
    """nn.Embedding(codebook_size, codebook_dim): weight (N, D)."""

    def __init__(self, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.weight = mx.zeros((codebook_size, codebook_dim))


class VectorQuantize(nn.Module):
    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size, self.codebook_dim = codebook_size, codebook_dim
        self.in_proj = WNConv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, kernel_size=1)
        self.codebook = Codebook(codebook_size, codebook_dim)

    def __call__(self, z: mx.array) -> Tuple[mx.array, mx.array, mx.array]:
        """z (B, T, D) -> (z_q (B, T, D) after out_proj, indices (B, T) int32, z_e (B, T, codebook_dim))."""
        z_e = self.in_proj(z)
        z_q, indices = self.decode_latents(z_e)
        return self.out_proj(z_q), indices, z_e

    def decode_code(self, indices: mx.array) -> mx.array:
        """(B, T) codes -> (B, T, codebook_dim) codebook rows (upstream `decode_code`, channels-last)."""
        return self.codebook.weight[indices]

    def decode_latents(self, latents: mx.array) -> Tuple[mx.array, mx.array]:
        """Nearest l2-normalised codebook row by upstream's distance |e|^2 - 2 e.c + |c|^2 (argmax of -dist takes
        the first of ties, like torch's max)."""
        e = _l2_normalize(latents)                        # (B, T, d)
        c = _l2_normalize(self.codebook.weight)           # (N, d)
        dist = mx.sum(e * e, axis=-1, keepdims=True) - 2 * (e @ c.T) + mx.sum(c * c, axis=-1)[None, None, :]
        indices = mx.argmax(-dist, axis=-1).astype(mx.int32)
        return self.decode_code(indices), indices


class ResidualVectorQuantize(nn.Module):
    def __init__(self, input_dim: int = 512, n_codebooks: int = 9, codebook_size: int = 1024,
                 codebook_dim: Union[int, List[int]] = 8):
        super().__init__()
        dims = [codebook_dim] * n_codebooks if isinstance(codebook_dim, int) else list(codebook_dim)
        self.n_codebooks, self.codebook_size = n_codebooks, codebook_size
        self.quantizers = [VectorQuantize(input_dim, codebook_size, d) for d in dims]

    def __call__(self, z: mx.array, n_quantizers: int = None) -> Tuple[mx.array, mx.array, mx.array]:
        """z (B, T, D) -> (z_q (B, T, D), codes (B, n, T) int32, latents (B, T, sum of codebook dims))."""
        n = self.n_codebooks if n_quantizers is None else n_quantizers
        z_q, residual, codes, latents = 0, z, [], []
        for quantizer in self.quantizers[:n]:
            z_q_i, indices, z_e = quantizer(residual)
            z_q = z_q + z_q_i
            residual = residual - z_q_i
            codes.append(indices)
            latents.append(z_e)
        return z_q, mx.stack(codes, axis=1), mx.concatenate(latents, axis=-1)

    def from_codes(self, codes: mx.array) -> mx.array:
        """codes (B, n, T) -> z_q (B, T, D): sum of out_proj(codebook rows)."""
        z_q = 0
        for i in range(codes.shape[1]):
            q = self.quantizers[i]
            z_q = z_q + q.out_proj(q.decode_code(codes[:, i, :]))
        return z_q
