"""OuteTTS v3 special tokens: names, formats and the full ordered list a v3 tokenizer carries.

Ports outetts 0.4.4 `outetts/version/v3/tokens.py` (SpecialTokens). The value ranges come from how v3 fills the
formats: codes `<|c1_i|>`/`<|c2_i|>` for i in range(1025) (`PromptProcessor.get_audio_token_map` looks up all
1025; DAC codebooks have 1024 entries, the 1025th is never a valid code), durations `<|t_{:.2f}|>` of words
(frames / 75, rounded to 2 decimals; profiles are <= 20 s), and per-word features scaled to round(100 * x),
x in [0, 1] (`audio_processor.Features.scale_values`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List

N_CODE_TOKENS = 1025          # <|c1_0|> .. <|c1_1024|>, as outetts' audio token map enumerates them
CODEBOOK_SIZE = 1024          # valid DAC codes: 0 .. 1023
MAX_DURATION_CENTIS = 2000    # <|t_0.00|> .. <|t_20.00|>
FEATURE_LEVELS = 101          # energy / spectral_centroid / pitch in 0 .. 100
FEATURE_NAMES = ("energy", "spectral_centroid", "pitch")


@dataclass(frozen=True)
class SpecialTokens:
    """The v3 token strings, field names and order as in outetts' dataclass."""

    bos: str = "<|im_start|>"
    eos: str = "<|im_end|>"
    c1: str = "<|c1_{}|>"
    c2: str = "<|c2_{}|>"
    text_start: str = "<|text_start|>"
    text_end: str = "<|text_end|>"
    voice_characteristic_start: str = "<|voice_characteristic_start|>"
    voice_characteristic_end: str = "<|voice_characteristic_end|>"
    emotion_start: str = "<|emotion_start|>"
    emotion_end: str = "<|emotion_end|>"
    audio_start: str = "<|audio_start|>"
    audio_end: str = "<|audio_end|>"
    time: str = "<|t_{:.2f}|>"
    code: str = "<|code|>"
    energy: str = "<|energy_{}|>"
    spectral_centroid: str = "<|spectral_centroid_{}|>"
    pitch: str = "<|pitch_{}|>"
    word_start: str = "<|word_start|>"
    word_end: str = "<|word_end|>"
    features: str = "<|features|>"
    global_features_start: str = "<|global_features_start|>"
    global_features_end: str = "<|global_features_end|>"


SPECIAL = SpecialTokens()


def special_token_list() -> List[str]:
    """Every v3 special token, formats expanded over their ranges, in the dataclass's field order."""
    out: List[str] = []
    for f in fields(SPECIAL):
        name, value = f.name, getattr(SPECIAL, f.name)
        if name in ("c1", "c2"):
            out += [value.format(i) for i in range(N_CODE_TOKENS)]
        elif name == "time":
            out += [value.format(c / 100) for c in range(MAX_DURATION_CENTIS + 1)]
        elif name in FEATURE_NAMES:
            out += [value.format(i) for i in range(FEATURE_LEVELS)]
        else:
            out.append(value)
    return out
