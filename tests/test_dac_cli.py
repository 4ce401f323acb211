"""`voiceport dac` end to end on a tiny seeded checkpoint: encode, decode, seeded, convert, and its errors."""
import numpy as np
import pytest

from impl import dac
from impl.seeded.dac import write_seeded_safetensors
from impl.cli import main
from parity.doubles import TINY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(write_seeded_safetensors(tmp_path_factory.mktemp("c") / "tiny.safetensors", TINY, 0))


@pytest.fixture(scope="module")
def clip(librivox):
    return librivox["0870"].wav


def test_dac_cli_encode_decode_roundtrip(clip, tiny, tmp_path):
    import soundfile as sf

    codes = tmp_path / "c.npy"
    assert main(["dac", "encode", clip, "-o", str(codes), "--checkpoint", tiny]) == 0
    c = np.load(codes)
    n = sf.info(clip).frames * 24000 // sf.info(clip).samplerate
    assert c.dtype == np.int32 and c.shape[0] == 2 and abs(c.shape[1] - n / 320) <= 2
    # the same codes as the interface gives directly
    from impl.dac.interface import DacInterface

    assert np.array_equal(c, DacInterface(dac.load(tiny)).encode_file(clip))
    wav = tmp_path / "y.wav"
    assert main(["dac", "decode", str(codes), "-o", str(wav), "--checkpoint", tiny]) == 0
    y, sr = sf.read(wav)
    assert sr == 24000 and len(y) == sum(min(2048, c.shape[1] - i) * 320 - 8 for i in range(0, c.shape[1], 2048))


def test_dac_cli_seeded_and_convert(tmp_path):
    from reference import dac as ref

    out = tmp_path / "s.safetensors"
    assert main(["dac", "seeded", "-o", str(out), "--config", "16khz", "--seed", "2"]) == 0
    assert dac.load(out).sample_rate == 16000
    pth = ref.write_seeded_checkpoint(tmp_path / "t.pth", TINY, 1)
    conv = tmp_path / "t.safetensors"
    assert main(["dac", "convert", str(pth), str(conv)]) == 0
    a, b = dac.load(pth), dac.load(conv)
    x = np.random.default_rng(0).standard_normal((1, 3200)).astype(np.float32) * 0.1
    assert np.array_equal(np.array(a.encode(x)), np.array(b.encode(x)))


@pytest.mark.parametrize("argv,msg", [
    (["dac", "encode", "/nope.wav", "-o", "{tmp}/x.npy"], "no such audio file"),
    (["dac", "encode", "{clip}", "-o", "{tmp}/x.wav"], ".npy"),
    (["dac", "encode", "{clip}", "-o", "{tmp}/missing/x.npy"], "does not exist"),
    (["dac", "decode", "{tmp}/bad.npy", "-o", "{tmp}/y.wav"], "not a numpy"),
    (["dac", "decode", "{tmp}/oob.npy", "-o", "{tmp}/y.wav"], "[0, 1024)"),
    (["dac", "seeded", "-o", "{tmp}/s.safetensors", "--config", "99khz"], "unknown DAC config"),
])
def test_dac_cli_errors(clip, tiny, tmp_path, capsys, argv, msg):
    (tmp_path / "bad.npy").write_text("not numpy")
    np.save(tmp_path / "oob.npy", np.full((2, 4), 5000, np.int32))
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{clip}", clip) for a in argv]
    if argv[1] in ("encode", "decode"):
        argv += ["--checkpoint", tiny]
    assert main(argv) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "y.wav").exists() and not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("action", ["encode", "decode"])
def test_dac_cli_default_checkpoint_is_one_short_line(action, clip, tiny, tmp_path, capsys, monkeypatch):
    """Without --checkpoint, encode/decode say once, in one short line, that the embedded seeded checkpoint is used
    (the long paragraph lives in `voiceport dac --help`); then their result line. Nothing else on stderr."""
    import impl.seeded

    monkeypatch.setattr(impl.seeded, "default_codec", lambda: tiny)  # the tiny one stands in for the 74 M default
    codes = tmp_path / "c.npy"
    np.save(codes, np.zeros((2, 8), np.int32))
    argv = (["dac", "encode", clip, "-o", str(tmp_path / "x.npy")] if action == "encode" else
            ["dac", "decode", str(codes), "-o", str(tmp_path / "y.wav")])
    assert main(argv) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "embedded seeded DAC" in lines[0] and len(lines[0]) <= 120, lines
    assert "->" in lines[1]
    assert main(argv + ["--checkpoint", tiny]) == 0
    assert "seeded" not in capsys.readouterr().err
