"""OuteTTS v3 speaker profiles (the JSON that outetts' `save_speaker` writes): load and validate.

Schema (outetts 0.4.4 `version/v3/audio_processor.py` create_speaker_from_dict, `version/interface.py`
save_speaker/load_speaker):
    {"text": str, "words": [{"word": str, "duration": float, "c1": [int], "c2": [int],
                             "features": {"energy": int, "spectral_centroid": int, "pitch": int}}, ...],
     "global_features": {...}, "interface_version": 3}
outetts treats a profile without `interface_version` as version 2 and refuses it for v3; so do we. Missing
feature keys default to 0 (as outetts' `get_features`). We are stricter than outetts where it would crash later
or silently misalign: c1/c2 of a word must have equal lengths and hold codes in 0..1023.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, Union

from impl.outetts.tokens import CODEBOOK_SIZE, FEATURE_NAMES

INTERFACE_VERSION = 3


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
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SpeakerError(f"{path}: speaker file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpeakerError(f"{path}: not a JSON file ({e})") from None
    return validate_speaker(data, str(path))


def synthetic_speaker(seed: int = 0, text: str = "The quick brown fox jumps over the lazy dog.",
                      frames_per_word: tuple = (3, 12)) -> Dict[str, Any]:
    """A v3 profile in the official schema with seeded random codes and features (tests, demos; no audio).

    Words are `text.split()`; each gets a random number of 75 Hz frames in `frames_per_word` (duration =
    frames / 75 rounded to 2 decimals, as outetts' create_speaker_from_dict computes it).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    words = []
    for w in text.split():
        n = int(rng.integers(frames_per_word[0], frames_per_word[1] + 1))
        words.append({
            "word": w,
            "duration": round(n / 75, 2),
            "c1": rng.integers(0, CODEBOOK_SIZE, n).tolist(),
            "c2": rng.integers(0, CODEBOOK_SIZE, n).tolist(),
            "features": {k: int(rng.integers(0, 101)) for k in FEATURE_NAMES},
        })
    return {"text": text, "words": words,
            "global_features": {k: int(rng.integers(0, 101)) for k in FEATURE_NAMES},
            "interface_version": INTERFACE_VERSION}
