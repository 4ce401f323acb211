"""Contract: the speaker profile JSON equals outetts' own (`version/v3/audio_processor.py` create_speaker_from_dict)
on the repo's LibriVox clips (fixtures/data/librivox), given the same words (their pocketsphinx alignments): the
text, every word's spelling, duration, c1/c2 codes and feature buckets, the global buckets, and the serialised file.
Both sides encode with the real 24 kHz speech DAC on the same seeded weights (impl: MLX through
impl.dac.interface; outetts: its DacInterface over the official DAC).

Buckets are `round(value x 100)`: exact, except a value the reference puts within 1e-4 of a rounding edge
(x.5), where fp32 summation order may fall either side; such values are skipped and counted. The values before
rounding (value x 100, impl's `feature_values` tapped where the profile calls it, outetts' recorded by
reference.speaker) are compared too, every one, against outetts on the same samples in float64, within K_RAW x
that value's fp32 floor (`raw_floor`; no value is skipped there).
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


EPS32 = float(np.finfo(np.float32).eps)
K_RAW = 10.0  # x the fp32 floor: impl and outetts are two fp32 roundings of one formula


def pitch_floor(audio: np.ndarray, sr: int, min_freq: float = 75.0, max_freq: float = 600.0,
                frame_length: int = 400, hop_length: int = 160, threshold: float = 0.3) -> float:
    """The fp32 noise floor of outetts' pitch value x 100 on `audio` ((L,) or (C, L)), derived, not measured.

    outetts' tracker (`calculate_pitch`) takes each frame's FFT autocorrelation, its peak, and a parabolic
    interpolation delta = (a - g) / 2(a - 2b + g) through the peak's neighbours. Here the same steps run in float64
    and one fp32 rounding at the frame's autocorrelation scale, e = eps32 x ac[0], is propagated to first order:
    |d delta| <= e (1 / |D| + 2 |a - g| / D^2) with D = a - 2b + g, and pitch = sr / (i + delta). Where D is small
    (a flat peak, or a "peak" at the edge of the search range on a near-linear slope) that is large: the value is
    ill-conditioned and fp32 implementations legitimately disagree. Decisions within K_RAW x 2e (the runner-up lag
    or the voicing threshold) add the whole jump they can cause. The frames' bounds are averaged as the mean pitch
    is, then scaled as `extract_single_pitch_value` and `scale_values` do (/ (max - min) x 100)."""
    x = np.asarray(audio, np.float64)
    x = (x.mean(axis=0) if x.ndim > 1 else x).reshape(-1)
    x = np.pad(x, (0, (frame_length - x.shape[0] % hop_length) % hop_length))
    n_frames = (x.shape[0] - frame_length) // hop_length + 1
    if n_frames < 1:
        return 0.0
    idx = np.arange(frame_length)[None, :] + hop_length * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)  # periodic Hann
    f = np.fft.rfft(x[idx] * window, n=2 * frame_length, axis=1)
    ac = np.fft.irfft(f.real ** 2 + f.imag ** 2, axis=1)[:, :frame_length]
    lo, hi = max(1, int(sr / max_freq)), min(frame_length, int(sr / min_freq))

    def clip(p: float) -> float:
        return float(np.clip(p, min_freq, max_freq))

    def pitch_at(row: np.ndarray, i: int):
        i = int(np.clip(i, 1, frame_length - 2))
        a, b, g = row[i - 1], row[i], row[i + 1]
        d = a - 2 * b + g + 1e-8
        period = (i + 0.5 * (a - g) / d) / sr
        return (1.0 / period if period > 0 else 0.0), d, a - g

    total = 0.0
    for row in ac:
        e = EPS32 * abs(row[0])
        cand = row[lo:hi]
        order = np.argsort(cand)[::-1]
        p, d, a_g = pitch_at(row, int(order[0]) + lo)
        voiced = cand[order[0]] / (row[0] + 1e-8) > threshold
        here = clip(p if voiced else 0.0)
        bound = 0.0
        if voiced and p > 0:
            dp = p * p / sr * e * (1 / abs(d) + 2 * abs(a_g) / d ** 2)
            bound = (clip(p + dp) - clip(p - dp)) / 2
        if len(order) > 1 and cand[order[0]] - cand[order[1]] <= K_RAW * 2 * e:
            p2 = pitch_at(row, int(order[1]) + lo)[0]
            bound = max(bound, abs(clip(p2 if voiced else 0.0) - here))
        if abs(cand[order[0]] - threshold * row[0]) <= K_RAW * 2 * e:
            bound = max(bound, abs(clip(p) - clip(0.0)))
        total += bound
    return total / n_frames / (max_freq - min_freq) * 100


def raw_floor(key: str, w32: float, w64: float, pitch: float = 0.0) -> float:
    """The fp32 floor of one value x 100: outetts' own fp32-vs-fp64 error on it, at least 4 ulp of the value, and
    for pitch at least `pitch_floor` of its audio (outetts' own error can be ~0 by luck on an ill-conditioned one)."""
    floor = max(abs(w32 - w64), 4 * EPS32 * abs(w64))
    return max(floor, pitch) if key == "pitch" else floor


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


def raw_cases(name: str, got: List[List[float]], want: List[List[float]], want64: List[List[float]],
              pitch: List[float]) -> List[Case]:
    """One case per feature over the global and every word's value x 100 (lists in the reference's order: global
    first): the largest |impl - outetts fp64| / `raw_floor`, within K_RAW."""
    if len(got) != len(want):
        return [Case(f"{name}: values before rounding", float(abs(len(got) - len(want))), 0.0, False, "exact",
                     f"{len(got)} feature extractions != official {len(want)}")]
    g, w, w64 = (np.asarray(v, np.float64).reshape(-1, len(FEATURES)) for v in (got, want, want64))
    cases = []
    for k, key in enumerate(FEATURES):
        floors = np.array([raw_floor(key, w[r, k], w64[r, k], pitch[r]) for r in range(w.shape[0])])
        ratio = np.abs(g[:, k] - w64[:, k]) / np.maximum(floors, np.finfo(np.float64).tiny)
        i = int(np.argmax(ratio)) if ratio.size else 0
        err = float(ratio[i]) if ratio.size else 0.0
        where = "global" if i == 0 else f"words[{i - 1}]"
        cases.append(Case(f"{name}: {key} x 100 before rounding ({ratio.size} values, error / fp32 floor)", err,
                          K_RAW, bool(err <= K_RAW), "bound",
                          f"worst at {where}: impl {g[i, k]!r} vs official {w[i, k]!r} (fp64 {w64[i, k]!r}, floor "
                          f"{floors[i]:.3g})" if ratio.size else ""))
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
        seen: List[tuple] = []
        prof = ref.create_speaker(clip.wav, pth, words, text, proc=proc, raw=raw, seen=seen)
        raw64 = [[ref.raw_features(np.atleast_2d(a.astype(np.float64)), sr)[k] for k in FEATURES] for a, sr in seen]
        out.append({"clip": name, "json": json.dumps(prof), "raw": [list(r) for r in raw], "raw64": raw64,
                    "pitch_floor": [pitch_floor(a, sr) for a, sr in seen]})
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
        cases += raw_cases(name, got_raw[-1:] + got_raw[:-1], p["raw"], p["raw64"], p["pitch_floor"])  # impl: words, then global
        skipped += s
    return section("speaker profile", "impl.speaker.create_profile (MLX DAC) vs outetts' create_speaker_from_dict "
                   "(official DAC), same words, on the LibriVox clips (and one from a word past the codes' lead-in): "
                   "text, words, durations, c1/c2, feature "
                   "buckets and their values before rounding, file bytes", cases,
                   f"exact; buckets within {EDGE:g} of a rounding edge of the reference's value skipped; values x 100 before rounding within "
                   f"{K_RAW:g} x their fp32 floor (outetts fp32 vs fp64, at least 4 ulp; pitch at least its derived "
                   f"conditioning floor, parity.specs.speaker.pitch_floor)",
                   "mismatches",
                   [f"{skipped} feature bucket(s) skipped: the reference's value x 100 within {EDGE:g} of k + 0.5"])


CONTRACT = Contract("speaker-profile", record, check, version=3)  # 2: + the late-start profile; 3: + raw64, pitch_floor
