"""Speaker profiles: forced-alignment accuracy (word-boundary error, p50/p95 ms) and profile-creation time.

Accuracy datasets:
- espeak-ng: sentences synthesised by libespeak-ng (3 voices x 3 rates, 0.3 s of digital silence around), its
  WORD events (sample positions) give exact word starts; a word ends where the next word event or a pause
  phoneme starts. espeak merges unstressed words into their neighbour ("of a", "from the": one word event);
  boundaries inside such a group have no ground truth and are left out.
- LibriVox: the clips committed in fixtures/data/librivox with the alignments pocketsphinx's own `align` command
  made (machine alignments: agreement is a reproduction check, not accuracy).
Goal: p50 <= 20 ms, p95 <= 60 ms.

Time: `create_profile` on a 7 s clip (forced alignment + DAC encode + features), impl (MLX DAC) vs outetts'
create_speaker_from_dict (official torch DAC, same seeded weights, same words); quick mode: tiny DAC widths.

    python -m bench.bench_speaker            # accuracy table (+ profile time)
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import re
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from bench.timing import median_time
from parity.doubles import TINY, load_librivox

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore, and the shells she sells are surely seashells",
    "a journey of a thousand miles begins with a single step",
    "please call stella and ask her to bring these things with her from the store",
    "we will meet at the old library at noon on monday, if the weather is fine",
    "my grandmother kept a small garden full of roses, tomatoes and beans",
]
VOICES = ["en-us", "en-us+f3", "en"]
RATES = [140, 175, 210]  # words per minute
PAD = 0.3  # seconds of digital silence before and after


# --------------------------------------------------------------------------------------------- espeak-ng

class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h)."""
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


EV_WORD, EV_END, EV_MSG_TERMINATED, EV_PHONEME = 1, 5, 6, 7


class Espeak:
    """libespeak-ng through ctypes: synchronous synthesis with word and phoneme events."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng): no exact-boundary "
                               "speech to measure alignment on") from None
        # AUDIO_OUTPUT_SYNCHRONOUS = 2; options: espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_DONT_EXIT
        self.sr = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)
        if self.sr <= 0:
            raise RuntimeError("espeak_Initialize failed")
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
        self._cb = proto(self._callback)  # kept alive on self
        self.lib.espeak_SetSynthCallback(self._cb)
        self._chunks: List[np.ndarray] = []
        self._events: List[Tuple[int, int, int, int, bytes]] = []

    def _callback(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample, bytes(e.id).split(b"\0")[0]))
            i += 1
        return 0

    def synth(self, text: str, voice: str = "en-us", rate: int = 175):
        """-> (float32 audio, sr, [(first text word index, last text word index, start s, end s)])."""
        self._chunks, self._events = [], []
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(1, rate, 0)  # espeakRATE
        b = text.encode()
        # position 0, POS_CHARACTER, no end, espeakCHARS_AUTO
        self.lib.espeak_Synth(b, len(b) + 1, 0, 1, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]

        def word_index(pos):  # espeak's text_position is 1-based, in bytes (ASCII here)
            return next(i for i, (a, b_) in enumerate(spans) if a <= pos - 1 < b_)

        groups, cur = [], None  # cur: [first word index, start sample, has phonemes]
        for typ, pos, length, sample, name in self._events:
            if typ == EV_WORD and length == 0:  # espeak emits a zero-length word event for some punctuation
                continue
            if typ == EV_WORD:
                if cur and cur[2]:
                    groups.append((cur[0], word_index(pos) - 1, cur[1], sample))
                cur = [word_index(pos), sample, False]
            elif typ == EV_PHONEME and cur is not None:
                if name.startswith(b"_"):  # pause: the word ended
                    if cur[2]:
                        groups.append((cur[0], None, cur[1], sample))
                    cur = None
                else:
                    cur[2] = True
            elif typ in (EV_END, EV_MSG_TERMINATED) and cur is not None and cur[2]:
                groups.append((cur[0], None, cur[1], sample))
                cur = None
        # a group ends at the word before the next group's first word (or the text's last word)
        out = []
        for k, (first, last, s, e) in enumerate(groups):
            if last is None:
                last = groups[k + 1][0] - 1 if k + 1 < len(groups) else len(spans) - 1
            out.append((first, last, s / self.sr, e / self.sr))
        return audio, self.sr, out


def espeak_dataset():
    """[(audio, sr, text, truth groups)], truth times shifted by the padding."""
    es = Espeak()
    data = []
    for voice in VOICES:
        for rate in RATES:
            for text in SENTENCES:
                audio, sr, groups = es.synth(text, voice, rate)
                pad = np.zeros(int(PAD * sr), np.float32)
                data.append((np.concatenate([pad, audio, pad]), sr, text,
                             [(a, b, s + PAD, e + PAD) for a, b, s, e in groups], f"{voice}@{rate}"))
    return data


# -------------------------------------------------------------------------------------------- accuracy

def _timed_align(aligner, audio, sr, text, tag: str, failed: List[str]):
    """(words, seconds), or (None, 0) with the reason appended to `failed` when the aligner refuses the clip."""
    t0 = time.perf_counter()
    try:
        words = aligner.align(audio, sr, text)
    except ValueError as e:
        failed.append(f"{tag}: {e}")
        return None, 0.0
    return words, time.perf_counter() - t0


def boundary_errors_espeak(aligner, data) -> Dict:
    errs, failed, t = [], [], 0.0
    for audio, sr, text, groups, tag in data:
        words, dt = _timed_align(aligner, audio, sr, text, f"{tag}: {text[:30]}...", failed)
        if words is None:
            continue
        t += dt
        for first, last, s, e in groups:
            errs += [words[first].start - s, words[last].end - e]
    return _summary(errs, len(data), failed, t)


def boundary_errors_librivox(aligner) -> Dict:
    import soundfile as sf

    clips = load_librivox()  # fixtures/data/librivox; FileNotFoundError when a clip is missing
    errs, failed, t = [], [], 0.0
    for clip in clips.values():
        x, sr = sf.read(clip.wav, dtype="float32")
        words, dt = _timed_align(aligner, x, sr, clip.text, os.path.basename(clip.wav), failed)
        if words is None:
            continue
        t += dt
        ref = clip.words
        errs += [w.start - r["b"] for w, r in zip(words, ref)] + [w.end - r["b"] - r["d"] for w, r in zip(words, ref)]
    return _summary(errs, len(clips), failed, t)


def _summary(errs, n, failed, seconds) -> Dict:
    e = np.abs(np.array(errs)) * 1000.0
    return {"utterances": n, "failed": len(failed), "failures": failed, "boundaries": int(e.size),
            "p50_ms": float(np.percentile(e, 50)) if e.size else float("nan"),
            "p95_ms": float(np.percentile(e, 95)) if e.size else float("nan"),
            "max_ms": float(e.max()) if e.size else float("nan"),
            "bias_ms": float(np.mean(errs) * 1000.0) if errs else float("nan"),
            "align_s": seconds / max(n - len(failed), 1)}


# ------------------------------------------------------------------------------------------- profile time

def profile_setup(quick: bool, folder: str) -> Dict:
    """A seeded DAC written by the official package (.pth) at the real architecture (or tiny widths), read by
    both sides; the forced aligner's words for the longest LibriVox clip."""
    import soundfile as sf

    from impl import dac as D
    from impl.dac.interface import DacInterface
    from impl.speaker.align import ForcedAligner
    from reference import dac as ref

    config = TINY if quick else D.resolve_config("24khz_speech")
    path = str(ref.write_random_init_checkpoint(os.path.join(folder, "dac.pth"), config, seed=0))
    clip = load_librivox()["0870"]
    wav, text = clip.wav, clip.text
    x, sr = sf.read(wav, dtype="float32")
    words = [{"word": w.word, "start": w.start, "end": w.end} for w in ForcedAligner().align(x, sr, text)]
    return {"ckpt": path, "codec": DacInterface(D.load(path)), "wav": wav, "text": text, "words": words,
            "seconds": x.size / sr, "config": "tiny" if quick else "24khz_speech"}


def time_profile(env) -> Tuple[float, float]:
    """(impl seconds, outetts seconds) for one profile of the clip, words given (alignment timed apart)."""
    from impl.speaker.align import GivenWords
    from impl.speaker.profile import create_profile
    from reference import speaker as ref

    proc = ref.processor(env["ckpt"])
    ti = median_time(lambda: create_profile(env["wav"], env["codec"], GivenWords(env["words"]), env["text"]), 2)
    tr = median_time(lambda: ref.create_speaker(env["wav"], env["ckpt"], env["words"], env["text"], proc=proc), 2)
    return ti, tr


# ---------------------------------------------------------------------------------------------- suites

@pytest.fixture(scope="module")
def aligner():
    from impl.speaker.align import ForcedAligner

    return ForcedAligner()


def bench_speaker_align_espeak(benchmark, aligner):
    try:
        data = espeak_dataset()
    except RuntimeError as e:
        pytest.skip(str(e))
    res = boundary_errors_espeak(aligner, data)
    audio, sr, text, _, _ = data[0]
    benchmark.pedantic(lambda: aligner.align(audio, sr, text), rounds=3, warmup_rounds=1)
    benchmark.extra_info.update({k: v for k, v in res.items() if k != "failures"},
                                what=f"ForcedAligner word-boundary error vs espeak-ng word events, "
                                     f"{len(data)} utterances")
    assert res["failed"] == 0, res["failures"]


def bench_speaker_align_librivox(benchmark, aligner):
    import soundfile as sf

    res = boundary_errors_librivox(aligner)
    clip = load_librivox()["0870"]
    x, sr = sf.read(clip.wav, dtype="float32")
    text = clip.text
    benchmark.pedantic(lambda: aligner.align(x, sr, text), rounds=3, warmup_rounds=1)
    benchmark.extra_info.update({k: v for k, v in res.items() if k != "failures"},
                                what="ForcedAligner vs the clips' pocketsphinx reference alignments")


def bench_speaker_profile_create(benchmark, tmp_path_factory):
    env = profile_setup(QUICK, str(tmp_path_factory.mktemp("speaker")))
    from impl.speaker.align import GivenWords
    from impl.speaker.profile import create_profile

    ref_s = time_profile(env)[1]
    benchmark.pedantic(lambda: create_profile(env["wav"], env["codec"], GivenWords(env["words"]), env["text"]),
                       rounds=2, warmup_rounds=1)
    impl_s = benchmark.stats.stats.median
    benchmark.extra_info.update(ratio=ref_s / impl_s, impl_s=impl_s, reference_s=ref_s,
                                audio_s=env["seconds"],
                                what=f"create_profile, {env['seconds']:.1f} s clip, DAC {env['config']}")


# ---------------------------------------------------------------------------------------------- table

def main(argv: Optional[List[str]] = None) -> int:
    import tempfile

    from impl.speaker.align import ForcedAligner

    p = argparse.ArgumentParser(prog="python -m bench.bench_speaker", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny DAC widths for the profile timing")
    p.add_argument("--no-profile", action="store_true", help="accuracy only")
    args = p.parse_args(argv)
    al = ForcedAligner()
    rows = []
    try:
        rows.append(("espeak-ng (exact word events)", boundary_errors_espeak(al, espeak_dataset())))
    except RuntimeError as e:
        print(f"espeak-ng: {e}")
    rows.append(("LibriVox (pocketsphinx reference)", boundary_errors_librivox(al)))
    print("ForcedAligner (pocketsphinx 5.1.1, en-us) word-boundary error; goal p50 <= 20 ms, p95 <= 60 ms")
    print(f"{'dataset':<36} {'utts':>5} {'failed':>6} {'bounds':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
          f"{'bias ms':>8} {'s/utt':>6}")
    for name, r in rows:
        print(f"{name:<36} {r['utterances']:>5} {r['failed']:>6} {r['boundaries']:>7} {r['p50_ms']:>7.1f} "
              f"{r['p95_ms']:>7.1f} {r['max_ms']:>7.1f} {r['bias_ms']:>8.1f} {r['align_s']:>6.2f}")
        for f in r["failures"]:
            print(f"  failed: {f}")
    if not args.no_profile:
        with tempfile.TemporaryDirectory() as d:
            env = profile_setup(args.quick, d)
            ti, tr = time_profile(env)
        print(f"profile creation ({env['seconds']:.1f} s clip, DAC {env['config']}, words given): "
              f"impl {ti:.2f} s, outetts {tr:.2f} s ({tr / ti:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
