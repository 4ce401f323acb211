"""The transcript-mismatch study: how often `ForcedAligner` (impl/speaker/align.py) refuses a right transcript
(false rejection) and how often it refuses a wrong one (detection), over every utterance this machine can make.

Utterances (each aligned with its right transcript, then with five wrong ones):
- LibriVox: every clip of the folders given (fixtures/data/librivox, plus any `--data DIR`; same file names are
  read once), whole, and cut into every run of 3, 5 and 8 words at the
  word boundaries of its pocketsphinx alignment (the `.json` beside it), up to 0.1 s of the pause around kept;
- LibriVox held: the last word of each whole clip and of each 5-word cut time-stretched x2 / x3 (x2.5 for cuts;
  librosa's phase vocoder), the way a reader holds a final word;
- espeak-ng: sentences x voices x rates (libespeak-ng, 0.3 s of digital silence around);
- espeak-ng held: at 150 words/min, the last word stretched x2.5 (its exact span from espeak's word events).
- variants of the LibriVox whole clips and 5-word cuts and of espeak-ng at 150 words/min (`variant`): white or
  pink noise at 20/10/5 dB SNR, 30 dB quieter, 12 dB louder and clipped, the whole utterance 0.7x / 1.5x as long,
  a late start (2 s of room tone before), the middle word held x2.5.
Wrong transcripts: the first, a middle or the last word dropped; a sentence spoken nowhere in the study
("wrong sentence"); the transcript of another utterance of the same source ("other clip").

    ./vp python tools/mismatch_study.py [--quick] [--jobs 2] [--data DIR ...]

Prints progress with running totals, then one table (refused / cases per source and case) and which check
refused each wrong transcript. The numbers are stored in bench/cpu_runs/speaker-*.json (docs/performance.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from multiprocessing import Pool
from pathlib import Path
from typing import List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [  # espeak-ng: said by every voice at every rate
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore and the shells she sells are surely seashells",
    "a journey of a thousand miles begins with a single step",
    "please call stella and ask her to bring these things with her from the store",
    "we will meet at the old library at noon on monday if the weather is fine",
    "my grandmother kept a small garden full of roses tomatoes and beans",
    "the train was late again so we walked home through the park",
    "nobody knew where the old captain had hidden the key",
    "he said that it was",
    "after dinner the children played cards until it was dark",
]
WRONG = [  # spoken nowhere in the study
    "the committee will publish its annual report before the end of november",
    "turn left at the bakery and follow the river until you see the bridge",
    "several engineers examined the broken pump but could not agree",
    "music drifted across the harbour while fishermen mended their nets",
]
VOICES = ["en-us", "en-us+f3", "en-gb"]
RATES = [80, 150, 230]  # words per minute (espeak-ng's range is 80..450)
QUICK_VOICES, QUICK_RATES = ["en-us", "en-us+f3"], [80, 150]
SPAN_LENGTHS = (3, 5, 8)
CASES = ("correct", "drop first", "drop middle", "drop last", "wrong sentence", "other clip")


# ------------------------------------------------------------------------------------------- utterances

def _librivox_clips(folders: List[Path]) -> List[Tuple[str, np.ndarray, int, List[dict]]]:
    """[(name, audio, sr, word records {t, b, d} without <sil>)], each file name once."""
    import soundfile as sf

    seen, out = set(), []
    for folder in folders:
        for js in sorted(folder.glob("*.json")):
            if js.name in seen or not js.with_suffix(".wav").is_file():
                continue
            seen.add(js.name)
            x, sr = sf.read(js.with_suffix(".wav"), dtype="float32")
            words = [dict(w, t=w["t"].split("(")[0]) for w in json.loads(js.read_text())["w"] if w["t"] != "<sil>"]
            out.append((js.stem.rsplit("-", 1)[-1], x, sr, words))
    return out


def _stretch_last(x: np.ndarray, sr: int, start: float, end: float, factor: float) -> np.ndarray:
    """x with [start, end) s time-stretched `factor` times longer (phase vocoder), the rest untouched."""
    import librosa

    a, b = int(round(start * sr)), int(round(end * sr))
    held = librosa.effects.time_stretch(x[a:b], rate=1.0 / factor, n_fft=512, hop_length=128)
    return np.concatenate([x[:a], held.astype(np.float32), x[b:]])


def librivox_utterances(folders: List[Path], quick: bool) -> List[dict]:
    utts = []
    for name, x, sr, words in _librivox_clips(folders):
        n = len(words)
        ends = [w["b"] + w["d"] for w in words]
        for length in (n,) + tuple(k for k in SPAN_LENGTHS if k < n):
            for i in range(0, n - length + 1, 3 if quick else 1):
                j = i + length - 1
                lead = min(0.1, words[i]["b"] - (ends[i - 1] if i else 0.0))
                tail = min(0.1, (words[j + 1]["b"] if j + 1 < n else len(x) / sr) - ends[j])
                a, b = words[i]["b"] - lead, ends[j] + tail
                seg = x[int(round(a * sr)):int(round(b * sr))]
                text = " ".join(w["t"] for w in words[i:j + 1])
                spans = [(w["b"] - a, w["b"] + w["d"] - a) for w in words[i:j + 1]] if length in (n, 5) else None
                utts.append(dict(source="librivox", tag=f"{name}[{i}:{j + 1}]", audio=seg, sr=sr, text=text,
                                 spans=spans))
                factors = (2.0, 3.0) if length == n else (2.5,) if length == 5 else ()
                for f in factors:
                    held = _stretch_last(seg, sr, words[j]["b"] - a, ends[j] - a, f)
                    utts.append(dict(source="librivox held", tag=f"{name}[{i}:{j + 1}] x{f}", audio=held, sr=sr,
                                     text=text))
    return utts


def espeak_utterances(quick: bool) -> List[dict]:
    from bench.bench_speaker import PAD, Espeak

    es = Espeak()
    utts = []
    for voice in QUICK_VOICES if quick else VOICES:
        for rate in QUICK_RATES if quick else RATES:
            for text in SENTENCES[::2] if quick else SENTENCES:
                audio, sr, groups = es.synth(text, voice, rate)
                pad = np.zeros(int(PAD * sr), np.float32)
                spans = [(PAD + s, PAD + e) for _, _, s, e in groups] if rate == 150 else None
                utts.append(dict(source="espeak", tag=f"{voice}@{rate}", audio=np.concatenate([pad, audio, pad]),
                                 sr=sr, text=text, spans=spans))
                if rate == 150:
                    _, _, s, e = groups[-1]  # the last word group's span (s)
                    held = _stretch_last(audio, sr, s, min(e, len(audio) / sr), 2.5)
                    utts.append(dict(source="espeak held", tag=f"{voice}@{rate} x2.5",
                                     audio=np.concatenate([pad, held, pad]), sr=sr, text=text))
    return utts


VARIANTS = ("noise 20 dB", "noise 10 dB", "noise 5 dB", "quiet", "loud", "fast", "slow", "late start",
            "held middle")


def _stretch(x: np.ndarray, factor: float) -> np.ndarray:
    import librosa

    return librosa.effects.time_stretch(x, rate=1.0 / factor, n_fft=512, hop_length=128).astype(np.float32)


def _noise(n: int, pink: bool, rng) -> np.ndarray:
    """White or pink (1/f power: white shaped by 1/sqrt(f) in the spectrum) noise of unit RMS."""
    w = rng.standard_normal(n)
    if pink:
        spec = np.fft.rfft(w)
        spec[1:] /= np.sqrt(np.arange(1, spec.size))
        spec[0] = 0.0
        w = np.fft.irfft(spec, n)
    return (w / np.sqrt(np.mean(w ** 2))).astype(np.float32)


def variant(u: dict, name: str, k: int) -> dict:
    """The utterance `u` changed the way real recordings differ (its transcript stays right):
    - noise N dB: white (even k) or pink (odd k) noise at N dB below the speech's RMS over its loud frames;
    - quiet: 30 dB down (int16 at the aligner: ~1/30 of full scale); loud: 12 dB up, clipped at full scale;
    - fast / slow: the whole utterance time-stretched to 0.7x / 1.5x its length (phase vocoder);
    - late start: 2 s of room tone (white noise 60 dB below the speech) before it, 0.5 s after;
    - held middle: its middle word (`u['spans']`) stretched x2.5, a speaker dwelling on it."""
    x, sr = u["audio"], u["sr"]
    rng = np.random.default_rng(k)
    frame = sr // 100
    levels = np.sqrt(np.mean(x[:len(x) // frame * frame].reshape(-1, frame).astype(np.float64) ** 2, axis=1))
    speech_rms = float(np.sqrt(np.mean(levels[levels > 0.1 * levels.max()] ** 2)))
    if name.startswith("noise"):
        snr = float(name.split()[1])
        y = x + speech_rms * 10 ** (-snr / 20) * _noise(len(x), k % 2 == 1, rng)
    elif name == "quiet":
        y = x * 10 ** (-30 / 20)
    elif name == "loud":
        y = np.clip(x * 10 ** (12 / 20), -1.0, 1.0)
    elif name in ("fast", "slow"):
        y = _stretch(x, 0.7 if name == "fast" else 1.5)
    elif name == "late start":
        room = speech_rms * 1e-3 * _noise(int(2.5 * sr), False, rng)
        y = np.concatenate([room[:2 * sr], x, room[2 * sr:]])
    elif name == "held middle":
        s, e = u["spans"][len(u["spans"]) // 2]
        y = _stretch_last(x, sr, s, e, 2.5)
    else:
        raise ValueError(name)
    tag = f"{u['tag']} {name}"
    return dict(source=f"{u['source']} {name}", tag=tag, audio=y.astype(np.float32), sr=sr, text=u["text"])


def variant_utterances(utts: List[dict], quick: bool) -> List[dict]:
    """Every variant of the base utterances that carry word spans: LibriVox whole clips and 5-word cuts, espeak
    at 150 words/min (quick: every other one)."""
    base = [u for u in utts if u.get("spans")]
    base = base[::2] if quick else base
    return [variant(u, name, k) for k, u in enumerate(base) for name in VARIANTS]


def wrong_transcripts(utts: List[dict]) -> None:
    """Attach {case: transcript} to each utterance."""
    by_source = defaultdict(list)
    for u in utts:
        by_source[u["source"].split()[0]].append(u["text"])
    for k, u in enumerate(utts):
        t = u["text"].split()
        others = [s for s in by_source[u["source"].split()[0]] if s != u["text"]]
        u["cases"] = {"correct": u["text"], "drop first": " ".join(t[1:]), "drop middle": " ".join(
            t[:len(t) // 2] + t[len(t) // 2 + 1:]), "drop last": " ".join(t[:-1]),
            "wrong sentence": WRONG[k % len(WRONG)], "other clip": others[(7 * k) % len(others)]}


FIXTURES = [  # (name, voice, rate, text, last word stretched x): fixtures/data/espeak, tests/test_speaker_mismatch.py
    ("held_was", "en-us", 150, "he said that it was", 2.5),
    ("slow_train", "en-us+f3", 80, "the train was late again so we walked home through the park", 1.0),
    ("fast_captain", "en-gb", 230, "nobody knew where the old captain had hidden the key", 1.0),
]


def write_fixtures(folder: Path) -> None:
    """The stored espeak-ng clips of the tests: 16 kHz 16-bit mono wav + the transcript (.txt)."""
    import soundfile as sf

    from bench.bench_speaker import PAD, Espeak
    from impl import audio as A

    es = Espeak()
    folder.mkdir(parents=True, exist_ok=True)
    for name, voice, rate, text, factor in FIXTURES:
        audio, sr, groups = es.synth(text, voice, rate)
        if factor != 1.0:
            _, _, s, e = groups[-1]
            audio = _stretch_last(audio, sr, s, min(e, len(audio) / sr), factor)
        pad = np.zeros(int(PAD * sr), np.float32)
        x = A.resample(np.concatenate([pad, audio, pad]), sr, 16000)
        sf.write(folder / f"{name}.wav", np.clip(x, -1.0, 1.0 - 2 ** -15), 16000, subtype="PCM_16")
        (folder / f"{name}.txt").write_text(text + "\n")
        print(f"{folder / name}.wav: {len(x) / 16000:.2f} s, {voice} at {rate} words/min"
              + (f", last word held x{factor}" if factor != 1.0 else ""))


# ------------------------------------------------------------------------------------------------ run

def _kind(message: str) -> str:
    if "confidence" in message:
        return "confidence"
    if "there is speech" in message:
        return "loud pause"
    if "would last" in message:
        return "stretched word"
    if "no alignment" in message:
        return "no path"
    return "other"


_ALIGNER = None


def _run(u: dict) -> List[Tuple[str, str, str, str, str]]:
    """[(source, tag, case, verdict: 'accepted' or the refusal, transcript)] for one utterance."""
    global _ALIGNER
    from impl.speaker.align import AlignmentError, ForcedAligner

    if _ALIGNER is None:
        _ALIGNER = ForcedAligner()
    out = []
    for case, text in u["cases"].items():
        try:
            _ALIGNER.align(u["audio"], u["sr"], text)
            verdict = "accepted"
        except AlignmentError as e:
            verdict = str(e)
        out.append((u["source"], u["tag"], case, verdict, text))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a third of the cuts, 2 voices x 2 rates x 5 sentences, "
                    "variants of every other base")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--data", action="append", default=[], metavar="DIR", help="more LibriVox folders")
    ap.add_argument("--fixtures", metavar="DIR", help="write the tests' stored espeak-ng clips there and stop")
    args = ap.parse_args(argv)
    if args.fixtures:
        write_fixtures(Path(args.fixtures))
        return 0
    folders = [ROOT / "fixtures" / "data" / "librivox"] + [Path(d) for d in args.data]
    t0 = time.time()
    utts = librivox_utterances(folders, args.quick)
    try:
        utts += espeak_utterances(args.quick)
    except RuntimeError as e:
        print(f"espeak-ng: {e}: synthetic utterances left out", file=sys.stderr)
    utts += variant_utterances(utts, args.quick)
    wrong_transcripts(utts)
    total = len(utts) * len(CASES)
    print(f"{len(utts)} utterances x {len(CASES)} transcripts = {total} alignments "
          f"({Counter(u['source'] for u in utts)})", flush=True)
    rows: List[Tuple[str, str, str, str, str]] = []
    with Pool(args.jobs) as pool:
        for k, res in enumerate(pool.imap_unordered(_run, utts, chunksize=2), 1):
            rows += res
            for source, tag, case, verdict, text in res:
                if case == "correct" and verdict != "accepted":
                    print(f"  false rejection: {source} {tag} {text!r}: {verdict}", flush=True)
            fr = sum(1 for r in rows if r[2] == "correct" and r[3] != "accepted")
            det = sum(1 for r in rows if r[2] != "correct" and r[3] != "accepted")
            wrong = sum(1 for r in rows if r[2] != "correct")
            if k % 10 == 0 or k == len(utts):
                print(f"[{k}/{len(utts)} utterances, {len(rows)}/{total} alignments, {time.time() - t0:.0f} s] "
                      f"right transcripts refused {fr}/{k}, wrong ones refused {det}/{wrong}", flush=True)
    report(rows)
    return 0


def report(rows) -> None:
    sources = sorted({r[0] for r in rows})
    cell = defaultdict(lambda: [0, 0])  # (source, case) -> [refused, n]
    kinds = defaultdict(Counter)
    texts = {}
    for source, tag, case, verdict, text in rows:
        texts[source, tag] = text if case == "correct" else texts.get((source, tag))
        for s in (source, "all"):
            cell[s, case][1] += 1
            cell[s, case][0] += verdict != "accepted"
        if verdict != "accepted":
            kinds[case][_kind(verdict)] += 1
    width = max(len(s) for s in sources + ["all"])

    def fmt(refused, n):
        return f"{refused}/{n} {100 * refused / max(n, 1):.0f}%"

    print("\nrefused / cases (correct: false rejections; the others: detections)")
    print(f"{'source':{width}s} | " + " | ".join(f"{c:>14s}" for c in CASES) + " | all wrong")
    for s in sources + ["all"]:
        det = [sum(cell[s, c][i] for c in CASES[1:]) for i in (0, 1)]
        print(f"{s:{width}s} | " + " | ".join(f"{fmt(*cell[s, c]):>14s}" for c in CASES) + f" | {fmt(*det)}")
    print("\nwhich check refused (per case): " + "; ".join(
        f"{c}: " + ", ".join(f"{k} {n}" for k, n in kinds[c].most_common()) for c in CASES if kinds[c]))
    for source, tag, case, verdict, _ in rows:
        if case == "correct" and verdict != "accepted":
            print(f"FALSE REJECTION {source} {tag} ({texts[source, tag]!r}): {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
