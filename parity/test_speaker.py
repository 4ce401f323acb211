"""impl.speaker vs outetts 0.4.4's own speaker-profile code (`version/v3/audio_processor.py`), same words.

outetts' create_speaker transcribes with whisper and hands the words to create_speaker_from_dict; here both
sides get the same words (reference.speaker.create_speaker), so everything after alignment is compared: text,
words, c1/c2 codes, durations, per-word and global feature buckets, all exactly. The DAC under both is the
official torch model on the same tiny seeded checkpoint (reference.dac.TorchDac behind
impl.dac.interface), which isolates the profile logic; the last test runs `voiceport profile create` with the
MLX DAC end to end.
"""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.dac.interface import DacInterface
from impl.speaker import features as F
from impl.speaker.align import ForcedAligner, GivenWords, Word
from impl.speaker.profile import (ProfileError, SpeakerError, create_profile, load_speaker, save_profile,
                                  slice_words)
from parity.doubles import LIBRIVOX
from parity.specs.speaker import EDGE, near_edge, reference_words
from reference import speaker as ref
from reference.dac import TorchDac


def assert_buckets_exact(got, want, raw, what=""):
    """Feature buckets equal, except where outetts' own value x 100 lies within EDGE (1e-4) of a rounding edge
    k + 0.5 (fp32 summation order may put it either side): those are skipped; returns the number skipped."""
    skipped = 0
    for k in want:
        if k in raw and near_edge(raw[k]):
            skipped += 1
            continue
        assert got[k] == want[k], f"{k}: {got[k]} vs outetts {want[k]} (value x 100 = {raw.get(k)!r}) {what}"
    assert list(got) == list(want)
    return skipped


@pytest.fixture(scope="module")
def ours(tiny_ckpt):
    return DacInterface(TorchDac(tiny_ckpt))


@pytest.fixture(scope="module")
def official(tiny_ckpt):
    return ref.processor(tiny_ckpt)


def assert_same_profile(got, want):
    assert list(got) == list(want), f"keys {list(got)} != {list(want)}"
    assert got["text"] == want["text"]
    assert len(got["words"]) == len(want["words"])
    for n, (g, w) in enumerate(zip(got["words"], want["words"])):
        for key in ("word", "duration", "c1", "c2", "features"):
            assert g[key] == w[key], f"words[{n}] ({w['word']!r}).{key}: {g[key]} != {w[key]}"
        assert list(g) == list(w)
    assert got["global_features"] == want["global_features"]
    assert got == want


# ------------------------------------------------------------------------------------ profile == outetts

@pytest.mark.parametrize("name", LIBRIVOX)
def test_speaker_profile_equals_outetts(name, librivox, ours, official, tiny_ckpt):
    clip = librivox[name]
    words = reference_words(clip)
    got = create_profile(clip.wav, ours, GivenWords(words), text=clip.text)
    want = ref.create_speaker(clip.wav, tiny_ckpt, words, clip.text, proc=official)
    assert_same_profile(got, want)
    assert sum(len(w["c1"]) for w in got["words"]) > 0.5 * 75 * got["words"][-1]["duration"]


def test_speaker_profile_forced_alignment_equals_outetts(librivox, ours, official, tiny_ckpt):
    """Our forced aligner's words, with the transcript's spelling and punctuation, given to both sides."""
    wav = librivox["0880"].wav
    text = "He was not an ill-disposed young man."
    aligner = ForcedAligner()
    got = create_profile(wav, ours, aligner, text=text)
    import soundfile as sf

    x, sr = sf.read(wav, dtype="float32")
    words = [{"word": w.word, "start": w.start, "end": w.end} for w in aligner.align(x, sr, text)]
    assert [w["word"] for w in words] == text.split()
    want = ref.create_speaker(wav, tiny_ckpt, words, text, proc=official)
    assert_same_profile(got, want)
    assert got["text"] == "He was not an ill-disposed young man."


def test_speaker_profile_stereo_44k_equals_outetts(librivox, ours, official, tiny_ckpt, tmp_path):
    """Any rate and channel count: downmixed and resampled exactly as outetts' load_audio does."""
    import soundfile as sf

    clip = librivox["0880"]
    x, sr = sf.read(clip.wav, dtype="float32")
    from reference.audio import resample_transform

    y = resample_transform(x[None].astype(np.float32), sr, 44100)[0]
    stereo = np.stack([y, 0.5 * y + 0.01 * np.sin(np.arange(y.size) / 7.0)], axis=1)
    path = str(tmp_path / "stereo.flac")
    sf.write(path, stereo, 44100, subtype="PCM_24")
    words = reference_words(clip)
    got = create_profile(path, ours, GivenWords(words), text=clip.text)
    want = ref.create_speaker(path, tiny_ckpt, words, clip.text, proc=official)
    assert_same_profile(got, want)


class _FixedCodes:
    """Stands in for outetts' DacInterface inside its create_speaker_from_dict: given audio and codes."""

    def __init__(self, audio, codes):
        self.audio, self.codes, self.sr = audio, codes, 24000

    def load_audio(self, f):
        import torch

        return torch.from_numpy(self.audio)[None, None]

    def encode(self, x, verbose=False):
        import torch

        return torch.from_numpy(self.codes.astype(np.int64))[None]


def _words_strategy():
    gaps = st.lists(st.tuples(st.floats(0.0, 0.3), st.floats(0.02, 0.6)), min_size=1, max_size=6)
    return gaps.map(lambda g: _times(g))


def _times(pairs):
    out, t = [], 0.0
    for n, (gap, dur) in enumerate(pairs):
        start = round(t + gap, 3)
        out.append(Word(f"w{n}", start, round(start + dur, 3)))
        t = start + dur
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=_words_strategy(), seed=st.integers(0, 2 ** 16))
def test_speaker_slicing_equals_outetts(words, seed):
    """Code slicing (first/last-word margins, contiguity, duration rounding, clip end) and per-word features
    exactly as create_speaker_from_dict, for random word times over random codes and a noisy tone."""
    from outetts.version.v3.audio_processor import AudioProcessor, Features

    rng = np.random.default_rng(seed)
    seconds = words[-1].end + float(rng.uniform(0.0, 0.5))
    n = int(seconds * 24000)
    t = np.arange(n) / 24000
    audio = (0.3 * np.sin(2 * np.pi * rng.uniform(90, 300) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)
    codes = rng.integers(0, 1024, (2, -(-n // 320)), dtype=np.int64)
    proc = AudioProcessor.__new__(AudioProcessor)
    proc.device, proc.features, proc.audio_codec = "cpu", Features("cpu"), _FixedCodes(audio, codes)
    raw = []
    proc = ref._recording(proc, raw)  # outetts' values before rounding: global first, then each word
    data = {"audio": {"bytes": b""}, "text": "x",
            "words": [{"word": w.word, "start": w.start, "end": w.end} for w in words]}
    try:
        want = proc.create_speaker_from_dict(data)["words"]
    except RuntimeError as e:  # a word shorter than one pitch frame: torch's unfold fails; so must we
        assert "size" in str(e)
        with pytest.raises(ProfileError, match="too short"):
            slice_words(codes[0], codes[1], words, audio, 24000)
        return
    got = slice_words(codes[0].tolist(), codes[1].tolist(), words, audio, 24000)
    skipped = 0
    for n, (g, w) in enumerate(zip(got, want)):
        assert (g["word"], g["duration"], g["c1"], g["c2"]) == (w["word"], w["duration"], w["c1"], w["c2"])
        skipped += assert_buckets_exact(g["features"], w["features"], dict(zip(F.FEATURE_NAMES, raw[1 + n])),
                                        f"words[{n}]")
    assert len(got) == len(want)
    SKIPS["slicing"] += skipped


# --------------------------------------------------------------------------------------- feature buckets

def _signal(kind, n, seed, sr):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if kind == "tone":
        f0 = rng.uniform(60, 650)
        x = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 6))
    elif kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "chirp":
        x = np.sin(2 * np.pi * (rng.uniform(50, 300) + rng.uniform(0, 2000) * t) * t)
    else:  # bursts: voiced segments and silences
        x = np.sin(2 * np.pi * rng.uniform(80, 400) * t) * (np.sin(2 * np.pi * rng.uniform(1, 8) * t) > 0)
    return (rng.uniform(0.001, 1.0) * x / max(np.max(np.abs(x)), 1e-9)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["tone", "noise", "chirp", "bursts"]), n=st.integers(400, 48000),
       seed=st.integers(0, 2 ** 31), sr=st.sampled_from([24000, 16000]))
def test_speaker_features_buckets_exact(kind, n, seed, sr):
    """Buckets equal outetts' exactly; a value outetts puts within 1e-4 of a rounding edge is skipped and counted
    (printed at the end of the module: test_speaker_bucket_skips_reported)."""
    x = _signal(kind, n, seed, sr)[None]
    got, want = F.extract_audio_features(x, sr), ref.features(x, sr)
    SKIPS["features"] += assert_buckets_exact(got, want, ref.raw_features(x, sr), f"({kind}, n={n}, seed={seed})")
    SKIPS["compared"] += len(want)


SKIPS = {"features": 0, "slicing": 0, "compared": 0}


def test_speaker_bucket_edge_rule():
    """The skip rule: only values within EDGE of k + 0.5 (where round() turns), never others."""
    assert near_edge(12.5) and near_edge(12.50009) and near_edge(3.49995)
    assert not near_edge(12.4998) and not near_edge(12.0) and not near_edge(12.9999) and EDGE == 1e-4


def test_speaker_bucket_skips_reported(capsys):
    """Runs after the bucket tests of this module: prints how many bucket comparisons were skipped at an edge."""
    with capsys.disabled():
        print(f"\n[test_speaker] feature buckets: {SKIPS['compared']} compared on generated signals, "
              f"{SKIPS['features']} skipped there and {SKIPS['slicing']} in the slicing test (reference value "
              f"within {EDGE:g} of a rounding edge)")
    assert SKIPS["features"] <= SKIPS["compared"]


def test_speaker_features_pitch_track_equals_outetts(librivox):
    """The pitch track itself (Hz per 400-sample frame) on real speech, against outetts' calculate_pitch run in
    float64 (`want64`): voicing decisions and unvoiced (clamped) frames exact; on voiced frames impl's error is
    within k = 10 x the official float32 pipeline's own error (`want` vs `want64`, the floor), quantile by
    quantile (median, 90 %, 99 %, max), so a frame-level fault cannot hide behind the worst frames' floor
    (measured here: impl/floor 0.33-0.77 per quantile; the parabolic peak interpolation divides by
    alpha - 2 beta + gamma, which amplifies last-bit autocorrelation differences on flat peaks)."""
    import soundfile as sf
    import torch
    from outetts.version.v3.audio_processor import calculate_pitch

    x, sr = sf.read(librivox["0870"].wav, dtype="float32")
    got = F.calculate_pitch(x, 24000).astype(np.float64)
    want = calculate_pitch(torch.from_numpy(x), 24000).numpy().astype(np.float64)
    want64 = calculate_pitch(torch.from_numpy(x).double(), 24000).numpy()
    assert got.shape == want.shape == want64.shape
    voiced = (want64 > 75.0) & (want64 < 600.0)
    assert np.array_equal((got > 75.0) & (got < 600.0), voiced), "voicing decisions differ"
    assert np.array_equal(got[~voiced], want64[~voiced])
    assert np.count_nonzero(voiced) > 100
    q = (0.5, 0.9, 0.99, 1.0)
    err = np.quantile(np.abs(got - want64)[voiced], q)
    floor = np.quantile(np.abs(want - want64)[voiced], q)
    assert np.all(err <= 10 * floor), f"pitch error quantiles {err} > 10 x the float32 floor {floor}"


def test_speaker_features_invalid_audio_is_zeros():
    for bad in (np.zeros((1, 0), np.float32), np.full((1, 800), np.nan, np.float32)):
        assert F.extract_audio_features(bad, 24000) == ref.features(bad, 24000) == \
            {"energy": 0, "spectral_centroid": 0, "pitch": 0}


# ---------------------------------------------------------------------------------------------- JSON I/O

def test_speaker_json_round_trip_with_outetts(librivox, ours, official, tiny_ckpt, tmp_path):
    """Ours -> outetts' load_speaker, outetts' save_speaker -> ours: identical dicts, byte-identical files."""
    clip = librivox["0880"]
    words = reference_words(clip)
    profile = create_profile(clip.wav, ours, GivenWords(words), text=clip.text)
    ours_path = save_profile(profile, tmp_path / "ours.json")
    assert ref.load_speaker(ours_path) == profile

    theirs = ref.create_speaker(clip.wav, tiny_ckpt, words, clip.text, proc=official)
    ref.save_speaker(theirs, str(tmp_path / "theirs.json"))
    assert load_speaker(tmp_path / "theirs.json") == theirs == profile
    with open(ours_path, "rb") as a, open(tmp_path / "theirs.json", "rb") as b:
        assert a.read() == b.read()
    # outetts' bundled default speaker loads in ours as well
    import outetts

    default = os.path.join(os.path.dirname(outetts.__file__), "version", "v3", "default_speakers", "json",
                           "en-female-1-neutral.json")
    with open(default) as f:
        assert load_speaker(default) == json.load(f)


def test_speaker_save_appends_json_and_is_atomic(librivox, ours, tmp_path):
    clip = librivox["0880"]
    profile = create_profile(clip.wav, ours, GivenWords(reference_words(clip)), text=clip.text)
    assert save_profile(profile, tmp_path / "spk") == str(tmp_path / "spk.json")
    bad = dict(profile, words=[])
    with pytest.raises(SpeakerError):
        save_profile(bad, tmp_path / "bad.json")
    assert sorted(os.listdir(tmp_path)) == ["spk.json"]


# ----------------------------------------------------------------------------- CLI end to end, MLX DAC

def test_speaker_cli_create_equals_outetts(librivox, tiny_ckpt, tmp_path, capsys):
    """`voiceport profile create` with the MLX DAC (impl.dac) on the tiny checkpoint: the profile equals outetts'
    create_speaker over the official DAC on the same weights, given our aligner's words."""
    import soundfile as sf

    from impl.cli import main

    wav, text = librivox["0880"].wav, "He was not an ill-disposed young man."
    out = tmp_path / "spk.json"
    rc = main(["profile", "create", wav, "--text", text, "--codec", tiny_ckpt, "-o", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in err, err
    assert "wrote" in stdout and "aligning words" in err and "encoding with DAC" in err
    got = load_speaker(out)
    assert ref.load_speaker(str(out)) == got
    x, sr = sf.read(wav, dtype="float32")
    words = [{"word": w.word, "start": w.start, "end": w.end} for w in ForcedAligner().align(x, sr, text)]
    want = ref.create_speaker(wav, tiny_ckpt, words, text)
    assert got == want

    assert main(["profile", "show", str(out)]) == 0 and "7 words" in capsys.readouterr().out
