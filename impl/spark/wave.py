"""BiCodec's WaveGenerator in MLX (sparktts `modules/encoder_decoder/wave_generator.py`), channels-last.

DAC's decoder with explicit kernel sizes: WNConv1d(input_channel -> channels, k7), per rate a DecoderBlock
(Snake, WNConvTranspose1d(kernel k, stride s, padding (k - s) // 2), residual units with dilations 1, 3, 9), then
Snake, WNConv1d(-> 1, k7), tanh. Rates [8, 5, 4, 2] with kernels [16, 11, 8, 4] give exactly 320 samples per frame
(DAC's kernel 2s would give 320 T - 8 at 24 kHz).

Reused from impl.dac, because the maths is the same (sparktts `modules/blocks/layers.py` is DAC's `dac/nn/layers.py`
and `dac/model/dac.py` ResidualUnit): Snake1d, WNConv1d, WNConvTranspose1d, Tanh (impl/dac/layers.py) and
ResidualUnit (impl/dac/model.py). Only DecoderBlock differs (kernel and padding from the config, not 2s/ceil(s/2)).

The rate-5 block's kernel 11 is not a multiple of its stride, which impl.ops' CPU (gemm) path of conv_transpose1d
needs; MLX's own CPU conv_transpose1d took 18-23 s of a 3 s clip's 26 s detokenize there. ZeroTapConvTranspose1d
appends zero taps up to the next multiple (11 -> 15) and crops the output to torch's length: a zero tap adds exact
zeros, so the result is the same sum (in impl.ops' order).
"""
from __future__ import annotations

from typing import Any, Dict

import mlx.core as mx
import mlx.nn as nn

from impl import ops
from impl.dac.layers import Snake1d, Tanh, WNConv1d, WNConvTranspose1d
from impl.dac.model import ResidualUnit


class ZeroTapConvTranspose1d(WNConvTranspose1d):
    """WNConvTranspose1d for any kernel: on the gemm path a kernel K that is not a multiple of the stride runs as
    K' = ceil(K / stride) * stride taps, the last K' - K zero, and the output is cropped to torch's
    (L - 1) * stride - 2 * padding + K samples. Weight (C_out, K, C_in) as WNConvTranspose1d's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._padded: ops.LayoutStore = {}  # the zero-tap weight, made once per weight (not a parameter)

    def __call__(self, x: mx.array) -> mx.array:
        C_out, K, C_in = self.weight.shape
        s = self.stride
        if K % s == 0 or ops.path() == "native":
            return super().__call__(x)
        hit = self._padded.get("weight")
        if hit is None or hit[0] is not self.weight:
            w = mx.pad(self.weight, [(0, 0), (0, -K % s), (0, 0)])
            mx.eval(w)
            hit = self._padded["weight"] = (self.weight, w)
        L_out = (x.shape[1] - 1) * s - 2 * self.padding + K
        y = ops.conv_transpose1d(x, hit[1], self.bias, stride=s, padding=self.padding, layouts=self._layouts)
        return y[:, :L_out, :]


class DecoderBlock(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int):
        super().__init__()
        self.block = [Snake1d(input_dim),
                      ZeroTapConvTranspose1d(input_dim, output_dim, kernel_size=kernel_size, stride=stride,
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
