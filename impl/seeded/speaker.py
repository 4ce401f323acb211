"""Seeded OuteTTS v3 speaker profiles: the official schema with random codes and features (tests, demos; no audio)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from impl.outetts.tokens import CODEBOOK_SIZE, FEATURE_NAMES
from impl.speaker.profile import INTERFACE_VERSION


def synthetic_speaker(seed: int = 0, text: str = "The quick brown fox jumps over the lazy dog.",
                      frames_per_word: tuple = (3, 12)) -> Dict[str, Any]:
    """A v3 profile dict with seeded random codes and features.

    Words are `text.split()`; each gets a random number of 75 Hz frames in `frames_per_word` (duration =
    frames / 75 rounded to 2 decimals, as outetts' create_speaker_from_dict computes it).
    """
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
