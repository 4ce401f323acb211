"""Contracts whose effect shrinks on seeded weights, made visible by the input: every LayerNorm / AdaLayerNorm of
the BiCodec (eps 1e-6 upstream) on low-variance inputs (variance ~1e-6: eps 1e-5 moves the output by ~40 %, not by
the ~0.1 % it does on unit-variance activations), and the ECAPA attentive statistics pooling on short sequences
(T = 2..4 frames: torch.var's unbiased denominator T - 1 against a biased T differs by a factor 2..1.33, not by
1 / T of a 100-frame clip). Each module runs alone on the same input in both trees (the tiny seeded BiCodec),
impl against the official fp64 run within 10 x the official fp32-vs-fp64 floor."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mlx.core as mx

from parity.harness import compare
from parity.spec import FLOOR_WHY, Tol
from parity.specs.spark import checkpoint


@pytest.fixture(scope="module")
def trees():
    from impl import spark
    from reference import spark as ref

    folder = checkpoint("tiny", 0)
    return spark.load(folder), ref.load(folder, "float32"), ref.load(folder, "float64")


def module_at(root: Any, path: str) -> Any:
    """The submodule at a dotted path (list indices as numbers), in either tree."""
    m = root
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def norm_paths(ref_model) -> list:
    """Every LayerNorm / AdaLayerNorm path of the official BiCodec but the postnet's (training only: not ported)."""
    return [name for name, m in ref_model.named_modules()
            if type(m).__name__ in ("LayerNorm", "AdaLayerNorm") and not name.startswith("postnet")]


def _assert_floor(got, r32, r64, what):
    res = compare(np.asarray(got), np.asarray(r64), np.asarray(r32), Tol.floor(10, why=FLOOR_WHY))
    assert res["ok"], f"{what}: max|impl - ref64| {res.get('max_abs'):.3g} > limit {res.get('limit'):.3g}"


def test_spark_every_layer_norm_on_low_variance_input(trees):
    """Each LayerNorm / AdaLayerNorm (all of them: the encoder's, the prenet's conditioned ones, the backbones')
    on x = offset + 1e-3 N(0, 1): variance 1e-6, the size of upstream's eps."""
    import torch

    impl, r32, r64 = trees
    paths = norm_paths(r32)
    assert len(paths) >= 4, paths
    rng = np.random.default_rng(0)
    for path in paths:
        m32, m64, mi = module_at(r32, path), module_at(r64, path), module_at(impl, path)
        dim = m32.dim if hasattr(m32, "dim") else m32.normalized_shape[0]
        x = (0.5 + 1e-3 * rng.standard_normal((1, 6, dim))).astype(np.float32)
        if type(m32).__name__ == "AdaLayerNorm":
            c = rng.standard_normal((1, m32.scale.in_features)).astype(np.float32)
            with torch.no_grad():
                want32 = m32(torch.from_numpy(x), torch.from_numpy(c)).numpy()
                want64 = m64(torch.from_numpy(x).double(), torch.from_numpy(c).double()).numpy()
            got = np.array(mi(mx.array(x), mx.array(c)))
        else:
            with torch.no_grad():
                want32 = m32(torch.from_numpy(x)).numpy()
                want64 = m64(torch.from_numpy(x).double()).numpy()
            got = np.array(mi(mx.array(x)))
        _assert_floor(got, want32, want64, path)


@pytest.mark.parametrize("T", [2, 3, 4, 50])
def test_spark_ecapa_pooling_short_sequences(trees, T):
    """The ECAPA attentive statistics pooling alone on T frames (2..4: the variance denominator matters by a
    factor 2..1.33) of activations at the 1536-channel conv's scale."""
    import torch

    impl, r32, r64 = trees
    path = "speaker_encoder.speaker_encoder.pool"
    m32, m64, mi = module_at(r32, path), module_at(r64, path), module_at(impl, path)
    C = m32.linear2.out_channels
    x = (np.random.default_rng(T).standard_normal((1, C, T)) * 2.0 + 0.3).astype(np.float32)  # (N, C, T) torch
    with torch.no_grad():
        want32 = m32(torch.from_numpy(x)).numpy()
        want64 = m64(torch.from_numpy(x).double()).numpy()
    got = np.array(mi(mx.array(x.transpose(0, 2, 1))))  # impl is channels-last (N, T, C)
    _assert_floor(got, want32, want64, f"{path} T={T}")
