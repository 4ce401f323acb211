"""Reference adapter over outetts 0.4.4's own audio path (`outetts/dac/interface.py`) and torchaudio's resampler:
the reference of impl/audio.py (parity/test_audio.py) and impl/dac/interface.py (parity/test_dac_interface.py).

Thin: the official `DacInterface` (built with its own constructor on a local checkpoint: `dac.DAC.load`),
its `convert_audio_tensor`, `encode` (loudness normalisation + 5 s windows), `decode` (2048-code chunks, 15 ms
fades, loudness normalisation) and the module-level `process_audio_tensor`. Nothing re-implemented.

Upstream quirks named here once:
- `DacInterface.load_audio` reads files with `torchaudio.load`, which needs torchcodec (absent here: the PyPI
  torchaudio's compiled parts are removed by ./vp). `load_audio` below reads the file with soundfile (the same
  float32 samples: PCM / 2**15) and then runs the official rest of that method: `convert_audio_tensor(wav, sr)
  .unsqueeze(0)` (mono mean + `torchaudio.transforms.Resample`).
- `process_audio_tensor` returns NaN audio for silence (its loudness is -inf, the gain +inf).
- `transforms.Resample` (what outetts uses) computes its kernel in float64 and caches it in float32; the
  functional `torchaudio.functional.resample` computes the kernel in the waveform's dtype. Both are exposed.

`import outetts` patches transformers globally: it is imported lazily, inside functions.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def _torch():
    import torch

    return torch


def read_wav(path) -> Tuple["object", int]:
    """soundfile -> torch float32 (C, L), sr: what torchaudio.load returns for PCM/float files."""
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return _torch().from_numpy(np.ascontiguousarray(data.T)), int(sr)


# ----------------------------------------------------------------------------------------- torchaudio resample

def resample_transform(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """`torchaudio.transforms.Resample(orig_sr, new_sr)(x)`, as outetts' convert_audio calls it."""
    import torchaudio

    return torchaudio.transforms.Resample(orig_sr, new_sr)(_torch().from_numpy(x)).numpy()


def resample_kernel(orig_sr: int, new_sr: int) -> np.ndarray:
    """The transform's cached float32 kernel, (new, K) after the gcd reduction."""
    import torchaudio

    t = torchaudio.transforms.Resample(orig_sr, new_sr)
    return t.kernel[:, 0].numpy()


def resample_functional(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """`torchaudio.functional.resample` (kernel in x's dtype: float64 in, float64 all the way)."""
    import torchaudio

    return torchaudio.functional.resample(_torch().from_numpy(x), orig_sr, new_sr).numpy()


# ------------------------------------------------------------------------------------------------- loudness

def process_audio_tensor(x: np.ndarray, sample_rate: int = 24000) -> np.ndarray:
    """outetts' `process_audio_tensor` on mono (L,) audio in x's dtype (float32 or float64) -> (L,)."""
    from outetts.dac.interface import process_audio_tensor as official

    out = official(_torch().from_numpy(x)[None, None], sample_rate=sample_rate)
    return out[0, 0].numpy()


def integrated_loudness(x: np.ndarray, sr: int, block_size: float = 0.400) -> float:
    """pyloudnorm `Meter(sr, block_size).integrated_loudness(x)`, as process_audio_tensor measures it."""
    import pyloudnorm as pyln

    return float(pyln.Meter(sr, block_size=block_size).integrated_loudness(x))


# ---------------------------------------------------------------------------------------------- DacInterface

class OutettsDac:
    """outetts' DacInterface on a local DAC checkpoint, CPU, in `dtype` (float32 or float64); numpy in and out."""

    def __init__(self, checkpoint: str, dtype: str = "float32"):
        from outetts.dac.interface import DacInterface

        torch = _torch()
        self.iface = DacInterface(device="cpu", model_path=str(checkpoint))
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.iface.model.to(self.dtype)
        self.sr = self.iface.sr

    def load_audio(self, path) -> "object":
        """DacInterface.load_audio with soundfile in place of torchaudio.load -> torch (1, 1, L)."""
        wav, sr = read_wav(path)
        return self.iface.convert_audio_tensor(wav, sr).unsqueeze(0)

    def convert(self, x: np.ndarray, sr: int) -> np.ndarray:
        """convert_audio_tensor on a (C, L) or (L,) array -> (L,) mono at 24 kHz."""
        t = _torch().from_numpy(np.atleast_2d(x))
        return self.iface.convert_audio_tensor(t, sr)[0].numpy()

    def encode_file(self, path) -> np.ndarray:
        """load_audio -> encode, as AudioProcessor.create_speaker_from_dict -> (n_codebooks, T) int64."""
        return self.iface.encode(self.load_audio(path).to(self.dtype))[0].numpy()

    def encode_audio(self, x: np.ndarray, sr: int) -> np.ndarray:
        t = _torch().from_numpy(np.atleast_2d(x))
        wav = self.iface.convert_audio_tensor(t, sr).unsqueeze(0)
        return self.iface.encode(wav.to(self.dtype))[0].numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n_codebooks, T) codes -> (L,) audio: 2048-code chunks, fades, loudness normalisation."""
        c = _torch().from_numpy(np.asarray(codes, dtype=np.int64))[None]
        return self.iface.decode(c)[0, 0].numpy()
