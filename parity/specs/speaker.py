"""Contract: the speaker profile JSON equals outetts' own (`version/v3/audio_processor.py` create_speaker_from_dict)
on the repo's LibriVox clips (fixtures/data/librivox), given the same words (their pocketsphinx alignments): the
text, every word's spelling, duration, c1/c2 codes and feature buckets, the global buckets, and the serialised file.
Both sides encode with the real 24 kHz speech DAC on the same seeded weights (impl: MLX through
impl.dac.interface; outetts: its DacInterface over the official DAC).

Buckets are `round(value x 100)`: exact, except a value the reference puts within 1e-4 of a rounding edge
(x.5), where fp32 summation order may fall either side; such values are skipped and counted. The values before
rounding (value x 100, impl's `feature_values` tapped where the profile calls it, outetts' recorded by
reference.speaker) are compared too, every one, relative error within RAW_REL (no value is skipped there).
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, Dict, List

import numpy as np

from parity.contracts import Case, Contract, Section, ids_case, section
from parity.doubles import LIBRIVOX, load_librivox

EDGE = 1e-4
FEATURES = ("energy", "spectral_centroid", "pitch")


def reference_words(clip) -> List[Dict[str, Any]]:
    """The clip's pocketsphinx alignment, variant marks '(2)' removed."""
    return [{"word": r["t"].split("(")[0], "start": r["b"], "end": round(r["b"] + r["d"], 3)} for r in clip.words]


LATE_START = 0.3  # s: past the 20-code lead-in (MAX_EXTENSION / 75 Hz = 0.267 s) that clamps a slice start to 0


def profile_cases(clips) -> List[tuple]:
    """(name, clip, words, text) of every profile compared: each clip with its transcript, and the first clip from
    its first word starting after LATE_START (on the full clips the first word starts within the lead-in, where
    the first slice start is clamped to frame 0 whatever its rounding)."""
    out = [(f"LibriVox {n}", clips[n], reference_words(clips[n]), clips[n].text) for n in LIBRIVOX]
    words = reference_words(clips[LIBRIVOX[0]])
    late = next(i for i, w in enumerate(words) if w["start"] >= LATE_START)
    out.append((f"LibriVox {LIBRIVOX[0]} from {words[late]['word']!r} ({words[late]['start']:g} s)",
                clips[LIBRIVOX[0]], words[late:], " ".join(w["word"] for w in words[late:])))
    return out


# value x 100 before rounding, relative error limits: energy and centroid 16 ulp (outetts' own fp32-vs-fp64 error on
# LibriVox word slices is <= 2.1e-7 relative, parity/test_speaker_raw.py); pitch 6e-4, 2x the largest impl-vs-outetts
# pitch error on this section's words (3.0e-4, 2026-12-06: the parabolic peak interpolation divides by
# alpha - 2 beta + gamma, which amplifies last-bit autocorrelation differences on flat peaks)
RAW_REL = {"energy": 16 * 1.1920929e-07, "spectral_centroid": 16 * 1.1920929e-07, "pitch": 6e-4}


@contextlib.contextmanager
def impl_raw_values(raw: List[List[float]]):
    """While open, every feature extraction of impl.speaker.profile appends its values x 100 (before rounding) to
    `raw`, in call order (impl: each word, then the global features). A tap in parity/: impl is unchanged."""
    from impl.speaker import features as F
    from impl.speaker import profile

    bucketed = profile.extract_audio_features

    def tap(audio, sr):
        values = F.feature_values(audio, sr)
        raw.append([values[k] * 100 for k in FEATURES])
        return bucketed(audio, sr)

    profile.extract_audio_features = tap
    try:
        yield raw
    finally:
        profile.extract_audio_features = bucketed


def raw_cases(name: str, got: List[List[float]], want: List[List[float]]) -> List[Case]:
    """One case per feature: the largest relative error of impl's value x 100 against outetts' over the global and
    every word's (lists in the reference's order: global first), against RAW_REL."""
    if len(got) != len(want):
        return [Case(f"{name}: values before rounding", float(abs(len(got) - len(want))), 0.0, False, "exact",
                     f"{len(got)} feature extractions != official {len(want)}")]
    g = np.asarray(got, np.float64).reshape(-1, len(FEATURES))
    w = np.asarray(want, np.float64).reshape(-1, len(FEATURES))
    rel = np.abs(g - w) / np.maximum(np.abs(w), 1.0)
    cases = []
    for k, key in enumerate(FEATURES):
        i = int(np.argmax(rel[:, k])) if rel.shape[0] else 0
        err = float(rel[i, k]) if rel.shape[0] else 0.0
        where = "global" if i == 0 else f"words[{i - 1}]"
        cases.append(Case(f"{name}: {key} x 100 before rounding ({rel.shape[0]} values)", err, RAW_REL[key],
                          bool(err <= RAW_REL[key]), "bound",
                          f"worst at {where}: impl {g[i, k]!r} vs official {w[i, k]!r}" if rel.shape[0] else ""))
    return cases


def near_edge(raw: float, edge: float = EDGE) -> bool:
    """True when `raw` (value x 100) lies within `edge` of a rounding edge k + 0.5."""
    return abs((raw - np.floor(raw)) - 0.5) < edge


def record(quick: bool) -> Dict[str, Any]:
    from parity.specs.dac_interface import _pths
    from reference import speaker as ref

    pth = _pths()["speech"]
    proc = ref.processor(pth)
    out = []
    for name, clip, words, text in profile_cases(load_librivox()):
        raw: List[List[float]] = []
        prof = ref.create_speaker(clip.wav, pth, words, text, proc=proc, raw=raw)
        out.append({"clip": name, "json": json.dumps(prof), "raw": [list(r) for r in raw]})
    return {"profiles": out}


def compare_profile(name: str, got: Dict[str, Any], want: Dict[str, Any], raw: List[List[float]]):
    """Cases for one profile (text, words, durations, codes, buckets, file) and the number of skipped buckets."""
    cases: List[Case] = []
    same = list(got) == list(want) and got.get("text") == want["text"]
    cases.append(Case(f"{name}: keys + text", 0.0 if same else 1.0, 0.0, same, "exact", "" if same else
                      f"keys {list(got)} text {got.get('text')!r} != {list(want)} {want['text']!r}"))
    gw, ww = got.get("words", []), want["words"]
    cases.append(ids_case(f"{name}: words", [w.get("word") for w in gw], [w["word"] for w in ww]))
    skipped = 0
    dur_bad = [i for i, (g, w) in enumerate(zip(gw, ww)) if g.get("duration") != w["duration"]]
    cases.append(Case(f"{name}: durations", float(len(dur_bad)), 0.0, not dur_bad and len(gw) == len(ww), "exact",
                      f"words[{dur_bad[0]}] {gw[dur_bad[0]].get('duration')} != {ww[dur_bad[0]]['duration']}"
                      if dur_bad else ""))
    for cb in ("c1", "c2"):
        g = [c for w in gw for c in w.get(cb, [])]
        v = [c for w in ww for c in w[cb]]
        case = ids_case(f"{name}: {cb} codes", g, v)
        cases.append(case)
    bad, n = [], 0
    for i, (wd, rw) in enumerate([(want["global_features"], raw[0] if raw else [])] +
                                 [(w["features"], raw[1 + j] if 1 + j < len(raw) else []) for j, w in enumerate(ww)]):
        gd = got.get("global_features") if i == 0 else (gw[i - 1].get("features") if i - 1 < len(gw) else None)
        where = "global_features" if i == 0 else f"words[{i - 1}].features"
        for k, key in enumerate(FEATURES):
            if rw and k < len(rw) and near_edge(rw[k]):
                skipped += 1
                continue
            n += 1
            if gd is None or gd.get(key) != wd.get(key):
                bad.append(f"{where}.{key}: {None if gd is None else gd.get(key)} != {wd.get(key)}")
    cases.append(Case(f"{name}: feature buckets ({n} compared)", float(len(bad)), 0.0, not bad, "exact",
                      bad[0] if bad else ""))
    same_file = json.dumps(got, indent=2) == json.dumps(want, indent=2)
    cases.append(Case(f"{name}: JSON file bytes", 0.0 if same_file else 1.0, 0.0, same_file, "exact",
                      "" if same_file else "serialised profiles differ"))
    return cases, skipped


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl import dac
    from impl.dac.interface import DacInterface
    from impl.seeded.dac import seeded_checkpoint
    from impl.speaker.align import GivenWords
    from impl.speaker.profile import create_profile

    codec = DacInterface(dac.load(seeded_checkpoint("24khz_speech", 0)))
    cases, skipped = [], 0
    recorded = {p["clip"]: p for p in rec["profiles"]}
    for name, clip, words, text in profile_cases(load_librivox()):
        p = recorded.get(name)
        if p is None:
            cases.append(Case(name, 1.0, 0.0, False, "exact", "no reference record (regenerate the fixtures)"))
            continue
        try:
            with impl_raw_values([]) as got_raw:
                got = create_profile(clip.wav, codec, GivenWords(words), text=text)
        except Exception as e:  # noqa: BLE001 -- a refusal where outetts makes a profile is a divergence
            cases.append(Case(name, 1.0, 0.0, False, "exact", f"impl raised {e}"))
            continue
        c, s = compare_profile(name, got, json.loads(p["json"]), p["raw"])
        cases += c
        cases += raw_cases(name, got_raw[-1:] + got_raw[:-1], p["raw"])  # impl: words, then global
        skipped += s
    return section("speaker profile", "impl.speaker.create_profile (MLX DAC) vs outetts' create_speaker_from_dict "
                   "(official DAC), same words, on the LibriVox clips (and one from a word past the codes' lead-in): "
                   "text, words, durations, c1/c2, feature "
                   "buckets and their values before rounding, file bytes", cases,
                   f"exact; buckets within {EDGE:g} of a rounding edge of the reference's value skipped; values x 100 before rounding within RAW_REL "
                   f"relative ({', '.join(f'{k} {v:.2g}' for k, v in RAW_REL.items())}: k x outetts' fp32 floor)",
                   "mismatches",
                   [f"{skipped} feature bucket(s) skipped: the reference's value x 100 within {EDGE:g} of k + 0.5"])


CONTRACT = Contract("speaker-profile", record, check, version=2)  # 2: + the late-start profile
