"""impl.dac.interface vs outetts' own DacInterface (outetts/dac/interface.py), on seeded DAC checkpoints.

Two layers of proof:
1. The interface logic alone (load, mono, resample, loudness, 5 s windows, hop padding, 2048-code chunks,
   15 ms fades): our DacInterface driven by the OFFICIAL torch DAC (a test double with the impl.dac API)
   must give exactly outetts' codes and its audio within the fp32 floor.
2. End to end with the MLX DAC (impl.dac): codes exactly equal to outetts' path (see the tests at the end).
"""
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impl import audio as A
from impl.dac import interface as I
from parity.harness import compare
from parity.spec import Tol
from reference import audio as ref
from reference.dac import TorchDac


@pytest.fixture(scope="module")
def official(tiny_ckpt):
    return {"float32": ref.OutettsDac(tiny_ckpt, "float32"), "float64": ref.OutettsDac(tiny_ckpt, "float64")}


@pytest.fixture(scope="module")
def ours_torch(tiny_ckpt):
    return I.DacInterface(TorchDac(tiny_ckpt))


def _assert_floor(got, r32, r64, what, k=10.0):
    res = compare(got, r64, r32, Tol.floor(k, why="k x the fp32 floor: both sides are fp32 roundings of one formula"))
    assert res["ok"], (f"{what}: {res.get('note', '')} max|impl-ref64|={res.get('max_abs', float('nan')):.3g} "
                       f"> limit {res.get('limit', float('nan')):.3g} (floor {res.get('floor', float('nan')):.3g})")


def _stereo(sr, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([tone, 0.5 * tone + 0.05 * rng.standard_normal(t.shape)]).astype(np.float32)


# -------------------------------------------------------------------------- 1. interface logic, official DAC

@pytest.mark.parametrize("name", ["0870", "0880"])
def test_dac_interface_encode_file_equals_outetts(name, librivox, official, ours_torch):
    path = librivox[name].wav
    want = official["float32"].encode_file(path)
    ours_torch.model.encode_lengths.clear()
    got = ours_torch.encode_file(path)
    assert got.shape == want.shape and got.dtype == np.int32
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} codes differ"
    # 5 s windows of 120000 samples, the last padded to a whole hop
    import soundfile as sf

    n = math.ceil(sf.info(path).frames * 24000 / 16000)
    lengths = ours_torch.model.encode_lengths
    assert all(L == 120000 for L in lengths[:-1]) and lengths[-1] % 320 == 0
    assert 0 <= sum(lengths) - n < 320
    if name == "0870":  # 7.1 s at 16 kHz: 170400 samples at 24 kHz, two windows
        assert lengths == [120000, 50560]


@pytest.mark.parametrize("sr,seconds", [(44100, 1.5), (48000, 0.6), (16000, 0.2), (24000, 5.5)])
def test_dac_interface_encode_audio_equals_outetts(sr, seconds, official, ours_torch):
    x = _stereo(sr, seconds, seed=sr)
    want = official["float32"].encode_audio(x, sr)
    got = ours_torch.encode_audio(x, sr)
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} codes differ"


def test_dac_interface_convert_equals_outetts(official, ours_torch):
    x = _stereo(44100, 0.7, seed=1)
    want = official["float32"].convert(x, 44100)
    got = ours_torch.convert_audio(x, 44100)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 4 * np.finfo(np.float32).eps * np.max(np.abs(want))


def _decode_both(official, ours, codes, chunk):
    r32 = official["float32"].iface.decode(_torch_codes(codes), chunk_length=chunk)[0, 0].numpy()
    r64 = official["float64"].iface.decode(_torch_codes(codes), chunk_length=chunk)[0, 0].numpy()
    ours.chunk_length = chunk
    try:
        got = ours.decode(codes)
    finally:
        ours.chunk_length = 2048
    return got, r32, r64


def _torch_codes(codes):
    import torch

    return torch.from_numpy(codes.astype(np.int64))[None]


def test_dac_interface_decode_2048_chunks_equals_outetts(official, ours_torch):
    codes = np.random.default_rng(0).integers(0, 1024, (2, 2100)).astype(np.int32)  # 2 chunks: 2048 + 52
    got, r32, r64 = _decode_both(official, ours_torch, codes, 2048)
    assert got.shape == r32.shape == (320 * 2048 - 8 + 320 * 52 - 8,)  # each chunk: 320 T - 8 samples
    _assert_floor(got, r32, r64, "decode 2100 codes")


@settings(max_examples=6, deadline=None)
@given(T=st.integers(1, 100), chunk=st.integers(16, 48), seed=st.integers(0, 1000))
def test_dac_interface_decode_chunks_equal_outetts(T, chunk, seed, official, ours_torch):
    codes = np.random.default_rng(seed).integers(0, 1024, (2, T)).astype(np.int32)
    got, r32, r64 = _decode_both(official, ours_torch, codes, chunk)
    assert got.shape == r32.shape
    _assert_floor(got, r32, r64, f"decode T={T} chunk={chunk}")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 100, 180, 360])
def test_dac_interface_fade_ramp_equals_torch_linspace(n):
    import torch

    for a, b in ((0.0, 1.0), (1.0, 0.0)):
        np.testing.assert_array_equal(I.fade_ramp(a, b, n), torch.linspace(a, b, n).numpy())


@pytest.mark.parametrize("L", [1, 5, 300, 719, 720, 721, 5000])
def test_dac_interface_apply_fade_equals_outetts(L):
    import torch
    from outetts.dac.interface import DacInterface

    class _Sr:  # apply_fade only reads self.sr
        sr = 24000

    x = np.random.default_rng(L).uniform(-1, 1, (1, 1, L)).astype(np.float32)
    want = DacInterface.apply_fade(_Sr(), torch.from_numpy(x.copy())).numpy()
    got = I.apply_fade(x.copy(), 24000)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------------------ errors, IO

def test_dac_interface_rejects_bad_input(ours_torch, tmp_path):
    with pytest.raises(A.SilentAudioError, match="silent"):
        ours_torch.encode_audio(np.zeros(24000, np.float32), 24000)
    with pytest.raises(A.AudioError, match="empty"):
        ours_torch.encode_audio(np.zeros(0, np.float32), 16000)
    with pytest.raises(A.AudioError, match="NaN"):
        ours_torch.encode_audio(np.array([0.1, np.nan] * 100, np.float32), 16000)
    with pytest.raises(A.AudioError, match="mono"):
        ours_torch.encode(np.zeros((2, 100), np.float32))
    long = I.DacInterface(ours_torch.model, max_seconds=1.0)
    with pytest.raises(A.AudioError, match="longer than the limit of 1 s"):
        long.encode_audio(np.ones(16001, np.float32), 16000)
    with pytest.raises(A.AudioError, match="cannot read"):
        ours_torch.encode_file(str(tmp_path / "missing.wav"))
    with pytest.raises(A.AudioError, match=r"\[0, 1024\)"):
        ours_torch.decode(np.full((2, 3), 1024))
    with pytest.raises(A.AudioError, match="integers"):
        ours_torch.decode(np.zeros((2, 3), np.float32))
    with pytest.raises(A.AudioError, match="T > 0"):
        ours_torch.decode(np.zeros((2, 0), np.int32))
    with pytest.raises(A.AudioError, match="3 codebooks"):
        ours_torch.decode(np.zeros((3, 4), np.int32))


def test_dac_interface_int16_input_is_scaled(official, ours_torch):
    pcm = (_stereo(16000, 0.5, seed=3) * 32767).astype(np.int16)
    got = ours_torch.encode_audio(pcm, 16000)
    want = official["float32"].encode_audio(pcm.astype(np.float32) / 32768.0, 16000)
    assert np.array_equal(got, want)


def test_dac_interface_save_wav_atomic(ours_torch, tmp_path):
    import soundfile as sf

    x = (0.1 * np.sin(np.arange(2400) * 0.1)).astype(np.float32)
    p = tmp_path / "out.wav"
    ours_torch.save_wav(x, p)
    y, sr = sf.read(p, dtype="float32")
    assert sr == 24000 and sf.info(p).subtype == "FLOAT"
    np.testing.assert_array_equal(y, x)
    ours_torch.save_wav(x, tmp_path / "out.flac")
    assert sf.info(tmp_path / "out.flac").subtype == "PCM_16"
    # errors leave nothing behind (no temp file, no partial output)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(A.AudioError, match="NaN"):
        ours_torch.save_wav(np.array([np.nan, 0.0], np.float32), tmp_path / "bad.wav")
    with pytest.raises(A.AudioError, match="extension"):
        ours_torch.save_wav(x, tmp_path / "out.mp9")
    with pytest.raises(A.AudioError, match="cannot write"):
        ours_torch.save_wav(x, tmp_path / "x.wav", subtype="NOT_A_SUBTYPE")
    assert sorted(os.listdir(tmp_path)) == before


# -------------------------------------------------------------------------- 2. end to end, MLX DAC (impl.dac)

@pytest.fixture(scope="module")
def ours_mlx(tiny_ckpt):
    """Our interface over the MLX DAC loaded from a checkpoint the official package saved (its own random init)."""
    from impl import dac

    return I.DacInterface(dac.load(tiny_ckpt))


@pytest.mark.parametrize("name", ["0870", "0880"])
def test_dac_interface_mlx_encode_file_equals_outetts(name, librivox, official, ours_mlx):
    path = librivox[name].wav
    want = official["float32"].encode_file(path)
    got = ours_mlx.encode_file(path)
    assert got.shape == want.shape and np.array_equal(got, want), f"{np.count_nonzero(got != want)} codes differ"


def test_dac_interface_mlx_decode_chunks_equal_outetts(official, ours_mlx):
    codes = np.random.default_rng(11).integers(0, 1024, (2, 2100)).astype(np.int64)
    got, r32, r64 = _decode_both(official, ours_mlx, codes, 2048)
    assert got.shape == r32.shape == ((2048 * 320 - 8) + (52 * 320 - 8),)
    _assert_floor(got, r32, r64, "MLX DAC chunked decode")


def test_dac_interface_mlx_speech_dac_codes_equal_outetts(tmp_path):
    """The real 24 kHz speech architecture (seeded official .pth) through outetts' path: 44.1 kHz stereo in."""
    from impl import dac
    from parity.specs import dac as dac_spec

    _, pth = dac_spec.checkpoints("24khz_speech", seed=0)
    x = _stereo(44100, 1.3, seed=3)
    want = ref.OutettsDac(str(pth), "float32").encode_audio(x, 44100)
    got = I.DacInterface(dac.load(pth)).encode_audio(x, 44100)
    assert got.shape == want.shape == (2, 98) and np.array_equal(got, want)
