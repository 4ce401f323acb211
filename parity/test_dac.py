"""impl.dac vs the official descript-audio-codec DAC on seeded checkpoints in the official formats.

The real 24 kHz speech architecture (73.9 M parameters) for the per-layer report, codes and decoding; a tiny
config with the same strides where a property only depends on strides (output lengths over many T).
Codes are exact against the fp32 reference (the contract); audio within 10x the fp32 noise floor.
"""
import json
import math

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl import dac
from impl.seeded.dac import seeded_state_dict, write_seeded_safetensors
from parity.harness import compare, run_spec
from parity.spec import Tol
from parity.specs import dac as dac_spec
from reference import dac as ref

SPEECH = "24khz_speech"
# The speech DAC's strides and codebooks with tiny widths: lengths and quantizer logic at a fraction of the cost.
TINY = dict(encoder_dim=8, encoder_rates=[2, 4, 5, 8], latent_dim=16, decoder_dim=16, decoder_rates=[8, 5, 4, 2],
            n_codebooks=2, codebook_size=1024, codebook_dim=8, sample_rate=24000)
SLOW_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def speech_models():
    st_path, pth = dac_spec.checkpoints(SPEECH, seed=0)
    return {"impl": dac.load(st_path), "impl_pth": dac.load(pth), "float32": ref.load(pth, "float32"),
            "float64": ref.load(pth, "float64")}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dac-tiny")
    st_path = write_seeded_safetensors(d / "tiny.safetensors", TINY, seed=3)
    pth = ref.write_seeded_checkpoint(d / "tiny.pth", TINY, seed=3)
    return {"impl": dac.load(st_path), "float32": ref.load(pth, "float32"), "float64": ref.load(pth, "float64"),
            "pth": pth, "st": st_path}


def _codes(model, audio):
    return np.array(model.encode(mx.array(audio)))


# ------------------------------------------------------------------------------------------ per layer

def test_dac_speech_layers_parity():
    """Every layer of encoder, quantizer and decoder at the real architecture, propagated and isolated."""
    report = run_spec(dac_spec.spec(SPEECH, seconds=0.5, signal="speech"), seed=0)
    assert report.ok, report.summary()
    assert report.first_divergence is None and report.first_isolated_divergence is None
    # 1 + 4 blocks x 5 + latent conv; 2 VQs x 3 + RVQ; 1 + 4 blocks x 5 + last conv + tanh; codes + audio
    assert report.compared == 22 + 7 + 23 + 2, report.summary()
    layers = [r for r in report.rows if r.kind == "layer"]
    assert all(r.floor > 0 for r in layers), "a layer with a zero noise floor compares nothing"


def test_dac_layers_parity_catches_a_wrong_alpha(monkeypatch):
    """The spec can fail: one Snake alpha changed in impl after loading -> that residual unit diverges first."""
    spec = dac_spec.spec(SPEECH, seconds=0.1, signal="noise")
    build = spec.build_impl

    def broken():
        m = build()
        a = m.decoder.model[2].block[3].block[0].alpha
        m.decoder.model[2].block[3].block[0].alpha = a * 1.001
        return m

    spec.build_impl = broken
    report = run_spec(spec, seed=1)
    assert not report.ok
    assert report.first_divergence == "decoder.model.2.block.3", report.summary()
    assert report.first_isolated_divergence == "decoder.model.2.block.3", report.summary()


# ------------------------------------------------------------------------------------------ codes

@settings(max_examples=24, **SLOW_SETTINGS)
@given(kind=st.sampled_from(dac_spec.SIGNALS), n=st.integers(320, 12000).filter(lambda n: n % 320),
       seed=st.integers(0, 2 ** 16))
def test_dac_speech_codes_exact(speech_models, kind, n, seed):
    """Codes 100 % identical to torch fp32 for speech, noise, silence and a sweep, lengths not multiples of 320."""
    audio = dac_spec.make_signal(kind, 24000, n, seed)[None]
    want = ref.encode(speech_models["float32"], audio)
    got = _codes(speech_models["impl"], audio)
    assert got.dtype == np.int32 and got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(got, want), f"{kind} n={n}: {np.count_nonzero(got != want)} of {want.size} codes differ"


def test_dac_speech_codes_exact_batch_and_preprocess(speech_models):
    """B = 2 with different signals; `preprocess` pads to whole hops exactly as upstream's."""
    audio = np.stack([dac_spec.make_signal("speech", 24000, 7000, 1), dac_spec.make_signal("sweep", 24000, 7000, 2)])
    m = speech_models["impl"]
    padded = np.array(m.preprocess(mx.array(audio)))
    assert padded.shape == (2, 7040) and np.array_equal(padded[:, :7000], audio) and not padded[:, 7000:].any()
    want = ref.encode(speech_models["float32"], padded)
    assert np.array_equal(_codes(m, padded), want)
    assert want.shape == (2, 2, 22)


def test_dac_speech_pth_and_safetensors_load_the_same(speech_models):
    a, b = speech_models["impl"], speech_models["impl_pth"]
    for (k, v), (k2, v2) in zip(sorted(dict(_flat(a)).items()), sorted(dict(_flat(b)).items())):
        assert k == k2 and np.array_equal(np.array(v), np.array(v2)), k


def _flat(model):
    import mlx.nn as nn

    return nn.utils.tree_flatten(model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["speech", "noise"])
def test_dac_speech_codes_exact_30s(speech_models, kind):
    """Report job: 30 s (not a multiple of 320 samples), codes identical."""
    audio = dac_spec.make_signal(kind, 24000, 30 * 24000 + 123, 5)[None]
    want = ref.encode(speech_models["float32"], audio)
    got = _codes(speech_models["impl"], audio)
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {want.size} codes differ"


# ------------------------------------------------------------------------------------------ decode

@pytest.mark.parametrize("T", [1, 2, 7, 75])
def test_dac_speech_decode_within_floor(speech_models, T):
    codes = np.random.default_rng(T).integers(0, 1024, (1, 2, T)).astype(np.int32)
    r32 = ref.decode(speech_models["float32"], codes)
    r64 = ref.decode(speech_models["float64"], codes)
    got = np.array(speech_models["impl"].decode(mx.array(codes)))
    assert got.shape == r32.shape == (1, 320 * T - 8)
    res = compare(got, r64, r32, Tol.floor(why="k x the fp32 floor: both sides are fp32 roundings of one formula"))
    assert res["ok"], f"T={T}: max|impl-ref64|={res['max_abs']:.3g} > {res['limit']:.3g} (floor {res['floor']:.3g})"


@settings(max_examples=40, **SLOW_SETTINGS)
@given(T=st.integers(1, 500))
def test_dac_decode_output_length_matches_official(tiny_models, T):
    """Output length identical for every number of frames T (the speech DAC's strides: 320 T - 8), audio within
    the floor."""
    codes = np.random.default_rng(T).integers(0, 1024, (1, 2, T)).astype(np.int32)
    want = ref.decode(tiny_models["float32"], codes)
    got = np.array(tiny_models["impl"].decode(codes))
    assert got.shape == want.shape == (1, 320 * T - 8)
    assert tiny_models["impl"].output_length(T) == want.shape[-1]
    res = compare(got, ref.decode(tiny_models["float64"], codes), want, Tol.floor(why="10 x the fp32 floor"))
    assert res["ok"], f"T={T}: max|impl-ref64|={res['max_abs']:.3g} > {res['limit']:.3g} (floor {res['floor']:.3g})"


@settings(max_examples=30, **SLOW_SETTINGS)
@given(n=st.integers(1, 5000))
def test_dac_encode_frames_match_official(tiny_models, n):
    """Frames from any input length (no padding in `encode`, as upstream) and exact codes on the tiny config."""
    audio = dac_spec.make_signal("noise", 24000, n, n)[None]
    try:
        want = ref.encode(tiny_models["float32"], audio)
    except RuntimeError:  # too short for upstream's convs: ours must refuse too
        with pytest.raises(ValueError):
            _codes(tiny_models["impl"], audio)
        return
    got = _codes(tiny_models["impl"], audio)
    assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("config", ["44khz", "16khz"])
def test_dac_other_official_configs_codes_exact(config, tmp_path):
    """The other official architectures build, load and give the official codes and output length."""
    st_path = write_seeded_safetensors(tmp_path / "m.safetensors", config, seed=1)
    pth = ref.write_seeded_checkpoint(tmp_path / "m.pth", config, seed=1)
    m, r = dac.load(st_path), ref.load(pth)
    sr = dac.CONFIGS[config]["sample_rate"]
    audio = dac_spec.make_signal("speech", sr, int(0.15 * sr) + 17, 0)[None]
    want = ref.encode(r, audio)
    got = _codes(m, audio)
    assert np.array_equal(got, want)
    assert np.array(m.decode(got)).shape == ref.decode(r, want).shape


# ------------------------------------------------------------------------------------------ loading

def _edit_state(src, dst, edit):
    import torch

    blob = torch.load(str(src), weights_only=True)
    edit(blob["state_dict"])
    torch.save(blob, str(dst))
    return dst


@pytest.mark.parametrize("edit,words", [
    (lambda sd: sd.pop("decoder.model.1.block.1.weight_v"), ["missing", "decoder.model.1.block.1.weight"]),
    (lambda sd: sd.__setitem__("encoder.block.9.weight", sd["encoder.block.0.bias"]), ["unexpected",
                                                                                         "encoder.block.9.weight"]),
    (lambda sd: sd.__setitem__("quantizer.quantizers.0.codebook.weight",
                               sd["quantizer.quantizers.0.codebook.weight"][:, :4]),
     ["mis-shaped", "quantizer.quantizers.0.codebook.weight"]),
])
def test_dac_load_names_the_bad_key(tiny_models, tmp_path, edit, words):
    bad = _edit_state(tiny_models["pth"], tmp_path / "bad.pth", edit)
    with pytest.raises(dac.CheckpointError) as e:
        dac.load(bad)
    for w in words:
        assert w in str(e.value)


def test_dac_load_rejects_non_checkpoints(tmp_path):
    import torch

    with pytest.raises(FileNotFoundError):
        dac.load(tmp_path / "nope.pth")
    torch.save({"weights": {}}, str(tmp_path / "x.pth"))
    with pytest.raises(dac.CheckpointError, match="state_dict"):
        dac.load(tmp_path / "x.pth")
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(dac.CheckpointError, match="kwargs"):
        dac.load(tmp_path / "x.safetensors")


def test_dac_seeded_weights_are_deterministic_and_official(tmp_path):
    """Same seed -> byte-identical file; the official model accepts every key with its own shapes."""
    a = write_seeded_safetensors(tmp_path / "a.safetensors", TINY, 7)
    b = write_seeded_safetensors(tmp_path / "b.safetensors", TINY, 7)
    assert a.read_bytes() == b.read_bytes()
    import dac as official

    want = {k: tuple(v.shape) for k, v in official.DAC(**TINY).state_dict().items()}
    got = {k: v.shape for k, v in seeded_state_dict(TINY, 7).items()}
    assert got == want
    assert json.loads(__import__("safetensors").safe_open(str(a), "np").metadata()["kwargs"]) == TINY


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("audio,match", [
    (np.zeros((1, 0), np.float32), "empty"),
    (np.zeros((1, 2, 3200), np.float32), "shape"),
    (np.full((1, 3200), np.nan, np.float32), "NaN"),
    (np.full((1, 3200), np.inf, np.float32), "NaN or Inf"),
    (np.zeros((1, 3200), np.int16), "int16"),
])
def test_dac_encode_rejects_bad_audio(tiny_models, audio, match):
    with pytest.raises(ValueError, match=match):
        tiny_models["impl"].encode(audio)


@pytest.mark.parametrize("codes,match", [
    (np.full((1, 2, 5), 1024), r"\[0, 1024\)"),
    (np.full((1, 2, 5), -1), r"\[0, 1024\)"),
    (np.zeros((1, 3, 5), np.int32), "1 <= n <= 2"),
    (np.zeros((1, 2, 0), np.int32), "T >= 1"),
    (np.zeros((1, 2, 5), np.float32), "integers"),
])
def test_dac_decode_rejects_bad_codes(tiny_models, codes, match):
    with pytest.raises(ValueError, match=match):
        tiny_models["impl"].decode(codes)


def test_dac_output_length_formula():
    m = dac.DAC(dac.DACConfig.from_dict(dac.CONFIGS[SPEECH]))
    assert [m.output_length(T) for T in (1, 75, 375)] == [312, 23992, 119992]
    assert m.hop_length == 320 and math.prod(dac.CONFIGS["44khz"]["encoder_rates"]) == 512
