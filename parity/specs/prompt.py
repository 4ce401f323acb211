"""Contract: OuteTTS v3 prompt ids, exact against outetts' own PromptProcessor (text normalisation, speaker
merge, the prompt string, transformers' tokenizer) over seeded cases: texts drawn from pieces that exercise every
normalisation rule and the tokenizer's edge cases, with no speaker, synthetic profiles and random profiles
(durations in and outside the `<|t_..|>` range, out-of-range and missing features)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from parity.contracts import Case, Contract, Section, ids_case, section

N_CASES = 160
WORDS = ["hello", "World", "it", "'s", "can", " 't", "I'm", "don't", "ok", "a", "Zoë", "naïve", "Привет", "мир",
         "Γειά", "café", "日本語", "こんにちは", "你好", "세계", "مرحبا", "2024", "3.14", "1,000", "10:30",
         "x" * 40, "<|im_end|>", "<|c1_5|>", "<|", "|>", "word ' s", "rock 'n", "'N", "ſ", "ÃƒÂ©", "Ã©", "â€™"]
PUNCT = [".", ",", "!", "?", ";", ":", "...", "…", "!!", "??", "?!", "-", "--", "—", "–", "−", "\"", "“", "”",
         "«", "»", "'", "‘", "’", "`", "´", "(", ")", "&", "%", "$", "#", "@", "\n", "\t", "  ", "\u200b",
         "\ufeff", "\u00ad", "\x07", "\x85", "ﬁ", "①", "Ⅻ", "ｆｕｌｌ"]


def _text(rng: np.random.Generator) -> str:
    mode = int(rng.integers(0, 3))
    if mode == 0:
        parts = [str(rng.choice(WORDS + PUNCT + [" "])) for _ in range(int(rng.integers(1, 41)))]
        return "".join(parts)
    if mode == 1:
        return " ".join(str(rng.choice(WORDS + PUNCT)) for _ in range(int(rng.integers(1, 31))))
    cps = rng.integers(32, 0x3000, int(rng.integers(1, 81)))
    return "".join(chr(int(c)) for c in cps if not 0xD800 <= c < 0xE000)


def _random_profile(rng: np.random.Generator, text: str) -> Dict[str, Any]:
    words = []
    for _ in range(int(rng.integers(1, 7))):
        frames = int(rng.integers(0, 9))
        dur = round(int(rng.integers(0, 2001)) / 100, 2) if rng.random() < 0.7 else float(rng.uniform(0, 60))
        feats = {k: int(rng.integers(-5, 151)) for k in ("energy", "spectral_centroid", "pitch") if rng.random() < 0.7}
        words.append({"word": str(rng.choice(WORDS)), "duration": dur, "c1": rng.integers(0, 1024, frames).tolist(),
                      "c2": rng.integers(0, 1024, frames).tolist(), "features": feats})
    t = text if rng.random() < 0.5 else " ".join(w["word"] for w in words)
    return {"text": t, "words": words, "global_features": {}, "interface_version": 3}


def _speakers() -> List[Optional[Dict[str, Any]]]:
    from impl.seeded.speaker import synthetic_speaker

    odd = synthetic_speaker(6, "odd values! ")
    odd["words"][0]["duration"] = 25.5           # no <|t_25.50|> token: BPE-encoded text, as in outetts
    odd["words"][0]["features"] = {"energy": 150}  # out of range; missing keys default to 0
    odd["words"][1]["duration"] = 1              # an int duration formats as 1.00
    odd["words"][1]["word"] = ""
    return [None, synthetic_speaker(3, "Hello there, this is a speaker."),
            synthetic_speaker(4, "no final punctuation here"), synthetic_speaker(5, "こんにちは 世界"), odd]


def cases(n: int = N_CASES):
    """[(text, speaker)] for case seeds 0..n-1 (deterministic, torch-free)."""
    fixed = _speakers()
    out = []
    for i in range(n):
        rng = np.random.default_rng([15, i])
        text = _text(rng)
        which = int(rng.integers(0, len(fixed) + 1))
        speaker = _random_profile(rng, text) if which == len(fixed) else fixed[which]
        out.append((text, speaker))
    return out


def _tokenizer_dir():
    from impl.seeded import cache_dir
    from impl.seeded.outetts import build_tokenizer

    d = cache_dir("outetts") / "parity-tokenizer"
    if not (d / "tokenizer.json").is_file():
        build_tokenizer(d)
    return d


def record(quick: bool) -> Dict[str, Any]:
    from reference.outetts import PromptReference

    ref = PromptReference(_tokenizer_dir())
    ids, lengths = [], []
    for text, speaker in cases():
        if not ref.normalize(text):
            lengths.append(-1)  # outetts normalises it to nothing: impl must refuse it as empty
            continue
        got = ref.prompt_ids(text, speaker)
        ids += got
        lengths.append(len(got))
    return {"n": N_CASES, "ids": np.asarray(ids, np.int16 if max(ids, default=0) < 2 ** 15 else np.int32),
            "lengths": np.asarray(lengths, np.int32)}


def recorded_cases(rec: Dict[str, Any]):
    """(case name, text, speaker, recorded prompt length; < 0: outetts normalised the text to empty) of each case of
    the record, named alike in every section that checks them (impl's and a port's)."""
    for i, ((text, speaker), n) in enumerate(zip(cases(int(rec["n"])), rec["lengths"].tolist())):
        yield (f"case {i} ({'no speaker' if speaker is None else str(len(speaker['words'])) + ' words'}, "
               f"text {text[:24]!r})", text, speaker, n)


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl.outetts.prompt import prompt_ids
    from impl.outetts.text import TextError
    from impl.outetts.tokenizer import Tokenizer

    tok = Tokenizer(_tokenizer_dir())
    out, at, empty = [], 0, 0
    for name, text, speaker, n in recorded_cases(rec):
        if n < 0:
            empty += 1
            try:
                prompt_ids(tok, text, speaker)
                out.append(Case(name, 1.0, 0.0, False, "exact", "outetts normalises it to empty; impl built a prompt"))
            except TextError:
                out.append(Case(name, 0.0, 0.0, True, "exact", "empty after normalisation on both sides"))
            continue
        want = rec["ids"][at:at + n].tolist()
        at += n
        try:
            got = prompt_ids(tok, text, speaker)
        except Exception as e:  # noqa: BLE001 -- a crash on a case outetts handles is a divergence
            out.append(Case(name, float(n), 0.0, False, "exact", f"impl raised {type(e).__name__}: {e}"))
            continue
        out.append(ids_case(name, got, want))
    return section("prompt ids", f"impl.outetts.prompt.prompt_ids vs outetts' PromptProcessor + transformers' "
                   f"tokenizer, {len(out)} seeded text/profile cases ({empty} empty after normalisation)", out,
                   "exact: token ids", "differing ids", [f"{int(rec['ids'].size)} ids compared in all"])


CONTRACT = Contract("prompt-ids", record, check)
