"""Audio utilities shared by the DAC path, the TTS CLI and the speaker-profile creator: load, save (atomic),
validate, mono, resample, loudness.

Ports (numerics, not just behaviour), numpy only at run time:
  resample            torchaudio 2.x `transforms.Resample` (functional/functional.py `_get_sinc_resample_kernel`,
                      `_apply_sinc_resample_kernel`): windowed sinc, hann, lowpass_filter_width 6, rolloff 0.99,
                      kernel computed in float64 and cached as float32, as the transform does with dtype=None.
  integrated_loudness pyloudnorm 0.1.x `Meter.integrated_loudness` (meter.py, iirfilter.py): BS.1770-4 K-weighting
                      (RBJ high shelf +4 dB at 1500 Hz, Q 1/sqrt 2; RBJ high pass 38 Hz, Q 0.5), 400 ms blocks at
                      75 % overlap, -70 LUFS absolute gate, -10 LU relative gate. Mono only.
  loudness_normalize  outetts 0.4.4 `dac/interface.py::process_audio_tensor` (-18 LUFS, then a -1 dB peak limit).

Conventions: audio is float32, mono (L,) or channels-first (C, L) as torchaudio gives it.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple, Union

import numpy as np

from impl._io import OutputError, atomic_path, reason


class AudioError(ValueError):
    """Audio that cannot be processed as given (empty, non-finite, wrong dtype or shape, too long)."""


class SilentAudioError(AudioError):
    """Audio whose integrated loudness is -inf (digital silence, or every 400 ms block below -70 LUFS)."""


MAX_CHANNELS = 8
MAX_KERNEL = 1 << 24  # resample kernel elements (reduced new x orig rate): 8000..192000 Hz <-> 24 kHz need < 1e5
ABSOLUTE_GATE = -70.0  # LUFS: BS.1770-4 absolute gate (pyloudnorm Meter.integrated_loudness Gamma_a)
RELATIVE_GATE = -10.0  # LU below the absolutely-gated loudness: the relative gate (Gamma_r)
BLOCK_OVERLAP = 0.75   # gating blocks overlap by 75 % (pyloudnorm: step = 1 - overlap)


# ------------------------------------------------------------------------------------------------ load, validate

def load_audio(path: Union[str, os.PathLike, "object"], max_seconds: Optional[float] = None
               ) -> Tuple[np.ndarray, int]:
    """Read wav/flac/ogg through soundfile -> (float32 (L,) mono or (C, L), sample rate).

    PCM is scaled as torchaudio.load scales it (int16 / 2**15, int32 / 2**31). `path` may be a file object.
    """
    import soundfile as sf  # optional IO import, here only

    named = isinstance(path, (str, os.PathLike))
    if named:
        from impl._io import check_input

        check_input(path, "audio", AudioError)  # a FIFO or device refused before soundfile opens it
    if named and os.path.isdir(path):
        raise AudioError(f"{os.fspath(path)}: is a directory, not an audio file")
    if named and not os.path.exists(path):
        raise AudioError(f"{os.fspath(path)}: cannot read audio: no such file")
    if named and os.path.getsize(path) == 0:
        raise AudioError(f"{os.fspath(path)}: cannot read audio: the file is empty (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            header_frames = (_wav_data_frames(path) if named and f.format in ("WAV", "WAVEX") else
                             f.frames if f.format == "FLAC" else None)  # FLAC: STREAMINFO's total
            data = f.read(dtype="float32", always_2d=True)  # (L, C)
            sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError, MemoryError) as e:
        why = getattr(e, "error_string", None) or reason(e)  # libsndfile's own words, without the path again
        raise AudioError(f"{path}: cannot read audio ({why})") from None
    if header_frames is not None and 0 <= data.shape[0] < header_frames:
        raise AudioError(f"{path}: truncated audio file: its header announces {header_frames} frames "
                         f"({header_frames / max(sr, 1):.2f} s), the file holds {data.shape[0]} "
                         f"({data.shape[0] / max(sr, 1):.2f} s)")
    x = np.ascontiguousarray(data.T)  # (C, L)
    if x.shape[0] == 1:
        x = x[0]
    check_audio(x, sr, max_seconds=max_seconds, name=str(path))
    return x, int(sr)


def _wav_data_frames(path) -> Optional[int]:
    """Frames a RIFF/RIFX WAV header announces (data chunk size // block align); None when it does not say
    (RF64, a streaming size of 0 or 0xFFFFFFFF, no fmt/data chunk). libsndfile shortens its frame count to what
    the file holds, so a file cut short reads without a word; this is the header's own figure."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return None
        end = "<" if head[:4] == b"RIFF" else ">"
        block_align = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack(end + "I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(min(size, 16))
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack(end + "H", fmt[12:14])[0]
                f.seek(size - len(fmt) + (size & 1), 1)
            elif cid == b"data":
                if not block_align or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), 1)


def save_audio(audio: np.ndarray, path, sr: int, subtype: Optional[str] = None) -> None:
    """Atomic soundfile write of (L,) or (C, L) float audio: no partial file is left on error."""
    import soundfile as sf

    x = np.asarray(audio)
    check_audio(x, sr, name=str(path))
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(ext)
    if fmt is None:
        raise AudioError(f"{path}: unknown audio extension {ext!r} (use .wav, .flac or .ogg)")
    if subtype is None:
        subtype = "FLOAT" if fmt == "WAV" else sf.default_subtype(fmt)
    if subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0)
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, x.T if x.ndim == 2 else x, int(sr), subtype=subtype, format=fmt)
    except OutputError:  # already one line naming the path (no space, no permission, a read-only output)
        raise
    except Exception as e:  # noqa: BLE001 -- soundfile raises several types; the caller gets one AudioError
        raise AudioError(f"cannot write {path}: {e}") from e


def as_float32(x: np.ndarray) -> np.ndarray:
    """Any numeric audio array -> float32, PCM scaled to [-1, 1) as WAV readers do.

    int16 / 2**15, int32 / 2**31, uint8 (x - 128) / 2**7; float64/float16 cast. Other dtypes raise AudioError.
    """
    x = np.asarray(x)
    if x.dtype == np.float32:
        return x
    if x.dtype in (np.float64, np.float16):
        return x.astype(np.float32)
    scale = {np.dtype(np.int16): 2.0 ** 15, np.dtype(np.int32): 2.0 ** 31}.get(x.dtype)
    if scale is not None:
        return (x.astype(np.float64) / scale).astype(np.float32)
    if x.dtype == np.uint8:
        return ((x.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    raise AudioError(f"audio dtype {x.dtype} is not supported (float16/32/64, int16, int32, uint8)")


def check_sample_rate(sr) -> int:
    """A positive integer sample rate (an integral float is accepted), else AudioError."""
    try:
        ok = float(sr) == int(sr) and int(sr) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise AudioError(f"sample rate must be a positive integer in Hz, got {sr!r}")
    return int(sr)


def check_audio(x: np.ndarray, sr, max_seconds: Optional[float] = None, name: str = "audio") -> np.ndarray:
    """Validate (L,) or (C, L) float audio: non-empty, finite, at most MAX_CHANNELS, at most max_seconds."""
    sr = check_sample_rate(sr)
    if not isinstance(x, np.ndarray):
        raise AudioError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape (samples,) or (channels, samples), got {list(x.shape)}")
    if x.ndim == 2 and not 1 <= x.shape[0] <= MAX_CHANNELS:
        raise AudioError(f"{name}: {x.shape[0]} channels in shape {list(x.shape)}; expected (channels, samples) "
                         f"with 1..{MAX_CHANNELS} channels (transpose a (samples, channels) array)")
    if x.shape[-1] == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"{name}: expected float audio, got {x.dtype} (convert with impl.audio.as_float32)")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} NaN/Inf samples")
    if max_seconds is not None and x.shape[-1] > max_seconds * sr:
        raise AudioError(f"{name}: {x.shape[-1] / sr:.2f} s is longer than the limit of {max_seconds:g} s")
    return x


def to_mono(x: np.ndarray) -> np.ndarray:
    """(C, L) -> (L,) by the channel mean, as outetts' convert_audio (`wav.mean(-2)`); (L,) unchanged."""
    if x.ndim == 1:
        return x
    return x.mean(axis=0, dtype=x.dtype)


# -------------------------------------------------------------------------------------------------- resample

def resample_kernel(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99
                    ) -> Tuple[np.ndarray, int]:
    """torchaudio's sinc_interp_hann kernel for a reduced rate pair -> (float32 (new, K), width), K = 2 width + orig.

    As `transforms.Resample` (dtype=None): positions in float64, except `j / new` which torch computes in its
    default float32 (an int64 arange divided by an int), then the whole kernel in float64, cast to float32.
    """
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    if new * orig > MAX_KERNEL:  # (new, ~orig) float64: 16001 -> 24000 Hz would take 3 GB, as torchaudio's does
        raise AudioError(f"cannot resample {orig_freq} Hz to {new_freq} Hz: the rates reduce to {orig}:{new}, "
                         f"whose kernel ({new} x {orig}+) is too large; resample to a common rate first")
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig            # (1, K)
    j = np.arange(0, -new, -1).astype(np.float32)[:, None] / np.float32(new)            # (new, 1) float32
    t = j.astype(np.float64) + idx                                                       # (new, K)
    t *= base_freq
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = np.where(t == 0, 1.0, np.sin(t) / t)
    kernels *= window * scale
    return kernels.astype(np.float32), width


def resample(x: np.ndarray, orig_sr: int, new_sr: int, lowpass_filter_width: int = 6, rolloff: float = 0.99
             ) -> np.ndarray:
    """Resample (..., L) float32 audio as `torchaudio.transforms.Resample(orig_sr, new_sr)` does.

    Args:
        x: float32 audio, time on the last axis.
        orig_sr, new_sr: integer rates in Hz.
    Returns:
        float32 (..., ceil(new * L / orig)) (the length rounded as torchaudio rounds it: in float32).
    """
    orig_sr, new_sr = check_sample_rate(orig_sr), check_sample_rate(new_sr)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"resample expects float audio, got {x.dtype}")
    if orig_sr == new_sr:
        return x
    kernel, width = resample_kernel(orig_sr, new_sr, lowpass_filter_width, rolloff)      # (new, K)
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    shape = x.shape
    L = shape[-1]
    flat = x.reshape(-1, L).astype(kernel.dtype, copy=False)
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    K = kernel.shape[-1]
    # conv1d with stride `orig`: frame f sees padded[f*orig : f*orig + K] and yields `new` outputs.
    frames = np.lib.stride_tricks.sliding_window_view(padded, K, axis=-1)[:, ::orig]   # (B, F, K)
    out = (frames @ kernel.T).reshape(flat.shape[0], -1)                                # (B, F*new)
    # torchaudio: torch.ceil(torch.as_tensor(new * L / orig)) -- a float32 tensor.
    target_length = int(np.ceil(np.float32(new * L / orig)))
    out = out[:, :target_length]
    return np.ascontiguousarray(out.reshape(shape[:-1] + (out.shape[-1],)))


# -------------------------------------------------------------------------------------------------- loudness

def _biquad_coefficients(G: float, Q: float, fc: float, rate: float, filter_type: str
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook biquad, normalised by a0 (pyloudnorm iirfilter.py generate_coefficients)."""
    A = 10 ** (G / 40.0)
    w0 = 2.0 * np.pi * (fc / rate)
    alpha = np.sin(w0) / (2.0 * Q)
    if filter_type == "high_shelf":
        b0 = A * ((A + 1) + (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha)
        b1 = -2 * A * ((A - 1) + (A + 1) * np.cos(w0))
        b2 = A * ((A + 1) + (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha)
        a0 = (A + 1) - (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha
        a1 = 2 * ((A - 1) - (A + 1) * np.cos(w0))
        a2 = (A + 1) - (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha
    elif filter_type == "high_pass":
        b0 = (1 + np.cos(w0)) / 2
        b1 = -(1 + np.cos(w0))
        b2 = (1 + np.cos(w0)) / 2
        a0 = 1 + alpha
        a1 = -2 * np.cos(w0)
        a2 = 1 - alpha
    else:
        raise ValueError(f"unknown filter type {filter_type!r}")
    return np.array([b0, b1, b2]) / a0, np.array([a0, a1, a2]) / a0


def k_weighting(rate: float):
    """BS.1770 K-weighting as pyloudnorm's Meter builds it: [(b, a) high shelf, (b, a) high pass]."""
    return [_biquad_coefficients(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
            _biquad_coefficients(0.0, 0.5, 38.0, rate, "high_pass")]


def biquad(b: np.ndarray, a: np.ndarray, x: np.ndarray, block: int = 256) -> np.ndarray:
    """y = lfilter(b, a, x) for one biquad (a[0] == 1), zero initial state, in float64 (as scipy computes it).

    Block-parallel instead of a per-sample Python loop: within a block of `block` samples the all-pole part is a
    lower-triangular Toeplitz matmul with its impulse response, plus the response to the two outputs carried in
    from the previous block. Agrees with scipy's direct form II to ~1e-13 relative.
    """
    x = np.asarray(x, dtype=np.float64)
    L = x.shape[0]
    _, a1, a2 = (float(v) for v in a)
    # FIR part, exact: v[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2]
    v = b[0] * x
    v[1:] += b[1] * x[:-1]
    v[2:] += b[2] * x[:-2]
    # All-pole part y[n] = v[n] - a1 y[n-1] - a2 y[n-2]: impulse response g, homogeneous responses c1, c2
    K = block
    g, c1, c2 = np.zeros(K), np.zeros(K), np.zeros(K)
    ym1, ym2 = (0.0, 0.0)
    for seq, (p1, p2, imp) in ((g, (0.0, 0.0, 1.0)), (c1, (1.0, 0.0, 0.0)), (c2, (0.0, 1.0, 0.0))):
        ym1, ym2 = p1, p2
        for n in range(K):
            y = (imp if n == 0 else 0.0) - a1 * ym1 - a2 * ym2
            seq[n] = y
            ym1, ym2 = y, ym1
    toeplitz = np.zeros((K, K))
    for k in range(K):
        toeplitz[k:, k] = g[: K - k]                       # toeplitz[n, m] = g[n - m]
    nb = -(-L // K)
    vp = np.zeros(nb * K)
    vp[:L] = v
    zero_state = vp.reshape(nb, K) @ toeplitz.T            # (nb, K): each block from zero state
    y = np.empty((nb, K))
    ym1, ym2 = 0.0, 0.0
    for i in range(nb):
        y[i] = zero_state[i] + c1 * ym1 + c2 * ym2
        ym1, ym2 = y[i, -1], y[i, -2]
    return y.reshape(-1)[:L]


def integrated_loudness(x: np.ndarray, sr: int, block_size: float = 0.400) -> float:
    """Gated integrated loudness (LUFS) of mono audio, as pyloudnorm `Meter(sr, block_size).integrated_loudness`.

    Float32 input is K-weighted in float64 and stored back in float32 after each filter, as pyloudnorm does
    (it writes scipy's float64 output into a copy of the input array). -inf for silence (no block above -70 LUFS).
    """
    if x.ndim != 1:
        raise AudioError(f"integrated_loudness expects mono (L,) audio, got shape {list(x.shape)}")
    if x.shape[0] < block_size * sr:
        raise AudioError(f"audio of {x.shape[0]} samples is shorter than one {block_size:g} s block at {sr} Hz")
    data = x.copy()
    for b, a in k_weighting(sr):
        data[:] = biquad(b, a, data)
    T_g = block_size
    Gamma_a = ABSOLUTE_GATE
    step = 1.0 - BLOCK_OVERLAP
    T = data.shape[0] / sr
    num_blocks = int(np.round(((T - T_g) / (T_g * step)))) + 1
    z = np.zeros(num_blocks)
    for j in range(num_blocks):  # same float expressions (and float32 pairwise sums) as pyloudnorm
        lo = int(T_g * (j * step) * sr)
        hi = int(T_g * (j * step + 1) * sr)
        z[j] = (1.0 / (T_g * sr)) * np.sum(np.square(data[lo:hi]))
    with np.errstate(divide="ignore", invalid="ignore"):
        l = -0.691 + 10.0 * np.log10(z)  # noqa: E741 -- BS.1770 eq. 4 name
        gated = z[l >= Gamma_a]
        if gated.size == 0:
            return -math.inf
        Gamma_r = -0.691 + 10.0 * np.log10(np.mean(gated)) + RELATIVE_GATE
        gated = z[(l > Gamma_r) & (l > Gamma_a)]
        z_avg = np.nan_to_num(np.mean(gated)) if gated.size else 0.0
        return float(-0.691 + 10.0 * np.log10(z_avg))


def loudness_normalize(x: np.ndarray, sr: int, target_lufs: float = -18.0, peak_db: float = -1.0,
                       block_size: float = 0.400, on_silence: str = "raise") -> np.ndarray:
    """outetts' process_audio_tensor on mono audio: gain to `target_lufs`, then a `peak_db` peak limit.

    Audio shorter than one block is zero-padded for the measurement, as outetts does. Computed in float64
    (pyloudnorm's gain is a float64 scalar), returned in x's dtype.

    Args:
        x: float (L,) mono audio.
        sr: its sample rate.
        on_silence: loudness -inf (digital silence, or all blocks under -70 LUFS) makes outetts return NaN
            audio; "raise" raises SilentAudioError, "keep" returns x unchanged.
    """
    if on_silence not in ("raise", "keep"):
        raise ValueError(f"on_silence must be 'raise' or 'keep', got {on_silence!r}")
    check_audio(x, sr)
    if x.ndim != 1:
        raise AudioError(f"loudness_normalize expects mono (L,) audio, got shape {list(x.shape)}")
    n = x.shape[0]
    min_samples = int(block_size * sr)
    padded = np.pad(x, (0, min_samples - n)) if n < min_samples else x
    measured = integrated_loudness(padded, sr, block_size)
    if measured == -math.inf:
        if on_silence == "keep":
            return x
        raise SilentAudioError(f"audio is silent (integrated loudness -inf: no 400 ms block above -70 LUFS); "
                               f"it cannot be normalised to {target_lufs:g} LUFS")
    gain = np.power(10.0, (target_lufs - measured) / 20.0)
    out = gain * padded                                     # float64 (numpy scalar times float32 array)
    peak = np.max(np.abs(out))
    if peak > 10 ** (peak_db / 20):
        out = (np.power(10.0, peak_db / 20.0) / peak) * out
    return out[:n].astype(x.dtype)
