"""Word aligners (impl.speaker.align): forced alignment on the LibriVox clips against their pocketsphinx
reference alignments (fixtures/data), transcript mismatch detection, transcript tokens, bad input."""
import json

import numpy as np
import pytest
import soundfile as sf

from impl.speaker.align import AlignmentError, ForcedAligner, GivenWords, WhisperAligner, Word, transcript_tokens
from parity.doubles import LIBRIVOX


def _clip(clip):
    """(audio, rate, transcript, pocketsphinx word records)"""
    x, sr = sf.read(clip.wav, dtype="float32")
    return x, sr, clip.text, clip.words


@pytest.fixture(scope="module")
def aligner():
    return ForcedAligner()


@pytest.mark.parametrize("name", LIBRIVOX)
def test_speaker_align_forced_matches_librivox_reference(name, librivox, aligner):
    """The clips' alignments were made by pocketsphinx's own `align` command: we reproduce every boundary."""
    x, sr, text, ref = _clip(librivox[name])
    words = aligner.align(x, sr, text)
    assert [w.word for w in words] == text.split()
    start_err = [abs(w.start - r["b"]) for w, r in zip(words, ref)]
    end_err = [abs(w.end - (r["b"] + r["d"])) for w, r in zip(words, ref)]
    assert max(start_err + end_err) <= 0.0101, (start_err, end_err)
    assert -20.0 < aligner.confidence < 20.0  # forced minus phone loop per frame: either may fit better


def test_speaker_align_digital_silence_padding(librivox, aligner):
    """Zeros around speech (synthetic or edited audio) used to make pocketsphinx's search fail: times shift by
    exactly the padding."""
    x, sr, text, ref = _clip(librivox["0880"])
    pad = np.zeros(sr // 2, np.float32)
    words = aligner.align(np.concatenate([pad, x, pad]), sr, text)
    err = [abs(w.start - 0.5 - r["b"]) for w, r in zip(words, ref)]
    assert max(err) <= 0.0201, err


@pytest.mark.parametrize("wrong", ["hello world", "reverse", "other clip"])
def test_speaker_align_mismatched_transcript_is_refused(wrong, librivox, aligner):
    x, sr, text, _ = _clip(librivox["0870"])
    wrong = {"reverse": " ".join(text.split()[::-1]), "other clip": librivox["0890"].text}.get(wrong, wrong)
    with pytest.raises(AlignmentError, match="does not match the audio"):
        aligner.align(x, sr, wrong)


@pytest.mark.parametrize("name", LIBRIVOX)
@pytest.mark.parametrize("drop", ["first 3", "middle 3", "last 3"])
def test_speaker_align_missing_words_are_refused(name, drop, librivox, aligner):
    """Speech the transcript lacks: a loud pause, a word stretched over it, or a poor score (all nine, 0870
    "last 3" since the fit is judged against a phone loop)."""
    x, sr, text, _ = _clip(librivox[name])
    t = text.split()
    partial = {"first 3": t[3:], "middle 3": t[:5] + t[8:], "last 3": t[:-3]}[drop]
    with pytest.raises(AlignmentError, match="does not match the audio"):
        aligner.align(x, sr, " ".join(partial))


def test_speaker_align_no_speech_is_refused(aligner):
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(3 * 16000)).astype(np.float32)
    with pytest.raises(AlignmentError, match="does not match the audio"):
        aligner.align(noise, 16000, "he was not an ill disposed young man")


def test_speaker_align_any_rate_and_channels(librivox, aligner):
    """44.1 kHz stereo in: resampled to pocketsphinx's 16 kHz, downmixed; same words within one frame."""
    from impl import audio as A

    x, sr, text, ref = _clip(librivox["0880"])
    y = A.resample(x, sr, 44100)
    words = aligner.align(np.stack([y, 0.8 * y]), 44100, text)
    assert max(abs(w.start - r["b"]) for w, r in zip(words, ref)) <= 0.0201


@pytest.mark.parametrize("text,match", [
    ("", "text is empty"), ("   ", "text is empty"), ("... !", "no words"),
    ("he was 42", "digits"), ("he was zxqvbnm", "zxqvbnm"),
])
def test_speaker_align_bad_transcripts(text, match, librivox, aligner):
    x, sr, _, _ = _clip(librivox["0880"])
    with pytest.raises(AlignmentError, match=match):
        aligner.align(x, sr, text)


def test_speaker_align_transcript_tokens():
    assert transcript_tokens("Hello, world!") == [("Hello,", ["hello"]), ("world!", ["world"])]
    assert transcript_tokens("an ill-disposed man") == [("an", ["an"]), ("ill-disposed", ["ill", "disposed"]),
                                                         ("man", ["man"])]
    assert transcript_tokens("“Wait” — don't 'go'") == [("“Wait” —", ["wait"]), ("don't", ["don't"]),
                                                          ("'go'", ["go"])]
    assert transcript_tokens("- so") == [("- so", ["so"])]


def test_speaker_align_given_words(tmp_path):
    words = [{"word": " hi", "start": 0.1, "end": 0.4}, {"word": "there", "start": 0.4, "end": 0.9}]
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"segments": [{"words": words}]}))
    assert GivenWords(str(p)).align(np.zeros(16000), 16000) == [Word("hi", 0.1, 0.4), Word("there", 0.4, 0.9)]
    with pytest.raises(AlignmentError, match="outside the audio"):
        GivenWords(words).align(np.zeros(8000), 16000)
    with pytest.raises(AlignmentError, match="out of order"):
        GivenWords(words[::-1]).align(np.zeros(16000), 16000)
    with pytest.raises(AlignmentError, match="no words"):
        GivenWords([]).align(np.zeros(16000), 16000)
    with pytest.raises(AlignmentError, match="word/start/end"):
        GivenWords([{"word": "x"}])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AlignmentError, match="cannot read"):
        GivenWords(str(tmp_path / "bad.json"))


def test_speaker_align_whisper_needs_local_model(tmp_path):
    with pytest.raises(AlignmentError, match="--whisper-model"):
        WhisperAligner(None)
    with pytest.raises(AlignmentError, match="not found"):
        WhisperAligner(str(tmp_path / "nope"))
    try:
        import mlx_whisper  # noqa: F401
    except ImportError:
        with pytest.raises(AlignmentError, match="pip install mlx-whisper"):
            WhisperAligner(str(tmp_path)).align(np.zeros(16000, np.float32), 16000)
