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
            from impl._io import read_json

            try:
                words = read_json(words, "word timestamps", ValueError)  # FIFO refused; depth, number limits
            except IsADirectoryError:
                raise AlignmentError(f"cannot read word timestamps from {words}: is a directory, not a .json "
                                     "file") from None
            except OSError as e:
                raise AlignmentError(f"cannot read word timestamps from {words}: {e}") from None
            except ValueError as e:  # "<path>: not a JSON file (...)", too deep, a number out of range
                raise AlignmentError(f"cannot read word timestamps from {e}") from None
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

# Family-wise false-alarm level of the segment tests over one utterance. Over the 196 right transcripts of
# `tools/mismatch_study.py --quick` (noise, loudness, rates, held words, late start) the smallest Bonferroni-
# adjusted p was 3e-3, next 4e-2 (as many below 0.01 as a level of 0.01 predicts: the model is calibrated);
# 1e-4 sits 30x below the smallest, a right transcript refused once in 10,000 utterances under the model.
STRETCH_ALPHA = 1e-4
# A segment whose fit is improbable both ways (against the utterance and against the phone loop) at this family-
# wise level is refused whatever its length (dropped words spread over several phones of a neighbour, none of
# them long). The smallest adjusted p of a right transcript in the study was 1e-13 (a phase-vocoder-held word);
# squared for the margin: frames are not independent, which inflates long segments' evidence.
FIT_ALONE = 1e-26
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


def _fit_tail(phones: Sequence[Phone], score) -> "callable":
    """segment -> P(a segment of the utterance fits at least this badly), `score(phone)` its phones' total: a
    segment of F frames is the mean of F frame scores; with the utterance's typical frame score (median over its
    phones) and frame spread (MAD of each phone's deviation x sqrt(its frames), at least 1 unit), its z is
    deviation x sqrt(F) / spread, one-sided normal tail."""
    measured = [p for p in phones if p.frames > 0]
    typical, _ = _robust(np.array([score(p) / p.frames for p in measured]), 1.0)
    _, spread = _robust(np.array([(score(p) / p.frames - typical) * math.sqrt(p.frames) for p in measured]), 1.0)

    def tail(w: AlignedWord) -> float:
        per_frame = sum(score(p) for p in w.phones) / max(w.frames, 1)
        return _upper_tail((typical - per_frame) * math.sqrt(w.frames) / spread)
    return tail


def untranscribed(words: Sequence[AlignedWord], levels_db: np.ndarray, alpha: float = STRETCH_ALPHA,
                  beyond_loop: Optional[np.ndarray] = None) -> Optional[Tuple[str, AlignedWord, float, float]]:
    """Speech the transcript lacks, on the aligner's phone segmentation `words` (pauses `<sil>` included):
    ("pause" | "word", the segment, p for its length, p for its fit), or None. `beyond_loop` (one per frame):
    the forced path's frame score minus a free phone loop's over the same frame (`ForcedAligner`); given, a
    word must fit improbably badly both ways (the larger p is returned), a pause against the loop.

    A transcript missing words makes the forced path put their speech somewhere: in an optional pause, or in a
    neighbour stretched over it. Either segment then fits its model badly; a stretched word is also improbably
    long for its phone count. Everything is measured against the utterance itself, so speaking rate, voice and
    recording drop out:
    - fit: pocketsphinx scores each frame against the best senone of that frame, so a segment's score per frame
      is how much worse the forced path fits than the best senones (`_fit_tail`, against the utterance's own
      median and spread). Sound that fits no phone well (a phase-vocoder-stretched vowel, noise) fits the
      forced path badly too, so with `beyond_loop` the same test runs on the forced path's score minus a free
      phone loop's over the same frames: speech of missing words fits the loop (it is speech) and not the
      forced path; a held word fits both alike. Frames are treated as independent, which overstates long
      segments' z: the duration condition (words) and the loudness condition (pauses) stand beside it;
    - duration: phone durations are log-normal (the usual model of speech segment durations), with location and
      spread the median and MAD of the utterance's own log phone durations (spread at least one frame's step at
      the 3-frame minimum, the resolution of the segmentation); a word's duration given its phone count is
      that of the longest of its n phones (`word_duration_tail`);
    - a pause is a candidate when it could hold a word (>= `MIN_PAUSE` frames) and is loud (its 90th-percentile
      frame level within `LOUD_PAUSE_DB` of the utterance's 95th percentile, `levels_db`: one per frame).
    A word is refused when its longest phone is loud (the same rule: a pause before a stop, absorbed into its
    closure, is quiet) and both its length and its fit are improbable (or, with `beyond_loop`, its fit alone
    at `FIT_ALONE`), a loud pause when its fit is (with `beyond_loop`: its fit against the loop only, the
    loop holding speech the silence model does not), each at alpha / (words + candidate pauses) (Bonferroni
    over the tests of the utterance; requiring two or three conditions at once only lowers the level): a right
    transcript is refused with probability <= alpha under the model. A long word spoken as written (a held
    final word, a slow speaker) fits its phones as well as the rest and is kept; a short coarticulated word
    with a poor fit is kept.
    """
    speech = [w for w in words if not ForcedAligner._is_filler(w.word)]
    phones = [p for w in speech for p in w.phones]
    if len(speech) < 2 or len(phones) < 4:
        return None  # no utterance to measure a segment against
    mu, sigma = _robust(np.log([max(p.frames, 1) for p in phones]), LOG_FRAME_STEP)
    tails = [_fit_tail(phones, lambda p: p.score)]
    if beyond_loop is not None:
        tails.append(_fit_tail(phones, lambda p: float(np.sum(beyond_loop[p.start:p.end]))))
    pause_tail = tails[-1]  # silence or speech: the loop says which (a robotic voice fits silence nearly as well)
    top = float(np.percentile(levels_db, 95))

    def loud(w):  # the segment (a pause, or a word's longest phone) holds sound, not a closure or a breath pause
        seg = levels_db[w.start:w.end]
        return seg.size > 0 and float(np.percentile(seg, 90)) > top - LOUD_PAUSE_DB

    pauses = [w for w in words if w.word == "<sil>" and w.frames >= MIN_PAUSE and loud(w)]
    level = alpha / (len(speech) + len(pauses))
    worst = None
    for kind, w in [("pause", w) for w in pauses] + [("word", w) for w in speech]:
        p_fit = max(tail(w) for tail in tails) if kind == "word" else pause_tail(w)
        p_dur = word_duration_tail(w, mu, sigma) if kind == "word" else 0.0
        if kind == "word" and not loud(max(w.phones, key=lambda p: p.frames)):
            continue  # a quiet longest phone: a pause inside the word (a stop's closure), not missing speech
        evident = p_fit < level * FIT_ALONE / alpha and beyond_loop is not None  # no duration needed
        if p_fit < level and (p_dur < level or evident) and (worst is None or p_fit < worst[3]):
            worst = (kind, w, p_dur, p_fit)
    return worst


class ForcedAligner:
    """Offline forced alignment of a known transcript with pocketsphinx 5 (16 kHz, its bundled en-us model).

    One pass of pocketsphinx' alignment search (`set_align_text`, the `pocketsphinx align` command's search,
    optional silences between words) gives word boundaries in 10 ms frames. Decoder settings, each measured on
    espeak-ng speech with exact word boundaries (bench/bench_speaker.py):
    - `dither`: digital silence (zeros, as in synthetic or edited audio) otherwise makes the search fail;
      seeded, so alignments are reproducible;
    - the widest beams (1e-300): a pruned search loses the only path on unusual voices and in noise (at 1e-80,
      5 of 196 right transcripts with noise at 10 and 5 dB SNR found no path); the cost is the same.

    A transcript that does not match the audio is caught three ways: the search finds no path; the forced path
    scores far below a free phone loop over the same frames (`confidence`: forced minus loop acoustic score,
    mean per 10 ms frame, pocketsphinx log units); or a segment holds speech the transcript lacks
    (`untranscribed`, on the phone segmentation of a second pass, `set_alignment`). Right transcripts of the
    study's 196 utterances (LibriVox, espeak-ng; noise to 5 dB SNR, 30 dB quieter, clipped, 0.7x-1.5x rate,
    held words, late start) score -16.1 at worst, other texts with a path down to -58; `min_confidence` (-32)
    is twice the worst right one, the margin for voices further from the acoustic model than espeak's. False
    rejections and detection rates over every utterance we can make: tools/mismatch_study.py (stored:
    bench/cpu_runs/speaker-*.json, rendered in docs/performance.md).
    """

    SAMPLE_RATE = 16000
    FRATE = 100  # frames per second
    DECODER = dict(bestpath=False, dither=True, seed=1, beam=1e-300, wbeam=1e-300, pbeam=1e-300, loglevel="FATAL")

    def __init__(self, min_confidence: float = -32.0, alpha: float = STRETCH_ALPHA):
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

    def _phone_loop(self, pcm: bytes, n_frames: int) -> np.ndarray:
        """(n_frames,) the acoustic score per frame of a free phone loop (pocketsphinx' allphone search, every
        phone equally likely after every other: no phone language model, whose weight would leak into the
        segments' acoustic scores), each phone's score spread evenly over its frames."""
        d = self._decoder()
        d.add_allphone_file("loop", None)
        d.activate_search("loop")
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        loop = np.zeros(n_frames)
        for s in d.seg() or []:
            a, b = s.start_frame, min(s.end_frame + 1, n_frames)
            loop[a:b] = self._ascore([s]) / max(b - a, 1)
        return loop

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
        except RuntimeError as e:  # the binding's errors: say which step
            raise AlignmentError(f"pocketsphinx could not align the transcript: {e}") from None
        spoken = [s for s in segs if not self._is_filler(s.word)]
        n_words = sum(len(ws) for _, ws in tokens)
        if len(spoken) != n_words:
            raise AlignmentError("the transcript does not match the audio (no alignment of all "
                                 f"{n_words} words was found; or the audio has no speech)")
        try:
            self.phones, forced = self._phone_alignment(d, pcm, n_frames)
            beyond_loop = forced - self._phone_loop(pcm, n_frames)
        except RuntimeError as e:
            raise AlignmentError(f"pocketsphinx could not align the transcript: {e}") from None
        self.confidence = float(np.mean(beyond_loop))
        if self.confidence < self.min_confidence:
            raise AlignmentError(f"the transcript does not match the audio (alignment confidence "
                                 f"{self.confidence:.1f} per frame < {self.min_confidence:.1f})")
        problem = self._untranscribed(x, beyond_loop)
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

    def _untranscribed(self, x: np.ndarray, beyond_loop: np.ndarray) -> Optional[str]:
        """Speech the transcript lacks (`untranscribed`), said in one line. Frame levels: 25 ms RMS every 10 ms."""
        n = max(1, (x.shape[-1] - 400) // 160 + 1)
        idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
        xp = np.pad(x, (0, max(0, idx.max() + 1 - x.shape[-1])))
        db = 10.0 * np.log10(np.mean(xp[idx].astype(np.float64) ** 2, axis=1) + 1e-12)
        bad = untranscribed(self.phones, db, self.alpha, beyond_loop)
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

    def _phone_alignment(self, d, pcm: bytes, n_frames: int) -> Tuple[List["AlignedWord"], np.ndarray]:
        """The transcript's words with their phones (pocketsphinx' second pass over the word alignment:
        `set_alignment`, as its `align` command does for phone output) and the forced path's score per frame
        (n_frames,), each HMM state's score spread evenly over its frames."""
        d.set_alignment()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        words, forced = [], np.zeros(n_frames)
        for w in d.get_alignment():
            for p in w:
                for st in p:
                    if st.duration > 0:
                        forced[st.start:st.start + st.duration] = st.score / st.duration
            words.append(AlignedWord(w.name.split("(")[0], [Phone(p.name, p.start, p.duration, p.score) for p in w]))
        return words, forced

    @staticmethod
    def _is_filler(name: str) -> bool:
        return name in ("<sil>", "<s>", "</s>") or name.startswith("[") or name.startswith("+")


# ---------------------------------------------------------------------------------------------------- ASR

class WhisperAligner:
    """ASR with word timestamps through `mlx_whisper`, from a model folder on disk (no hub is reachable).

    The official path is openai-whisper's `model.transcribe(audio, word_timestamps=True)` (outetts' v3
    create_speaker_from_whisper). Measured against it on one seeded checkpoint (parity/test_speaker_asr.py),
    two differences of mlx-whisper 0.4.3, both settled here:
    - mlx_whisper.transcribe defaults to fp16 (`decode_options.get("fp16", True)` loads the model in float16);
      openai-whisper on CPU switches to float32: `fp16=False` is passed;
    - its `decoding.ApplyTimestampRules` is not openai-whisper's: it weighs timestamp against text probability
      on the logits *before* its own pair rules mask them, and forbids "decreasing" timestamps by *position* in
      the sequence (`i for i, v in enumerate(seq)`) instead of by token value; on the seeded model every token
      ends up masked after a timestamp pair (argmax 0). The model's decode runs `TimestampRules` (openai-whisper's
      rule) instead: `whisper_decode`.
    Given the same tokens, mlx_whisper's `timing.find_alignment` gives openai-whisper's word times exactly.
    `options`: more `transcribe` options (temperature, language, ...); outetts passes none.
    """

    OPTIONS = dict(word_timestamps=True, fp16=False)

    def __init__(self, model_path: Optional[str], **options):
        if not model_path:
            raise AlignmentError("no transcript given and no local whisper model: pass --text (forced "
                                 "alignment), --words WORDS.json, or --whisper-model DIR (an MLX whisper model "
                                 "folder)")
        if not os.path.isdir(model_path):
            raise AlignmentError(f"whisper model folder not found: {model_path}")
        self.model_path = model_path
        self.options = dict(self.OPTIONS, **options)

    def load(self):
        """The mlx-whisper model whose `decode` applies openai-whisper's timestamp rules."""
        import functools

        import mlx.core as mx
        from mlx_whisper.load_models import load_model

        model = load_model(self.model_path, mx.float16 if self.options.get("fp16") else mx.float32)
        model.decode = functools.partial(whisper_decode, model)  # this instance only; the class keeps upstream's
        return model

    def align(self, audio: np.ndarray, sr: int, text: Optional[str] = None) -> List[Word]:
        try:
            import mlx_whisper
            from mlx_whisper.transcribe import ModelHolder
        except ImportError:
            raise AlignmentError("ASR alignment needs mlx_whisper, which is not installed (pip install "
                                 "mlx-whisper); or pass --text for forced alignment") from None
        x = A.to_mono(np.asarray(audio, dtype=np.float32))
        x = A.resample(x, sr, 16000) if sr != 16000 else x
        # transcribe takes its model from ModelHolder (loaded by path): ours is put there for this call only
        before = ModelHolder.model, ModelHolder.model_path
        ModelHolder.model, ModelHolder.model_path = self.load(), self.model_path
        try:
            result = mlx_whisper.transcribe(x, path_or_hf_repo=self.model_path, **self.options)
        finally:
            ModelHolder.model, ModelHolder.model_path = before
        self.text = result.get("text", "")
        words = [Word(w["word"].strip(), float(w["start"]), float(w["end"]))
                 for seg in result.get("segments", []) for w in seg.get("words", [])]
        return check_words(words, x.shape[-1] / 16000)


def whisper_decode(model, mel, options=None, **kwargs):
    """mlx_whisper.decoding.decode with openai-whisper's timestamp rules (`TimestampRules`) in the task."""
    from dataclasses import replace

    from mlx_whisper.decoding import ApplyTimestampRules, DecodingOptions, DecodingTask

    options = replace(options or DecodingOptions(), **kwargs)
    task = DecodingTask(model, options)
    task.logit_filters = [TimestampRules(f.tokenizer, f.sample_begin, f.max_initial_timestamp_index)
                          if isinstance(f, ApplyTimestampRules) else f for f in task.logit_filters]
    single = mel.ndim == 2
    result = task.run(mel[None] if single else mel)
    return result[0] if single else result


class TimestampRules:
    """openai-whisper 20250625 `decoding.ApplyTimestampRules.apply` on (n_batch, n_vocab) MLX logits: timestamps in
    pairs (except before EOT), never decreasing by token value, a timestamp first (at most max_initial), and
    timestamps forced when their total probability beats every text token's, on the masked logits (float32)."""

    def __init__(self, tokenizer, sample_begin: int, max_initial_timestamp_index: Optional[int]):
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits, tokens):
        import mlx.core as mx

        tok, tb = self.tokenizer, self.tokenizer.timestamp_begin
        x = np.array(logits.astype(mx.float32))  # a copy: upstream edits its tensor in place
        seqs = np.array(tokens)
        if tok.no_timestamps is not None:
            x[:, tok.no_timestamps] = -np.inf
        for k in range(seqs.shape[0]):
            sampled = seqs[k, self.sample_begin:]
            last = sampled.size >= 1 and sampled[-1] >= tb
            penultimate = sampled.size < 2 or sampled[-2] >= tb
            if last:
                if penultimate:  # has to be non-timestamp
                    x[k, tb:] = -np.inf
                else:  # cannot be normal text tokens
                    x[k, :tok.eot] = -np.inf
            stamps = sampled[sampled >= tb]
            if stamps.size > 0:  # not decreasing; a nonzero segment length unless this closes a pair
                x[k, tb:int(stamps[-1]) if last and not penultimate else int(stamps[-1]) + 1] = -np.inf
        if seqs.shape[1] == self.sample_begin:  # a timestamp first, at most max_initial_timestamp
            x[:, :tb] = -np.inf
            if self.max_initial_timestamp_index is not None:
                x[:, tb + self.max_initial_timestamp_index + 1:] = -np.inf
        masked = mx.array(x)
        logprobs = masked - mx.logsumexp(masked, axis=-1, keepdims=True)
        force = np.array(mx.logsumexp(logprobs[:, tb:], axis=-1) > mx.max(logprobs[:, :tb], axis=-1))
        x[force, :tb] = -np.inf
        return mx.array(x)
