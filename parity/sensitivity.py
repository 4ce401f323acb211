"""`./vp python -m parity.sensitivity [COMPONENT ...]`: what each layer section can see -- per parameter class, the
smallest relative perturbation of the port that fails the section.

For a layer spec (parity/cli.py COMPONENTS, at its --quick configuration, the fixtures' one), the reference side is
the golden record (fixtures/, no torch); the impl model is built, one parameter class is perturbed by a relative
amount r, and the section is re-run against the record (the harness's replay, `run_spec(record=...)`). r is searched
over the decades 1e-8 .. 1e2 (bisection on the grid: detection grows with r), and the smallest failing r is
stored. Classes:
  weights       every parameter of rank >= 2 (conv and linear weights, embeddings, codebooks): w * (1 + r)
  biases        every parameter named `bias` (rank 1): b * (1 + r)
  norm_scale    every rank-1 `weight` (LayerNorm / RMSNorm / BatchNorm scales, weight-norm magnitudes): * (1 + r)
  norm_eps      every module's float `eps`: eps * (1 + r)  (a relative change of eps: r up to 1e2 = 101 x eps)
  attn_scale    every module's float `scale` (attention's 1/sqrt(d)): * (1 + r)
A class the component does not have is stored as null; "inf": no r up to 1e2 fails the section (the class is off
the section's path: e.g. the Perceiver's RMSNorm scale in the decoder's model, or unused).

For a contract section (parity/cli.py CONTRACTS: sampler, prompt ids, speaker profile, audio path, generation, ...;
`contracts` names them all), the classes are the numeric constants and settings of the impl path it checks
(CONTRACT_KNOBS: sampler fields, pitch frame/hop and range, bucket scale, loudness target and gates, resampler
rolloff, DAC window/hop/fade, caps, ...; the two sections that run a checkpoint, DAC encode/decode and LM greedy,
take the layer classes of their loaded models). Each is perturbed in-process (module constant, function default,
every instance's attribute), the section's check re-runs against its fixture, and the smallest failing amount is
stored: floats relative, both signs; integers as +- steps; "inf" with the reason where the class is off the path.

Results: fixtures/sensitivity.json (computed once, rendered as a note in each report section by parity/report.py;
`--out` to write elsewhere). Contract sections, all: `./vp python -m parity.sensitivity contracts` (~10 min here).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "sensitivity.json"
GRID = [10.0 ** e for e in range(-8, 3)]
CLASSES = ("weights", "biases", "norm_scale", "norm_eps", "attn_scale")


def _params(model) -> List[tuple]:
    from mlx.utils import tree_flatten

    return tree_flatten(model.parameters())


def _select(cls: str, name: str, v) -> bool:
    import mlx.core as mx

    if not mx.issubdtype(v.dtype, mx.floating):
        return False
    leaf = name.rsplit(".", 1)[-1]
    if cls == "weights":
        return v.ndim >= 2
    if cls == "biases":
        return leaf == "bias" and v.ndim == 1
    if cls == "norm_scale":
        return leaf in ("weight", "g", "weight_g") and v.ndim == 1 or leaf == "weight_g"
    return False


def _modules_with(model, attr: str) -> List[Any]:
    return [m for _, m in model.named_modules() if isinstance(getattr(m, attr, None), float)]


def perturb(model, cls: str, r: float) -> int:
    """Perturb `cls` of `model` in place by the relative amount r; returns how many tensors / attributes changed."""
    if cls in ("norm_eps", "attn_scale"):
        attr = "eps" if cls == "norm_eps" else "scale"
        mods = _modules_with(model, attr)
        for m in mods:
            setattr(m, attr, getattr(m, attr) * (1.0 + r))
        return len(mods)
    from mlx.utils import tree_unflatten

    chosen = [(n, v * (1.0 + r)) for n, v in _params(model) if _select(cls, n, v)]
    if chosen:
        model.update(tree_unflatten(chosen))
    return len(chosen)


def section_passes(spec, record, seed: int, cls: str, r: float) -> Optional[bool]:
    """True / False: the section's verdict with `cls` perturbed by r; None when the model has no `cls`."""
    from parity.harness import run_spec

    counted = {}

    def build():
        m = spec.build_impl()
        counted["n"] = perturb(m, cls, r)
        return m

    report = run_spec(replace(spec, build_impl=build), seed=seed, record=record)
    if not counted.get("n"):
        return None
    return bool(report.ok)


def smallest_detected(spec, record, seed: int, cls: str) -> Optional[float]:
    """The smallest r of GRID that fails the section (bisection), inf when none does, None when no such class."""
    top = section_passes(spec, record, seed, cls, GRID[-1])
    if top is None:
        return None
    if top:
        return float("inf")
    lo, hi = -1, len(GRID) - 1  # GRID[hi] fails; GRID[lo] passes (lo = -1: r = 0, the unperturbed port)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if section_passes(spec, record, seed, cls, GRID[mid]):
            lo = mid
        else:
            hi = mid
    return GRID[hi]


def component(name: str, seed: int = 0) -> Dict[str, Any]:
    """Sensitivity of one layer component at its --quick (fixture) configuration."""
    import importlib

    from parity import cli, fixtures

    ref, _, quick = cli.COMPONENTS[name]
    module, fn = ref.split(":")
    spec = getattr(importlib.import_module(module), fn)(**quick)
    path, entry = fixtures.find(ROOT / "fixtures", spec, seed)
    record = fixtures.load_record(path, entry)
    t0 = time.perf_counter()
    out = {c: smallest_detected(spec, record, seed, c) for c in CLASSES}
    return {"spec": spec.name, "component": name, "config": quick, "smallest_relative_perturbation_detected": out,
            "grid": "decades 1e-8 .. 1e2", "seconds": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------------------------ contract sections
# A contract section (parity/cli.py CONTRACTS) has no weight tensors of its own; its parameter classes are the
# numeric constants and settings of the impl path it checks. Each is a Knob: `patch(amount)` opens a context in which
# impl uses the perturbed value everywhere it reads it (a module constant, a function default, a dict's values, the
# attribute of every instance a class builds, or, for the two contract sections that run a checkpoint, the loaded
# model's parameter class). Floats: value x (1 + r) and x (1 - r), r on CONTRACT_GRID (the negative side stops at
# 0.9: value x 0.1); integers: value + s and value - s (floored at 0), s on INT_STEPS. The section re-runs impl-side
# against its fixture (fixtures/contracts, torch-free); the smallest amount that fails it is stored (bisection:
# detection grows with the amount), or "inf" with the reason the class is off the section's path.

CONTRACT_GRID = [10.0 ** e for e in range(-8, 0)] + [0.5, 1.0, 10.0, 100.0]
INT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
NEG_CAP = 0.9  # the negative side of a float: value x (1 - min(r, 0.9)), never through 0


def _resolve(target: str):
    """"pkg.module:Attr.sub" -> (owner object, last attribute name)."""
    import importlib

    mod, _, path = target.partition(":")
    owner = importlib.import_module(mod)
    parts = path.split(".")
    for p in parts[:-1]:
        owner = getattr(owner, p)
    return owner, parts[-1]


def _changed(amount: float, integer: bool) -> Callable[[Any], Any]:
    """The perturbation of one value: int + step (>= 0) or float x (1 + r); other values (bools, None) unchanged."""
    def f(v):
        if isinstance(v, bool) or v is None:
            return v
        if integer:
            return max(0, int(v) + int(amount)) if isinstance(v, (int, np.integer)) else v
        return float(v) * (1.0 + amount) if isinstance(v, (int, float, np.floating, np.integer)) else v
    return f


@dataclass
class Knob:
    """One parameter class of a contract section: a numeric constant or setting of impl on the section's path.

    how: "constant" (module attribute), "default" (a function's default argument `attr`), "instances" (attribute
    `attr` of every instance the class builds, set after its __init__), "dict" (every value of a module-level dict),
    "loaded" (the parameter class `attr` of every model the loader returns: parity.sensitivity.perturb), "custom"
    (`apply(amount)`: a context manager). off_path: why no amount changes the section's outcome (None: on the path;
    the stored result must then be finite, tests/test_sensitivity_coverage.py)."""

    name: str
    how: str
    target: str
    attr: str = ""
    nominal: Any = None
    integer: bool = False
    off_path: Optional[str] = None
    apply: Optional[Callable[[float], Any]] = None

    def current(self) -> Any:
        """impl's value now (what `nominal` states)."""
        import inspect

        owner, name = _resolve(self.target)
        obj = getattr(owner, name)
        if self.how == "constant":
            return obj
        if self.how == "default":
            return inspect.signature(obj).parameters[self.attr].default
        if self.how == "instances":
            import dataclasses

            return next(f.default for f in dataclasses.fields(obj) if f.name == self.attr) \
                if dataclasses.is_dataclass(obj) else self.nominal
        if self.how == "dict":
            return dict(obj)
        return self.nominal

    @contextlib.contextmanager
    def patch(self, amount: float):
        """While open, impl reads this class perturbed by `amount` (r or a signed step); yields {"n": touched}."""
        seen = {"n": 0}
        if self.how == "custom":
            with self.apply(amount):
                seen["n"] = 1
                yield seen
            return
        owner, name = _resolve(self.target)
        obj = getattr(owner, name)
        f = _changed(amount, self.integer)
        if self.how == "constant":
            setattr(owner, name, f(obj))
            seen["n"] = 1
            try:
                yield seen
            finally:
                setattr(owner, name, obj)
        elif self.how == "default":
            code = obj.__code__
            names = code.co_varnames[:code.co_argcount]
            saved = obj.__defaults__
            i = names.index(self.attr) - (len(names) - len(saved))
            obj.__defaults__ = saved[:i] + (f(saved[i]),) + saved[i + 1:]
            seen["n"] = 1
            try:
                yield seen
            finally:
                obj.__defaults__ = saved
        elif self.how == "dict":
            saved = dict(obj)
            obj.update({k: f(v) for k, v in saved.items()})
            seen["n"] = len(saved)
            try:
                yield seen
            finally:
                obj.clear()
                obj.update(saved)
        elif self.how == "instances":
            own, init, attr = "__init__" in obj.__dict__, obj.__init__, self.attr

            def perturbed_init(inst, *a, **k):
                init(inst, *a, **k)
                object.__setattr__(inst, attr, f(getattr(inst, attr)))  # frozen dataclasses too
                seen["n"] += 1

            obj.__init__ = perturbed_init
            try:
                yield seen
            finally:
                if own:
                    obj.__init__ = init
                else:
                    del obj.__init__
        elif self.how == "loaded":
            def loader(*a, **k):
                m = obj(*a, **k)
                seen["n"] += perturb(m, self.attr, amount)
                return m

            setattr(owner, name, loader)
            try:
                yield seen
            finally:
                setattr(owner, name, obj)
        else:
            raise ValueError(f"unknown knob kind {self.how!r}")


@contextlib.contextmanager
def _time_decimals(step: float):
    """The decimals of the `<|t_..|>` duration token (impl.outetts.tokens.SPECIAL.time, 2) + step."""
    from impl.outetts.tokens import SPECIAL

    saved = SPECIAL.time
    object.__setattr__(SPECIAL, "time", "<|t_{:.%df}|>" % max(0, 2 + int(step)))
    try:
        yield
    finally:
        object.__setattr__(SPECIAL, "time", saved)


SAMPLER = "impl.outetts.sampler:SamplerConfig"  # every sampler impl builds (OuteTTS and Spark) is one of these
GREEDY = "greedy decoding (the section's only mode): temperature 0, top-k / top-p / min-p are not applied"
WEIGHT_CLASSES = ("weights", "biases", "norm_scale", "norm_eps", "attn_scale")


def _sampler_knobs(defaults: Dict[str, Any], off: Dict[str, str]) -> List[Knob]:
    return [Knob(k, "instances", SAMPLER, k, v, isinstance(v, int), off.get(k)) for k, v in defaults.items()]


def _weight_knobs(loader: str) -> List[Knob]:
    return [Knob(c, "loaded", loader, c, None) for c in WEIGHT_CLASSES]


# section -> its parameter classes. `memo`: loaders whose results the section's runs may share (none of its knobs
# touches what they compute), to keep a full measurement within minutes.
CONTRACT_KNOBS: Dict[str, List[Knob]] = {
    "dac-codec": _weight_knobs("impl.dac:load"),
    "lm-greedy": _weight_knobs("impl.llama:load"),
    "sampler": _sampler_knobs(dict(temperature=0.4, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.1,
                                   repetition_range=64), {}),
    "spark-sampler": _sampler_knobs(dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0, min_p=0.0), {
        "repetition_penalty": "Spark's call has no repetition penalty: the section's window holds no ids",
        "min_p": "Spark's call has no min-p (0): a relative change keeps it 0, and the filter removes nothing"}),
    "generation": _sampler_knobs(dict(temperature=0.4, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.1,
                                      repetition_range=64), {k: GREEDY for k in ("temperature", "top_k", "top_p",
                                                                                  "min_p")})
    + [Knob("max_length (cap)", "instances", "impl.runtime:OuteTTSOptions", "max_length", 8192, True)],
    "spark-generation": _sampler_knobs(dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0,
                                            min_p=0.0, repetition_range=0),
                                       dict({k: GREEDY for k in ("temperature", "top_k", "top_p", "min_p")},
                                            repetition_penalty="the folder's generation config sets no penalty: "
                                            "window 0, no id is penalised",
                                            repetition_range="penalty 1.0: a window of any length changes nothing"))
    + [Knob("max_new_tokens (cap)", "constant", "impl.spark.generate:MAX_NEW_TOKENS", "", 3000, True,
            "every case stops at its EOS id (<= 61 new ids), far inside the 3000 cap"),
       Knob("volume normalise coeff", "default", "impl.spark.audio:audio_volume_normalize", "coeff", 0.2)],
    "speaker-profile": [
        Knob("pitch frame_length", "default", "impl.speaker.features:calculate_pitch", "frame_length", 400, True),
        Knob("pitch hop_length", "default", "impl.speaker.features:calculate_pitch", "hop_length", 160, True),
        Knob("pitch voicing threshold", "default", "impl.speaker.features:calculate_pitch", "threshold", 0.3),
        Knob("pitch range min_freq", "default", "impl.speaker.features:single_pitch_value", "min_freq", 75.0),
        Knob("pitch range max_freq", "default", "impl.speaker.features:single_pitch_value", "max_freq", 600.0),
        Knob("centroid eps", "constant", "impl.speaker.features:EPS", "", 1e-10, False,
             "1e-10 (x 0.1 .. x 101) beside spectrum sums of order 1 and more: below float32 resolution"),
        Knob("bucket scale (x 100)", "constant", "impl.speaker.features:BUCKET_SCALE", "", 100, True),
        Knob("duration rounding (decimals)", "constant", "impl.speaker.profile:DURATION_DECIMALS", "", 2, True),
        Knob("codes per second (TPS)", "constant", "impl.speaker.profile:TPS", "", 75, True),
        Knob("lead-in / tail codes (MAX_EXTENSION)", "constant", "impl.speaker.profile:MAX_EXTENSION", "", 20, True)],
    "audio-path": [
        Knob("resample rolloff", "default", "impl.audio:resample", "rolloff", 0.99),
        Knob("resample lowpass width", "default", "impl.audio:resample", "lowpass_filter_width", 6, True),
        Knob("loudness target (LUFS)", "default", "impl.audio:loudness_normalize", "target_lufs", -18.0),
        Knob("peak limit (dB)", "default", "impl.audio:loudness_normalize", "peak_db", -1.0),
        Knob("gating block size (s)", "default", "impl.audio:loudness_normalize", "block_size", 0.4),
        Knob("gating block overlap", "constant", "impl.audio:BLOCK_OVERLAP", "", 0.75),
        Knob("absolute gate (LUFS)", "constant", "impl.audio:ABSOLUTE_GATE", "", -70.0),
        Knob("relative gate (LU)", "constant", "impl.audio:RELATIVE_GATE", "", -10.0)],
    "dac-interface": [
        Knob("encode window (s)", "instances", "impl.dac.interface:DacInterface", "win_duration", 5.0),
        Knob("hop length", "instances", "impl.dac.interface:DacInterface", "hop_length", 320, True),
        Knob("decode chunk (codes)", "instances", "impl.dac.interface:DacInterface", "chunk_length", 2048, True),
        Knob("fade length (s)", "default", "impl.dac.interface:apply_fade", "fade_seconds", 0.015)],
    "prompt-ids": [
        Knob("missing feature value", "constant", "impl.outetts.prompt:MISSING_FEATURE", "", 0, True),
        Knob("duration token decimals", "custom", "impl.outetts.tokens:SPECIAL", "time", 2, True,
             apply=_time_decimals)],
    "spark-prompt-ids": [
        Knob("pitch/speed level labels", "dict", "impl.spark.tokens:LEVELS_MAP", "",
             {"very_low": 0, "low": 1, "moderate": 2, "high": 3, "very_high": 4}, True),
        Knob("gender labels", "dict", "impl.spark.tokens:GENDER_MAP", "", {"female": 0, "male": 1}, True)],
    "public-settings": [  # parity/specs/settings.py: exact cases (a default or setting arrives as it should)
        Knob("ported default: decode chunk (codes)", "default", "impl.dac.interface:DacInterface.__init__",
             "chunk_length", 2048, True),
        Knob("ported default: AdaLayerNorm eps", "default", "impl.spark.vocos:AdaLayerNorm.__init__", "eps", 1e-6)],
}
# what a section's runs may share: loaders (by path argument) and the speaker section's DAC encodes
MEMO: Dict[str, Tuple[str, ...]] = {
    "speaker-profile": ("impl.dac:load", "encode"), "dac-interface": ("impl.dac:load",),
    "generation": ("impl.dac:load",), "spark-generation": (), "audio-path": (), "sampler": (),
    "spark-sampler": (), "prompt-ids": (), "spark-prompt-ids": (), "dac-codec": (), "lm-greedy": ()}


@contextlib.contextmanager
def _memo(what: Sequence[str]):
    """Share loader results (keyed by their arguments) and DacInterface.encode results (keyed by the input's
    bytes) across one section's runs."""
    saved = []
    for t in what:
        if t == "encode":
            from impl.dac.interface import DacInterface

            enc, cache = DacInterface.encode, {}

            def encode(self, x, _enc=enc, _cache=cache):
                a = np.ascontiguousarray(x)
                key = (id(self.model), a.shape, str(a.dtype), hash(a.tobytes()))
                if key not in _cache:
                    _cache[key] = _enc(self, x)
                return _cache[key].copy()

            saved.append((DacInterface, "encode", enc))
            DacInterface.encode = encode
        else:
            owner, name = _resolve(t)
            fn, cache = getattr(owner, name), {}

            def load(*a, _fn=fn, _cache=cache, **k):
                key = repr((a, sorted(k.items())))
                if key not in _cache:
                    _cache[key] = _fn(*a, **k)
                return _cache[key]

            saved.append((owner, name, fn))
            setattr(owner, name, load)
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def _section_runner(name: str, fixtures: Path):
    """(the section's title, run() -> passed) replaying contract `name` impl-side against its fixture."""
    import warnings

    from parity import cli
    from parity.fixtures import find_contract, load_contract

    c = cli.contract(name)
    record = load_contract(find_contract(fixtures, c.name, c.version))
    title = {}

    def run() -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sec = c.check(record, True)
            except Exception:  # noqa: BLE001 -- a check that cannot run is a failed section, as in the report
                return False
        title.setdefault("name", sec.name)
        return bool(sec.passed)

    return title, run


def knob_sensitivity(knob: Knob, run: Callable[[], bool]) -> Dict[str, Any]:
    """The smallest amount of `knob` that fails the section (bisection on its grid): {"detected": r or step,
    "direction": "+" / "-"} or {"detected": inf}; None when the class is absent (a "loaded" class no model has)."""
    grid = INT_STEPS if knob.integer else (GRID if knob.how == "loaded" else CONTRACT_GRID)
    touched = {"n": 0}

    def fails(amount: float) -> bool:
        with knob.patch(amount) as seen:
            ok = run()
        touched["n"] = max(touched["n"], seen["n"])
        return not ok

    def fails_at(a: float) -> Optional[str]:
        if fails(a):
            return "+"
        if knob.how == "loaded":  # the layer classes' convention: (1 + r) only
            return None
        neg = -a if knob.integer else -min(a, NEG_CAP)
        return "-" if fails(neg) else None

    if knob.integer:  # most integers are seen at +-1: one or two runs instead of a bisection
        first = fails_at(grid[0])
        if first is not None:
            return {"detected": grid[0], "direction": first}
    top = fails_at(grid[-1])
    if not touched["n"]:
        return {"detected": None}
    if top is None:
        return {"detected": float("inf")}
    lo, hi, way = (0 if knob.integer else -1), len(grid) - 1, top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        d = fails_at(grid[mid])
        if d is None:
            lo = mid
        else:
            hi, way = mid, d
    return {"detected": grid[hi], "direction": way}


def contract_component(name: str, fixtures: Path = ROOT / "fixtures") -> Dict[str, Any]:
    """Sensitivity of contract section `name`: every Knob of CONTRACT_KNOBS[name], replayed against its fixture."""
    t0 = time.perf_counter()
    with _memo(MEMO.get(name, ())):
        title, run = _section_runner(name, fixtures)
        if not run():
            raise RuntimeError(f"contract {name}: the unperturbed impl fails its section; fix that first")
        classes = {}
        for k in CONTRACT_KNOBS[name]:
            t1 = time.perf_counter()
            res = knob_sensitivity(k, run)
            entry = {"how": k.how, "target": k.target + (f" {k.attr}" if k.attr else ""),
                     "value": k.nominal, "integer": k.integer, **res}
            if k.integer and res["detected"] not in (None, float("inf")) and isinstance(k.nominal, int) and k.nominal:
                entry["relative"] = res["detected"] / abs(k.nominal)
            if res["detected"] == float("inf"):
                entry["off_path"] = k.off_path or "measured: no amount on the grid fails the section"
            entry["seconds"] = round(time.perf_counter() - t1, 1)
            classes[k.name] = entry
            print(f"[sensitivity] {name}: {k.name}: {_fmt_class(entry)}", file=sys.stderr, flush=True)
    return {"section": title.get("name", name), "component": name, "config": "fixtures (--quick)",
            "classes": classes, "grid": "floats: r in 1e-8 .. 1e-1, 0.5, 1, 10, 100, value x (1 + r) and "
            "x (1 - min(r, 0.9)); integers: value +- s, s in 1, 2, 5, .. 1000; checkpoint classes: as the layer "
            "sections", "seconds": round(time.perf_counter() - t0, 1)}


def load(path: Path = OUT) -> Dict[str, Any]:
    """The stored results ({} when not computed)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _fmt(v: Optional[float]) -> str:
    if v is None:
        return "not present"
    if v == float("inf"):
        return "not seen up to 1e2 (off this section's path, or unused)"
    return f"{v:.0e}"


def _fmt_class(e: Dict[str, Any]) -> str:
    d = e.get("detected")
    if d is None:
        return "not present"
    if d == float("inf") or d == "inf":
        return f"not seen ({e.get('off_path', 'off the path')})"
    if e.get("integer"):
        rel = f", {e['relative']:.2g} relative" if "relative" in e else ""
        of = "each value" if isinstance(e.get("value"), dict) else e.get("value")
        return f"{e.get('direction', '+')}{d:g} (of {of}{rel})"
    return f"{d:.0e} ({e.get('direction', '+')})"


def _contract_entry(data: Dict[str, Any], section: str) -> Optional[Dict[str, Any]]:
    for v in data.get("contracts", {}).values():
        t = v.get("section", "")
        if section == t or (" (" in t and section.startswith(t.split(" (")[0] + " (")):
            return v
    return None


def note_for(spec_name: str, path: Path = OUT, section: Optional[str] = None) -> Optional[str]:
    """One line for a report section: built from layer spec `spec_name`, or the contract section titled `section`
    (None when not computed)."""
    data = load(path)
    hit = next((v for v in data.get("components", {}).values() if v.get("spec") == spec_name), None)
    if hit is not None:
        s = hit["smallest_relative_perturbation_detected"]
        parts = [f"{k} {_fmt(v)}" for k, v in s.items()]
        return ("sensitivity (parity/sensitivity.py, smallest relative perturbation of the port that fails this "
                f"section, at the --quick config): {'; '.join(parts)}")
    c = _contract_entry(data, section or "")
    if c is None:
        return None
    parts: List[List[str]] = []  # [[names..., statement]]: consecutive classes with one statement named together
    for k, v in c["classes"].items():
        said = _fmt_class(v)
        if parts and parts[-1][-1] == said:
            parts[-1].insert(-1, k)
        else:
            parts.append([k, said])
    parts = [f"{', '.join(p[:-1])} {p[-1]}" for p in parts]
    return ("sensitivity (parity/sensitivity.py, per constant of impl on this path, the smallest perturbation that "
            "fails this section against its fixture; floats relative, integers +- steps): " + "; ".join(parts))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parity.sensitivity", description=__doc__.split("\n\n")[0])
    p.add_argument("components", nargs="*", default=["spark-decoder", "spark-global", "spark-semantic", "llama"],
                   help="layer components (parity/cli.py COMPONENTS) or contract sections "
                        f"({', '.join(CONTRACT_KNOBS)}); 'contracts' = every contract section")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    data = load(Path(args.out)) or {"components": {}}
    names = [n for a in args.components for n in (list(CONTRACT_KNOBS) if a == "contracts" else [a])]
    for name in names:
        print(f"[sensitivity] {name} ...", file=sys.stderr, flush=True)
        if name in CONTRACT_KNOBS:
            data.setdefault("contracts", {})[name] = contract_component(name)
            print(f"[sensitivity] {name}: {data['contracts'][name]['seconds']} s", file=sys.stderr, flush=True)
        else:
            data["components"][name] = component(name)
            print(f"[sensitivity] {name}: {data['components'][name]['smallest_relative_perturbation_detected']}",
                  file=sys.stderr, flush=True)
        Path(args.out).write_text(json.dumps(data, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
