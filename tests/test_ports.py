"""Foreign ports (parity/ports/): the adapter machinery on a toy foreign port with a planted bug, and the mlx-audio
0.6.2 adapter: every mapped layer resolves in its tree, small configs pass the harness, its findings reproduce.

The mlx-audio tests skip (with the command that installs it) where `./vp setup-port mlx-audio` has not run."""
from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from parity import toy
from parity.harness import run_spec
from parity.ports import Component, Layer, Port, PortUnavailable, Rule, activate, map_path, port_spec
from parity.spec import SpecError, resolve


# ------------------------------------------------------------------------------------- a toy foreign port

class NCLConv(nn.Module):
    """A conv that keeps torch's (N, C, L) layout and weight (out, in, k), as a naive port would."""

    def __init__(self, weight, bias, padding=0, dilation=1):
        super().__init__()
        self.weight, self.bias = weight, bias
        self.padding, self.dilation = padding, dilation

    def __call__(self, x):  # (N, C, L) -> (N, C', L')
        y = mx.conv1d(x.swapaxes(1, 2), self.weight.transpose(0, 2, 1), padding=self.padding,
                      dilation=self.dilation) + self.bias
        return y.swapaxes(1, 2)


class NCLTanh(nn.Module):
    def __call__(self, x):
        return mx.tanh(x)


class NCLLinear(nn.Module):
    """Linear over the channels of (N, C, L); `drop_bias` is the planted bug (a forgotten bias)."""

    def __init__(self, weight, bias, drop_bias=False):
        super().__init__()
        self.weight, self.bias, self.drop_bias = weight, bias, drop_bias

    def __call__(self, x):
        y = x.swapaxes(1, 2) @ self.weight.T
        return (y if self.drop_bias else y + self.bias).swapaxes(1, 2)


class ForeignToy(nn.Module):
    """parity.toy's network as someone else wrote it: one list `net`, channels-first, its own weight keys."""

    def __init__(self, w, bug=False):
        super().__init__()
        a = {k: mx.array(v) for k, v in w.items()}
        self.net = [NCLConv(a["net.0.weight"], a["net.0.bias"], padding=2), NCLTanh(),
                    NCLConv(a["net.2.weight"], a["net.2.bias"], padding=3, dilation=3),
                    NCLLinear(a["net.3.weight"], a["net.3.bias"], drop_bias=bug),
                    NCLConv(a["net.4.weight"], a["net.4.bias"])]

    def __call__(self, x):  # (N, C, L)
        for m in self.net:
            x = m(x)
        return x

    @staticmethod
    def sanitize(official):
        """The official toy's keys -> this port's (its own loading code)."""
        names = {"conv1": "net.0", "conv2": "net.2", "lin": "net.3", "conv3": "net.4"}
        return {names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in official.items()}


NCL = Layer(out="ncl", inp="ncl")
TOY_RULES = [Rule(r"conv1", "net.0", NCL), Rule(r"act", "net.1", NCL), Rule(r"conv2", "net.2", NCL),
             Rule(r"lin", "net.3", NCL), Rule(r"conv3", "net.4", NCL)]


def toy_port(bug: bool) -> Port:
    def run(model, inputs):  # the port's public API takes (N, C, L)
        return {"y": model(mx.array(inputs["x"]).swapaxes(1, 2)).swapaxes(1, 2)}

    load = lambda kw: ForeignToy(ForeignToy.sanitize(toy.weights(0)), bug=bug)  # noqa: E731
    return Port("toy-foreign", "0", {"toy": Component(load, run, TOY_RULES, note="ForeignToy")})


def test_ports_toy_foreign_port_passes_every_layer():
    spec, unmapped = port_spec(toy.spec(), toy_port(bug=False), "toy", {})
    report = run_spec(spec, seed=0)
    assert report.ok, report.summary()
    assert unmapped == {} and report.compared == 5 + 1
    assert all(r.iso_ok for r in report.rows if r.kind == "layer"), report.summary()


def test_ports_toy_foreign_port_planted_bug_found_at_its_layer():
    spec, _ = port_spec(toy.spec(), toy_port(bug=True), "toy", {})
    report = run_spec(spec, seed=0)
    assert not report.ok
    assert report.first_divergence == "net.3 <- lin", report.summary()
    assert report.first_isolated_divergence == "net.3 <- lin", report.summary()
    before = [r for r in report.rows if r.name in ("net.0 <- conv1", "net.1 <- act", "net.2 <- conv2")]
    assert len(before) == 3 and all(r.ok and r.iso_ok for r in before), report.summary()


def test_ports_layout_is_part_of_the_map():
    """Declaring a channels-first module as channels-last is a shape error at that layer, not a silent pass."""
    rules = [replace(r, layer=Layer()) if r.official == "conv2" else r for r in TOY_RULES]
    port = toy_port(bug=False)
    port.components["toy"].rules = rules
    report = run_spec(port_spec(toy.spec(), port, "toy", {})[0], seed=0)
    bad = next(r for r in report.rows if not r.ok)
    assert bad.name == "net.2 <- conv2" and "shape" in bad.note, report.summary()


def test_ports_unmapped_layers_are_named_and_unmatched_paths_refused():
    rules = [Rule("act", None, why="fused into conv1")] + [r for r in TOY_RULES if r.official != "act"]
    assert map_path(rules, "act") == (None, Layer(), "fused into conv1")
    port = toy_port(bug=False)
    port.components["toy"].rules = rules
    spec, unmapped = port_spec(toy.spec(), port, "toy", {})
    assert unmapped == {"act": "fused into conv1"} and len(spec.pairs) == 4
    with pytest.raises(SpecError, match="no port rule maps official module 'conv9'"):
        map_path(TOY_RULES, "conv9")


# ---------------------------------------------------------------------------------------------- mlx-audio

@pytest.fixture(scope="module")
def mlx_audio():
    try:
        activate("mlx-audio", "mlx_audio")
    except PortUnavailable as e:
        pytest.skip(str(e))
    from parity.ports import mlx_audio as adapter

    return adapter


def _official(component: str):
    """(official spec, kwargs) at the test sizes: tiny DAC, small LMs, the port's quick BiCodec."""
    from parity.doubles import TINY
    from parity.ports.mlx_audio import SPARK_QUICK
    from parity.specs import dac, llama, qwen2, spark

    table = {"dac": (dac.spec, {"config": TINY, "seconds": 0.1, "signal": "speech"}),
             "llama": (llama.spec, {"config": "small", "seq_len": 16}),
             "qwen2-0.5b": (qwen2.spec, {"config": "small", "seq_len": 16}),
             "spark-decoder": (spark.decoder_spec, {"config": SPARK_QUICK, "frames": 4}),
             "spark-global": (spark.global_spec, {"config": SPARK_QUICK, "samples": 1920}),
             "spark-semantic": (spark.semantic_spec, {"config": SPARK_QUICK, "frames": 20})}
    factory, kwargs = table[component]
    return factory(**kwargs), kwargs


MAPPED = ["dac", "llama", "qwen2-0.5b", "spark-decoder", "spark-global", "spark-semantic"]


@pytest.mark.parametrize("component", MAPPED)
def test_ports_mlx_audio_loads_and_maps_every_layer(mlx_audio, component):
    official, kwargs = _official(component)
    spec, unmapped = port_spec(official, mlx_audio.PORT, component, kwargs)
    model = spec.build_impl()  # the port's own loader on the seeded official checkpoint
    for p in spec.pairs:
        resolve(model, p.impl, "mlx-audio")  # SpecError names a path the rules got wrong
    assert len(spec.pairs) + len(unmapped) == len(official.expanded_pairs())
    assert set(unmapped) == ({"mel_transformer"} if component == "spark-global" else set())


@pytest.mark.parametrize("component", ["dac", "llama", "qwen2-0.5b"])
def test_ports_mlx_audio_small_configs_pass(mlx_audio, component):
    official, kwargs = _official(component)
    report = run_spec(port_spec(official, mlx_audio.PORT, component, kwargs)[0], seed=0)
    assert report.ok, report.summary()
    assert report.compared == len(official.expanded_pairs()) + len(official.outputs)


def test_ports_mlx_audio_bicodec_as_loaded_runs_batchnorm_in_training_mode(mlx_audio):
    """Finding (docs/ports.md): BiCodec.load_from_checkpoint never calls eval(); ECAPA's BatchNorm then uses batch
    statistics, and with one clip the pooled (1, C) batch makes MLX refuse it."""
    model = mlx_audio.load_bicodec({"config": mlx_audio.SPARK_QUICK})
    assert model.training
    mel = model.get_mel_spectrogram(mx.array(np.zeros((1, 1920), np.float32) + 0.1))
    with pytest.raises(ValueError, match="BatchNorm training requires more than one value per channel"):
        model.speaker_encoder.tokenize(mel)
    model.eval()
    assert model.speaker_encoder.tokenize(mel).shape == (1, 1, 8)


def test_ports_mlx_audio_sanitizer_guesses_layouts_from_sizes(mlx_audio):
    """Finding (docs/ports.md): WaveGenerator.sanitize transposes a weight only when its input channels exceed its
    kernel, so a BiCodec whose last blocks have 4 channels and 7 taps is refused (and a square one would load wrong)."""
    from mlx_audio.tts.models.spark.bicodec import BiCodec

    with pytest.raises(ValueError, match=r"Expected shape .* but received shape"):
        BiCodec.load_from_checkpoint(mlx_audio.bicodec_folder("tiny", 0))


def test_ports_mlx_audio_dac_weights_cover_the_state_dict(mlx_audio):
    """The adapter's DAC conversion (the package ships none) is total and strict: every official key lands on a
    parameter of the same size, and from_pretrained's strict load_weights accepts the result."""
    from impl.seeded.dac import seeded_state_dict
    from parity.doubles import TINY

    sd = seeded_state_dict(TINY, 0)
    w = mlx_audio.dac_weights(sd)
    assert len(w) == len(sd) and all(w[k].size == v.size for k, v in zip(w, sd.values()))
    model = mlx_audio.load_dac({"config": TINY, "seed": 0})
    from mlx.utils import tree_flatten

    assert {k for k, _ in tree_flatten(model.parameters())} == set(w)


def test_ports_mlx_audio_vocos_backbone_guesses_its_input_layout(mlx_audio):
    """Finding (docs/ports.md): VocosBackbone transposes its input only if x.shape[-1] != input_channels; with as many
    frames as input channels (64 here, 1024 = 20.48 s for the real encoder) the (B, C, T) features pass untransposed
    and every semantic id is wrong. One frame fewer is exact."""
    from parity.ports.mlx_audio import SPARK_QUICK
    from parity.specs import spark

    for frames, ok in ((63, True), (64, False)):
        kwargs = {"config": SPARK_QUICK, "frames": frames}
        report = run_spec(port_spec(spark.semantic_spec(**kwargs), mlx_audio.PORT, "spark-semantic", kwargs)[0],
                          seed=0, isolated=False)
        assert report.ok is ok, report.summary()
    assert report.first_divergence == "encoder.encoder.embed", report.summary()  # the backbone's first conv
    ids = next(r for r in report.rows if r.name == "output:semantic_ids")
    assert ids.mismatches > frames // 2


def test_ports_mlx_audio_report_lists_what_it_cannot_compare(mlx_audio, tmp_path):
    """`./vp parity --port mlx-audio --quick llama speaker-profile`: the LM section passes, the profile section is
    listed under not_run with its reason, and the verdict is therefore not a pass."""
    import argparse
    import json

    from parity.ports import run as port_run

    args = argparse.Namespace(port="mlx-audio", components=["llama", "speaker-profile"], quick=True, fixtures=None,
                              verbose=False, seed=0, no_isolated=False, report=str(tmp_path))
    assert port_run.run(args) == 1
    rep = json.loads((tmp_path / "report.json").read_text())
    assert [s["passed"] for s in rep["sections"]] == [True] and not rep["passed"]
    assert "create_speaker_from_dict" in rep["not_run"]["mlx-audio speaker-profile"]


# ------------------------------------------------ mlx-audio: the contract adapters and the wav2vec2 component

def test_ports_mlx_audio_wav2vec2_loads_in_training_mode(mlx_audio):
    """Finding (docs/ports.md): Wav2Vec2Model.from_pretrained, as BiCodecTokenizer loads it, leaves MLX's training
    mode on, so the config's dropout (0.1) runs: two calls on the same clip differ. After eval() the tiny features
    pass the harness, and the mapped layers cover the official spec."""
    from parity.specs import spark

    kwargs = {"config": "tiny", "samples": 4000}
    official = spark.wav2vec2_spec(**kwargs)
    model = mlx_audio.load_wav2vec2(kwargs)
    assert model.training
    wav = np.random.default_rng(0).uniform(-0.5, 0.5, 4000)
    a, b = (np.array(mlx_audio.run_wav2vec2(model, {"wav": wav, "wav_long": wav})["features"]) for _ in range(2))
    assert np.abs(a - b).max() > 1e-3
    spec, unmapped = port_spec(official, mlx_audio.PORT, "spark-wav2vec2-eval", kwargs)
    assert unmapped == {} and len(spec.pairs) == len(official.expanded_pairs())
    report = run_spec(spec, seed=0, isolated=False)
    assert report.ok, report.summary()


def test_ports_mlx_audio_prompt_ids_adapter(mlx_audio):
    """The port's OuteTTS prompt path on the parity tokenizer: a plain text with a profile gives impl's ids (impl
    is checked exact against outetts); quotes and a doubled '!' do not (finding: mlx-audio's text_normalizations is
    an older outetts's, no ftfy/NFKC, quotes kept)."""
    from transformers import AutoTokenizer

    from impl.outetts.prompt import prompt_ids
    from impl.outetts.tokenizer import Tokenizer
    from impl.seeded.speaker import synthetic_speaker
    from mlx_audio.tts.models.outetts.prompt_processor import PromptProcessor
    from parity.specs.prompt import _tokenizer_dir

    hf, tok = AutoTokenizer.from_pretrained(str(_tokenizer_dir())), Tokenizer(_tokenizer_dir())
    pp, speaker = PromptProcessor(hf), synthetic_speaker(3, "Hello there, this is a speaker.")
    plain = "It is a fine day, is it not?"
    assert mlx_audio.outetts_prompt_ids(pp, hf, plain, speaker) == prompt_ids(tok, plain, speaker)
    assert speaker["words"][-1]["word"] == synthetic_speaker(3, "Hello there, this is a speaker.")["words"][-1]["word"]
    quoted = 'He said “hi”!!'
    assert mlx_audio.outetts_prompt_ids(pp, hf, quoted, None) != prompt_ids(tok, quoted, None)


def test_ports_mlx_audio_sampler_adapter(mlx_audio):
    """The port's OuteTTS sampler: at temperature 1 its distribution equals impl's (impl checked against
    transformers) within the adapter's bound; at the OuteTTS settings (T 0.4, top-p 0.9, min-p 0.05) its support
    is wider (finding: top-p and min-p on the temperature-1 log-probabilities); the penalty window through
    generate_step decides as the official loop."""
    import mlx.core as mx

    from impl.outetts.sampler import SamplerConfig, probabilities, process_logits
    from parity.specs.sampler import softmax_bound, window_case

    rng = np.random.default_rng(3)
    logits = (rng.normal(0, 2, (1, 300))).astype(np.float32)
    ids = rng.integers(0, 300, (1, 80))
    window = mx.array(ids[:, -64:])
    for kw, same in ((dict(temperature=1.0, repetition_penalty=1.1, top_k=40, top_p=0.9, min_p=0.05), True),
                     (dict(temperature=0.4, repetition_penalty=1.1, top_k=40, top_p=0.9, min_p=0.05), False)):
        p, s = mlx_audio.sampler_distribution(logits, ids, kw)
        ref = np.array(probabilities(mx.array(logits), window, SamplerConfig(**kw)), np.float64).reshape(-1)
        assert np.array_equal(p > 0, ref > 0) is same, kw
        if same:  # the port's bound against the truth plus impl's (parity/specs/sampler.py) against the truth
            idx = np.flatnonzero(ref > 0)
            s_impl = np.array(process_logits(mx.array(logits), window, SamplerConfig(**kw)), np.float64).reshape(-1)
            bound = mlx_audio.sampler_bound(ref[idx], s[idx], s_impl[idx]) + softmax_bound(ref[idx][None])[0]
            assert np.all(np.abs(p[idx] - ref[idx]) <= bound)
        else:
            assert np.count_nonzero(p) > np.count_nonzero(ref)
    prompt, rows, step = window_case(64, "generated")
    got = mlx_audio.sampler_window_ids(rows, prompt, len(rows))
    assert len(got) == len(rows) and got[step] == 6  # id 64 back is penalised: B (6) wins the near-tie


def test_ports_mlx_audio_spark_prompt_ids_adapter(mlx_audio):
    """The port's Spark prompt builders give impl's ids (impl is checked exact against SparkTTS) in the three modes."""
    from transformers import AutoTokenizer

    from impl.spark import prompt as P
    from impl.spark.tokens import Tokenizer
    from parity.specs.spark_prompt import llm_dir

    hf, tok = AutoTokenizer.from_pretrained(str(llm_dir())), Tokenizer(llm_dir())
    g, s = list(range(0, 4096, 128)), [5, 8191, 17]
    args = ("Hello <|im_end|> world", "a transcript", g, s, ("female", "high", "low"))
    assert mlx_audio.spark_prompt_ids(hf, "clone", *args) == P.clone_ids(tok, args[0], g, s, None)
    assert mlx_audio.spark_prompt_ids(hf, "clone-transcript", *args) == P.clone_ids(tok, args[0], g, s, args[1])
    assert mlx_audio.spark_prompt_ids(hf, "create", *args) == P.control_ids(tok, args[0], *args[4])


def test_ports_mlx_audio_audio_path_adapter(mlx_audio):
    """The functions the port's OuteTTS codec interface calls: its resampler is another filter (finding: a
    kaiser-best polyphase FIR, one sample longer than torchaudio on 44.1 kHz -> 24 kHz at 240,854 samples) and its
    loudness meter another K-weighting (finding: BS.1770's tabulated stages, not pyloudnorm's default; ~0.085 LU)."""
    import mlx.core as mx

    from impl import audio
    from mlx_audio.tts.models.outetts.dac_interface import process_audio_array
    from mlx_audio.utils import resample_audio

    x = np.random.default_rng(0).uniform(-0.5, 0.5, 240854).astype(np.float32)
    assert resample_audio(x, 44100, 24000).shape == (131078,) and audio.resample(x, 44100, 24000).shape == (131077,)
    noise = (0.05 * np.random.default_rng(1).standard_normal(30000)).astype(np.float32)
    port = np.array(process_audio_array(mx.array(noise)[None, None])).reshape(-1)
    gain = port / audio.loudness_normalize(noise, 24000)
    assert np.allclose(gain, gain[0], rtol=1e-4) and 0.985 < gain[0] < 0.995  # 10 ** (-0.085 / 20) = 0.990


def test_ports_mlx_audio_dac_interface_adapter(mlx_audio):
    """The port's DacInterface on the staged tiny DAC: decode gives the official length but no 15 ms fades (finding:
    outetts fades each chunk in and out; impl, checked against it, starts at exactly 0)."""
    import mlx.core as mx

    from impl import dac
    from impl.dac.interface import DacInterface
    from impl.seeded.dac import seeded_checkpoint
    from parity.doubles import TINY
    from parity.specs.dac_interface import _codes

    codes = _codes(97, 14)
    got = np.array(mlx_audio.dac_interface(dict(TINY)).decode(mx.array(codes[None].astype(np.int32)))).reshape(-1)
    want = DacInterface(dac.load(seeded_checkpoint(dict(TINY), 0))).decode(codes)
    assert got.shape == want.shape and want[0] == 0 and got[0] != 0


def test_ports_mlx_audio_outetts_chunking_drops_sentence_punctuation(mlx_audio):
    """Finding (docs/ports.md): mlx-audio's OuteTTS Model.chunk_text splits on [.!?] and rejoins the words with
    spaces, so the text its PromptProcessor receives has no sentence punctuation; outetts' chunk_text (impl's,
    checked against it) keeps it."""
    from impl.outetts.text import chunk_text
    from mlx_audio.tts.models.outetts.outetts import Model

    text = "Hello there. How are you?"
    assert Model.chunk_text(None, text) == ["Hello there How are you"]
    assert chunk_text(text) == [text]
