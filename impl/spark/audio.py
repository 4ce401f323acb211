"""Spark-TTS' audio in, numpy: `audio_volume_normalize` and the reference-clip rule, as sparktts has them.

Ports sparktts `utils/audio.py` audio_volume_normalize (coeff 0.2: scale so that the mean of the 90-99th percentile
of |x| above 0.01 is 0.2, the factor clipped to [0.1, 10]; quiet audio (max < 0.1) first lifted to max 0.1; peaks
over 1 scaled down) and `models/audio_tokenizer.py` get_ref_clip (the first int(16000 * 6) // 320 * 320 = 96,000
samples, the audio tiled when shorter). Float64 in and out, as upstream (soundfile reads float64).
Not yet here: load_audio's soxr resampling of non-16 kHz input (upstream: soxr.resample(..., quality="VHQ")).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
REF_SEGMENT_DURATION = 6
LATENT_HOP_LENGTH = 320


def audio_volume_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    temp = np.sort(np.abs(audio))
    if temp[-1] < 0.1:
        audio = audio / max(temp[-1], 1e-3) * 0.1
    temp = temp[temp > 0.01]
    L = temp.shape[0]
    if L <= 10:
        return audio
    volume = np.mean(temp[int(0.9 * L): int(0.99 * L)])
    audio = audio * np.clip(coeff / volume, a_min=0.1, a_max=10)
    max_value = np.max(np.abs(audio))
    return audio / max_value if max_value > 1 else audio


def ref_clip(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, ref_segment_duration: float = REF_SEGMENT_DURATION,
             latent_hop_length: int = LATENT_HOP_LENGTH) -> np.ndarray:
    """The reference clip for the global tokens: the first whole-hop 6 s, the audio tiled when shorter."""
    n = int(sample_rate * ref_segment_duration) // latent_hop_length * latent_hop_length
    if len(wav) == 0:
        raise ValueError("reference clip: empty audio")
    if n > len(wav):
        wav = np.tile(wav, n // len(wav) + 1)
    return wav[:n]
