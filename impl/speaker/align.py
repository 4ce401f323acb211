"""Word aligners behind one small interface: `align(audio, sr, text=None) -> list[Word]`.

| backend | mode | needs |
|---|---|---|
| `ForcedAligner` | preset text: the transcript is known | `pocketsphinx` (its wheel ships the en-us model) |
| `WhisperAligner` | any audio: ASR with word timestamps | `mlx_whisper` and a LOCAL model folder (no hub) |
| `GivenWords` | word timestamps from elsewhere (a JSON file, a test) | nothing |

outetts' own v3 interface always runs whisper (`version/v3/audio_processor.py` create_speaker_from_whisper);
forced alignment goes beyond it. Whatever the aligner, the words carry the transcript's own spelling (with its
punctuation, as whisper's words do) and times in seconds; what follows (codes, features, profile) is shared.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple

import numpy as np

from impl import audio as A


class AlignmentError(ValueError):
    """The audio and transcript could not be aligned (no speech, transcript that does not match, no backend)."""


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float


class Aligner(Protocol):
    def align(self, audio: np.ndarray, sr: int, text: Optional[str] = None) -> List[Word]:
        ...


def check_words(words: Sequence[Word], duration: float) -> List[Word]:
    """Words must be non-empty, in order, non-overlapping and inside the audio (`duration` seconds)."""
    words = list(words)
    if not words:
        raise AlignmentError("no words were found in the audio (no speech?)")
    prev = 0.0
    for w in words:
        if not w.word.strip():
            raise AlignmentError(f"empty word at {w.start:.2f} s")
        if not all(math.isfinite(t) for t in (w.start, w.end)):
            raise AlignmentError(f"word {w.word!r} has a non-finite time")
        if not (0.0 <= w.start <= w.end <= duration + 1e-6) or w.start < prev - 1e-6:
            raise AlignmentError(f"word {w.word!r} [{w.start:.3f}, {w.end:.3f}] s is out of order or outside "
                                 f"the audio (0..{duration:.3f} s)")
        prev = w.end
    return words


class GivenWords:
    """Word timestamps known in advance: [{'word', 'start', 'end'}, ...] or a JSON file of that list (or of
    whisper's result, {'segments': [{'words': [...]}, ...]})."""

    def __init__(self, words):
        source = None
        if isinstance(words, (str, os.PathLike)):
            source = words
            try:
                with open(words, encoding="utf-8") as f:
                    words = json.load(f)
            except IsADirectoryError:
                raise AlignmentError(f"cannot read word timestamps from {words}: is a directory, not a .json "
                                     "file") from None
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
                raise AlignmentError(f"cannot read word timestamps from {words}: {e}") from None
        if isinstance(words, dict) and "segments" in words:
            try:
                words = [w for seg in words["segments"] for w in seg.get("words", [])]
            except (AttributeError, TypeError) as e:
                raise AlignmentError(f"{source or 'words'}: whisper's word timestamps must be {{'segments': "
                                     f"[{{'words': [...]}}, ...]}}: {e!r}") from None
        if source is not None and not words:
            raise AlignmentError(f"{source}: the words file is empty ({json.dumps(words)}): give "
                                 "[{\"word\": ..., \"start\": s, \"end\": s}, ...]")
        try:
            self.words = [Word(str(w["word"]).strip(), float(w["start"]), float(w["end"])) for w in words]
        except (KeyError, TypeError, ValueError) as e:
            raise AlignmentError(f"{source or 'words'}: word timestamps must be a list of objects with "
                                 f"word/start/end: {e!r}") from None

    def until(self, seconds: float) -> "GivenWords":
        """The words that end by `seconds` (audio cut with --trim)."""
        return GivenWords([w.__dict__ for w in self.words if w.end <= seconds])

    def align(self, audio: np.ndarray, sr: int, text: Optional[str] = None) -> List[Word]:
        return check_words(self.words, np.asarray(audio).shape[-1] / sr)


# ------------------------------------------------------------------------------------------ forced alignment

def transcript_tokens(text: str) -> List[Tuple[str, List[str]]]:
    """Split a transcript into (token as written, its dictionary words): "Hello," -> ("Hello,", ["hello"]),
    "well-known" -> (.., ["well", "known"]). A token with no letters (a dash, a quote) joins the previous one;
    digits are refused (the English dictionary has no numbers: spell them out)."""
    if text is None or not text.strip():
        raise AlignmentError("forced alignment needs the transcript (the text is empty)")
    out: List[Tuple[str, List[str]]] = []
    pending = ""
    for tok in text.split():
        if re.search(r"\d", tok):
            raise AlignmentError(f"transcript token {tok!r} holds digits: spell numbers out as spoken "
                                 "(the aligner's English dictionary has no digits)")
        words = [w.strip("'") for w in re.findall(r"[a-z']+", tok.lower())]
        words = [w for w in words if w]
        if not words:
            if out:
                out[-1] = (f"{out[-1][0]} {tok}", out[-1][1])
            else:
                pending = f"{pending}{tok} "
            continue
        out.append((pending + tok, words))
        pending = ""
    if not out:
        raise AlignmentError(f"transcript {text!r} has no words the English aligner can use")
    return out


# ------------------------------------------------------------------------------- the phone-duration model

STRETCH_ALPHA = 0.01  # family-wise false-alarm level of the stretched-word test over one utterance's words
LOG_FRAME_STEP = math.log(4.0 / 3.0)  # one frame's step in log duration at the 3-frame minimum of a phone
MIN_PAUSE = 15  # frames: a pause that could hold a short word (150 ms)
LOUD_PAUSE_DB = 6.0  # a pause this close to the speech level holds sound (a doubling of amplitude below it)


@dataclass(frozen=True)
class Phone:
    name: str
    start: int  # 10 ms frames
    frames: int
    score: int  # pocketsphinx acoustic score over the phone (<= 0: each frame is scored against its best senone)

    @property
    def end(self) -> int:
        return self.start + self.frames


@dataclass(frozen=True)
class AlignedWord:
    word: str
    phones: List[Phone]

    @property
    def start(self) -> int:
        return self.phones[0].start

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.phones)

    @property
    def end(self) -> int:
        return self.start + self.frames

    @property
    def per_frame(self) -> float:
        return sum(p.score for p in self.phones) / max(self.frames, 1)


def _upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _robust(v: np.ndarray, floor: float) -> Tuple[float, float]:
    """(median, 1.4826 x median absolute deviation, at least `floor`): a normal's (mean, sd) that a few outliers
    (the words under test) cannot move."""
    med = float(np.median(v))
    return med, max(1.4826 * float(np.median(np.abs(v - med))), floor)


def word_duration_tail(word: AlignedWord, mu: float, sigma: float) -> float:
    """P(the longest of the word's n phones lasts >= its longest one's frames) when phone durations are
    independent log-normal(mu, sigma) in frames: 1 - (1 - q)^n, q the one-phone tail. A word stretched over
    missing speech puts it into one phone (pocketsphinx' HMM stays in one state), so the longest phone, not the
    sum, carries the evidence."""
    q = _upper_tail((math.log(max(p.frames for p in word.phones)) - mu) / sigma)
    return -math.expm1(len(word.phones) * math.log1p(-min(q, 1.0 - 1e-16)))


def untranscribed(words: Sequence[AlignedWord], levels_db: np.ndarray, alpha: float = STRETCH_ALPHA
                  ) -> Optional[Tuple[str, AlignedWord, float, float]]:
    """Speech the transcript lacks, on the aligner's phone segmentation `words` (pauses `<sil>` included):
    ("pause" | "word", the segment, p for its length, p for its fit), or None.

    A transcript missing words makes the forced path put their speech somewhere: in an optional pause, or in a
    neighbour stretched over it. Either segment then fits its model badly; a stretched word is also improbably
    long for its phone count. Everything is measured against the utterance itself, so speaking rate, voice and
    recording drop out:
    - fit: pocketsphinx scores each frame against the best senone of that frame, so a segment's score per frame
      is how much worse the forced path fits than the best unconstrained one. A segment of F frames is the mean
      of F frame scores: with the utterance's typical frame score (median over its phones) and frame spread
      (MAD of each phone's deviation x sqrt(its frames), at least 1 unit), its z is deviation x sqrt(F) /
      spread, one-sided normal tail. Frames are treated as independent, which overstates long segments' z:
      the duration condition (words) and the loudness condition (pauses) stand beside it for that reason;
    - duration: phone durations are log-normal (the usual model of speech segment durations), with location and
      spread the median and MAD of the utterance's own log phone durations (spread at least one frame's step at
      the 3-frame minimum, the resolution of the segmentation); a word's duration given its phone count is
      that of the longest of its n phones (`word_duration_tail`);
    - a pause is a candidate when it could hold a word (>= `MIN_PAUSE` frames) and is loud (its 90th-percentile
      frame level within `LOUD_PAUSE_DB` of the utterance's 95th percentile, `levels_db`: one per frame).
    A word is refused when its longest phone is loud (the same rule: a pause before a stop, absorbed into its
    closure, is quiet) and both its length and its fit are improbable, a loud pause when its fit is, each at
    alpha / (words + candidate pauses) (Bonferroni over the tests of the utterance): a right transcript is
    refused with probability <= alpha under the model. A long word spoken as written (a held final word, a slow
    speaker) fits its phones as well as the rest and is kept; a short coarticulated word with a poor fit is kept.
    """
    speech = [w for w in words if not ForcedAligner._is_filler(w.word)]
    phones = [p for w in speech for p in w.phones]
    if len(speech) < 2 or len(phones) < 4:
        return None  # no utterance to measure a segment against
    mu, sigma = _robust(np.log([max(p.frames, 1) for p in phones]), LOG_FRAME_STEP)
    fit, _ = _robust(np.array([p.score / p.frames for p in phones if p.frames > 0]), 1.0)
    _, spread = _robust(np.array([(p.score / p.frames - fit) * math.sqrt(p.frames) for p in phones if p.frames > 0]),
                        1.0)
    top = float(np.percentile(levels_db, 95))

    def loud(w):  # the segment (a pause, or a word's longest phone) holds sound, not a closure or a breath pause
        seg = levels_db[w.start:w.end]
        return seg.size > 0 and float(np.percentile(seg, 90)) > top - LOUD_PAUSE_DB

    pauses = [w for w in words if w.word == "<sil>" and w.frames >= MIN_PAUSE and loud(w)]
    level = alpha / (len(speech) + len(pauses))
    worst = None
    for kind, w in [("pause", w) for w in pauses] + [("word", w) for w in speech]:
        p_fit = _upper_tail((fit - w.per_frame) * math.sqrt(w.frames) / spread)
        p_dur = word_duration_tail(w, mu, sigma) if kind == "word" else 0.0
        if kind == "word" and not loud(max(w.phones, key=lambda p: p.frames)):
            continue  # a quiet longest phone: a pause inside the word (a stop's closure), not missing speech
        if p_fit < level and p_dur < level and (worst is None or p_fit < worst[3]):
            worst = (kind, w, p_dur, p_fit)
    return worst


class ForcedAligner:
    """Offline forced alignment of a known transcript with pocketsphinx 5 (16 kHz, its bundled en-us model).

    One pass of pocketsphinx' alignment search (`set_align_text`, the `pocketsphinx align` command's search,
    optional silences between words) gives word boundaries in 10 ms frames. Decoder settings, each measured on
    espeak-ng speech with exact word boundaries (bench/bench_speaker.py):
    - `dither`: digital silence (zeros, as in synthetic or edited audio) otherwise makes the search fail;
      seeded, so alignments are reproducible;
    - wide beams: a pruned search loses the only path on unusual voices.

    A transcript that does not match the audio is caught two ways: the search finds no path, or the acoustic
    score of the forced path falls far below that of a free phone loop over the same audio (per 10 ms frame,
    in pocketsphinx log units): right transcripts score -6..-24 on espeak voices and -12..-15 on the LibriVox
    clips, unrelated ones -37..-56; `min_confidence` (-30) sits between them. Words missing from an otherwise
    right transcript leave speech in a pause or stretch a word over it: a second pass gives the phone
    segmentation (`set_alignment`) and `untranscribed` tests it against a model of phone durations and fit
    measured on the utterance itself. False rejections and detection rates over every utterance we can make:
    tools/mismatch_study.py (README, "Transcript check").
    """

    SAMPLE_RATE = 16000
    FRATE = 100  # frames per second
    DECODER = dict(bestpath=False, dither=True, seed=1, beam=1e-80, wbeam=1e-60, pbeam=1e-80, loglevel="FATAL")

    def __init__(self, min_confidence: float = -30.0, alpha: float = STRETCH_ALPHA):
        self.min_confidence = min_confidence
        self.alpha = alpha
        self.confidence: Optional[float] = None  # of the last alignment
        self.phones: List[AlignedWord] = []  # of the last alignment that reached the stretch check

    @classmethod
    def _decoder(cls, **kwargs):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise AlignmentError('forced alignment (--text) needs pocketsphinx: pip install "voiceport[profile]"'
                                 ) from None
        return Decoder(samprate=cls.SAMPLE_RATE, lm=None, **cls.DECODER, **kwargs)

    @staticmethod
    def _ascore(segs) -> float:
        """Sum of the segments' acoustic scores in log units (the binding hands them back exponentiated)."""
        return sum(math.log(max(s.ascore, 1e-300)) for s in segs) / math.log(1.0001)

    def _phone_loop_score(self, pcm: bytes) -> float:
        from pocketsphinx import get_model_path

        d = self._decoder(allphone=get_model_path("en-us/en-us-phone.lm.bin"))
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        return self._ascore(d.seg() or [])

    def align(self, audio: np.ndarray, sr: int, text: Optional[str] = None) -> List[Word]:
        tokens = transcript_tokens(text)
        self.confidence, self.phones = None, []
        x = np.asarray(audio, dtype=np.float32)
        x = A.resample(A.to_mono(x), sr, self.SAMPLE_RATE) if sr != self.SAMPLE_RATE else A.to_mono(x)
        if x.shape[-1] < self.SAMPLE_RATE // 10:
            raise AlignmentError(f"the audio is {x.shape[-1] / self.SAMPLE_RATE * 1000:.0f} ms long: too short "
                                 "to align")
        pcm = (np.clip(x, -1.0, 1.0 - 2 ** -15) * 32768.0).astype(np.int16).tobytes()
        d = self._decoder()
        missing = sorted({w for _, ws in tokens for w in ws if d.lookup_word(w) is None})
        if missing:
            raise AlignmentError(f"transcript words not in the aligner's English dictionary: {', '.join(missing)} "
                                 "(check the spelling, or spell them as they sound)")
        try:
            d.set_align_text(" ".join(w for _, ws in tokens for w in ws))
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            segs = d.seg()
            segs = list(segs) if segs is not None else []
            n_frames = d.n_frames()
            loop = self._phone_loop_score(pcm) if segs else 0.0
        except RuntimeError as e:  # the binding's errors: say which step
            raise AlignmentError(f"pocketsphinx could not align the transcript: {e}") from None
        spoken = [s for s in segs if not self._is_filler(s.word)]
        n_words = sum(len(ws) for _, ws in tokens)
        if len(spoken) != n_words:
            raise AlignmentError("the transcript does not match the audio (no alignment of all "
                                 f"{n_words} words was found; or the audio has no speech)")
        self.confidence = (self._ascore(segs) - loop) / max(n_frames, 1)
        if self.confidence < self.min_confidence:
            raise AlignmentError(f"the transcript does not match the audio (alignment confidence "
                                 f"{self.confidence:.1f} per frame < {self.min_confidence:.1f})")
        problem = self._untranscribed(d, x, pcm)
        if problem:
            raise AlignmentError(f"the transcript does not match the audio: {problem}")
        seconds = x.shape[-1] / self.SAMPLE_RATE
        out, i = [], 0
        for tok, ws in tokens:
            first, last = spoken[i], spoken[i + len(ws) - 1]
            end = min((last.end_frame + 1) / self.FRATE, seconds)  # the last frame may overhang the audio
            out.append(Word(tok, min(first.start_frame / self.FRATE, end), end))
            i += len(ws)
        return check_words(out, seconds)

    def _untranscribed(self, d, x: np.ndarray, pcm: bytes) -> Optional[str]:
        """Speech the transcript lacks (`untranscribed`), said in one line. Frame levels: 25 ms RMS every 10 ms."""
        n = max(1, (x.shape[-1] - 400) // 160 + 1)
        idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
        xp = np.pad(x, (0, max(0, idx.max() + 1 - x.shape[-1])))
        db = 10.0 * np.log10(np.mean(xp[idx].astype(np.float64) ** 2, axis=1) + 1e-12)
        self.phones = self._phone_alignment(d, pcm)
        bad = untranscribed(self.phones, db, self.alpha)
        if bad is None:
            return None
        kind, w, p_dur, p_fit = bad
        where = f"{w.start / self.FRATE:.2f}-{w.end / self.FRATE:.2f} s"
        if kind == "pause":
            return (f"there is speech at {where} that the transcript does not have (a pause in the alignment, "
                    f"loud, its sound unlike silence: p = {p_fit:.1g})")
        return (f"{w.word!r} would last {w.frames / self.FRATE:.2f} s ({where}, {len(w.phones)} phones: "
                f"p = {p_dur:.1g} for that length, and its sounds fit its phones worse than the rest: "
                f"p = {p_fit:.1g}): words around it seem to be missing from the transcript")

    def _phone_alignment(self, d, pcm: bytes) -> List["AlignedWord"]:
        """The transcript's words with their phones (pocketsphinx' second pass over the word alignment:
        `set_alignment`, as its `align` command does for phone output)."""
        d.set_alignment()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        return [AlignedWord(w.name.split("(")[0], [Phone(p.name, p.start, p.duration, p.score) for p in w])
                for w in d.get_alignment()]

    @staticmethod
    def _is_filler(name: str) -> bool:
        return name in ("<sil>", "<s>", "</s>") or name.startswith("[") or name.startswith("+")


# ---------------------------------------------------------------------------------------------------- ASR

class WhisperAligner:
    """ASR with word timestamps through `mlx_whisper`, from a model folder on disk (no hub is reachable)."""

    def __init__(self, model_path: Optional[str]):
        if not model_path:
            raise AlignmentError("no transcript given and no local whisper model: pass --text (forced "
                                 "alignment), --words WORDS.json, or --whisper-model DIR (an MLX whisper model "
                                 "folder)")
        if not os.path.isdir(model_path):
            raise AlignmentError(f"whisper model folder not found: {model_path}")
        self.model_path = model_path

    def align(self, audio: np.ndarray, sr: int, text: Optional[str] = None) -> List[Word]:
        try:
            import mlx_whisper
        except ImportError:
            raise AlignmentError("ASR alignment needs mlx_whisper, which is not installed (pip install "
                                 "mlx-whisper); or pass --text for forced alignment") from None
        x = A.resample(A.to_mono(np.asarray(audio, dtype=np.float32)), sr, 16000)
        result = mlx_whisper.transcribe(x, path_or_hf_repo=self.model_path, word_timestamps=True)
        self.text = result.get("text", "")
        words = [Word(w["word"].strip(), float(w["start"]), float(w["end"]))
                 for seg in result.get("segments", []) for w in seg.get("words", [])]
        return check_words(words, x.shape[-1] / 16000)
