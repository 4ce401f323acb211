"""Contract: every public setting reaches what it controls, as a user passes it -- or leaves it out.

Three kinds of case, one report section ("public settings"):
  - default <name>: a default impl ports (a keyword default, a config field) equals the upstream one it names,
    read from the official packages' own signatures / dataclass fields (`inspect`, recorded live; a wrong
    default passes every test that sets the value explicitly: the audit's DacInterface chunk_length 1024);
  - argument <name>: a public argument at a non-default value gives the official call's output with the same
    value (on the tiny seeded DAC: DAC.encode n_quantizers, codes exact; DAC.decode of fewer codebooks than the
    model has, audio within the fp32 floor); ARGUMENTS names every parameter of the codec's entry points;
  - setting <name> via api|cli: a generation setting given through the API (`GenerationConfig`, `load`,
    `Voice`) or through `voiceport tts` arrives at `impl.runtime.decode_loop` (spied on: the first call's
    sampler, prompt, budget and LM are captured, then the run stops): the captured value is the one asked and
    not the defaults' (a setting dropped on the way, or wired to another field, fails); sampler settings also
    change the processed scores exactly as a sampler built with the value does; the seed gives that seed's draws.
The settings cases are impl-only (their reference is the asked value); the defaults and arguments cases replay
from the fixture without torch. `parity/test_audit_settings.py` runs the same cases as fast tests, and checks
that every public setting and every defaulted parameter of the listed entry points has a row here.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import inspect
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from parity.contracts import Case, Contract, Section, exact_case, floor_case, floor_ref, section

OUTETTS, SPARK = "outetts", "spark"
TEXT = "Hello there, how are you today?"

# ------------------------------------------------------------------------------------------------ defaults

# (case name, impl "module:qualname", impl parameter, upstream "module:qualname", upstream parameter)
DEFAULTS: List[Tuple[str, str, str, str, str]] = [
    ("DacInterface chunk_length", "impl.dac.interface:DacInterface", "chunk_length",
     "outetts.dac.interface:DacInterface.decode", "chunk_length"),
    ("DacInterface win_duration", "impl.dac.interface:DacInterface", "win_duration",
     "outetts.dac.interface:DacInterface.encode", "win_duration"),
    ("DAC.encode n_quantizers", "impl.dac.model:DAC.encode", "n_quantizers", "dac:DAC.encode", "n_quantizers"),
    *[(f"DACConfig {p}", "impl.dac.model:DACConfig", p, "dac:DAC", p)
      for p in ("encoder_dim", "encoder_rates", "latent_dim", "decoder_dim", "decoder_rates", "n_codebooks",
                "codebook_size", "codebook_dim", "sample_rate")],
    *[(f"calculate_pitch {p}", "impl.speaker.features:calculate_pitch", p,
       "outetts.version.v3.audio_processor:calculate_pitch", p)
      for p in ("min_freq", "max_freq", "frame_length", "hop_length", "threshold")],
    *[(f"single_pitch_value {p}", "impl.speaker.features:single_pitch_value", p,
       "outetts.version.v3.audio_processor:extract_single_pitch_value", p) for p in ("min_freq", "max_freq")],
    *[(f"{f} {p}", f"impl.audio:{f}", p, "torchaudio.transforms:Resample", p)
      for f in ("resample", "resample_kernel") for p in ("lowpass_filter_width", "rolloff")],
    *[(f"{f} block_size", f"impl.audio:{f}", "block_size", "pyloudnorm:Meter", "block_size")
      for f in ("integrated_loudness", "loudness_normalize")],
    ("loudness_normalize target_lufs", "impl.audio:loudness_normalize", "target_lufs",
     "outetts.dac.interface:process_audio_tensor", "target_loudness"),
    ("loudness_normalize peak_db", "impl.audio:loudness_normalize", "peak_db",
     "outetts.dac.interface:process_audio_tensor", "peak_limit"),
    *[(f"SamplerConfig {p}", "impl.outetts.sampler:SamplerConfig", p, "outetts.models.config:SamplerConfig", p)
      for p in ("temperature", "repetition_penalty", "repetition_range", "top_k", "top_p", "min_p")],
    *[(f"OuteTTSOptions {p}", "impl.runtime:OuteTTSOptions", p, "outetts.models.config:SamplerConfig", p)
      for p in ("repetition_penalty", "repetition_range", "min_p")],
    ("OuteTTSOptions max_length", "impl.runtime:OuteTTSOptions", "max_length",
     "outetts.models.config:GenerationConfig", "max_length"),
    *[(f"spark sampler {p}", "impl.spark.sampler:config", p, "spark_tts_lib.SparkTTS:SparkTTS.inference", p)
      for p in ("temperature", "top_k", "top_p")],
    ("AdaLayerNorm eps", "impl.spark.vocos:AdaLayerNorm", "eps", "spark_tts_lib.modules.blocks.vocos:AdaLayerNorm",
     "eps"),
    ("ASTP bottleneck_dim", "impl.spark.speaker:ASTP", "bottleneck_dim",
     "spark_tts_lib.modules.speaker.pooling_layers:ASTP", "bottleneck_dim"),
    ("audio_volume_normalize coeff", "impl.spark.audio:audio_volume_normalize", "coeff",
     "spark_tts_lib.utils.audio:audio_volume_normalize", "coeff"),
    *[(f"llama ModelArgs {p}", "impl.llama:ModelArgs", p, "transformers:LlamaConfig", p)
      for p in ("rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings", "tie_word_embeddings",
                "attention_bias", "mlp_bias", "hidden_act", "initializer_range", "num_key_value_heads",
                "head_dim")],
    *[(f"Qwen2Args {p}", "impl.qwen2:Qwen2Args", p, "transformers:Qwen2Config", p)
      for p in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
                "rms_norm_eps", "tie_word_embeddings", "rope_theta", "rope_scaling", "use_sliding_window",
                "sliding_window", "max_window_layers", "attention_dropout")],
]

# Defaulted parameters of the entry points above that port no upstream default, with why (the completeness
# test: every defaulted parameter of an impl entry point in DEFAULTS is a row or is named here).
NOT_PORTED = {
    "impl.dac.interface:DacInterface": {"max_seconds": "voiceport's input limit (outetts has none)"},
    "impl.speaker.features:calculate_pitch": {},
    "impl.audio:loudness_normalize": {"on_silence": "voiceport's choice for silent audio (outetts returns NaN)"},
    "impl.llama:ModelArgs": {"o_proj_bias": "not a LlamaConfig key (None: attention_bias)",
                             "bos_token_id": "token ids: read from config.json, unused by the maths",
                             "eos_token_id": "token ids: read from config.json", "pad_token_id": "token ids",
                             "model_type": "a tag"},
    "impl.qwen2:Qwen2Args": {"head_dim": "not a Qwen2Config key (None: hidden_size // heads, as Qwen2Attention)",
                             "bos_token_id": "token ids", "eos_token_id": "token ids", "pad_token_id": "token ids",
                             "model_type": "a tag"},
    "impl.spark.sampler:config": {"repetition_penalty": "from the LLM folder's generation config (1.0: off)",
                                  "min_p": "from the LLM folder's generation config (0: off)"},
}


def resolve(path: str) -> Any:
    """"module:Qual.name" -> the object."""
    mod, _, qual = path.partition(":")
    obj = importlib.import_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def default_of(obj: Any, param: str) -> Any:
    """A callable's keyword default, or a dataclass field's default (its factory called)."""
    if dataclasses.is_dataclass(obj) and isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name == param:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                    return f.default_factory()  # type: ignore[misc]
                raise KeyError(f"{obj.__name__}.{param} has no default")
    p = inspect.signature(obj).parameters[param]
    if p.default is inspect.Parameter.empty:
        raise KeyError(f"{getattr(obj, '__qualname__', obj)}({param}) has no default")
    return p.default


def _plain(v: Any) -> Any:
    """A default as a JSON-able value (tuples as lists, enums by value)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return getattr(v, "value", v) if not isinstance(v, (int, float, str, bool, type(None))) else v


def defaults_cases(upstream: Dict[str, Any]) -> List[Case]:
    cases = []
    for name, impl_path, p, up_path, _ in DEFAULTS:
        got = _plain(default_of(resolve(impl_path), p))
        want = upstream[name]
        ok = got == want and isinstance(got, bool) == isinstance(want, bool)
        cases.append(Case(f"default {name}", 0.0 if ok else 1.0, 0.0, ok, "exact",
                          "" if ok else f"impl {impl_path} {p}={got!r} != upstream {up_path} {want!r}"))
    return cases


def record_defaults() -> Dict[str, Any]:
    return {name: _plain(default_of(resolve(up), up_p)) for name, _, _, up, up_p in DEFAULTS}


# ------------------------------------------------------------------------------------------------ arguments

# Every parameter of the codec's public entry points, and where a non-default value of it is compared with the
# official call (a case here, or the test that does), or why none is needed; "GAP:" marks one not compared yet.
ARGUMENTS: Dict[str, Dict[str, str]] = {
    "impl.dac.model:DAC.encode": {"audio": "the input", "n_quantizers": "case: argument DAC.encode n_quantizers"},
    "impl.dac.model:DAC.decode": {"codes": "the input; fewer codebooks than the model has: case: argument "
                                           "DAC.decode codebooks"},
    "impl.dac.interface:DacInterface.__init__": {
        "model": "the codec", "max_seconds": "voiceport's input limit (parity/test_dac_interface.py: refusal)",
        "win_duration": "GAP: the encode window is compared at outetts' 5 s only (a ported default: DEFAULTS)",
        "chunk_length": "parity/test_dac_interface.py::test_dac_interface_decode_chunks_equal_outetts (16..48)"},
    "impl.dac.interface:DacInterface.encode": {"x": "the input"},
    "impl.dac.interface:DacInterface.decode": {"codes": "the input", "progress": "a callback (no effect on audio)"},
}

N_ARG_SAMPLES = 4800  # 15 frames of the tiny DAC


def _arg_audio() -> np.ndarray:
    return (0.3 * np.random.default_rng(11).standard_normal((1, N_ARG_SAMPLES))).astype(np.float32)


def _tiny_dac_paths() -> Tuple[Path, Path]:
    from impl.seeded.dac import seeded_checkpoint
    from parity.doubles import TINY

    st = seeded_checkpoint(dict(TINY), 0)
    return st, st.with_suffix(".pth")


def record_arguments() -> Dict[str, Any]:
    import torch

    from parity.doubles import TINY
    from reference import dac as ref

    _, pth = _tiny_dac_paths()
    if not pth.exists():
        ref.write_seeded_checkpoint(pth, dict(TINY), 0)
    model, m64 = ref.load(pth, "float32"), ref.load(pth, "float64")
    x = torch.from_numpy(_arg_audio())[:, None, :]
    out: Dict[str, Any] = {}
    for n in range(1, TINY["n_codebooks"] + 1):
        with torch.no_grad():
            out[f"n_quantizers={n}"] = model.encode(x, n_quantizers=n)[1].numpy().astype(np.int32)
        codes = _arg_codes(n)
        out[f"codebooks={n}"] = floor_ref(ref.decode(model, codes), ref.decode(m64, codes))
    return out


def _arg_codes(n: int) -> np.ndarray:
    return np.random.default_rng(12).integers(0, 1024, (1, n, 9)).astype(np.int32)


def arguments_cases(rec: Dict[str, Any]) -> List[Case]:
    import mlx.core as mx

    from impl.dac import model as dac_model

    st, _ = _tiny_dac_paths()
    model = dac_model.load(st)
    x = mx.array(_arg_audio())
    cases = []
    for key, want in rec.items():
        n = int(key.split("=")[1])
        if key.startswith("n_quantizers"):
            cases.append(exact_case(f"argument DAC.encode {key}", np.array(model.encode(x, n_quantizers=n)), want))
        else:  # decoded audio of n codebooks, within the fp32 floor of the official fp32/fp64 decodes
            cases.append(floor_case(f"argument DAC.decode {key}", np.array(model.decode(mx.array(_arg_codes(n)))),
                                    want))
    return cases


# ------------------------------------------------------------------------------------------------ settings

class Captured(BaseException):
    """Raised by the spy once the decode loop's inputs are recorded (BaseException: no handler swallows it)."""


@dataclass
class Loop:
    """The first decode_loop call's inputs."""

    lm: Any
    prompt: List[int]
    sampler: Any
    budget: int


def public_setting_names() -> Tuple[set, set]:
    """(every public setting's name: GenerationConfig / OuteTTSOptions fields, both `load`s' keywords, Voice's
    attributes; every `voiceport tts` option's dest): what a settings table must cover."""
    import argparse
    import dataclasses
    import inspect

    from impl.outetts import cli as tts_cli
    from impl.outetts import generate as OG
    from impl.runtime import GenerationConfig, OuteTTSOptions
    from impl.spark import generate as SG

    names = {f.name for f in dataclasses.fields(GenerationConfig)} - {"outetts"}
    names |= {f.name for f in dataclasses.fields(OuteTTSOptions)}
    for load in (OG.load, SG.load):
        names |= set(inspect.signature(load).parameters) - {"codec"}
    names |= {f.name for f in dataclasses.fields(SG.Voice)} - {"global_codes", "semantic_codes"}
    p = argparse.ArgumentParser()
    tts_cli.configure(p)
    return names, {a.dest for a in p._actions if a.dest != "help"}


@contextlib.contextmanager
def spy_decode_loop():
    """Every module-level reference to impl.runtime.decode_loop replaced by a recorder that raises Captured."""
    from impl import runtime

    for m in ("impl.outetts.generate", "impl.outetts.cli", "impl.spark.generate", "impl.spark.tts"):
        importlib.import_module(m)
    real = runtime.decode_loop
    seen: List[Loop] = []

    def record(lm, cache, prompt, sampler, budget, *args, **kwargs):
        seen.append(Loop(lm, list(prompt), sampler, int(budget)))
        raise Captured()

    patched = [mod for name, mod in list(sys.modules.items())
               if (name == "impl" or name.startswith("impl.")) and getattr(mod, "decode_loop", None) is real]
    for mod in patched:
        mod.decode_loop = record
    try:
        yield seen
    finally:
        for mod in patched:
            mod.decode_loop = real


@dataclass(frozen=True)
class Setting:
    """A public setting: `api` GenerationConfig keywords (or `load_kw` / `voice_kw`), `cli` argv (None: no flag),
    `read` what the decode loop got, `want` the value asked (None: compare to the run without it only)."""

    name: str
    model: str
    api: Dict[str, Any]
    cli: Optional[List[str]]
    read: Callable[["Loop", "Inputs"], Any]
    want: Any = None
    load_kw: Dict[str, Any] = field(default_factory=dict)
    voice_kw: Dict[str, Any] = field(default_factory=dict)
    sampler: bool = False


def _field(name: str):
    return lambda loop, inputs: getattr(loop.sampler.config, name)


def _lm_numerics(lm) -> tuple:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    floats = sorted({str(v.dtype).rsplit(".", 1)[-1] for _, v in tree_flatten(lm.parameters())
                     if mx.issubdtype(v.dtype, mx.floating)})
    bits = sorted({int(m.bits) for _, m in lm.named_modules() if hasattr(m, "bits")})
    return tuple(floats), (bits[0] if bits else None)


def _label(kind: str):
    def read(loop: Loop, inputs: "Inputs") -> str:
        from impl.spark.tokens import GENDER_MAP, LEVELS_MAP

        ids = inputs.labels[kind]
        got = [ids[i] for i in loop.prompt if i in ids]
        if len(got) != 1:
            return f"{len(got)} {kind} label tokens in the prompt"
        number = int(got[0].rstrip("|>").rsplit("_", 1)[1])
        table = GENDER_MAP if kind == "gender" else LEVELS_MAP
        return next(k for k, v in table.items() if int(v) == number)
    return read


def _logits():
    import mlx.core as mx

    rng = np.random.default_rng(0)
    logits = mx.array((0.3 * rng.standard_normal((1, 300))).astype(np.float32))  # flat: every filter cuts
    window = mx.array(rng.integers(0, 300, (1, 64)).astype(np.uint32))
    return logits, window


def draws(sampler, n: int = 8) -> List[int]:
    """A sampler's first n draws on fixed logits (from a copy of its key)."""
    s = copy.copy(sampler)
    logits, window = _logits()
    return [int(s(logits, window)[0]) for _ in range(n)]


def scores(config) -> np.ndarray:
    """A sampler config's processed scores on fixed logits and window (its repetition range applied)."""
    from impl.outetts.sampler import process_logits

    logits, window = _logits()
    R = config.repetition_range
    return np.array(process_logits(logits, window[:, window.shape[1] - R:] if R else window[:, :0], config))


def _opts(**kw):
    from impl.runtime import OuteTTSOptions

    return OuteTTSOptions(**kw)


MAXLEN_MARGIN = 5  # max_length row: the default prompt's length + this (below the auto cap, above the prompt)


def settings_table() -> List[Setting]:
    S: List[Setting] = []
    for model in (OUTETTS, SPARK):
        S += [
            Setting("temperature", model, dict(temperature=0.7), ["--temperature", "0.7"], _field("temperature"),
                    0.7, sampler=True),
            Setting("greedy", model, dict(greedy=True), ["--greedy"], _field("temperature"), 0.0, sampler=True),
            Setting("top_k", model, dict(top_k=7), None, _field("top_k"), 7, sampler=True),
            Setting("top_p", model, dict(top_p=0.5), None, _field("top_p"), 0.5, sampler=True),
            Setting("seed", model, dict(seed=5), ["--seed", "5"], lambda loop, i: draws(loop.sampler)),
            Setting("max_new_tokens", model, dict(max_new_tokens=17), ["--max-new-tokens", "17"],
                    lambda loop, i: loop.budget, 17),
            Setting("dtype", model, {}, ["--dtype", "float16"], lambda loop, i: _lm_numerics(loop.lm)[0],
                    ("float16",), load_kw=dict(dtype="float16")),
            Setting("quantize", model, {}, ["--quantize", "q8"], lambda loop, i: _lm_numerics(loop.lm)[1], 8,
                    load_kw=dict(quantize="q8")),
        ]
    S += [
        Setting("repetition_penalty", OUTETTS, dict(outetts=_opts(repetition_penalty=1.5)), None,
                _field("repetition_penalty"), 1.5, sampler=True),
        Setting("repetition_range", OUTETTS, dict(outetts=_opts(repetition_range=8)), None,
                _field("repetition_range"), 8, sampler=True),
        Setting("min_p", OUTETTS, dict(outetts=_opts(min_p=0.3)), None, _field("min_p"), 0.3, sampler=True),
        Setting("max_length", OUTETTS, {}, ["--max-length", "N"], lambda loop, i: loop.budget + len(loop.prompt)),
        # max_length's value is set per run: the default prompt's length + MAXLEN_MARGIN
        Setting("gender", SPARK, {}, ["--gender", "male"], _label("gender"), "male", voice_kw=dict(gender="male")),
        Setting("pitch", SPARK, {}, ["--pitch", "very_high"], _label("pitch"), "very_high",
                voice_kw=dict(pitch="very_high")),
        Setting("speed", SPARK, {}, ["--speed", "low"], _label("speed"), "low", voice_kw=dict(speed="low")),
    ]
    return S


# Public options that are not settings of the computation, with why.
NOT_SETTINGS = {
    "text": "the input", "text_file": "the input", "speaker": "the input (OuteTTS profile)", "out": "the output",
    "model": "which model", "codec": "which codec", "prompt_audio": "the input (Spark cloning)",
    "prompt_text": "the input (Spark cloning; parity/test_spark_prompt.py)", "quiet": "progress display only",
    "stream": "when audio is decoded, not what is generated", "variant": "a platform layout of the same LM "
    "(tests/test_accel_lm.py)", "model_dir": "which model", "need_w2v": "which parts load",
    "warmup": "kernel compilation only (mlx-cuda)",
}


@dataclass
class Inputs:
    """The tiny seeded OuteTTS folder (model/, dac.safetensors, speaker.json) and Spark-TTS folder, and the
    Spark tokenizer's label ids {kind: {id: token}}."""

    dir: Path
    spark: Path
    labels: Dict[str, Dict[int, str]]
    base: Dict[Tuple[str, str], Loop] = field(default_factory=dict)

    @classmethod
    def build(cls, d: Path) -> "Inputs":
        from impl.seeded.spark import seeded_spark
        from impl.spark.tokens import Tokenizer
        from parity.doubles import write_tiny_outetts

        spark = Path(seeded_spark())
        tok = Tokenizer(spark / "LLM")
        labels = {kind: {i: t for t, i in tok.ids.items() if t.startswith(prefix)}
                  for kind, prefix in (("gender", "<|gender_"), ("pitch", "<|pitch_label_"),
                                       ("speed", "<|speed_label_"))}
        return cls(write_tiny_outetts(Path(d)), spark, labels)


def run_api(model: str, inputs: Inputs, config_kw: Dict[str, Any], load_kw: Dict[str, Any], seen: List[Loop],
            voice_kw: Optional[Dict[str, Any]] = None) -> Loop:
    from impl.runtime import GenerationConfig

    config = GenerationConfig(**config_kw)
    try:
        if model == OUTETTS:
            from impl.outetts import generate as G
            from impl.speaker.profile import load_speaker

            tts = G.load(inputs.dir / "model", codec=str(inputs.dir / "dac.safetensors"), **load_kw)
            tts.generate_tokens(TEXT, load_speaker(inputs.dir / "speaker.json"), config)
        else:
            from impl.spark import generate as G

            tts = G.load(inputs.spark, need_w2v=False, **load_kw)
            tts.generate(TEXT, G.Voice(**dict(dict(gender="female"), **(voice_kw or {}))), config)
    except Captured:
        return seen[-1]
    raise AssertionError(f"{model} API: the decode loop was never called")


def run_cli(model: str, inputs: Inputs, argv: List[str], seen: List[Loop]) -> Loop:
    import io

    from impl.cli import main

    d = inputs.dir
    if model == OUTETTS:
        base = ["tts", "--text", TEXT, "--speaker", str(d / "speaker.json"), "--model", str(d / "model"), "--codec",
                str(d / "dac.safetensors"), "--quiet", "--out", str(d / "out.wav")]
    else:
        base = ["tts", "--model", str(inputs.spark), "--text", TEXT, "--quiet", "--out", str(d / "out.wav")]
        if "--gender" not in argv:
            base += ["--gender", "female"]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(base + argv)
    except Captured:
        return seen[-1]
    raise AssertionError(f"voiceport {' '.join(argv)}: exit {code} before the decode loop: "
                         f"{err.getvalue().strip()[-300:]}")


def check_setting(s: Setting, how: str, inputs: Inputs, seen: List[Loop]) -> Tuple[bool, str]:
    """(ok, what differs) for one setting through `how` ("api" or "cli")."""
    from impl.outetts.sampler import Sampler, SamplerConfig

    def run(with_setting: bool) -> Loop:
        if how == "api":
            return run_api(s.model, inputs, s.api if with_setting else {}, s.load_kw if with_setting else {}, seen,
                           s.voice_kw if with_setting else None)
        return run_cli(s.model, inputs, (s.cli or []) if with_setting else [], seen)

    key = (s.model, how)
    if key not in inputs.base:
        inputs.base[key] = run(False)
    base = inputs.base[key]
    if s.name == "max_length":
        n = len(base.prompt) + MAXLEN_MARGIN
        s = dataclasses.replace(s, api=dict(outetts=_opts(max_length=n)), cli=["--max-length", str(n)], want=n)
    got = run(True)
    value, default = s.read(got, inputs), s.read(base, inputs)
    if s.want is not None and value != s.want:
        return False, f"the decode loop got {value!r}, asked {s.want!r}"
    if value == default:
        return False, f"{value!r} is what the defaults give: not applied"
    if s.sampler:
        want_cfg = dataclasses.replace(base.sampler.config, **{"temperature" if s.name == "greedy" else s.name:
                                                               s.want})
        if not isinstance(got.sampler.config, SamplerConfig):
            return False, f"sampler config {type(got.sampler.config).__name__}"
        if not np.array_equal(scores(got.sampler.config), scores(want_cfg)):
            return False, "processed scores differ from a sampler built with the asked value"
        if np.array_equal(scores(got.sampler.config), scores(base.sampler.config)):
            return False, "the processed scores do not depend on it"
    if s.name == "seed" and value != draws(Sampler(got.sampler.config, 5)):
        return False, "draws differ from a sampler seeded 5"
    return True, ""


def settings_cases(inputs: Inputs) -> List[Case]:
    cases = []
    with spy_decode_loop() as seen:
        for s in settings_table():
            for how in ("api", "cli"):
                if how == "cli" and s.cli is None:
                    continue
                try:
                    ok, why = check_setting(s, how, inputs, seen)
                except Exception as e:  # noqa: BLE001 -- a setting that breaks the run is this case's failure
                    ok, why = False, f"{type(e).__name__}: {e}"
                cases.append(Case(f"setting {s.model} {s.name} via {how}", 0.0 if ok else 1.0, 0.0, ok, "exact",
                                  why))
    return cases


# ------------------------------------------------------------------------------------------------ contract

def record(quick: bool) -> Dict[str, Any]:
    return {"defaults": record_defaults(), "arguments": record_arguments()}


def check(rec: Dict[str, Any], quick: bool) -> Section:
    cases = defaults_cases(rec["defaults"]) + arguments_cases(rec["arguments"])
    with tempfile.TemporaryDirectory(prefix="vp-settings-") as d:
        cases += settings_cases(Inputs.build(Path(d)))
    return section("public settings (defaults, arguments, API and CLI settings)",
                   f"{len(DEFAULTS)} ported defaults vs the official signatures, DAC.encode n_quantizers vs the "
                   "official codes, every generation setting of both models through the API and `voiceport tts` "
                   "at the decode loop", cases,
                   "exact: a default or setting arrives as asked or it does not; codes are integers",
                   "mismatches (exact cases); max|impl - ref64| (decoded audio cases)")


CONTRACT = Contract("public-settings", record, check)
