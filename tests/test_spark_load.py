"""impl.spark loading: the seeded BiCodec folder is the official layout, the loader is strict, bad input is one
clear error.

The key set of impl.seeded.spark equals the official `BiCodec.state_dict()` built from the same config with the
official package (no missing, no unexpected, same shapes) for the tiny and the real sizes; impl's strict loader
names every missing / extra / mis-shaped tensor in one line; the config.yaml reader agrees with omegaconf (what
upstream reads it with); ids out of range, of the wrong count or rank are refused before any work.
"""
from __future__ import annotations

import shutil

import mlx.core as mx
import numpy as np
import pytest

from impl import spark
from impl.seeded import spark as seeded
from impl.spark.config import ConfigError, parse_yaml
from impl.weights import CheckpointError


def _official_model(config: str):
    pytest.importorskip("spark_tts_lib")
    from spark_tts_lib.models.bicodec import BiCodec
    from spark_tts_lib.modules.encoder_decoder.feat_decoder import Decoder
    from spark_tts_lib.modules.encoder_decoder.feat_encoder import Encoder
    from spark_tts_lib.modules.encoder_decoder.wave_generator import WaveGenerator
    from spark_tts_lib.modules.speaker.speaker_encoder import SpeakerEncoder
    from spark_tts_lib.modules.vq.factorized_vector_quantize import FactorizedVectorQuantize

    c = seeded.resolve_config(config)["audio_tokenizer"]
    return BiCodec(mel_params=c["mel_params"], encoder=Encoder(**c["encoder"]),
                   quantizer=FactorizedVectorQuantize(**c["quantizer"]), prenet=Decoder(**c["prenet"]),
                   postnet=Decoder(**c["postnet"]), decoder=WaveGenerator(**c["decoder"]),
                   speaker_encoder=SpeakerEncoder(**c["speaker_encoder"]))


def _official_key(k: str) -> str:
    """The package's parametrized weight norm -> the official hook-style names the checkpoint uses."""
    return k.replace(".parametrizations.weight.original0", ".weight_g").replace(
        ".parametrizations.weight.original1", ".weight_v")


@pytest.mark.parametrize("config", ["tiny", "bicodec"])
def test_seeded_layout_is_the_official_state_dict(config):
    model = _official_model(config)
    want = {_official_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: s for k, (s, _) in seeded.official_shapes(config).items()}
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert {k: (want[k], got[k]) for k in want if want[k] != got[k]} == {}
    if config == "bicodec":  # Spark-TTS-0.5B's BiCodec, postnet and buffers included
        assert sum(int(np.prod(s)) for s in want.values()) == 156_420_905


def test_seeded_folder_loads_in_the_official_loader_without_a_missing_tensor():
    from reference import spark as ref

    ref.load(seeded.seeded_bicodec("tiny", 0))  # raises on any "Missing tensor" / "Unexpected tensor" print


def test_seeded_is_deterministic(tmp_path):
    a = seeded.seeded_state_dict("tiny", 5)
    b = seeded.seeded_state_dict("tiny", 5)
    c = seeded.seeded_state_dict("tiny", 6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["quantizer.codebook.weight"], c["quantizer.codebook.weight"])


# ------------------------------------------------------------------------------------------ strict load

@pytest.fixture
def folder(tmp_path):
    src = seeded.seeded_bicodec("tiny", 0)
    dst = tmp_path / "BiCodec"
    shutil.copytree(src, dst)
    return dst


def _rewrite(folder, edit):
    from safetensors.numpy import load_file, save_file

    w = load_file(str(folder / "model.safetensors"))
    edit(w)
    save_file(w, str(folder / "model.safetensors"))


def test_missing_extra_misshaped_named_in_one_line(folder):
    def edit(w):
        del w["prenet.linear.weight"]
        w["encoder.extra.weight"] = np.zeros(3, np.float32)
        w["decoder.model.0.weight_v"] = w["decoder.model.0.weight_v"][:, :, :5]

    _rewrite(folder, edit)
    with pytest.raises(CheckpointError) as e:
        spark.load(folder)
    msg = str(e.value)
    assert "\n" not in msg and "model.safetensors" in msg
    assert "1 missing: prenet.linear.weight" in msg
    assert "1 unexpected: encoder.extra.weight" in msg
    assert "decoder.model.0.weight_v: checkpoint [64, 48, 5] != model [64, 48, 7]" in msg


def test_optional_tensors_may_be_absent(folder):
    """A file without the postnet, the mel buffers, cluster_size and num_batches_tracked loads (upstream too)."""
    def edit(w):
        for k in list(w):
            if k.startswith(("postnet.", "mel_transformer.", "quantizer.cluster_size")) or \
                    k.endswith("num_batches_tracked"):
                del w[k]

    _rewrite(folder, edit)
    m = spark.load(folder)
    assert m.decoder.model[0].weight.shape == (64, 7, 48)


@pytest.mark.parametrize("what", ["no_dir", "no_config", "no_weights", "not_safetensors", "no_section", "ratio"])
def test_bad_folder_is_one_error(folder, what):
    target = folder
    if what == "no_dir":
        target = folder / "nope"
    elif what == "no_config":
        (folder / "config.yaml").unlink()
    elif what == "no_weights":
        (folder / "model.safetensors").unlink()
    elif what == "not_safetensors":
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    elif what == "no_section":
        (folder / "config.yaml").write_text("model:\n  x: 1\n")
    elif what == "ratio":
        text = (folder / "config.yaml").read_text().replace("sample_ratios: [1, 1]", "sample_ratios: [2, 2]", 1)
        (folder / "config.yaml").write_text(text)
    with pytest.raises(CheckpointError) as e:
        spark.load(target)
    assert "\n" not in str(e.value) and str(folder) in str(e.value)


# ------------------------------------------------------------------------------------------ config.yaml

def test_yaml_reader_agrees_with_omegaconf():
    omegaconf = pytest.importorskip("omegaconf")
    text = ("# c\naudio_tokenizer:\n  a: 1\n  b: 1.5e-3\n  c: .5\n  d: null\n  e: [1, 2, 3]\n  f: 'x # y'\n"
            "  g:\n    - 4\n    - five\n  h: true\n  i: 1e-3\n  j: -2\n  k:\n")
    want = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.create(text))
    assert parse_yaml(text) == want
    for name in seeded.CONFIGS:
        y = seeded.to_yaml(seeded.CONFIGS[name])
        assert parse_yaml(y) == omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.create(y)) == \
            seeded.CONFIGS[name]


@pytest.mark.parametrize("text", ["a:\n   b: 1\n  c: 2\n", "a: &x 1\n", "a:\n\tb: 1\n", "just text\n"])
def test_yaml_reader_refuses_what_it_does_not_read(text):
    with pytest.raises(ConfigError) as e:
        parse_yaml(text, "cfg.yaml")
    assert str(e.value).startswith("cfg.yaml:")


# ------------------------------------------------------------------------------------------ bad ids

@pytest.fixture(scope="module")
def tiny():
    return spark.load(seeded.seeded_bicodec("tiny", 0))


@pytest.mark.parametrize("sem, glob, fragment", [
    (np.zeros((1, 0), np.int32), np.zeros((1, 1, 8), np.int32), "semantic ids: expected"),
    (np.zeros((3,), np.int32), np.zeros((1, 1, 8), np.int32), "semantic ids: expected"),
    (np.zeros((1, 4), np.float32), np.zeros((1, 1, 8), np.int32), "semantic ids: expected"),
    (np.full((1, 4), 256), np.zeros((1, 1, 8), np.int32), "semantic ids out of range [0, 256): min 256"),
    (np.full((1, 4), -1), np.zeros((1, 1, 8), np.int32), "semantic ids out of range"),
    (np.zeros((1, 4), np.int32), np.zeros((1, 1, 7), np.int32), "global ids: expected (batch, 1, 8)"),
    (np.zeros((1, 4), np.int32), np.zeros((1, 8), np.int32), "global ids: expected"),
    (np.zeros((1, 4), np.int32), np.full((1, 1, 8), 4096), "global ids out of range [0, 4096)"),
    (np.zeros((2, 4), np.int32), np.zeros((1, 1, 8), np.int32), "batch"),
])
def test_bad_ids_are_one_clear_error(tiny, sem, glob, fragment):
    with pytest.raises(ValueError) as e:
        tiny.detokenize(sem, glob)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_too_short_reference_clip_is_an_error(tiny):
    with pytest.raises(ValueError, match="too short for reflect padding"):
        tiny.tokenize(mx.zeros((1, 3, 64)), mx.zeros((1, 512)))


# ------------------------------------------------------------------------------------------ wav2vec2

@pytest.mark.parametrize("config", ["tiny", "xlsr53"])
def test_seeded_w2v_layout_is_transformers(config):
    torch = pytest.importorskip("torch")
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    c = seeded.W2V_CONFIGS[config]
    with torch.device("meta"):
        model = Wav2Vec2Model(Wav2Vec2Config(**c))
    want = {_official_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: s for k, (s, _) in seeded.w2v_shapes(c).items()}
    assert want == got
    if config == "xlsr53":
        assert sum(int(np.prod(s)) for s in want.values()) == 315_438_720


def test_seeded_w2v_loads_in_transformers_without_a_missing_key():
    pytest.importorskip("torch")
    from transformers import Wav2Vec2Model

    _, info = Wav2Vec2Model.from_pretrained(str(seeded.seeded_w2v("tiny", 0)), output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}


def test_w2v_loader_strict_and_prefix(tmp_path):
    from safetensors.numpy import load_file, save_file

    from impl.spark import wav2vec2 as w2v

    src = seeded.seeded_w2v("tiny", 0)
    dst = tmp_path / "w2v"
    shutil.copytree(src, dst)
    w = load_file(str(dst / "model.safetensors"))
    # the pre-training checkpoint's layout: `wav2vec2.` prefix plus heads the features never use
    pre = {"wav2vec2." + k: v for k, v in w.items()}
    pre["project_q.weight"] = np.zeros((4, 4), np.float32)
    save_file(pre, str(dst / "model.safetensors"))
    a = np.array(w2v.features(w2v.load(dst), np.linspace(-1, 1, 4000)))
    b = np.array(w2v.features(w2v.load(src), np.linspace(-1, 1, 4000)))
    assert np.array_equal(a, b)
    del w["encoder.layers.3.attention.q_proj.weight"]
    save_file(w, str(dst / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        w2v.load(dst)
    assert "1 missing: encoder.layers.3.attention.q_proj.weight" in str(e.value) and "\n" not in str(e.value)
