"""Hypothesis strategies for audio that reaches every branch of a measurement: digital silence, level steps,
clipping, DC offsets (one shared module; tests draw from here rather than writing their own signals).

A signal is a concatenation of segments, each one of SEGMENT_KINDS at its own level:
  silence   exact zeros (digital silence: every block below BS.1770's -70 LUFS absolute gate, FFT bins of 0);
  tone      a few harmonics of a random f0 (voiced: the pitch tracker's voiced branch);
  noise     white noise (unvoiced);
  dc        a constant (K-weighting's high-pass removes it; pitch's autocorrelation sees it);
  clipped   a tone driven past full scale and clipped to +-1 (flat tops, odd harmonics).
Levels step between segments by whole decibel amounts; `gated_loudness_audio` places a loud part, a part near
the -10 LU relative gate and digital silence in one signal, so that both gates decide blocks.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
from hypothesis import strategies as st

SEGMENT_KINDS = ("silence", "tone", "noise", "dc", "clipped")


def segment(kind: str, n: int, level_db: float, sr: int, seed: int) -> np.ndarray:
    """n samples (float64) of `kind` whose peak (tone, noise, dc) or pre-clip drive (clipped) is `level_db` dBFS."""
    rng = np.random.default_rng(seed)
    g = 10.0 ** (level_db / 20.0)
    t = np.arange(n) / sr
    if kind == "silence" or n == 0:
        return np.zeros(n)
    if kind == "dc":
        return np.full(n, g * rng.choice([-1.0, 1.0]))
    if kind == "noise":
        x = rng.standard_normal(n)
        return g * x / max(np.max(np.abs(x)), 1e-12)
    f0 = rng.uniform(70.0, 600.0)
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 5))
    x = x / max(np.max(np.abs(x)), 1e-12)
    if kind == "clipped":
        return np.clip(x * g * rng.uniform(2.0, 8.0), -1.0, 1.0)
    return g * x


@st.composite
def audio(draw, sr: int = 24000, min_samples: int = 400, max_samples: int = 48000,
          kinds: Tuple[str, ...] = SEGMENT_KINDS, max_segments: int = 5) -> np.ndarray:
    """Mono float32 audio of `min_samples..max_samples` at `sr`: 1..max_segments segments of `kinds`, levels
    -60..0 dBFS in whole dB (level steps between segments), each optionally over a DC offset."""
    n = draw(st.integers(min_samples, max_samples))
    k = draw(st.integers(1, max_segments))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, n - 1)), min_size=k - 1, max_size=k - 1, unique=True))) if n > k else []
    bounds = [0] + cuts + [n]
    parts: List[np.ndarray] = []
    for i in range(len(bounds) - 1):
        m = bounds[i + 1] - bounds[i]
        x = segment(draw(st.sampled_from(kinds)), m, draw(st.integers(-60, 0)), sr, draw(st.integers(0, 2 ** 31)))
        if draw(st.booleans()):
            x = np.clip(x + draw(st.sampled_from([-0.25, -0.01, 0.01, 0.25])), -1.0, 1.0)
        parts.append(x)
    x = np.concatenate(parts) if parts else np.zeros(n)
    if not np.any(x):  # all silence: a single click so that the signal is not empty of content
        x[draw(st.integers(0, n - 1))] = 0.5
    return x.astype(np.float32)


@st.composite
def gated_loudness_audio(draw, sr: int = 24000) -> np.ndarray:
    """Mono float32 audio whose 400 ms blocks meet both BS.1770 gates: a loud segment (-20..-3 dBFS peak), a
    quieter one whose loudness sits within 2 LU of the resulting -10 LU relative gate (its gain solved for,
    a drawn offset from the gate), digital silence (below -70 LUFS) and a short tail at -80..-60 dBFS (near the
    absolute gate), in a drawn order, optionally over a DC offset."""
    loud_db = draw(st.integers(-20, -3))
    offset = draw(st.floats(-2.0, 2.0))  # LU from the relative gate: either side of it
    kind = draw(st.sampled_from(("tone", "noise", "clipped")))
    loud = segment(kind, int(sr * draw(st.floats(0.8, 2.0))), loud_db, sr, draw(st.integers(0, 2 ** 31)))
    near = segment(draw(st.sampled_from(("tone", "noise"))), int(sr * draw(st.floats(0.8, 2.0))), loud_db - 10,
                   sr, draw(st.integers(0, 2 ** 31)))
    silence = np.zeros(int(sr * draw(st.floats(0.5, 2.0))))
    tail = segment("noise", int(sr * draw(st.floats(0.2, 0.6))), draw(st.integers(-80, -60)), sr,
                   draw(st.integers(0, 2 ** 31)))
    order = draw(st.permutations(range(4)))
    dc = draw(st.sampled_from([0.0, -0.02, 0.02]))  # K-weighting's high-pass removes it
    for _ in range(4):  # the quiet segment's own loudness -> gate + offset (its power moves the gate a little)
        x = np.concatenate([(loud, near, silence, tail)[i] for i in order]) + dc
        gate = relative_gate(x, sr)
        near = near * 10.0 ** ((gate + offset - _loudness(near, sr)) / 20.0)
    x = np.concatenate([(loud, near, silence, tail)[i] for i in order]) + dc
    return x.astype(np.float32)


def _loudness(x: np.ndarray, sr: int) -> float:
    """Ungated loudness (LUFS) of a segment: K-weighted mean square, pyloudnorm's filters."""
    import pyloudnorm as pyln

    data = np.asarray(x, np.float64).copy()
    for f in pyln.Meter(sr)._filters.values():
        data = f.apply_filter(data)
    return -0.691 + 10.0 * np.log10(np.mean(np.square(data)))


def relative_gate(x: np.ndarray, sr: int) -> float:
    """BS.1770's relative threshold (LUFS) of x: 10 LU under the mean power of the blocks above -70 LUFS."""
    with np.errstate(divide="ignore", invalid="ignore"):
        l = block_loudness(x, sr)  # noqa: E741 -- BS.1770's name
        z = 10.0 ** ((l[l >= -70.0] + 0.691) / 10.0)
        return float(-0.691 + 10.0 * np.log10(np.mean(z)) - 10.0) if z.size else -np.inf


def block_loudness(x: np.ndarray, sr: int, block_size: float = 0.400) -> np.ndarray:
    """Per-block loudness (LUFS) that BS.1770's gates compare, as pyloudnorm computes it (its
    `blockwise_loudness`), to check that a drawn signal reaches a gate."""
    import pyloudnorm as pyln

    meter = pyln.Meter(sr, block_size=block_size)
    meter.integrated_loudness(np.asarray(x))
    return np.asarray(meter.blockwise_loudness, np.float64)


def gates_reached(x: np.ndarray, sr: int, near_lu: float = 3.0) -> Tuple[int, int]:
    """(blocks below the -70 LUFS absolute gate, blocks within `near_lu` of the -10 LU relative gate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        l = block_loudness(x, sr)  # noqa: E741 -- BS.1770's name
        return int(np.sum(~(l >= -70.0))), int(np.sum(np.abs(l - relative_gate(x, sr)) < near_lu))
