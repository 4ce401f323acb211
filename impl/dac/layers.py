"""DAC building blocks in MLX, channels-last (N, L, C).

Ports descript-audio-codec 1.0.0 `dac/nn/layers.py` (Snake1d, WNConv1d, WNConvTranspose1d). Weight norm is folded
into `weight` once at load (`impl.dac.model.sanitize`), so these are plain convs with upstream's attribute names.
"""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from impl import ops


class Snake1d(nn.Module):
    """x + 1/(alpha + 1e-9) * sin(alpha x)^2 with one alpha per channel; alpha (C,) (upstream: (1, C, 1))."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = mx.ones((channels,))

    def __call__(self, x: mx.array) -> mx.array:
        return ops.snake(x, self.alpha)


class WNConv1d(nn.Module):
    """torch Conv1d after weight norm: weight (C_out, K, C_in) in MLX layout, bias (C_out,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__()
        self.weight = mx.zeros((out_channels, kernel_size, in_channels))
        self.bias = mx.zeros((out_channels,))
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self._layouts: ops.LayoutStore = {}  # the CPU path's copy of `weight` in its matmul layout (not a parameter)

    def __call__(self, x: mx.array) -> mx.array:
        return ops.conv1d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          dilation=self.dilation, layouts=self._layouts)


class WNConvTranspose1d(nn.Module):
    """torch ConvTranspose1d after weight norm: weight (C_out, K, C_in) in MLX layout (torch: (C_in, C_out, K))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = mx.zeros((out_channels, kernel_size, in_channels))
        self.bias = mx.zeros((out_channels,))
        self.stride, self.padding = stride, padding
        self._layouts: ops.LayoutStore = {}

    def __call__(self, x: mx.array) -> mx.array:
        return ops.conv_transpose1d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                    layouts=self._layouts)


class Tanh(nn.Module):
    """torch.nn.Tanh: a module so that `decoder.model.{i}` indices match upstream's Sequential."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.tanh(x)
