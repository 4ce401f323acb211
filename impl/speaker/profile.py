"""Audio (+ words) -> OuteTTS v3 speaker profile, as outetts 0.4.4's `create_speaker_from_dict` builds it.

Flow (outetts `version/v3/audio_processor.py`): load (mono, torchaudio's resampler to 24 kHz, un-normalised)
-> word alignment (`impl.speaker.align`) -> DAC codes of the whole clip through outetts' chunked path
(loudness-normalised, `impl.dac.interface`) -> per word: codes sliced at 75 codes/s, the first word's slice
starting 20 codes early and the last word's ending 20 codes late, slices contiguous (each starts where the
previous ended), duration = round(n / 75, 2), features measured on the un-normalised audio between the word's
own start and end -> profile.

Where we differ from outetts, on purpose: audio over 20 s is refused before any work (outetts: after loading),
or cut to its first 20 s on request; silent audio and words too short for one pitch frame (outetts: a torch
error from `unfold`) raise ProfileError; the profile is written atomically.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from impl import audio as A
from impl.outetts.speaker import INTERFACE_VERSION, validate_speaker
from impl.outetts.text import normalize
from impl.speaker.align import Aligner, Word, check_words
from impl.speaker.features import extract_audio_features

TPS = 75  # DAC codes per second (24 kHz / hop 320)
MAX_EXTENSION = 20  # codes added before the first and after the last word
MAX_SECONDS = 20.0  # outetts refuses longer speaker audio


class ProfileError(ValueError):
    """The profile cannot be made from this input; the message says why."""


def _features(audio: np.ndarray, sr: int, word: str) -> Dict[str, int]:
    try:
        return extract_audio_features(audio, sr)
    except ValueError as e:  # shorter than one 400-sample pitch frame: outetts fails in torch's unfold
        raise ProfileError(f"word {word!r} is too short for outetts' pitch measure: {e}") from None


def slice_words(c1: Sequence[int], c2: Sequence[int], words: Sequence[Word], audio: np.ndarray, sr: int
                ) -> List[Dict[str, Any]]:
    """Per-word entries exactly as outetts' create_speaker_from_dict slices them. audio: (L,) un-normalised."""
    c1, c2 = list(c1), list(c2)
    audio = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    out, start = [], None
    for idx, w in enumerate(words):
        if start is None:
            start = max(0, int(w.start * TPS) - MAX_EXTENSION)
        end = min(len(c1), int(w.end * TPS) + MAX_EXTENSION) if idx == len(words) - 1 else int(w.end * TPS)
        word_c1, word_c2 = c1[start:end], c2[start:end]
        word = w.word.strip()
        word_audio = audio[:, int(w.start * sr):int(w.end * sr)]
        out.append({"word": word, "duration": round(len(word_c1) / TPS, 2), "c1": word_c1, "c2": word_c2,
                    "features": _features(word_audio, sr, word)})
        start = end
    return out


def profile_from_codes(audio: np.ndarray, sr: int, codes: np.ndarray, words: Sequence[Word], text: str
                       ) -> Dict[str, Any]:
    """The profile dict from 24 kHz un-normalised audio (L,), its codes (n_codebooks >= 2, T), aligned words
    and the transcript (normalised as outetts' whisper path normalises it)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] < 2:
        raise ProfileError(f"codes must be (n_codebooks >= 2, T), got {list(codes.shape)}")
    return {
        "text": normalize(text),
        "words": slice_words(codes[0].tolist(), codes[1].tolist(), words, audio, sr),
        "global_features": extract_audio_features(np.asarray(audio, dtype=np.float32)[None], sr),
        "interface_version": INTERFACE_VERSION,
    }


def create_profile(audio_path, codec, aligner: Aligner, text: Optional[str] = None, trim: bool = False,
                   progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Speaker profile of a recording.

    Args:
        audio_path: wav/flac/ogg (anything soundfile reads), any sample rate, any channel count: downmixed to
            mono (channel mean) and resampled to the codec's rate (torchaudio's Resample), as outetts does.
        codec: an `impl.dac.interface.DacInterface` (load_audio's conversion, encode).
        aligner: `impl.speaker.align` ForcedAligner (with `text`), WhisperAligner, or GivenWords.
        text: the transcript (forced alignment; with GivenWords the profile's text); None: the aligner's.
        trim: keep the first 20 s of a longer clip instead of refusing it (the transcript or word list must
            then cover those 20 s; given words past the cut are dropped).
        progress: optional callable(message) told of each step.
    """
    step = progress or (lambda msg: None)
    if text is not None and not text.strip():
        raise ProfileError("the transcript is empty: give the words spoken, or leave --text out for ASR")
    x, sr0 = A.load_audio(audio_path)  # AudioError: missing, unreadable, empty, NaN
    channels = 1 if x.ndim == 1 else x.shape[0]
    seconds = x.shape[-1] / sr0
    note = []
    if channels > 1:
        note.append(f"{channels} channels downmixed to mono")
    if sr0 != codec.sr:
        note.append(f"resampled {sr0} -> {codec.sr} Hz")
    step(f"read {os.path.basename(str(audio_path))}: {seconds:.2f} s, {sr0} Hz, {channels} channel(s)"
         + (f" ({', '.join(note)})" if note else ""))
    if seconds > MAX_SECONDS:
        if not trim:
            raise ProfileError(f"speaker audio is {seconds:.1f} s; outetts' limit is {MAX_SECONDS:.0f} s (use a "
                               "shorter clip, or --trim to keep its first 20 s)")
        x = x[..., : int(MAX_SECONDS * sr0)]
        if hasattr(aligner, "until"):  # given words: keep those inside the cut
            aligner = aligner.until(x.shape[-1] / sr0)
        step(f"trimmed to the first {MAX_SECONDS:.0f} s")
    audio = codec.convert_audio(x, sr0)  # (L,) float32 mono at codec.sr, un-normalised
    sr = codec.sr
    if float(np.max(np.abs(audio))) < 1e-4:
        raise ProfileError("the audio is silent (peak below -80 dBFS): no speech to make a profile from")

    step(f"aligning words ({type(aligner).__name__})")
    words = aligner.align(A.to_mono(x), sr0, text)
    words = check_words(words, audio.shape[-1] / sr)
    step(f"{len(words)} words, {words[0].start:.2f}-{words[-1].end:.2f} s")

    step("encoding with DAC")
    try:
        codes = codec.encode(audio)
    except A.SilentAudioError as e:
        raise ProfileError(f"no speech to make a profile from: {e}") from None
    step(f"{codes.shape[-1]} frames x {codes.shape[0]} codebooks; measuring features")
    if text is None:
        text = getattr(aligner, "text", None) or " ".join(w.word for w in words)
    return profile_from_codes(audio, sr, codes, words, text)


def save_profile(profile: Dict[str, Any], path) -> str:
    """Validate, then write as outetts' save_speaker does (".json" appended if missing, indent 2,
    interface_version 3), atomically: a temp file in the same folder renamed into place."""
    profile = dict(profile, interface_version=INTERFACE_VERSION)
    path = os.fspath(path)
    validate_speaker(profile, path)
    if not path.endswith(".json"):
        path += ".json"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ProfileError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".voiceport-", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(profile, f, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
