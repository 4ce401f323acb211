"""OuteTTS v3 generation prompt, built directly as token ids.

Ports outetts 0.4.4 `version/v3/prompt_processor.py` (`get_completion_prompt`, `create_codes`,
`_init_prompt`) followed by `tokenizer.encode(prompt, add_special_tokens=False)`:

    <|im_start|>\\n<|text_start|>{speaker text + sep + text}<|text_end|>\\n<|audio_start|>\\n
    <|word_start|>{word}<|features|><|t_{dur}|><|energy_e|><|spectral_centroid_s|><|pitch_p|><|code|>
        <|c1_a|><|c2_b|>...<|word_end|>\\n ... (one line per profile word) \\n<|word_start|>

The prompt is kept as a list of pieces; pieces that are added tokens map to their id directly, runs of the
others (text, newlines, any format value outside the vocabulary) are encoded together, exactly the segments
a HF tokenizer encodes between added tokens (a tokenizer whose added tokens strip whitespace or are normalized
gets the whole string encoded instead). Differences from outetts: the profile is not mutated (outetts
appends the separator to the caller's last word on every call, so chunked generation with a profile whose text
lacks final punctuation grows "." per chunk); empty text is an error.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from impl.outetts.text import TextError, merge_speaker_text, normalize
from impl.outetts.tokenizer import Tokenizer
from impl.outetts.tokens import FEATURE_NAMES, SPECIAL
from impl.speaker.profile import validate_speaker

MISSING_FEATURE = 0  # a feature key the profile lacks (outetts' get_features default)


def _word_pieces(w: Dict[str, Any], word: str) -> List[str]:
    feats = w.get("features", {})
    out = [SPECIAL.word_start, word, SPECIAL.features, SPECIAL.time.format(w["duration"])]
    out += [f"<|{k}_{feats.get(k, MISSING_FEATURE)}|>" for k in FEATURE_NAMES]
    out.append(SPECIAL.code)
    for a, b in zip(w["c1"], w["c2"]):
        out += [SPECIAL.c1.format(a), SPECIAL.c2.format(b)]
    out.append(SPECIAL.word_end)
    return out


def prompt_pieces(text: str, speaker: Optional[Dict[str, Any]] = None) -> List[str]:
    """The v3 completion prompt as a list of strings (concatenated: outetts' prompt string)."""
    text = normalize(text)
    if not text:
        raise TextError("text is empty after normalisation: nothing to speak")
    words: List[Dict[str, Any]] = []
    if speaker is not None:
        speaker = validate_speaker(speaker)
        text, sep = merge_speaker_text(text, speaker["text"])
        words = speaker["words"]
    pieces = [SPECIAL.bos, "\n", SPECIAL.text_start, text, SPECIAL.text_end, "\n", SPECIAL.audio_start, "\n"]
    if speaker is not None:
        for n, w in enumerate(words):
            if n:
                pieces.append("\n")
            pieces += _word_pieces(w, w["word"] + (sep if n == len(words) - 1 else ""))
        pieces += ["\n", SPECIAL.word_start]
    return pieces


def prompt_ids(tokenizer: Tokenizer, text: str, speaker: Optional[Dict[str, Any]] = None) -> List[int]:
    """Token ids of the v3 completion prompt for `text` spoken by `speaker` (a validated profile dict or None).

    Raises TextError for empty text, SpeakerError for a malformed profile.
    """
    pieces = prompt_pieces(text, speaker)
    if not tokenizer.plain_added:  # added tokens with strip/normalize flags: let the tokenizer split
        return tokenizer.encode("".join(pieces))
    ids: List[int] = []
    run: List[str] = []  # consecutive non-added pieces, encoded as one segment
    for p in pieces:
        i = tokenizer.added_id(p)
        if i is None:
            run.append(p)
            continue
        if run:
            ids += tokenizer.encode("".join(run))
            run = []
        ids.append(i)
    if run:
        ids += tokenizer.encode("".join(run))
    return ids
