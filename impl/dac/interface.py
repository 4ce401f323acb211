"""The audio path outetts 0.4.4 runs around DAC: load -> mono -> 24 kHz -> loudness -> windowed encode;
chunked decode with fades -> loudness.

Ports outetts/dac/interface.py (DacInterface: convert_audio, load_audio, preprocess, encode, apply_fade, decode,
and process_audio_tensor) as outetts/version/v3/audio_processor.py calls it (`load_audio` then `encode`), over an
MLX DAC from `impl.dac` (encode (B, L) float32 -> (B, n_codebooks, T) int32; decode codes -> (B, L_out)).

Where we differ from the official, on purpose (stated once here):
- bad input raises AudioError (a ValueError) with the reason; outetts asserts or runs on.
- silent input to `encode` raises SilentAudioError: outetts' loudness gain is +inf there and its codes come from
  NaN audio. Silent decoded audio is returned un-normalised (outetts returns NaN).
- the rate is the model's `sample_rate` (outetts hardcodes 24000; the speech DAC is 24 kHz).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from impl import audio as A
from impl._io import reason


class CodesError(A.AudioError):
    """Codes that cannot be decoded: an unreadable .npy, or a wrong shape, dtype, range or codebook count."""


def load_codes(path) -> np.ndarray:
    """A codes `.npy` (one array, as `voiceport dac encode` writes it) -> the array, not yet checked against a
    model (`DacInterface.check_codes`). Every unreadable file raises CodesError naming it."""
    from impl._io import check_input

    p = Path(path)
    check_input(p, "codes .npy", CodesError)  # a FIFO or device refused before opening (a FIFO blocks open())
    if p.is_dir():
        raise CodesError(f"{path}: is a directory, not a codes .npy file")
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such codes file")
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
        if not magic:
            raise CodesError(f"{path}: the file is empty (0 bytes), not a codes .npy file")
        if magic[:4] == b"PK\x03\x04":
            raise CodesError(f"{path}: an .npz archive; codes are one array saved with numpy.save (.npy)")
        if magic != b"\x93NUMPY":
            raise CodesError(f"{path}: not a numpy .npy file (no .npy magic at its start)")
        return np.load(p, allow_pickle=False)
    except CodesError:
        raise
    except Exception as e:  # noqa: BLE001 -- np.load on a bad header or cut data raises ValueError, EOFError,
        # SyntaxError, tokenize.TokenError, MemoryError, ...: all mean the same thing here
        raise CodesError(f"{path}: not a readable .npy array ({reason(e)})") from None


def _hop_length(model) -> int:
    """DAC hop: the product of the encoder strides (dac/model/dac.py `hop_length = np.prod(encoder_rates)`)."""
    for owner in (model, getattr(model, "config", None)):
        hop = getattr(owner, "hop_length", None)
        if hop:
            return int(hop)
    return int(np.prod(model.config.encoder_rates))


def fade_ramp(start: float, end: float, n: int) -> np.ndarray:
    """torch.linspace(start, end, n) in float32 as torch's CPU kernel computes it (one fused multiply-add from
    each end: `start + step * i` for the first half, `end - step * (n - 1 - i)` for the second)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    if n == 1:
        return np.array([start], np.float32)
    s32, e32 = np.float32(start), np.float32(end)
    step = np.float64((e32 - s32) / np.float32(n - 1))
    i = np.arange(n)
    first = (np.float64(s32) + step * i).astype(np.float32)            # fma: exact product, one rounding
    second = (np.float64(e32) - step * (n - 1 - i)).astype(np.float32)
    return np.where(i < n // 2, first, second)


def apply_fade(x: np.ndarray, sr: int, fade_seconds: float = 0.015) -> np.ndarray:
    """outetts DacInterface.apply_fade on (..., L): linear 15 ms fade in and out, each at most L // 2, in place."""
    total = x.shape[-1]
    n = min(int(sr * fade_seconds), total // 2)
    x[..., :n] *= fade_ramp(0.0, 1.0, n)
    x[..., total - n: total] *= fade_ramp(1.0, 0.0, n)
    return x


class DacInterface:
    """outetts' DacInterface over an MLX DAC; numpy in and out.

    Args:
        model: an `impl.dac` DAC (encode, decode, sample_rate).
        max_seconds: refuse longer input (None: no limit; outetts' speaker path refuses > 20 s).
        win_duration: encode window in seconds (outetts: 5.0), rounded up to a whole number of hops.
        chunk_length: decode chunk in codes (outetts: 2048).
    """

    def __init__(self, model, max_seconds: Optional[float] = None, win_duration: float = 5.0,
                 chunk_length: int = 2048):
        self.model = model
        self.sr = int(model.sample_rate)
        self.hop_length = _hop_length(model)
        self.max_seconds = max_seconds
        self.win_duration = win_duration
        self.chunk_length = int(chunk_length)

    # ------------------------------------------------------------------------------------------- audio in
    def convert_audio(self, x: np.ndarray, sr: int) -> np.ndarray:
        """(L,) or (C, L) audio at `sr` -> float32 (L,) mono at the model rate (channel mean, torchaudio's
        Resample). Integer PCM is scaled by impl.audio.as_float32 (int16 / 2**15, ...)."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = A.as_float32(x)
        A.check_audio(x, sr, max_seconds=self.max_seconds)
        x = A.to_mono(x.astype(np.float32, copy=False))
        return A.resample(x, sr, self.sr)

    def load_audio(self, path) -> np.ndarray:
        """A file (wav/flac/ogg, any rate, mono or stereo) -> float32 (L,) mono at the model rate, un-normalised
        (what the profile creator measures word features on)."""
        x, sr = A.load_audio(path, max_seconds=self.max_seconds)
        return self.convert_audio(x, sr)

    # ----------------------------------------------------------------------------------------------- encode
    def encode(self, x: np.ndarray) -> np.ndarray:
        """outetts DacInterface.encode: float32 (L,) mono audio at the model rate -> codes (n_codebooks, T) int32.

        Loudness-normalised to -18 LUFS / -1 dB peak, then encoded in windows of `win_duration` seconds (each
        right-padded to a whole hop), the codes concatenated. T = sum over windows of ceil(window / hop).
        """
        import mlx.core as mx

        x = np.asarray(x)
        A.check_audio(x, self.sr, max_seconds=self.max_seconds)
        if x.ndim != 1:
            raise A.AudioError(f"encode expects mono (L,) audio at {self.sr} Hz, got shape {list(x.shape)} "
                               f"(use encode_audio for other rates or channels)")
        x = A.loudness_normalize(x.astype(np.float32, copy=False), self.sr)
        hop = self.hop_length
        n_samples = int(math.ceil(int(self.win_duration * self.sr) / hop) * hop)
        codes = []
        for i in range(0, x.shape[0], n_samples):
            chunk = x[i: i + n_samples]
            chunk = np.pad(chunk, (0, -(-chunk.shape[0] // hop) * hop - chunk.shape[0]))  # preprocess
            c = self.model.encode(mx.array(chunk[None]))                                   # (1, n_q, T_i)
            codes.append(np.array(c[0], dtype=np.int32))
        return np.concatenate(codes, axis=-1)

    def encode_audio(self, x: np.ndarray, sr: int) -> np.ndarray:
        """Audio array (L,) or (C, L) at `sr` -> codes (n_codebooks, T)."""
        return self.encode(self.convert_audio(x, sr))

    def encode_file(self, path) -> np.ndarray:
        """An audio file -> codes (n_codebooks, T), as outetts' create_speaker_from_dict gets them."""
        return self.encode(self.load_audio(path))

    # ----------------------------------------------------------------------------------------------- decode
    def decode(self, codes, progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """outetts DacInterface.decode: codes (n_codebooks, T) (or (1, n_codebooks, T)) -> float32 (L,).

        Decoded in chunks of `chunk_length` codes, each faded in and out over 15 ms, concatenated, then
        loudness-normalised to -18 LUFS / -1 dB peak. `progress(done, T)` is called after each chunk.
        """
        import mlx.core as mx

        c = self.check_codes(codes)
        recons = []
        for i in range(0, c.shape[-1], self.chunk_length):
            r = self.model.decode(mx.array(c[None, :, i: i + self.chunk_length].astype(np.int32)))  # (1, L_i)
            r = np.array(r, dtype=np.float32).reshape(-1)
            recons.append(apply_fade(r, self.sr))
            if progress is not None:
                progress(min(i + self.chunk_length, c.shape[-1]), c.shape[-1])
        out = np.concatenate(recons)
        return A.loudness_normalize(out, self.sr, on_silence="keep")

    def check_codes(self, codes, where: str = "codes") -> np.ndarray:
        """Codes (n_codebooks, T) or (1, n_codebooks, T) -> (n_codebooks, T) integers in the model's codebooks,
        at most its number of codebooks; CodesError (naming `where`) otherwise."""
        c = np.asarray(codes)
        if c.ndim == 3 and c.shape[0] == 1:
            c = c[0]
        if c.ndim != 2 or c.shape[-1] == 0:
            raise CodesError(f"{where}: codes must be (n_codebooks, T) with T > 0, got shape {list(c.shape)}")
        if not np.issubdtype(c.dtype, np.integer):
            raise CodesError(f"{where}: codes must be integers, got {c.dtype}")
        config = getattr(self.model, "config", None)
        n_q = getattr(config, "n_codebooks", None)
        if n_q is not None and c.shape[0] > n_q:
            raise CodesError(f"{where}: {c.shape[0]} codebooks given (shape {list(c.shape)}), the model has {n_q}")
        size = getattr(config, "codebook_size", None)
        if size is not None and (c.min() < 0 or c.max() >= size):
            raise CodesError(f"{where}: codes must lie in [0, {size}), got [{c.min()}, {c.max()}]")
        return c

    def samples(self, n_codes: int) -> int:
        """Audio samples `decode` gives for `n_codes` frames (the hop per frame, dac/model/dac.py)."""
        return n_codes * _hop_length(self.model)

    # ------------------------------------------------------------------------------------------------- save
    def save_wav(self, audio: np.ndarray, path, subtype: Optional[str] = None) -> None:
        """Write (L,) audio at the model rate, atomically (a temp file in the same folder, then a rename).

        subtype: soundfile subtype; default 32-bit float for .wav (as torchaudio.save writes a float32 tensor),
        the format's default otherwise. PCM subtypes clip to [-1, 1].
        """
        A.save_audio(audio, path, self.sr, subtype)


def load_codec(path=None) -> DacInterface:
    """The codec every command uses: `impl.dac.load(path)` in outetts' DacInterface.

    Args:
        path: a DAC checkpoint (official .pth, .safetensors, or a folder holding one); None: the embedded seeded
            DAC 24 kHz speech checkpoint (`impl.seeded.default_codec()`, random weights at the real architecture).
    """
    from impl.dac.model import load

    if path is None:
        from impl.seeded import default_codec

        path = default_codec()
    return DacInterface(load(path))
