"""`voiceport profile` end to end with the MLX DAC (impl.dac) on a tiny seeded checkpoint: --trim, bad input exits
2 with one clear line and leaves no file behind, no torch at run time. (That its profile equals outetts' is
parity/test_speaker.py::test_speaker_cli_create_equals_outetts.)"""
import json
import os
import re

import numpy as np
import pytest
import soundfile as sf

from impl.cli import main
from impl.speaker.profile import load_speaker
from parity.doubles import TINY

TEXT = "He was not an ill-disposed young man."  # clip 0880, 3 s


@pytest.fixture(scope="module")
def clip(librivox):
    return librivox["0880"].wav


def _run(capsys, *argv):
    rc = main(["profile", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def test_speaker_cli_trim_keeps_first_20s(librivox, tiny_ckpt, tmp_path, capsys):
    """A 26 s clip: refused without --trim; with it, the first 20 s and the given words inside them."""
    x, sr = sf.read(librivox["0870"].wav, dtype="float32")  # 7.1 s
    ref_words = librivox["0870"].words
    long = np.concatenate([x] * 4 + [x[: sr * 2]])
    wav = tmp_path / "long.wav"
    sf.write(wav, long, sr)
    words = [{"word": r["t"].split("(")[0], "start": r["b"] + k * x.size / sr, "end": r["b"] + r["d"] + k * x.size / sr}
             for k in range(4) for r in ref_words]
    (tmp_path / "words.json").write_text(json.dumps(words))
    out = tmp_path / "spk.json"
    rc, _, err = _run(capsys, "create", str(wav), "--words", str(tmp_path / "words.json"), "--codec", tiny_ckpt,
                      "-o", str(out))
    assert rc == 2 and "longer" not in err and "20 s" in err and "--trim" in err and not out.exists()
    rc, _, err = _run(capsys, "create", str(wav), "--words", str(tmp_path / "words.json"), "--codec", tiny_ckpt,
                      "--trim", "-o", str(out))
    assert rc == 0, err
    got = load_speaker(out)
    kept = [w for w in words if w["end"] <= 20.0]
    assert [w["word"] for w in got["words"]] == [w["word"] for w in kept]
    assert sum(len(w["c1"]) for w in got["words"]) <= 20 * 75


def _write(path, x, sr=16000):
    sf.write(path, x, sr)
    return str(path)


# case: (make the audio file from (folder, the 3 s clip's path), extra argv, expected message)
BAD = {
    "missing audio": (lambda d, clip: str(d / "nope.wav"), ["--text", TEXT], "no such audio file"),
    "unreadable": (lambda d, clip: (d / "bad.wav").write_bytes(b"RIFF0000WAVEjunk") and str(d / "bad.wav"),
                   ["--text", TEXT], "cannot read audio"),
    "empty text": (lambda d, clip: clip, ["--text", "  "], "--text is empty"),
    "silence": (lambda d, clip: _write(d / "zeros.wav", np.zeros(32000, np.float32)), ["--text", TEXT], "silent"),
    "no speech": (lambda d, clip: _write(d / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(48000)),
                  ["--text", TEXT], "does not match the audio"),
    "wrong transcript": (lambda d, clip: clip, ["--text", "the quick brown fox jumps over the lazy dog"],
                         "does not match the audio"),
    "over 20 s": (lambda d, clip: _write(d / "long.wav", np.tile(sf.read(clip, dtype="float32")[0], 8)),
                  ["--text", TEXT], "limit is 20 s"),
    "no aligner": (lambda d, clip: clip, [], "--whisper-model"),
    "digits": (lambda d, clip: clip, ["--text", "he was 42"], "spell numbers out"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_speaker_cli_bad_input_exits_2_writes_nothing(case, clip, tiny_ckpt, tmp_path, capsys):
    make, extra, message = BAD[case]
    src = tmp_path / "in"
    src.mkdir()
    audio = make(src, clip)
    outdir = tmp_path / "out"
    outdir.mkdir()
    rc, stdout, err = _run(capsys, "create", audio, *extra, "--codec", tiny_ckpt, "-o", str(outdir / "s.json"))
    assert rc == 2, (stdout, err)
    assert message in err and err.strip().splitlines()[-1].startswith("voiceport profile: error:"), err
    assert os.listdir(outdir) == []


def test_speaker_cli_bad_output_folder(clip, tiny_ckpt, tmp_path, capsys):
    rc, _, err = _run(capsys, "create", clip, "--text", TEXT, "--codec", tiny_ckpt,
                      "-o", str(tmp_path / "no" / "s.json"))
    assert rc == 2 and "does not exist" in err


@pytest.mark.slow
def test_speaker_cli_default_codec_is_seeded_24khz(clip, tmp_path, capsys):
    """No --codec: impl.dac's embedded seeded checkpoint at the real architecture (written once, ~300 MB)."""
    out = tmp_path / "spk.json"
    rc, _, err = _run(capsys, "create", clip, "--text", TEXT, "-o", str(out))
    assert rc == 0, err
    assert "embedded seeded DAC" in err
    got = load_speaker(out)
    assert [w["word"] for w in got["words"]] == TEXT.split()
    assert sum(len(w["c1"]) for w in got["words"]) == 225  # 3 s at 75 codes/s


def test_speaker_cli_runtime_imports_no_torch(clip, tmp_path):
    """`voiceport profile create` with an MLX DAC from safetensors never imports torch, outetts or scipy."""
    import subprocess
    import sys

    from impl.seeded.dac import write_seeded_safetensors

    ckpt = write_seeded_safetensors(tmp_path / "tiny.safetensors", TINY, seed=0)
    code = (
        "import sys\n"
        "from impl.cli import main\n"
        f"rc = main(['profile', 'create', {clip!r}, '--text', {TEXT!r}, '--codec', {str(ckpt)!r}, '--quiet', "
        f"'-o', {str(tmp_path / 's.json')!r}])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchaudio', 'outetts', 'scipy'))\n"
        "print('RC', rc, 'BAD', bad[:5])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "RC 0 BAD []" in res.stdout, res.stdout + res.stderr


def test_speaker_cli_progress_numbers_the_stages(clip, tiny_ckpt, tmp_path, capsys):
    """Progress names each stage with the total (1/5 .. 5/5) in order, then "done"; a late error (a transcript that
    does not match) comes after the stages that ran, as the last line."""
    rc, _, err = _run(capsys, "create", clip, "--text", TEXT, "--codec", tiny_ckpt, "-o", str(tmp_path / "s.json"))
    assert rc == 0, err
    stages = re.findall(r"^\[profile +[\d.]+ s\] (\d)/5 ", err, re.M)
    assert stages == ["1", "2", "3", "4", "5"], err
    assert "1/5 inputs checked: sense_and_sensibility_01_austen_64kb-0880.wav: 2.99 s, 16000 Hz" in err
    assert err.strip().splitlines()[-1].split("] ")[1].startswith("done in")
    rc, _, err = _run(capsys, "create", clip, "--text", "the quick brown fox jumps over the lazy dog", "--codec",
                      tiny_ckpt, "-o", str(tmp_path / "t.json"))
    assert rc == 2
    assert re.findall(r"\] (\d)/5 ", err) == ["1", "2", "3"], err
    assert err.strip().splitlines()[-1].startswith("voiceport profile: error: the transcript does not match")


EARLY = {  # input errors found before the codec loads: (audio maker, extra argv, message)
    "over 20 s": (lambda d, clip: _write(d / "long.wav", np.tile(sf.read(clip, dtype="float32")[0], 8)),
                  ["--text", TEXT], "limit is 20 s"),
    "silence": (lambda d, clip: _write(d / "zeros.wav", np.zeros(32000, np.float32)), ["--text", TEXT], "silent"),
    "truncated": (lambda d, clip: (d / "half.wav").write_bytes(open(clip, "rb").read()[:40000]) and str(d / "half.wav"),
                  ["--text", TEXT], "truncated"),
    "words outside the audio": (lambda d, clip: clip, ["--words", "WORDS"], "outside the audio"),
    "no pocketsphinx": (lambda d, clip: clip, ["--text", TEXT], "needs pocketsphinx"),
    "no mlx_whisper": (lambda d, clip: clip, ["--whisper-model", "MODEL"], "needs mlx_whisper"),
    "output folder missing": (lambda d, clip: clip, ["--text", TEXT, "-o", "NOFOLDER"], "does not exist"),
}


@pytest.mark.parametrize("case", list(EARLY))
def test_speaker_cli_input_errors_before_the_codec_loads(case, clip, tmp_path, capsys, monkeypatch):
    """The early checks run before any loading: with the codec loader replaced by one that fails the test, each of
    these inputs still gets its own error line (exit 2)."""
    import sys

    import impl.dac

    def no_codec(*a, **k):
        raise AssertionError("the codec was loaded before the input error")

    monkeypatch.setattr(impl.dac, "load_codec", no_codec)
    if case == "no pocketsphinx":
        monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    if case == "no mlx_whisper":
        monkeypatch.setitem(sys.modules, "mlx_whisper", None)
    make, extra, message = EARLY[case]
    (tmp_path / "w.json").write_text(json.dumps([{"word": "he", "start": 0.2, "end": 3.5}]))  # the clip is 2.99 s
    (tmp_path / "model").mkdir()
    subst = {"WORDS": str(tmp_path / "w.json"), "MODEL": str(tmp_path / "model"),
             "NOFOLDER": str(tmp_path / "no" / "s.json")}
    extra = [subst.get(a, a) for a in extra]
    out = [] if "-o" in extra else ["-o", str(tmp_path / "s.json")]
    rc, _, err = _run(capsys, "create", make(tmp_path, clip), *extra, *out)
    assert rc == 2, err
    assert "the codec was loaded" not in err and message in err, err
    assert err.strip().splitlines()[-1].startswith("voiceport profile: error:"), err
    assert "2/5" not in err  # the codec stage never started
