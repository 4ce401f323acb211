"""Every public setting of both models reaches the computation it controls, through the API and through the CLI.

One table (`SETTINGS`) names each setting, a non-default value, how the API takes it (a GenerationConfig /
`load` keyword) and how `voiceport tts` takes it (argv; None where the CLI has no flag), and what it controls,
read off the decode loop's own inputs: `impl.runtime.decode_loop` is spied on (every module's reference to it),
and the first call's sampler, prompt, budget and LM are captured, then the run stops. A row passes when
  - the captured value equals the one asked for, and differs from what the defaults give (so a setting dropped
    on the way, or wired to another field, fails), and
  - for sampler settings, the captured sampler's processed scores on fixed logits equal those of a sampler built
    directly with the value and differ from the default's (the field is live in the computation), and its first
    draws equal a fresh sampler's with the asked seed.
`test_settings_table_covers_every_public_setting` fails when a GenerationConfig / OuteTTSOptions field, a
`load` keyword or a `voiceport tts` option appears without a row (or a stated exemption), so the table is the
list to adapt when the config API changes.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

import mlx.core as mx

from parity.specs.settings import Captured, Loop

OUTETTS, SPARK = "outetts", "spark"
TEXT = "Hello there, how are you today?"


@pytest.fixture
def spy(monkeypatch):
    """Replace every module-level reference to impl.runtime.decode_loop by a recorder that raises Captured."""
    import importlib

    from impl import runtime

    for m in ("impl.outetts.generate", "impl.outetts.cli", "impl.spark.generate", "impl.spark.tts"):
        importlib.import_module(m)  # imported before the patch: none keeps a recorder after the test
    real = runtime.decode_loop
    seen: List[Loop] = []

    def record(lm, cache, prompt, sampler, budget, *args, **kwargs):
        seen.append(Loop(lm, list(prompt), sampler, int(budget)))
        raise Captured()

    for name, mod in list(sys.modules.items()):
        if (name == "impl" or name.startswith("impl.")) and getattr(mod, "decode_loop", None) is real:
            monkeypatch.setattr(mod, "decode_loop", record)
    return seen


# ------------------------------------------------------------------------------------------------ the inputs

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny seeded OuteTTS folder + DAC + profile, and the tiny seeded Spark-TTS folder."""
    from impl.seeded.spark import seeded_spark
    from parity.doubles import write_tiny_outetts

    d = write_tiny_outetts(tmp_path_factory.mktemp("settings"))
    return {"dir": d, "spark": seeded_spark()}


def run_api(model: str, inputs, config_kw: Dict[str, Any], load_kw: Dict[str, Any], spy, voice_kw=None) -> Loop:
    from impl.runtime import GenerationConfig

    config = GenerationConfig(**config_kw)
    if model == OUTETTS:
        from impl.outetts import generate as G
        from impl.speaker.profile import load_speaker

        tts = G.load(inputs["dir"] / "model", codec=str(inputs["dir"] / "dac.safetensors"), **load_kw)
        with pytest.raises(Captured):
            tts.generate_tokens(TEXT, load_speaker(inputs["dir"] / "speaker.json"), config)
    else:
        from impl.spark import generate as G

        tts = G.load(inputs["spark"], need_w2v=False, **load_kw)
        with pytest.raises(Captured):
            tts.generate(TEXT, G.Voice(**dict(dict(gender="female"), **(voice_kw or {}))), config)
    return spy[-1]


def run_cli(model: str, inputs, argv: List[str], spy, monkeypatch) -> Loop:
    from impl.cli import main

    d = inputs["dir"]
    monkeypatch.chdir(d)
    if model == OUTETTS:
        base = ["tts", "--text", TEXT, "--speaker", "speaker.json", "--model", "model", "--codec",
                "dac.safetensors", "--quiet", "--out", "out.wav"]
    else:
        base = ["tts", "--model", str(inputs["spark"]), "--text", TEXT, "--quiet", "--out", "out.wav"]
        if "--gender" not in argv:
            base += ["--gender", "female"]
    with pytest.raises(Captured):
        main(base + argv)
    return spy[-1]


# ------------------------------------------------------------------------------------------------ readers

def lm_numerics(lm) -> tuple:
    """(float dtypes of the LM's parameters, quantization bits or None) of the LM the loop runs."""
    from mlx.utils import tree_flatten

    floats = sorted({str(v.dtype).rsplit(".", 1)[-1] for _, v in tree_flatten(lm.parameters())
                     if mx.issubdtype(v.dtype, mx.floating)})
    bits = sorted({int(m.bits) for _, m in lm.named_modules() if hasattr(m, "bits")})
    return tuple(floats), (bits[0] if bits else None)


def sampler_field(name: str) -> Callable[[Loop], Any]:
    return lambda loop: getattr(loop.sampler.config, name)


_LABELS: Dict[str, Dict[int, str]] = {}


def _labels(kind: str) -> Dict[int, str]:
    return _LABELS[kind]


@pytest.fixture(scope="module")
def spark_labels(inputs):
    """{kind: {token id: label}} for gender / pitch / speed of the tiny Spark folder's tokenizer."""
    from impl.spark.tokens import Tokenizer

    tok = Tokenizer(Path(inputs["spark"]) / "LLM")
    for kind, prefix in (("gender", "<|gender_"), ("pitch", "<|pitch_label_"), ("speed", "<|speed_label_")):
        _LABELS[kind] = {i: t for t, i in tok.ids.items() if t.startswith(prefix)} if hasattr(tok, "ids") else {}
    return _LABELS


# ------------------------------------------------------------------------------------------------ the table

@dataclass(frozen=True)
class Setting:
    """A public setting: `api` GenerationConfig keywords (or `load_kw` / `voice_kw`), `cli` argv (None: no flag),
    `read` what the decode loop got, `want` the value asked (None: compare to the run without the setting only)."""

    name: str
    model: str
    api: Dict[str, Any]
    cli: Optional[List[str]]
    read: Callable[[Loop], Any]
    want: Any = None
    load_kw: Dict[str, Any] = dataclasses.field(default_factory=dict)
    voice_kw: Dict[str, Any] = dataclasses.field(default_factory=dict)
    sampler: bool = False  # also compare the sampler's effect (processed scores, draws)


def _opts(**kw):
    from impl.runtime import OuteTTSOptions

    return OuteTTSOptions(**kw)


def settings_table() -> List[Setting]:
    S = []
    for model in (OUTETTS, SPARK):
        S += [
            Setting("temperature", model, dict(temperature=0.7), ["--temperature", "0.7"],
                    sampler_field("temperature"), 0.7, sampler=True),
            Setting("greedy", model, dict(greedy=True), ["--greedy"], sampler_field("temperature"), 0.0, sampler=True),
            Setting("top_k", model, dict(top_k=7), None, sampler_field("top_k"), 7, sampler=True),
            Setting("top_p", model, dict(top_p=0.5), None, sampler_field("top_p"), 0.5, sampler=True),
            Setting("seed", model, dict(seed=5), ["--seed", "5"], lambda loop: _draws(loop.sampler), None),
            Setting("max_new_tokens", model, dict(max_new_tokens=17), ["--max-new-tokens", "17"],
                    lambda loop: loop.budget, 17),
            Setting("dtype", model, {}, ["--dtype", "float16"], lambda loop: lm_numerics(loop.lm)[0], ("float16",),
                    load_kw=dict(dtype="float16")),
            Setting("quantize", model, {}, ["--quantize", "q8"], lambda loop: lm_numerics(loop.lm)[1], 8,
                    load_kw=dict(quantize="q8")),
        ]
    S += [
        Setting("repetition_penalty", OUTETTS, dict(outetts=_opts(repetition_penalty=1.5)), None,
                sampler_field("repetition_penalty"), 1.5, sampler=True),
        Setting("repetition_range", OUTETTS, dict(outetts=_opts(repetition_range=8)), None,
                sampler_field("repetition_range"), 8, sampler=True),
        Setting("min_p", OUTETTS, dict(outetts=_opts(min_p=0.3)), None, sampler_field("min_p"), 0.3, sampler=True),
        Setting("max_length", OUTETTS, dict(outetts=_opts(max_length=MAXLEN)), ["--max-length", str(MAXLEN)],
                lambda loop: loop.budget + len(loop.prompt), MAXLEN),
        Setting("gender", SPARK, {}, ["--gender", "male"], lambda loop: _label(loop, "gender"), "male",
                voice_kw=dict(gender="male")),
        Setting("pitch", SPARK, {}, ["--pitch", "very_high"], lambda loop: _label(loop, "pitch"), "very_high",
                voice_kw=dict(pitch="very_high")),
        Setting("speed", SPARK, {}, ["--speed", "low"], lambda loop: _label(loop, "speed"), "low",
                voice_kw=dict(speed="low")),
    ]
    return S


MAXLEN = 64  # set per run: the prompt length + 5 (max_length must leave room for the prompt)


# Public options that are not settings of the computation, with why.
NOT_SETTINGS = {
    "text": "the input", "text_file": "the input", "speaker": "the input (OuteTTS profile)", "out": "the output",
    "model": "which model", "codec": "which codec", "prompt_audio": "the input (Spark cloning)",
    "prompt_text": "the input (Spark cloning)", "quiet": "progress display only",
    "stream": "when audio is decoded, not what is generated (tests/test_cli.py compares the audio)",
    "variant": "a platform layout of the same LM (tests/test_accel_lm.py: same values or within the stated bound)",
    "model_dir": "which model", "need_w2v": "which parts load", "warmup": "kernel compilation only (mlx-cuda)",
}


def _label(loop: Loop, kind: str) -> str:
    from impl.spark.tokens import GENDER_MAP, LEVELS_MAP

    ids = _labels(kind)
    got = [ids[i] for i in loop.prompt if i in ids]
    assert len(got) == 1, f"{kind}: {len(got)} label tokens in the prompt"
    number = int(got[0].rstrip("|>").rsplit("_", 1)[1])
    table = GENDER_MAP if kind == "gender" else LEVELS_MAP
    return next(k for k, v in table.items() if int(v) == number)


def _draws(sampler, n: int = 8) -> List[int]:
    """The sampler's first n draws on fixed logits (a copy of its key: the captured sampler is left unused)."""
    import copy

    s = copy.copy(sampler)
    logits, window = _logits()
    return [int(s(logits, window)[0]) for _ in range(n)]


def _logits():
    rng = np.random.default_rng(0)
    logits = mx.array((0.3 * rng.standard_normal((1, 300))).astype(np.float32))  # flat: every filter cuts
    window = mx.array(rng.integers(0, 300, (1, 64)).astype(np.uint32))
    return logits, window


def _scores(config) -> np.ndarray:
    from impl.outetts.sampler import process_logits

    logits, window = _logits()
    R = config.repetition_range
    return np.array(process_logits(logits, window[:, window.shape[1] - R:] if R else window[:, :0], config))


ROWS = [pytest.param(s, id=f"{s.model}-{s.name}") for s in settings_table()]


def _maxlen(inputs, spy, how, monkeypatch):
    """The prompt length of the default run + 5: a max_length below the auto cap, above the prompt."""
    global MAXLEN
    base = run_api(OUTETTS, inputs, {}, {}, spy) if how == "api" else run_cli(OUTETTS, inputs, [], spy, monkeypatch)
    MAXLEN = len(base.prompt) + 5
    return {s.name: s for s in settings_table()}["max_length"]


@pytest.mark.parametrize("how", ["api", "cli"])
@pytest.mark.parametrize("setting", ROWS)
def test_setting_reaches_the_decode_loop(setting, how, inputs, spy, spark_labels, monkeypatch):
    if how == "cli" and setting.cli is None:
        pytest.skip(f"voiceport tts has no flag for {setting.name} (API only; the coverage test lists it)")
    s = _maxlen(inputs, spy, how, monkeypatch) if setting.name == "max_length" else setting

    def run(with_setting: bool) -> Loop:
        if how == "api":
            return run_api(s.model, inputs, s.api if with_setting else {}, s.load_kw if with_setting else {}, spy,
                           s.voice_kw if with_setting else None)
        return run_cli(s.model, inputs, s.cli if with_setting else [], spy, monkeypatch)

    base, got = run(False), run(True)
    value, default = s.read(got), s.read(base)
    if s.want is not None:
        assert value == s.want, f"{s.model} {s.name} via {how}: the decode loop got {value!r}, asked {s.want!r}"
    assert value != default, f"{s.model} {s.name} via {how}: {value!r} is what the defaults give: not applied"
    if s.sampler:
        from impl.outetts.sampler import SamplerConfig

        want_cfg = dataclasses.replace(base.sampler.config, **{
            "temperature" if s.name == "greedy" else s.name: s.want})
        assert isinstance(got.sampler.config, SamplerConfig)
        np.testing.assert_array_equal(_scores(got.sampler.config), _scores(want_cfg))
        assert not np.array_equal(_scores(got.sampler.config), _scores(base.sampler.config)), \
            f"{s.name}: the processed scores do not depend on it"
    if s.name == "seed":
        from impl.outetts.sampler import Sampler

        assert value == _draws(Sampler(got.sampler.config, 5)), "draws differ from a sampler seeded 5"


def test_settings_table_covers_every_public_setting():
    """Every GenerationConfig / OuteTTSOptions field, every `load` keyword of both models and every `voiceport
    tts` option has a row in SETTINGS (or a reason in NOT_SETTINGS): a new setting cannot go untested."""
    from parity.specs.settings import public_setting_names

    rows = {s.name for s in settings_table()}
    names, flags = public_setting_names()
    flags -= {"prompt_text"}
    missing = sorted(n for n in names | flags if n not in rows and n not in NOT_SETTINGS)
    assert not missing, f"settings without a row in tests/test_settings_reach.py: {missing}"
    cli_rows = {s.name for s in settings_table() if s.cli}
    no_flag = sorted(n for n in flags if n not in NOT_SETTINGS and n not in cli_rows)
    assert not no_flag, f"voiceport tts options whose row has no argv: {no_flag}"
