"""BiCodec's WaveGenerator in MLX (sparktts `modules/encoder_decoder/wave_generator.py`), channels-last.

DAC's decoder with explicit kernel sizes: WNConv1d(input_channel -> channels, k7), per rate a DecoderBlock
(Snake, WNConvTranspose1d(kernel k, stride s, padding (k - s) // 2), residual units with dilations 1, 3, 9), then
Snake, WNConv1d(-> 1, k7), tanh. Rates [8, 5, 4, 2] with kernels [16, 11, 8, 4] give exactly 320 samples per frame
(DAC's kernel 2s would give 320 T - 8 at 24 kHz).

Reused from impl.dac, because the maths is the same (sparktts `modules/blocks/layers.py` is DAC's `dac/nn/layers.py`
and `dac/model/dac.py` ResidualUnit): Snake1d, WNConv1d, WNConvTranspose1d, Tanh (impl/dac/layers.py) and
ResidualUnit (impl/dac/model.py). Only DecoderBlock differs (kernel and padding from the config, not 2s/ceil(s/2)).

The rate-5 block's kernel 11 is not a multiple of its stride: impl.ops.conv_transpose1d handles that (zero taps).
"""
from __future__ import annotations

from typing import Any, Dict

import mlx.core as mx
import mlx.nn as nn

from impl.dac.layers import Snake1d, Tanh, WNConv1d, WNConvTranspose1d
from impl.dac.model import ResidualUnit


class DecoderBlock(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int):
        super().__init__()
        self.block = [Snake1d(input_dim),
                      WNConvTranspose1d(input_dim, output_dim, kernel_size=kernel_size, stride=stride,
                                        padding=(kernel_size - stride) // 2),
                      ResidualUnit(output_dim, 1), ResidualUnit(output_dim, 3), ResidualUnit(output_dim, 9)]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.block:
            x = layer(x)
        return x


class WaveGenerator(nn.Module):
    """(N, T, input_channel) -> audio (N, T * prod(rates), 1)."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        ch = c["channels"]
        self.model = [WNConv1d(c["input_channel"], ch, kernel_size=7, padding=3)]
        for i, (k, s) in enumerate(zip(c["kernel_sizes"], c["rates"])):
            self.model.append(DecoderBlock(ch // 2 ** i, ch // 2 ** (i + 1), k, s))
        out = ch // 2 ** len(c["rates"])
        self.model += [Snake1d(out), WNConv1d(out, c.get("d_out", 1), kernel_size=7, padding=3), Tanh()]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.model:
            x = layer(x)
        return x
