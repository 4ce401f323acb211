"""OuteTTS v3 speaker profiles: the JSON schema (validate, load), creation from audio (+ words), atomic save.

Schema (outetts 0.4.4 `version/v3/audio_processor.py` create_speaker_from_dict, `version/interface.py`
save_speaker/load_speaker):
    {"text": str, "words": [{"word": str, "duration": float, "c1": [int], "c2": [int],
                             "features": {"energy": int, "spectral_centroid": int, "pitch": int}}, ...],
     "global_features": {...}, "interface_version": 3}
outetts treats a profile without `interface_version` as version 2 and refuses it for v3; so do we. Missing
feature keys default to 0 (as outetts' `get_features`). We are stricter than outetts where it would crash later
or silently misalign: c1/c2 of a word must have equal lengths and hold codes in 0..1023.

Creation (outetts' `create_speaker_from_dict`): load (mono, torchaudio's resampler to 24 kHz, un-normalised)
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

import copy
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from impl import audio as A
from impl._io import atomic_path, reason
from impl.outetts.text import normalize
from impl.outetts.tokens import CODEBOOK_SIZE, FEATURE_NAMES
from impl.speaker.align import Aligner, Word, check_words
from impl.speaker.features import extract_audio_features

TPS = 75  # DAC codes per second (24 kHz / hop 320)
MAX_EXTENSION = 20  # codes added before the first and after the last word
DURATION_DECIMALS = 2  # a word's duration: round(n / TPS, 2) seconds
MAX_SECONDS = 20.0  # outetts refuses longer speaker audio
INTERFACE_VERSION = 3


class ProfileError(ValueError):
    """The profile cannot be made from this input; the message says why."""


class SpeakerError(ValueError):
    """A speaker profile that is not a valid OuteTTS v3 profile; the message names the file and field."""


def _fail(where: str, msg: str) -> None:
    raise SpeakerError(f"{where}: {msg}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_speaker(speaker: Any, where: str = "speaker") -> Dict[str, Any]:
    """Check a profile dict against the v3 schema; returns a deep copy (callers may not mutate the original)."""
    if not isinstance(speaker, dict):
        _fail(where, f"a speaker profile is a JSON object, got {type(speaker).__name__}")
    if not {"interface_version", "text", "words"} & set(speaker):
        _fail(where, f"not an OuteTTS speaker profile (no 'interface_version', 'text' or 'words' field; got "
                     f"{', '.join(map(repr, list(speaker)[:5])) or 'an empty object'})")
    version = speaker.get("interface_version", 2)
    if version != INTERFACE_VERSION:
        _fail(where, f"speaker interface version mismatch: {version!r} != {INTERFACE_VERSION} "
                     "(only OuteTTS v3 / 1.0 profiles are supported)")
    if not isinstance(speaker.get("text"), str):
        _fail(where, "field 'text' (the transcript, a string) is missing")
    words = speaker.get("words")
    if not isinstance(words, list) or not words:
        _fail(where, "field 'words' must be a non-empty list")
    for n, w in enumerate(words):
        at = f"words[{n}]"
        if not isinstance(w, dict):
            _fail(where, f"{at} is not an object")
        for key in ("word", "duration", "c1", "c2"):
            if key not in w:
                _fail(where, f"{at} lacks field {key!r}")
        if not isinstance(w["word"], str):
            _fail(where, f"{at}.word must be a string")
        if not isinstance(w["duration"], (int, float)) or isinstance(w["duration"], bool) or w["duration"] < 0:
            _fail(where, f"{at}.duration must be a non-negative number, got {w['duration']!r}")
        c1, c2 = w["c1"], w["c2"]
        if not isinstance(c1, list) or not isinstance(c2, list) or len(c1) != len(c2):
            _fail(where, f"{at}: c1 and c2 must be lists of equal length")
        for name, codes in (("c1", c1), ("c2", c2)):
            bad = [c for c in codes if not _is_int(c) or not 0 <= c < CODEBOOK_SIZE]
            if bad:
                _fail(where, f"{at}.{name} holds {bad[0]!r}: codes are integers in 0..{CODEBOOK_SIZE - 1}")
        feats = w.get("features", {})
        if not isinstance(feats, dict):
            _fail(where, f"{at}.features must be an object")
        for k in FEATURE_NAMES:
            if k in feats and not _is_int(feats[k]):
                _fail(where, f"{at}.features.{k} must be an integer, got {feats[k]!r}")
    return copy.deepcopy(speaker)


def load_speaker(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read and validate a v3 speaker profile JSON file."""
    from impl._io import read_json

    try:
        data = read_json(path, "speaker profile", SpeakerError)  # a FIFO refused unopened; depth, int64 limits
    except FileNotFoundError:
        raise SpeakerError(f"{path}: speaker file not found") from None
    except IsADirectoryError:
        raise SpeakerError(f"{path}: is a directory, not a speaker profile (.json)") from None
    except OSError as e:  # PermissionError and the like
        raise SpeakerError(f"{path}: cannot read the speaker file ({reason(e)})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SpeakerError(f"{path}: not a JSON file ({reason(e)})") from None
    return validate_speaker(data, str(path))


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
        out.append({"word": word, "duration": round(len(word_c1) / TPS, DURATION_DECIMALS), "c1": word_c1,
                    "c2": word_c2, "features": _features(word_audio, sr, word)})
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
    try:
        audio = codec.convert_audio(x, sr0)  # (L,) float32 mono at codec.sr, un-normalised
    except A.AudioError as e:  # a rate that cannot be resampled: name the file
        raise A.AudioError(f"{audio_path}: {e}") from None
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
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(profile, f, indent=2)
    return path
