"""The BiCodec mel spectrogram: torchaudio `MelSpectrogram(16000, n_fft 1024, win 640, hop 320, f_min 10,
f_max None, n_mels 128, power 1, norm "slaney", mel_scale "slaney")`, as `BiCodec.init_mel_transformer` builds it.

Upstream's defaults that matter: `center=True` with `pad_mode="reflect"` (n_fft // 2 on each side), a periodic Hann
window of win_length zero-padded to n_fft in the middle, a one-sided DFT, magnitude (power 1, no log), then the
slaney-normalised slaney-scale filterbank (`torchaudio.functional.melscale_fbanks`). Frames: 1 + L // hop.
The DFT is `mx.fft.rfft` (an FFT: a DFT written as one matmul against a cos/sin basis was measured at ~10x the fp32
floor on speech, the FFT at the floor).
"""
from __future__ import annotations

import math
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np


def _hz_to_mel(f):
    """Slaney mel scale (linear below 1 kHz, log above), torchaudio's `_hz_to_mel(mel_scale="slaney")`."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """(n_freqs, n_mels) float64 triangular filterbank, slaney scale and slaney area norm (torchaudio's maths)."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    f_pts = _mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    return fb * (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels]))[None, :]


def hann_window(win_length: int) -> np.ndarray:
    """torch.hann_window(win_length) (periodic), float64."""
    k = np.arange(win_length)
    return 0.5 - 0.5 * np.cos(2 * np.pi * k / win_length)


def padded_window(n_fft: int, window: np.ndarray) -> np.ndarray:
    """The window zero-padded to n_fft in the middle, as torch.stft pads a shorter window."""
    win = np.zeros(n_fft)
    left = (n_fft - len(window)) // 2
    win[left:left + len(window)] = window
    return win


class MelSpectrogram(nn.Module):
    """Audio (B, L) -> magnitude mel (B, frames, n_mels), channels-last (upstream: (B, n_mels, frames)).
    Its window and filterbank are buffers, not parameters (`_`-prefixed): a checkpoint's own, when it has them,
    replace the computed ones (`set_window`, `set_filterbank`)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, win_length: int = 640, hop_length: int = 320,
                 mel_fmin: float = 10, mel_fmax: Optional[float] = None, num_mels: int = 128):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        f_max = mel_fmax if mel_fmax is not None else sample_rate / 2
        self.set_filterbank(melscale_fbanks(n_fft // 2 + 1, mel_fmin, f_max, num_mels, sample_rate))
        self.set_window(hann_window(win_length))

    def set_window(self, window: np.ndarray) -> None:
        self._window = mx.array(padded_window(self.n_fft, np.asarray(window, np.float64)).astype(np.float32))

    def set_filterbank(self, fb: np.ndarray) -> None:
        self._fb = mx.array(np.asarray(fb).astype(np.float32))

    def __call__(self, audio: mx.array) -> mx.array:
        pad = self.n_fft // 2
        if audio.shape[-1] <= pad:
            raise ValueError(f"mel: {audio.shape[-1]} samples is too short for reflect padding of {pad} "
                             "(upstream torch.stft raises too)")
        # reflect padding (no edge repeat), as torch.nn.functional.pad(mode="reflect")
        left = audio[:, 1:pad + 1][:, ::-1]
        right = audio[:, -pad - 1:-1][:, ::-1]
        x = mx.concatenate([left, audio, right], axis=1)
        n_frames = 1 + audio.shape[-1] // self.hop_length
        idx = mx.arange(n_frames)[:, None] * self.hop_length + mx.arange(self.n_fft)[None, :]
        frames = x[:, idx] * self._window  # (B, frames, n_fft)
        return mx.abs(mx.fft.rfft(frames, axis=-1)) @ self._fb
