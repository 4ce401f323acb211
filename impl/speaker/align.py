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
    right transcript leave speech in a pause or stretch a word over it (`_untranscribed`): dropping 3 words at
    the start, middle or end of a LibriVox clip is caught in 9 of 9 cases, a single edge word in 3 of 6; no
    right transcript (54 espeak-ng utterances, 3 LibriVox clips) is refused.
    """

    SAMPLE_RATE = 16000
    FRATE = 100  # frames per second
    LOUD_PAUSE_DB = 6.0
    DECODER = dict(bestpath=False, dither=True, seed=1, beam=1e-80, wbeam=1e-60, pbeam=1e-80, loglevel="FATAL")

    def __init__(self, min_confidence: float = -30.0):
        self.min_confidence = min_confidence
        self.confidence: Optional[float] = None  # of the last alignment

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
        problem = self._untranscribed(d, segs, x)
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

    def _untranscribed(self, d, segs, x: np.ndarray) -> Optional[str]:
        """Speech the transcript lacks shows as a loud pause (a `<sil>` of >= 150 ms whose 90th-percentile
        level is within `LOUD_PAUSE_DB` of the clip's speech level, its 95th percentile) or as a word stretched
        over the missing ones (>= 0.6 s and >= 200 ms per phone). Frame levels: 25 ms RMS every 10 ms."""
        n = max(1, (x.shape[-1] - 400) // 160 + 1)
        idx = np.arange(400)[None, :] + 160 * np.arange(n)[:, None]
        xp = np.pad(x, (0, max(0, idx.max() + 1 - x.shape[-1])))
        db = 10.0 * np.log10(np.mean(xp[idx].astype(np.float64) ** 2, axis=1) + 1e-12)
        top = np.percentile(db, 95)
        for s in segs:
            frames = s.end_frame - s.start_frame + 1
            level = np.percentile(db[s.start_frame:s.end_frame + 1], 90) if s.start_frame < n else -120.0
            where = f"{s.start_frame / self.FRATE:.2f}-{(s.end_frame + 1) / self.FRATE:.2f} s"
            if s.word == "<sil>" and frames >= 15 and level > top - self.LOUD_PAUSE_DB:
                return f"there is speech at {where} that the transcript does not have"
            if not self._is_filler(s.word):
                phones = len((d.lookup_word(s.word) or "x").split())
                if frames >= 60 and frames >= 20 * phones:
                    return (f"{s.word.split('(')[0]!r} would last {frames / self.FRATE:.2f} s ({where}): words "
                            "around it seem to be missing from the transcript")
        return None

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
