"""Per-word and global audio features of an OuteTTS v3 speaker profile, numpy only.

Ports outetts 0.4.4 `version/v3/audio_processor.py`: `calculate_pitch` (FFT autocorrelation pitch tracker),
`extract_single_pitch_value`, and `Features.extract_audio_features` (RMS energy, spectral centroid, mean pitch,
each scaled to an integer bucket 0..100 with Python's `round(v * 100)`). Computed in float32 like the torch
original, so buckets agree except where a value sits within float32 noise of a rounding boundary (FFTs and
sums differ from torch's in the last bits).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from impl.dac.interface import fade_ramp as torch_linspace  # torch.linspace's float32 CPU kernel, ported

EPS = 1e-10
BUCKET_SCALE = 100  # a feature value in [0, 1] -> its bucket round(v x 100) (upstream scale_values)
FEATURE_NAMES = ("energy", "spectral_centroid", "pitch")


def hann_window(n: int) -> np.ndarray:
    """torch.hann_window(n) (periodic), float32, as torch computes it (arange * 2pi/n, cos, * -0.5 + 0.5);
    equal to torch's within 1 ulp (the float32 cos differs in the last bit for ~5% of the points)."""
    k = np.arange(n, dtype=np.float32)
    return (np.cos(k * np.float32(2.0 * np.pi / n)) * np.float32(-0.5) + np.float32(0.5)).astype(np.float32)


def calculate_pitch(audio: np.ndarray, sr: int, min_freq: float = 75.0, max_freq: float = 600.0,
                    frame_length: int = 400, hop_length: int = 160, threshold: float = 0.3) -> np.ndarray:
    """Pitch (Hz) per frame; unvoiced frames are clamped to `min_freq`, as upstream. audio: (L,) or (C, L)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim > 1:
        x = x.mean(axis=0, dtype=np.float32)
    x = x.reshape(-1)
    n = x.shape[-1]
    x = np.pad(x, (0, (frame_length - (n % hop_length)) % hop_length))
    if x.shape[0] < frame_length:
        raise ValueError(f"audio of {n} samples is shorter than one pitch frame ({frame_length} samples)")
    n_frames = (x.shape[0] - frame_length) // hop_length + 1
    idx = np.arange(frame_length)[None, :] + hop_length * np.arange(n_frames)[:, None]
    frames = x[idx] * hann_window(frame_length)                                   # (F, frame_length)
    f = np.fft.rfft(frames, n=2 * frame_length, axis=1)
    power = (f.real ** 2 + f.imag ** 2).astype(np.float32)
    autocorr = np.fft.irfft(power, axis=1)[:, :frame_length].astype(np.float32)   # (F, frame_length)

    min_idx = max(1, int(sr / max_freq))
    max_idx = min(frame_length, int(sr / min_freq))
    rel = autocorr[:, min_idx:max_idx]
    peak_idx = np.argmax(rel, axis=1) + min_idx
    peak_val = rel[np.arange(n_frames), peak_idx - min_idx]
    i = np.clip(peak_idx, 1, frame_length - 2)
    rows = np.arange(n_frames)
    alpha, beta, gamma = autocorr[rows, i - 1], autocorr[rows, i], autocorr[rows, i + 1]
    delta = np.float32(0.5) * (alpha - gamma) / (alpha - 2 * beta + gamma + np.float32(1e-8))
    delta = np.where((peak_idx > 0) & (peak_idx < frame_length - 1), delta, np.float32(0.0))
    period = (peak_idx.astype(np.float32) + delta) / np.float32(sr)
    with np.errstate(divide="ignore"):
        pitch = np.where(period > 0, np.float32(1.0) / period, np.float32(0.0)).astype(np.float32)
    voiced = (peak_val / (autocorr[:, 0] + np.float32(1e-8))) > threshold
    pitch = np.where(voiced, pitch, np.float32(0.0))
    return np.clip(pitch, min_freq, max_freq).astype(np.float32)


def single_pitch_value(audio: np.ndarray, sr: int, min_freq: float = 75.0, max_freq: float = 600.0) -> float:
    """Mean pitch normalised to [0, 1] (upstream `extract_single_pitch_value`)."""
    mean = np.float32(calculate_pitch(audio, sr, min_freq, max_freq).mean(dtype=np.float32))
    return float(np.clip((mean - np.float32(min_freq)) / np.float32(max_freq - min_freq), 0.0, 1.0))


def _valid(audio: np.ndarray) -> bool:
    return audio is not None and audio.size > 0 and bool(np.all(np.isfinite(audio)))


def feature_values(audio: np.ndarray, sr: int) -> Dict[str, float]:
    """{'energy', 'spectral_centroid', 'pitch'} in [0, 1] before bucketing (upstream's values that `scale_values`
    rounds) for (1, L) / (C, L) / (L,) audio; invalid audio (empty, NaN/Inf) gives all zeros."""
    x = np.asarray(audio, dtype=np.float32)
    if not _valid(x):
        return {k: 0.0 for k in FEATURE_NAMES}
    if x.ndim == 1:
        x = x[None]
    if x.shape[0] > 1:
        x = x.mean(axis=0, keepdims=True, dtype=np.float32)
    feats = {"energy": float(np.sqrt(np.mean(x ** 2, dtype=np.float32)))}
    spec = np.abs(np.fft.rfft(x, axis=-1)).astype(np.float32)                    # (1, L//2 + 1)
    freqs = torch_linspace(0.0, sr / 2, spec.shape[-1])
    centroid = np.sum(freqs * spec[0], dtype=np.float32) / (np.sum(spec, dtype=np.float32) + np.float32(EPS))
    feats["spectral_centroid"] = float(np.float32(centroid) / np.float32(sr / 2))
    feats["pitch"] = single_pitch_value(x, sr)
    return feats


def extract_audio_features(audio: np.ndarray, sr: int) -> Dict[str, int]:
    """{'energy', 'spectral_centroid', 'pitch'} as integers 0..100 for (1, L) / (C, L) / (L,) audio: `round(v * 100)`
    of `feature_values`. Invalid audio (empty, NaN/Inf) gives all zeros, as upstream's `get_default_features`."""
    feats = feature_values(audio, sr)
    return {k: round(v * BUCKET_SCALE) for k, v in feats.items()}
