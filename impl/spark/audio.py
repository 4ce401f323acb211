"""Spark-TTS' audio in, numpy: `audio_volume_normalize` and the reference-clip rule, as sparktts has them.

Ports sparktts `utils/audio.py` audio_volume_normalize (coeff 0.2: scale so that the mean of the 90-99th percentile
of |x| above 0.01 is 0.2, the factor clipped to [0.1, 10]; quiet audio (max < 0.1) first lifted to max 0.1; peaks
over 1 scaled down) and `models/audio_tokenizer.py` get_ref_clip (the first int(16000 * 6) // 320 * 320 = 96,000
samples, the audio tiled when shorter). Float64 in and out, as upstream (soundfile reads float64).
`load_audio` is sparktts `utils/audio.py` load_audio as BiCodecTokenizer.process_audio calls it: soundfile's float64
read, the first channel, `soxr.resample(audio, sr, 16000, quality="VHQ")` when the rate differs (upstream passes
"VHQ", not soxr's default "HQ"), volume normalisation; bit-equal to it (tests/test_spark_cli.py). soxr is the optional
extra `spark` (numpy in and out, no torch).
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

SAMPLE_RATE = 16000
REF_SEGMENT_DURATION = 6
LATENT_HOP_LENGTH = 320
MIN_SAMPLES = 400  # at 16 kHz: wav2vec2's receptive field, one semantic frame (conv kernels 10, 3 x4, 2 x2)
MAX_SECONDS = 60.0  # wav2vec2's attention is quadratic in length; Spark-TTS' reference clips are seconds long


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


def load_audio(path: Union[str, os.PathLike], sampling_rate: int = SAMPLE_RATE, volume_normalize: bool = True,
               max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """An audio file -> (L,) float64 at `sampling_rate`, as sparktts load_audio; AudioError (one line naming the
    file) for what it cannot tokenize: unreadable, truncated, NaN/Inf, all-zero, shorter than MIN_SAMPLES at 16 kHz
    or longer than `max_seconds`."""
    import soundfile as sf

    from impl import audio as A

    A.load_audio(path, max_seconds=max_seconds)  # impl.audio's refusals (missing, empty, unreadable, truncated, NaN)
    audio, sr = sf.read(os.fspath(path))  # read again as upstream does: float64, exact for 32-bit PCM and float64
    if audio.ndim > 1:
        audio = audio[:, 0]  # upstream keeps the first channel (no downmix)
    if not np.any(audio):
        raise A.AudioError(f"{os.fspath(path)}: audio is silent (every sample of its first channel is 0)")
    if sr != sampling_rate:
        try:
            import soxr
        except ImportError:
            raise A.AudioError(f"{os.fspath(path)}: {sr} Hz audio needs resampling to {sampling_rate} Hz with the soxr "
                               "package: pip install 'voiceport[spark]'") from None
        audio = soxr.resample(audio, sr, sampling_rate, quality="VHQ")
    if len(audio) < MIN_SAMPLES * sampling_rate // SAMPLE_RATE:
        raise A.AudioError(f"{os.fspath(path)}: {len(audio)} samples at {sampling_rate} Hz is too short: at least "
                           f"{MIN_SAMPLES * sampling_rate // SAMPLE_RATE} ({MIN_SAMPLES / SAMPLE_RATE * 1000:g} ms, "
                           f"one wav2vec2 frame) are needed")
    return audio_volume_normalize(audio) if volume_normalize else audio
