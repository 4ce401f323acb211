"""A toy port for the harness self-test: a few conv/linear layers in torch (reference) and MLX (impl).

`ToyImpl(bug=...)` can carry a bug in one named layer, so the tests can check that the harness names exactly
that layer as the first divergence. Nothing here ships.
"""
from __future__ import annotations

from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from parity.spec import FLOOR_WHY, Pair, Spec, Tol

CHANNELS = (3, 16, 16, 16, 4)


def ref_model(seed: int = 0):
    """torch reference: conv1 -> tanh -> conv2 (dilated) -> lin (over channels) -> conv3."""
    import torch
    from torch import nn as tnn

    class ToyRef(tnn.Module):
        def __init__(self):
            super().__init__()
            c0, c1, c2, c3, c4 = CHANNELS
            self.conv1 = tnn.Conv1d(c0, c1, 5, padding=2)
            self.act = tnn.Tanh()
            self.conv2 = tnn.Conv1d(c1, c2, 3, padding=3, dilation=3)
            self.lin = tnn.Linear(c2, c3)
            self.conv3 = tnn.Conv1d(c3, c4, 1)

        def forward(self, x):  # x: (N, C, L)
            x = self.act(self.conv1(x))
            x = self.conv2(x)
            x = self.lin(x.transpose(1, 2)).transpose(1, 2)
            return self.conv3(x)

    model = ToyRef().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights(seed).items()}, strict=True)
    return model


def weights(seed: int = 0) -> dict:
    """Seeded numpy weights in torch layout: both trees load these, so the impl side needs no torch."""
    rng = np.random.default_rng(seed)
    c0, c1, c2, c3, c4 = CHANNELS
    shapes = {"conv1.weight": (c1, c0, 5), "conv1.bias": (c1,), "conv2.weight": (c2, c1, 3), "conv2.bias": (c2,),
              "lin.weight": (c3, c2), "lin.bias": (c3,), "conv3.weight": (c4, c3, 1), "conv3.bias": (c4,)}
    return {k: (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4)).astype(np.float32)
            for k, s in shapes.items()}


class ToyImpl(nn.Module):
    """MLX port, channels-last (N, L, C). `bug` names a layer whose output is perturbed by 1e-3 * |x|max."""

    def __init__(self, bug: Optional[str] = None):
        super().__init__()
        c0, c1, c2, c3, c4 = CHANNELS
        self.conv1 = nn.Conv1d(c0, c1, 5, padding=2)
        self.act = _Tanh()
        self.conv2 = nn.Conv1d(c1, c2, 3, padding=3, dilation=3)
        self.lin = nn.Linear(c2, c3)
        self.conv3 = nn.Conv1d(c3, c4, 1)
        if bug is not None:
            layers = [name for name, _ in self.children().items()]
            if bug not in layers:
                raise ValueError(f"--bug {bug!r}: the toy has no such layer; its layers are {', '.join(layers)}")
            layer = self[bug]
            layer.__class__ = _buggy(type(layer))

    def __call__(self, x: mx.array) -> mx.array:
        x = self.act(self.conv1(x))
        x = self.conv2(x)
        x = self.lin(x)
        return self.conv3(x)


class _Tanh(nn.Module):
    def __call__(self, x):
        return mx.tanh(x)


def _buggy(cls: type) -> type:
    """Subclass of `cls` whose output is off by 1e-3 * max|y|: a small, realistic port bug."""
    def __call__(self, x):
        y = cls.__call__(self, x)
        return y + 1e-3 * mx.max(mx.abs(y))

    return type(f"Buggy{cls.__name__}", (cls,), {"__call__": __call__})


def impl_model(seed: int = 0, bug: Optional[str] = None) -> ToyImpl:
    """The MLX tree from the seeded weights: torch conv weights (out, in, k) -> MLX (out, k, in)."""
    model = ToyImpl(bug)
    model.load_weights([(k, mx.array(v.transpose(0, 2, 1) if v.ndim == 3 else v)) for k, v in weights(seed).items()],
                       strict=True)
    return model


def spec(bug: Optional[str] = None, pairs=None) -> Spec:
    def build_ref(dtype):
        return ref_model(0).to(dtype)

    def run_ref(model, inputs):
        import torch

        x = torch.from_numpy(inputs["x"]).to(next(model.parameters()).dtype)
        return {"y": model(x.transpose(1, 2)).transpose(1, 2)}

    def run_impl(model, inputs):
        return {"y": model(mx.array(inputs["x"]))}

    def make_inputs(seed):
        return {"x": np.random.default_rng(seed).standard_normal((2, 50, CHANNELS[0])).astype(np.float32)}

    default_pairs = [Pair("conv1", "conv1"), Pair("act", "act"), Pair("conv2", "conv2"),
                     Pair("lin", "lin", layout="same"), Pair("conv3", "conv3")]
    return Spec(
        name="toy",
        build_impl=lambda: impl_model(0, bug),
        build_ref=build_ref,
        make_inputs=make_inputs,
        run_impl=run_impl,
        run_ref=run_ref,
        pairs=default_pairs if pairs is None else pairs,
        outputs={"y": Tol.floor(k=10, why=FLOOR_WHY)},
        description="harness self-test: conv/linear toy, impl in MLX, reference in torch",
    )
