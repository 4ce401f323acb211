"""Text handling of the v3 interface: normalisation, speaker-text merge, chunking of long texts.

Ports outetts 0.4.4 `version/v3/prompt_processor.py` (`text_normalizations`, `_get_separator`,
`merge_speaker_text`) and `utils/chunking.py` (`chunk_text`, `split_into_sentences`, `check_language`), quirks
kept: chunking's `check_language` is applied to lists of words in two places, where it compares whole words
with the kana/CJK range bounds; we call it the same way so chunks match.

`ftfy` (pure Python) fixes mojibake exactly as outetts does; MeCab (mecab-python3 + unidic-lite) is needed only
to chunk Japanese/Chinese text, as in outetts.
"""
from __future__ import annotations

import re
import unicodedata
from typing import List, Sequence, Tuple, Union


class TextError(ValueError):
    """Text that cannot be spoken (empty after normalisation, not a string)."""


# text_normalizations, step by step (order matters).
_STEPS: Sequence[Tuple[str, str, int]] = (
    (r"\.{2,}", "...", 0),
    (r"[“”„‟«»]", '"', 0),
    (r"[‘’‛‹›`´]", "'", 0),
    (r"[–—―−‐]", "-", 0),
    (r"-{2,}", "-", 0),
    (r"[\x00-\x1F\x7F-\x9F\u00AD\u200B-\u200D\uFEFF]", "", 0),
    (r"\s+", " ", 0),
    (r"\s+([,.?!:;])", r"\1", 0),                       # no space before punctuation
    (r"([,.?!:;])(?=[^\s,.?!:;])", r"\1 ", 0),          # one space after it
    (r"(\w)\s+'\s*(\w)", r"\1'\2", 0),                  # "word ' s" -> "word's"
    (r"(\w)\s+'\s*([,.?!:;\s]|$)", r"\1'\2", 0),        # "word ' ." -> "word'."
    (r"(\w)\s*'\s*([tsdmreSNTDMRE])\b", r"\1'\2", re.IGNORECASE),  # "can 't" -> "can't"
    (r"([?!])\1+", r"\1", 0),                           # "!!" -> "!"
    (r"\s+", " ", 0),
)
_COMPILED = [(re.compile(p, f), r) for p, r, f in _STEPS]


def normalize(text: str) -> str:
    """outetts v3 `text_normalizations`: ftfy, NFKC, quotes/dashes/ellipses unified, spacing around punctuation."""
    try:
        import ftfy
    except ImportError:
        raise TextError('text normalisation needs ftfy: pip install "voiceport[tts]"') from None
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}")
    text = ftfy.fix_text(text)
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("…", "...")
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    return text.replace('"', "").strip()


def _separator(speaker_text: str) -> str:
    if any("\u3040" <= c <= "\u309f" or "\u30a0" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff"
           for c in speaker_text):
        return "。"
    return ". "  # Hangul and everything else


def merge_speaker_text(text: str, speaker_text: str) -> Tuple[str, str]:
    """(speaker text + separator + text, the separator stripped): the text the model continues from the profile."""
    speaker_text = speaker_text.strip()
    sep = _separator(speaker_text)
    ends = ("。", "？", "！", "?", "!") if sep == "。" else (".", "?", "!")
    rs = ""
    if speaker_text:
        if speaker_text[-1] not in ends:
            rs = sep
        elif sep != "。":
            rs = " "
    return speaker_text + rs + text.strip(), rs.strip()


# ------------------------------------------------------------------------------------------------ chunking

def _is_cjk(text: Union[str, Sequence[str]]) -> bool:
    """outetts' `check_language`; on a list it compares each element (a word) with the range bounds."""
    return any("\u3040" <= c <= "\u309f" or "\u30a0" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


def _words(text: str) -> List[str]:
    if not text.strip():
        return []
    if _is_cjk(text):
        try:
            import MeCab
        except ImportError:
            raise TextError("Japanese/Chinese text needs MeCab to be split into words as outetts does: "
                            'pip install "voiceport[ja]"') from None
        return MeCab.Tagger("-Owakati").parse(text).strip().split()
    return text.split()


def split_sentences(text: str) -> List[str]:
    parts = re.split(r"([.!?。！？︕︖]+\s*)", text)
    out = []
    for i in range(0, len(parts), 2):
        s = parts[i] + (parts[i + 1] if i + 1 < len(parts) else "")
        if s.strip():
            out.append(s.strip())
    return out


def _join(words: Sequence[str], cjk_probe: Union[str, Sequence[str]]) -> str:
    return ("" if _is_cjk(cjk_probe) else " ").join(words)


def chunk_text(text: str, min_words: int = 10, max_words: int = 30) -> List[str]:
    """Split a long text into chunks of about `min_words`..`max_words` words, at sentence ends where possible."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
    if not text:
        return []
    chunks: List[str] = []
    current, n_current = "", 0
    for sentence in split_sentences(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        words = _words(sentence)
        if len(words) > max_words:  # a long sentence: flush, then cut it every max_words words
            if current:
                chunks.append(current)
                current, n_current = "", 0
            for i in range(0, len(words), max_words):
                chunks.append(_join(words[i:i + max_words], sentence))
            continue
        if n_current + len(words) <= max_words:
            current = f"{current} {sentence}" if current else sentence
            n_current += len(words)
        elif n_current >= min_words:
            chunks.append(current)
            current, n_current = sentence, len(words)
        else:  # fill the current chunk up to max_words, carry the rest
            head, rest = words[:max_words - n_current], words[max_words - n_current:]
            if current:
                chunks.append(current + ("" if _is_cjk(head) else " ") + _join(head, head))
            else:
                chunks.append(_join(head, head))
            current, n_current = _join(rest, rest), len(rest)
    if current:
        chunks.append(current)
    return chunks
