"""`voiceport spark tokenize/detokenize` through `impl.cli.main`: the official tokenizer's ids, the official loader's
samples, and the bad-input catalogue.

- impl.spark.audio.load_audio is bit-equal to sparktts load_audio (soundfile float64, first channel, soxr VHQ,
  volume normalisation) on the LibriVox clips at 16 kHz and at 24/44.1/48 kHz copies (PCM_16, float, stereo).
- `spark tokenize` writes the ids sparktts' BiCodecTokenizer.tokenize gives on the same Spark-TTS folder (the tiny
  seeded BiCodec + wav2vec2 in the official layout); `spark detokenize` writes what BiCodec.detokenize of impl gives.
- Bad input (catalogue as tests/test_bad_inputs.py): exit 2, one `voiceport spark: error:` line naming the file or
  option, the folder byte-for-byte as before; corrupted wav / tokens.json bytes (hypothesis): ids or that one line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parity.doubles import CaseFolder, assert_refused, run_cli

# Spark-TTS-0.5B's config.yaml: the keys BiCodecTokenizer reads (and two it does not).
TOP_CONFIG = ("highpass_cutoff_freq: 40\nsample_rate: 16000\nsegment_duration: 2.4 # (s)\nmax_val_duration: 12 # (s)\n"
              "latent_hop_length: 320\nref_segment_duration: 6\nvolume_normalize: true\n")


@dataclass(frozen=True)
class Fx:
    d: Path
    ckpt: Path  # a Spark-TTS folder: config.yaml, BiCodec/ (tiny), wav2vec2-large-xlsr-53/ (tiny)
    clip: Path  # 3 s of LibriVox speech, 16 kHz PCM_16
    tokens: Path  # valid ids for the tiny BiCodec (8 global < 4096, 20 semantic < 256)


@pytest.fixture(scope="module")
def fx(tmp_path_factory, librivox):
    import shutil

    from impl.seeded.spark import seeded_bicodec, seeded_w2v

    d = tmp_path_factory.mktemp("spark")
    ckpt = d / "Spark-TTS-tiny"
    ckpt.mkdir()
    shutil.copytree(seeded_bicodec("tiny", 0), ckpt / "BiCodec")
    shutil.copytree(seeded_w2v("tiny", 0), ckpt / "wav2vec2-large-xlsr-53")
    (ckpt / "config.yaml").write_text(TOP_CONFIG)
    x, sr = sf.read(librivox["0880"].wav, dtype="int16")
    sf.write(d / "clip.wav", x, sr, subtype="PCM_16")
    rng = np.random.default_rng(0)
    (d / "tokens.json").write_text(json.dumps({"sample_rate": 16000, "global": rng.integers(0, 4096, 8).tolist(),
                                               "semantic": rng.integers(0, 256, 20).tolist()}))
    return Fx(d=d, ckpt=ckpt, clip=d / "clip.wav", tokens=d / "tokens.json")


def _resampled(src: Path, dst: Path, sr: int, subtype: str = "PCM_16", stereo: bool = False) -> Path:
    import soxr

    x, sr0 = sf.read(str(src))
    y = soxr.resample(x, sr0, sr)  # any resampler: the copies only need to be at another rate
    if stereo:
        y = np.stack([y, -0.5 * y], axis=1)
    sf.write(str(dst), y, sr, subtype=subtype)
    return dst


# ------------------------------------------------------------------------------------------------ the loader

@pytest.mark.parametrize("sr,subtype,stereo", [(16000, "PCM_16", False), (24000, "PCM_16", False),
                                               (44100, "PCM_16", False), (48000, "PCM_16", False),
                                               (44100, "FLOAT", False), (48000, "PCM_24", True),
                                               (22050, "DOUBLE", True)])
@pytest.mark.parametrize("clip", ["0870", "0880", "0890"])
def test_spark_load_audio_bit_equal_to_sparktts(librivox, tmp_path, clip, sr, subtype, stereo):
    from impl.spark import audio
    from reference import spark as ref

    path = _resampled(Path(librivox[clip].wav), tmp_path / "x.wav", sr, subtype, stereo)
    got, want = audio.load_audio(path), ref.load_audio(path)
    assert got.dtype == want.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got, want), f"max|d| {np.max(np.abs(got - want)):.3g}"


def test_spark_load_audio_uses_vhq_not_the_default_quality(librivox, tmp_path):
    """The check above can fail: soxr's default quality (HQ) gives other samples than upstream's VHQ."""
    import soxr

    from impl.spark import audio

    path = _resampled(Path(librivox["0880"].wav), tmp_path / "x.wav", 44100)
    x, sr = sf.read(str(path))
    hq = audio.audio_volume_normalize(soxr.resample(x, sr, 16000))
    assert not np.array_equal(hq, audio.load_audio(path))


# ------------------------------------------------------------------------------------------------ the commands

@pytest.mark.parametrize("sr", [16000, 44100])
def test_spark_tokenize_ids_are_the_official_tokenizer_ids(fx, tmp_path, capsys, sr):
    import torch
    from spark_tts_lib.models.audio_tokenizer import BiCodecTokenizer

    clip = fx.clip if sr == 16000 else _resampled(fx.clip, tmp_path / "clip44.wav", sr)
    out = tmp_path / "t.json"
    rc, _, err = run_cli(["spark", "tokenize", str(clip), "-o", str(out), "--checkpoint", str(fx.ckpt)], capsys)
    assert rc == 0, err
    assert "[1/3]" in err and "[3/3]" in err  # progress lines with their total
    doc = json.loads(out.read_text())
    tok = BiCodecTokenizer(fx.ckpt, device=torch.device("cpu"))
    with torch.no_grad():
        glob, sem = tok.tokenize(str(clip))
    assert doc["sample_rate"] == 16000
    assert doc["global"] == glob.reshape(-1).tolist()
    assert doc["semantic"] == sem.reshape(-1).tolist()
    assert len(doc["semantic"]) == (47840 - 400) // 320 + 1  # wav2vec2's frames: window 400, hop 320


def test_spark_detokenize_writes_the_models_audio(fx, tmp_path, capsys):
    import mlx.core as mx

    from impl import spark

    out = tmp_path / "o.wav"
    rc, _, err = run_cli(["spark", "detokenize", str(fx.tokens), "-o", str(out), "--checkpoint", str(fx.ckpt)],
                         capsys)
    assert rc == 0, err
    got, sr = sf.read(str(out), dtype="float32")
    doc = json.loads(fx.tokens.read_text())
    model = spark.load(fx.ckpt / "BiCodec")
    want = np.array(model.detokenize(mx.array([doc["semantic"]]), mx.array([[doc["global"]]])))[0]
    assert sr == 16000 and got.shape == (20 * 320,)
    assert np.array_equal(got, want)  # 32-bit float wav: the samples as computed


def test_spark_help_explains_every_argument(capsys):
    for action in ("tokenize", "detokenize"):
        rc, out, _ = run_cli(["spark", action, "--help"], capsys)
        assert rc == 0
        for arg in ("--checkpoint", "-o", "AUDIO" if action == "tokenize" else "TOKENS.json"):
            assert arg in out
        assert "help message" in out and out.count("\n  ") >= 4


# ------------------------------------------------------------------------------------------------ bad input

@dataclass
class Ctx(CaseFolder):
    fx: Fx = None

    def wav(self, name: str, x: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> str:
        sf.write(str(self.d / name), x, sr, subtype=subtype)
        return str(self.d / name)

    def tokens(self, name: str = "bad.json", **edit) -> str:
        doc = json.loads(self.fx.tokens.read_text())
        for k, v in edit.items():
            if v is None:
                doc.pop(k)
            else:
                doc[k] = v
        return self.file(name, json.dumps(doc))

    def ckpt_without(self, part: str) -> str:
        import shutil

        dst = self.d / "ck"
        shutil.copytree(self.fx.ckpt, dst)
        shutil.rmtree(dst / part)
        return str(dst)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Ctx], Tuple[List[str], Optional[str]]]
    frags: Sequence[str]
    where: str = "voiceport spark"
    progress: int = 0  # progress lines before the error: a checkpoint's tensors are checked as it loads


def tok(c: Ctx, audio: str, out: str = "t.json", ckpt: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    return ["spark", "tokenize", audio, "-o", out, "--checkpoint", ckpt or str(c.fx.ckpt)], out


def detok(c: Ctx, tokens: str, out: str = "o.wav", ckpt: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    return ["spark", "detokenize", tokens, "-o", out, "--checkpoint", ckpt or str(c.fx.ckpt)], out


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(n)


CASES: List[Case] = [
    # -------------------------------------------------------------- tokenize: the audio
    Case("tokenize missing audio", lambda c: tok(c, str(c.d / "nope.wav")), ["nope.wav", "no such file"]),
    Case("tokenize directory as audio", lambda c: tok(c, c.folder("clips")), ["clips", "is a directory"]),
    Case("tokenize 0-byte wav", lambda c: tok(c, c.file("empty.wav")), ["empty.wav", "empty (0 bytes)"]),
    Case("tokenize text as wav", lambda c: tok(c, c.file("notes.wav", "hello\n")),
         ["notes.wav", "cannot read audio", "Format not recognised"]),
    Case("tokenize truncated wav", lambda c: tok(c, c.cut(c.fx.clip, "half.wav")),
         ["half.wav", "truncated", "47840 frames"]),
    Case("tokenize header only wav", lambda c: tok(c, c.cut(c.fx.clip, "head.wav", keep=44 / 95724)),
         ["head.wav"]),
    Case("tokenize silent wav", lambda c: tok(c, c.wav("zeros.wav", np.zeros(16000))),
         ["zeros.wav", "silent", "every sample"]),
    Case("tokenize 1-sample wav", lambda c: tok(c, c.wav("one.wav", np.array([0.5]))),
         ["one.wav", "1 samples at 16000 Hz", "too short", "at least 400"]),
    Case("tokenize 20 ms wav", lambda c: tok(c, c.wav("short.wav", _noise(320))),
         ["short.wav", "320 samples", "too short", "25 ms"]),
    Case("tokenize 20 ms at 48 kHz", lambda c: tok(c, c.wav("s48.wav", _noise(960), 48000)),
         ["s48.wav", "320 samples at 16000 Hz", "too short"]),
    Case("tokenize NaN samples", lambda c: tok(c, c.wav("nan.wav", np.r_[_noise(800), np.nan, _noise(800)], 16000,
                                                         "FLOAT")), ["nan.wav", "1 NaN/Inf samples"]),
    Case("tokenize Inf samples", lambda c: tok(c, c.wav("inf.wav", np.r_[_noise(800), np.inf], 16000, "DOUBLE")),
         ["inf.wav", "NaN/Inf"]),
    Case("tokenize over 60 s", lambda c: tok(c, c.wav("long.wav", _noise(8000 * 61), 8000)),
         ["long.wav", "61.00 s", "limit of 60 s"]),
    Case("tokenize first channel silent", lambda c: tok(c, c.wav("st.wav", np.stack([np.zeros(3200), _noise(3200)],
                                                                                      axis=1))),
         ["st.wav", "silent", "first channel"]),
    Case("tokenize 44.1 kHz without soxr", lambda c: tok(c, _without_soxr(c, c.wav("a44.wav", _noise(4410), 44100))),
         ["a44.wav", "44100 Hz audio needs resampling", "voiceport[spark]"]),
    # -------------------------------------------------------------- tokenize: output and checkpoint
    Case("tokenize out wrong extension", lambda c: tok(c, str(c.fx.clip), out="t.npy"),
         ["-o", "t.npy", "unknown tokens extension", ".json"]),
    Case("tokenize out is a directory", lambda c: tok(c, str(c.fx.clip), out=c.folder("t.json")),
         ["-o", "t.json", "is a directory"]),
    Case("tokenize out missing folder", lambda c: tok(c, str(c.fx.clip), out=str(c.d / "no" / "t.json")),
         ["-o", "t.json", "does not exist"]),
    Case("tokenize out read-only folder", lambda c: tok(c, str(c.fx.clip), out=c.read_only("ro") + "/t.json"),
         ["-o", "t.json", "not writable"]),
    Case("tokenize checkpoint missing", lambda c: tok(c, str(c.fx.clip), ckpt=str(c.d / "nowhere")),
         ["--checkpoint", "nowhere", "not a folder"]),
    Case("tokenize checkpoint without wav2vec2", lambda c: tok(c, str(c.fx.clip),
                                                               ckpt=c.ckpt_without("wav2vec2-large-xlsr-53")),
         ["--checkpoint", "no wav2vec2-large-xlsr-53/ folder"]),
    Case("tokenize checkpoint without BiCodec", lambda c: tok(c, str(c.fx.clip), ckpt=c.ckpt_without("BiCodec")),
         ["--checkpoint", "no BiCodec/ folder"]),
    Case("tokenize checkpoint 8 kHz config", lambda c: tok(c, str(c.fx.clip), ckpt=_top_config(
        c, TOP_CONFIG.replace("sample_rate: 16000", "sample_rate: 8000"))), ["config.yaml", "sample_rate 8000"]),
    # -------------------------------------------------------------- detokenize: the tokens file
    Case("detokenize missing tokens", lambda c: detok(c, str(c.d / "nope.json")), ["nope.json", "no such tokens"]),
    Case("detokenize directory as tokens", lambda c: detok(c, c.folder("t.json")), ["t.json", "is a directory"]),
    Case("detokenize not json", lambda c: detok(c, c.file("t.json", "{global: 1")), ["t.json", "not a readable JSON"]),
    Case("detokenize truncated json", lambda c: detok(c, c.cut(c.fx.tokens, "cut.json")),
         ["cut.json", "not a readable JSON"]),
    Case("detokenize json list", lambda c: detok(c, c.file("t.json", "[1, 2]")), ["t.json", "got list"]),
    Case("detokenize missing semantic", lambda c: detok(c, c.tokens(semantic=None)),
         ["bad.json", "missing key(s) semantic"]),
    Case("detokenize unknown key", lambda c: detok(c, c.tokens(codes=[1, 2])),
         ["bad.json", "unknown key(s) codes"]),
    Case("detokenize 7 global ids", lambda c: detok(c, c.tokens(**{"global": [1] * 7})),
         ["bad.json", "7 global ids", "exactly 8"]),
    Case("detokenize global id out of range", lambda c: detok(c, c.tokens(**{"global": [1] * 7 + [4096]})),
         ["bad.json", "1 global id(s) out of range [0, 4096)", "4096 at index 7"]),
    Case("detokenize negative semantic id", lambda c: detok(c, c.tokens(semantic=[3, -1, 2])),
         ["bad.json", "semantic id(s) out of range [0, 256)", "-1 at index 1"]),
    Case("detokenize semantic id = codebook size", lambda c: detok(c, c.tokens(semantic=[256])),
         ["bad.json", "out of range [0, 256)"]),
    Case("detokenize no semantic ids", lambda c: detok(c, c.tokens(semantic=[])),
         ["bad.json", "0 semantic ids", "1 to 3000"]),
    Case("detokenize 3001 semantic ids", lambda c: detok(c, c.tokens(semantic=[0] * 3001)),
         ["bad.json", "3001 semantic ids"]),
    Case("detokenize float ids", lambda c: detok(c, c.tokens(semantic=[1.5, 2])),
         ["bad.json", "'semantic' must be a flat list of integers"]),
    Case("detokenize nested global", lambda c: detok(c, c.tokens(**{"global": [[1] * 8]})),
         ["bad.json", "'global' must be a flat list"]),
    Case("detokenize 24 kHz tokens", lambda c: detok(c, c.tokens(sample_rate=24000)),
         ["bad.json", "sample_rate 24000"]),
    # -------------------------------------------------------------- detokenize: output and checkpoint
    Case("detokenize out wrong extension", lambda c: detok(c, str(c.fx.tokens), out="o.mp3"),
         ["-o", "o.mp3", "unknown audio extension"]),
    Case("detokenize out missing folder", lambda c: detok(c, str(c.fx.tokens), out=str(c.d / "no" / "o.wav")),
         ["-o", "o.wav", "does not exist"]),
    Case("detokenize checkpoint without BiCodec", lambda c: detok(c, str(c.fx.tokens), ckpt=c.ckpt_without("BiCodec")),
         ["--checkpoint", "no BiCodec/ folder"]),
    Case("detokenize checkpoint missing tensor", lambda c: detok(c, str(c.fx.tokens), ckpt=_drop_tensor(c)),
         ["model.safetensors", "missing", "decoder.model.0.bias"], progress=1),
    # -------------------------------------------------------------- argparse
    Case("spark no action", lambda c: (["spark"], None), ["required: ACTION", "tokenize, detokenize"]),
    Case("tokenize no -o", lambda c: (["spark", "tokenize", str(c.fx.clip)], None), ["required", "-o"],
         where="voiceport spark tokenize"),
    Case("detokenize unknown option", lambda c: (["spark", "detokenize", str(c.fx.tokens), "-o", "x.wav", "--rate",
                                                  "8000"], None), ["unrecognized arguments: --rate"],
         where="voiceport spark detokenize"),
]


def _without_soxr(c: Ctx, path: str) -> str:
    import sys

    c.monkeypatch.setitem(sys.modules, "soxr", None)  # `import soxr` raises ImportError
    return path


def _top_config(c: Ctx, text: str) -> str:
    import shutil

    dst = c.d / "ck"
    shutil.copytree(c.fx.ckpt, dst)
    (dst / "config.yaml").write_text(text)
    return str(dst)


def _drop_tensor(c: Ctx) -> str:
    import shutil

    from safetensors.numpy import load_file, save_file

    dst = c.d / "ck"
    shutil.copytree(c.fx.ckpt, dst)
    w = load_file(str(dst / "BiCodec" / "model.safetensors"))
    w.pop("decoder.model.0.bias")
    save_file(w, str(dst / "BiCodec" / "model.safetensors"))
    return str(dst)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spark_bad_input(case, fx, tmp_path, capsys, monkeypatch):
    d = tmp_path / "case"
    d.mkdir()
    argv, out = case.build(Ctx(d, monkeypatch, fx))
    assert_refused(argv, out, d, capsys, case.where, case.frags, case.progress)


# ------------------------------------------------------------------------------------------------ corrupted bytes

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["clip", "tokens"]))
def test_spark_corrupted_input_is_ids_or_one_line(fx, tmp_path_factory, capsys, data, which):
    """Cut at a drawn offset or with drawn bytes flipped, the wav or tokens.json gives exit 0 or exit 2 with one line
    and nothing written; never a traceback."""
    src = Path(getattr(fx, which)).read_bytes()
    cut = data.draw(st.integers(0, len(src)), label="cut")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(src) - 1), st.integers(1, 255)), max_size=4),
                      label="flips")
    b = bytearray(src[:cut] if data.draw(st.booleans(), label="truncate") else src)
    for i, x in flips:
        if i < len(b):
            b[i] ^= x
    d = tmp_path_factory.mktemp("corrupt")
    inp = d / ("in.wav" if which == "clip" else "in.json")
    inp.write_bytes(bytes(b))
    out = d / ("t.json" if which == "clip" else "o.wav")
    action = "tokenize" if which == "clip" else "detokenize"
    rc, _, err = run_cli(["spark", action, str(inp), "-o", str(out), "--checkpoint", str(fx.ckpt)], capsys)
    event(f"{which} exit {rc}")
    assert "Traceback" not in err
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("voiceport spark: error: "), err
        assert not out.exists()
    else:
        assert rc == 0 and out.exists(), err
