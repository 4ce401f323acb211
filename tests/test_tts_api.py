"""The Python API of both models, as a user meets it (issue 29): one config vocabulary, the CLI's default cap,
`sample_rate` on the loaded object, `stream` failing as `generate` does, `load` refusing at once, errors in API
terms (the CLI words them as flags), Spark-TTS' Chinese without MeCab, the up-front estimate. Tiny seeded models and
scripted LMs only."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from impl import runtime
from impl.outetts import generate as OG
from impl.spark import generate as SG


class ConstLM:
    """Every position's logits put `token` on top: the model never writes anything else."""

    def __init__(self, token: int, vocab: int):
        self.row = np.full(vocab, -10.0, np.float32)
        self.row[token] = 10.0

    def __call__(self, ids, cache):
        import mlx.core as mx

        return mx.broadcast_to(mx.array(self.row), (1, ids.shape[1], self.row.size))


class FakeCodec:
    def decode(self, codes):
        return np.ones((1, 320 * np.array(codes).shape[-1]), np.float32)


@pytest.fixture(scope="module")
def outetts_dir(tmp_path_factory):
    from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("api") / "tiny", TINY_LM_CONFIG, seed=0)


@pytest.fixture(scope="module")
def spark_dir():
    from impl.seeded.spark import seeded_spark

    return seeded_spark()


# ------------------------------------------------------------------------------------------------ config

def test_api_config_is_one_vocabulary_for_both_models():
    """One GenerationConfig class: None picks each model's official default, greedy is temperature 0, the default
    cap is "auto" (the CLI's rule), the OuteTTS-only settings are nested and refused by Spark-TTS."""
    assert OG.GenerationConfig is SG.GenerationConfig is runtime.GenerationConfig
    assert OG.GenerationError is SG.GenerationError is runtime.GenerationError
    c = runtime.GenerationConfig()
    assert c.max_new_tokens == "auto" and c.seed == 0 and not c.greedy
    o, s = OG.sampler_config(c), SG.sampler_config(c)
    assert (o.temperature, o.top_k, o.top_p, o.repetition_penalty, o.min_p) == (0.4, 40, 0.9, 1.1, 0.05)
    assert (s.temperature, s.top_k, s.top_p, s.repetition_penalty, s.min_p) == (0.8, 50, 0.95, 1.0, 0.0)
    g = runtime.GenerationConfig(greedy=True, temperature=0.7, top_k=5, top_p=0.5)
    assert OG.sampler_config(g).greedy and SG.sampler_config(g).greedy
    assert (SG.sampler_config(g).top_k, SG.sampler_config(g).top_p) == (5, 0.5)
    with pytest.raises(runtime.GenerationError, match="OuteTTS-only"):
        SG.sampler_config(runtime.GenerationConfig(outetts=runtime.OuteTTSOptions(max_length=100)))


@pytest.mark.parametrize("kw,frag", [
    (dict(temperature=-1.0), "temperature=-1.0"), (dict(temperature=float("nan")), "temperature=nan"),
    (dict(top_k=-1), "top_k=-1"), (dict(top_p=0.0), "top_p=0.0"), (dict(seed=-1), "seed=-1"),
    (dict(seed=2 ** 64), "seed=18446744073709551616"), (dict(seed=True), "seed=True"),
    (dict(max_new_tokens=0), "max_new_tokens=0"), (dict(max_new_tokens="many"), "max_new_tokens='many'"),
    (dict(greedy=1), "greedy=1"),
])
def test_api_config_refuses_bad_values_in_api_terms(kw, frag):
    with pytest.raises(runtime.GenerationError, match="^" + frag.replace("(", r"\(").replace("+", r"\+")) as e:
        runtime.GenerationConfig(**kw)
    assert "--" not in str(e.value)


def test_api_errors_are_worded_as_flags_by_the_cli():
    assert runtime.cli_terms("gender='other': expected one of female, male") == \
        "--gender 'other': expected one of female, male"
    assert runtime.cli_terms("no codes in 5 tokens (try a larger max_new_tokens)") == \
        "no codes in 5 tokens (try a larger --max-new-tokens)"
    assert runtime.cli_terms("--max-length 9: max_length is 9") == "--max-length 9: --max-length is 9"
    assert runtime.cli_terms("/cache/seeded/seeds/x: unreadable") == "/cache/seeded/seeds/x: unreadable"
    assert runtime.cli_terms("a path /x/max_new_tokens_dir") == "a path /x/max_new_tokens_dir"


# ------------------------------------------------------------------------------------------------ OuteTTS

def test_api_outetts_load_has_everything_and_the_cli_cap(outetts_dir):
    """load() with no codec loads the embedded seeded DAC (as the CLI), the object says its sample rate and
    variant, and the default config caps each chunk with the CLI's auto rule."""
    tts = OG.load(outetts_dir)
    assert tts.codec is not None and tts.sample_rate == 24000 and tts.variant in ("plain", "fused", "cpu")
    (plan,) = tts.plan("Hello there.", None)
    assert plan.rule.startswith("auto:") and plan.budget == OG.auto_max_new_tokens(
        "Hello there.", plan.prompt, None, None)[0]


def test_api_outetts_load_refuses_at_once(outetts_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        OG.load(tmp_path / "nope")
    with pytest.raises(runtime.GenerationError, match="codec=42"):
        OG.load(outetts_dir, codec=42)
    with pytest.raises(runtime.GenerationError, match="variant='turbo'"):
        OG.load(outetts_dir, variant="turbo")


def test_api_outetts_stream_raises_as_generate_when_no_audio(outetts_dir):
    from impl.outetts.tokenizer import Tokenizer

    tok = Tokenizer(outetts_dir)
    tts = OG.TTS(ConstLM(tok.encode("a")[0], tok.vocab_size), tok, make_cache=lambda: None,
                 vocab_size=tok.vocab_size, codec=FakeCodec())
    config = runtime.GenerationConfig(greedy=True, max_new_tokens=4)
    with pytest.raises(OG.GenerationError, match="no audio codes in 4 tokens") as g:
        tts.generate("Hi.", None, config)
    with pytest.raises(OG.GenerationError, match="no audio codes in 4 tokens") as s:
        list(tts.stream("Hi.", None, config))
    assert str(g.value) == str(s.value)
    with pytest.raises(OG.GenerationError, match="no codec"):  # before generating
        next(OG.TTS(ConstLM(0, tok.vocab_size), tok, make_cache=lambda: None).stream("Hi.", None, config))


def test_api_load_starts_no_child_process_unless_asked(outetts_dir, monkeypatch):
    """warmup=False (the default) never starts impl.accel.cuda.KernelWarmup; warmup=True does."""
    from impl.accel import cuda

    started = []
    monkeypatch.setattr(cuda.KernelWarmup, "start", lambda self: started.append(self.model) or self)
    monkeypatch.setattr(cuda.KernelWarmup, "wait", lambda self: 0)
    OG.load(outetts_dir, codec=FakeCodec())
    assert started == []
    OG.load(outetts_dir, codec=FakeCodec(), warmup=True)
    assert started == ["outetts"]


# ------------------------------------------------------------------------------------------------ Spark-TTS

def test_api_spark_stream_raises_as_generate_when_no_audio(spark_dir):
    from impl.spark.tokens import Tokenizer

    base = SG.load(spark_dir, need_w2v=False)
    assert base.sample_rate == 16000 and base.variant in ("plain", "fused", "cpu")
    tok = Tokenizer(spark_dir / "LLM")
    tts = SG.SparkTTS(ConstLM(tok.encode("a")[0], 166000), tok, codec=base.codec, make_cache=lambda: None,
                      vocab_size=166000)
    voice = SG.Voice(global_codes=np.zeros(32, np.int64))
    config = runtime.GenerationConfig(greedy=True, max_new_tokens=5)
    with pytest.raises(SG.GenerationError, match="no semantic ids in 5 tokens") as g:
        tts.generate("Hi.", voice, config)
    with pytest.raises(SG.GenerationError, match="no semantic ids in 5 tokens") as s:
        list(tts.stream("Hi.", voice, config))
    assert str(g.value) == str(s.value)


def test_api_spark_errors_name_parameters():
    with pytest.raises(ValueError, match=r"^gender='other': expected one of female, male"):
        SG.Voice(gender="other")
    with pytest.raises(ValueError, match=r"^pitch='loud'"):
        SG.Voice(gender="male", pitch="loud")


def test_api_spark_chinese_and_mixed_text_need_no_mecab(monkeypatch):
    """Chinese is one of Spark-TTS' two languages: splitting it needs no word splitter (MeCab made unimportable);
    a short text stays verbatim, a long one is cut at sentences into chunks of at most 50 units (a CJK character
    is one), and nothing is lost."""
    monkeypatch.setitem(sys.modules, "MeCab", None)
    short = "你好，世界。Hello 世界!"
    assert SG.split_text(short) == [short]
    long = "今天天气很好，我们去公园散步吧。" * 12 + " And then some English words at the end."
    chunks = SG.split_text(long)
    assert len(chunks) > 1 and all(len(SG._units(c)) <= 50 for c in chunks)
    assert "".join(chunks).replace(" ", "") == long.replace(" ", "")
    cap, rule = SG.auto_max_new_tokens("你好世界", SG.Voice(global_codes=np.zeros(32, np.int64)), 32)
    assert "12 chars" in rule  # 4 CJK characters, each spoken ~3x as long as a Latin one


# ------------------------------------------------------------------------------------------------ estimate

def test_api_eta_warning_only_for_long_runs():
    plans = [runtime.ChunkPlan("x", [1], 500, "auto: ...")] * 52
    line = runtime.eta_warning(plans, 4.0, "voiceport tts")
    assert line.startswith("voiceport tts: warning: up to 26,000 new tokens in 52 chunk(s): up to ~1.8 h")
    assert "--max-new-tokens" in line
    assert runtime.eta_warning(plans[:1], 4.0, "voiceport tts") is None  # 125 s: no warning
