"""Run a parity spec: both trees end to end, every mapped layer captured, compared against the fp32 noise floor.

Capture never edits the code under test: torch forward hooks on the reference; on the MLX side each mapped
module's class is swapped, for the duration of the run, for a subclass whose `__call__` records its input and
output (MLX resolves `module(x)` through the type, so an instance attribute would not be seen).

Errors per layer:
  propagated -- impl and reference run end to end on the same input; the layer outputs compared.
  isolated   -- the impl layer fed the fp64 reference layer's own input (cast to fp32); compared with the fp64
                reference output. Its floor is the fp32 reference layer fed the same input.
  floor      -- the fp32 reference vs the fp64 reference at that layer (same weights, same input).
The verdict compares against fp64 ("the truth"), with limit = k * max(floor, min_rel * max|ref64|) + atol.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from parity.spec import Pair, Spec, SpecError, Tol, resolve, to_impl_layout


# ----------------------------------------------------------------------------------------------- conversion

def to_numpy(x: Any) -> np.ndarray:
    """mlx / torch / numpy -> numpy (floats kept at their precision, bf16/fp16 widened to fp32)."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("torch"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype not in (_torch().float32, _torch().float64):
            x = x.float()
        return x.numpy()
    if mod.startswith("mlx"):
        import mlx.core as mx

        if mx.issubdtype(x.dtype, mx.floating) and x.dtype != mx.float32:
            x = x.astype(mx.float32)
        mx.eval(x)
        return np.array(x)
    return np.asarray(x)


def _torch():
    import torch

    return torch


def _first_tensor(out: Any) -> Any:
    while isinstance(out, (tuple, list)) and out:
        out = out[0]
    return out


# ------------------------------------------------------------------------------------------------- capture

@dataclass
class Call:
    args: List[Any]
    kwargs: Dict[str, Any]
    output: Any
    order: int


class RefCapture:
    """Forward hooks on named torch modules; records the first call of each (inputs as tensors, output)."""

    def __init__(self, modules: Dict[str, Any]):
        self.modules = modules
        self.calls: Dict[str, Call] = {}
        self._handles = []
        self._counter = 0

    def __enter__(self):
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        return self

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            if name not in self.calls:
                self.calls[name] = Call(_detach(list(args)), _detach(dict(kwargs)), _detach(output), self._counter)
                self._counter += 1
        return hook

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _detach(x: Any) -> Any:
    mod = type(x).__module__
    if mod.startswith("torch") and hasattr(x, "detach"):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(v) for v in x) if not hasattr(x, "_fields") else x
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


@contextlib.contextmanager
def impl_capture(modules: Dict[str, Any]):
    """Swap each MLX module's class for a recording subclass; restore on exit. Yields {name: Call}."""
    calls: Dict[str, Call] = {}
    counter = [0]
    swapped: List[Tuple[Any, type]] = []

    def make(cls: type, name: str) -> type:
        def __call__(self, *args, **kwargs):
            out = cls.__call__(self, *args, **kwargs)
            if name not in calls:
                calls[name] = Call(list(args), dict(kwargs), out, counter[0])
                counter[0] += 1
            return out

        return type(f"Tapped{cls.__name__}", (cls,), {"__call__": __call__})

    try:
        for name, module in modules.items():
            cls = type(module)
            module.__class__ = make(cls, name)
            swapped.append((module, cls))
        yield calls
    finally:
        for module, cls in swapped:
            module.__class__ = cls


# ------------------------------------------------------------------------------------------------- compare

@dataclass
class Row:
    name: str
    impl: str
    ref: str
    kind: str  # "layer" or "output"
    depth: int
    shape: List[int]
    tol: str
    ok: bool
    max_abs: float = float("nan")  # |impl - ref64|
    max_rel: float = float("nan")  # max_abs / max|ref64|
    cosine: float = float("nan")
    max_abs_vs_ref32: float = float("nan")
    floor: float = float("nan")  # |ref32 - ref64|
    limit: float = float("nan")
    mismatches: Optional[int] = None
    kl: Optional[float] = None  # kl rows: KL(ref64 || impl), the verdict's quantity (limit is on it)
    kl_floor: Optional[float] = None
    iso_max_abs: Optional[float] = None
    iso_floor: Optional[float] = None
    iso_limit: Optional[float] = None
    iso_ok: Optional[bool] = None
    note: str = ""


def _limit(tol: Tol, floor: float, scale: float) -> float:
    base = max(floor, tol.min_rel * scale)
    return tol.k * base + tol.atol


def compare(impl: np.ndarray, ref64: np.ndarray, ref32: Optional[np.ndarray], tol: Tol) -> Dict[str, Any]:
    """Numbers for one tensor. `ref32` is the fp32 reference (floor source; for `exact`, the contract)."""
    impl = np.asarray(impl)
    ref64 = np.asarray(ref64)
    if impl.shape != ref64.shape:
        return {"ok": False, "note": f"shape impl {list(impl.shape)} != ref {list(ref64.shape)}",
                "shape": list(ref64.shape)}
    out: Dict[str, Any] = {"shape": list(ref64.shape)}
    if tol.kind == "exact":
        target = ref64 if ref32 is None else ref32
        mism = int(np.count_nonzero(impl != target))
        out.update(ok=mism == 0, mismatches=mism, max_abs=float(np.max(np.abs(impl.astype(np.float64) -
                   target.astype(np.float64)))) if impl.size else 0.0, limit=0.0, floor=0.0)
        return out
    a = impl.astype(np.float64)
    b = ref64.astype(np.float64)
    finite = bool(np.all(np.isfinite(a)))
    diff = np.abs(a - b)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    max_abs = float(np.max(diff)) if diff.size else 0.0
    floor = float(np.max(np.abs(ref32.astype(np.float64) - b))) if ref32 is not None and b.size else 0.0
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(np.dot(a.ravel(), b.ravel()) / (na * nb)) if na > 0 and nb > 0 else float(na == nb)
    out.update(max_abs=max_abs, max_rel=max_abs / scale if scale > 0 else max_abs, cosine=cos, floor=floor)
    if ref32 is not None:
        out["max_abs_vs_ref32"] = float(np.max(np.abs(a - ref32.astype(np.float64)))) if a.size else 0.0
    if tol.kind == "floor":
        lim = _limit(tol, floor, scale)
        out.update(limit=lim, ok=finite and max_abs <= lim)
    elif tol.kind == "allclose":
        ok = finite and bool(np.all(diff <= tol.atol + tol.rtol * np.abs(b)))
        out.update(limit=tol.atol + tol.rtol * scale, ok=ok)
    elif tol.kind == "cosine":
        cos32 = 1.0
        if ref32 is not None:
            r = ref32.astype(np.float64)
            cos32 = float(np.dot(r.ravel(), b.ravel()) / (np.linalg.norm(r) * nb)) if nb > 0 else 1.0
        lim = tol.k * max(1.0 - cos32, tol.min_rel) + tol.atol
        out.update(limit=lim, ok=finite and (1.0 - cos) <= lim)
    elif tol.kind == "kl":
        kl = kl_divergence(b, a)
        kl_floor = kl_divergence(b, ref32) if ref32 is not None else 0.0
        kl_min = 0.5 * (tol.min_rel * scale) ** 2  # an error at fp32 resolution of the largest logit
        lim = tol.k ** 2 * max(kl_floor, kl_min) + tol.atol
        # max_abs stays |impl - ref64|; the verdict is on KL, reported in max_rel's place for the section's worst
        out.update(kl=kl, kl_floor=kl_floor, limit=lim, ok=finite and kl <= lim)
    else:
        raise SpecError(f"unknown tolerance kind {tol.kind!r}")
    if not finite:
        out["note"] = "impl output has NaN/Inf"
    return out


def kl_divergence(ref_logits: np.ndarray, impl_logits: np.ndarray) -> float:
    """max over positions of KL(softmax(ref) || softmax(impl)) on the last axis, in fp64."""
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    lp, lq = log_softmax(ref_logits.astype(np.float64)), log_softmax(impl_logits.astype(np.float64))
    return float(np.max(np.sum(np.exp(lp) * (lp - lq), axis=-1)))


# --------------------------------------------------------------------------------------------------- run

@dataclass
class Report:
    spec: str
    seed: int
    rows: List[Row]
    first_divergence: Optional[str]
    first_isolated_divergence: Optional[str]
    ok: bool
    compared: int
    seconds: Dict[str, float] = field(default_factory=dict)
    description: str = ""
    env: Dict[str, str] = field(default_factory=dict)
    variant: str = ""  # the impl model variant compared ("" : the model as `spec.build_impl` loads it)
    untapped: Dict[str, str] = field(default_factory=dict)  # pair -> why this variant has no module to tap there

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        return _json_safe(d)

    def summary(self) -> str:
        bad = [r for r in self.rows if not r.ok]
        iso_bad = [r for r in self.rows if r.iso_ok is False]
        head = (f"{self.spec}: {self.compared} tensors compared, {len(bad)} over tolerance, "
                f"first divergence: {self.first_divergence or 'none'}")
        if iso_bad:
            head += (f"; {len(iso_bad)} over tolerance in isolation, first: {self.first_isolated_divergence}")
        lines = [head]
        for r in bad[:10]:
            lines.append(f"  {r.name}: max|d|={r.max_abs:.3g} > limit {r.limit:.3g} ({r.tol}) {r.note}".rstrip())
        for r in iso_bad[:10]:
            iso = "n/a" if r.iso_max_abs is None else f"{r.iso_max_abs:.3g}"
            lim = "n/a" if r.iso_limit is None else f"{r.iso_limit:.3g}"
            lines.append(f"  {r.name} (isolated): max|d|={iso} > limit {lim} {r.note}".rstrip())
        return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else (("inf" if x > 0 else "-inf") if math.isinf(x) else x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _select(out: Any, fn) -> Any:
    return fn(out) if fn is not None else _first_tensor(out)


def _cast_args(x: Any, dtype) -> Any:
    """Captured torch args -> same structure with float tensors cast to `dtype` (for the isolated floor)."""
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_cast_args(v, dtype) for v in x)
    if isinstance(x, dict):
        return {k: _cast_args(v, dtype) for k, v in x.items()}
    return x


def _np_args(x: Any, layout: str) -> Any:
    """Captured torch args -> numpy in impl layout, floats as fp32 (the impl runs in fp32)."""
    torch = _torch()
    if isinstance(x, torch.Tensor):
        a = to_impl_layout(x.detach().cpu().numpy(), layout)
        if a.dtype.kind != "f":
            return a
        with np.errstate(over="ignore"):  # fp64 masks use finfo(float64).min: -inf in fp32, as intended
            return a.astype(np.float32)
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return [_np_args(v, layout) for v in x]
    if isinstance(x, dict):
        return {k: _np_args(v, layout) for k, v in x.items()}
    return x


def _mx_args(x: Any) -> Any:
    """numpy (nested) -> mlx arrays."""
    import mlx.core as mx

    if isinstance(x, np.ndarray):
        return mx.array(x)
    if isinstance(x, list):
        return [_mx_args(v) for v in x]
    if isinstance(x, dict):
        return {k: _mx_args(v) for k, v in x.items()}
    return x


# ---------------------------------------------------------------------------------- reference record

@dataclass
class LayerRef:
    """What the reference says about one mapped layer (impl layout). `index`: flat indices when subsampled."""

    order: int
    shape: List[int]
    r64: np.ndarray
    r32: np.ndarray
    index: Optional[np.ndarray] = None
    iso_args: Any = None  # the fp64 reference layer's inputs, as fp32 numpy (None: not recorded)
    iso_kwargs: Any = None
    iso_floor: Optional[np.ndarray] = None  # fp32 reference layer fed those inputs (subsampled like r64)
    note: str = ""


@dataclass
class RefRecord:
    """The reference side of a parity run: from a live torch run, or loaded from golden fixtures."""

    spec: str
    seed: int
    layers: Dict[str, LayerRef]  # key: Pair.key
    outputs64: Dict[str, np.ndarray]
    outputs32: Dict[str, np.ndarray]
    env: Dict[str, str] = field(default_factory=dict)
    source: str = "live"


def pair_key(p: Pair) -> str:
    return p.impl if p.impl == p.ref else f"{p.impl} <- {p.ref}"


def record_reference(spec: Spec, seed: int = 0, isolated: bool = True, inputs=None) -> RefRecord:
    """Run the reference in fp64 and fp32 on the spec's seeded inputs; capture every mapped layer.

    The fp64 and fp32 models are built one after the other (a 1B LM in fp64 is 10 GB): fp64 first, its captures
    kept, then fp32, which also gives the isolated floor (each fp32 layer fed the fp64 layer's inputs).
    """
    torch = _torch()
    pairs = spec.expanded_pairs()
    inputs = spec.make_inputs(seed) if inputs is None else inputs
    with torch.no_grad():
        ref64 = spec.build_ref(torch.float64)
        ref64_mods = {p.ref: resolve(ref64, p.ref, "reference") for p in pairs}
        with RefCapture(ref64_mods) as cap64:
            out64 = spec.run_ref(ref64, inputs)
        del ref64, ref64_mods
        ref32 = spec.build_ref(torch.float32)
        ref32_mods = {p.ref: resolve(ref32, p.ref, "reference") for p in pairs}
        with RefCapture(ref32_mods) as cap32:
            out32 = spec.run_ref(ref32, inputs)
        layers: Dict[str, LayerRef] = {}
        for p in pairs:
            c64, c32 = cap64.calls.get(p.ref), cap32.calls.get(p.ref)
            if c64 is None:
                continue
            r64 = to_impl_layout(to_numpy(_select(c64.output, p.select_ref)), p.layout)
            r32 = to_impl_layout(to_numpy(_select(c32.output, p.select_ref)), p.layout)
            lay = LayerRef(c64.order, list(r64.shape), r64, r32)
            if isolated and p.isolate is not False and p.tol.kind != "exact":
                o32 = ref32_mods[p.ref](*_cast_args(c64.args, torch.float32),
                                        **_cast_args(c64.kwargs, torch.float32))
                lay.iso_floor = to_impl_layout(to_numpy(_select(o32, p.select_ref)), p.layout)
                lay.iso_args = _np_args(list(c64.args), p.layout)
                lay.iso_kwargs = _np_args(dict(c64.kwargs), p.layout)
            layers[pair_key(p)] = lay
        del ref32, ref32_mods
    o64, o32 = {}, {}
    for oname in spec.outputs:
        if oname not in out64:
            raise SpecError(f"spec {spec.name!r}: output {oname!r} not produced by run_ref")
        layout = spec.output_layout.get(oname, "same")
        o64[oname] = to_impl_layout(to_numpy(out64[oname]), layout)
        o32[oname] = to_impl_layout(to_numpy(out32[oname]), layout)
    return RefRecord(spec.name, seed, layers, o64, o32, _env())


def _sub(x: np.ndarray, index: Optional[np.ndarray]) -> np.ndarray:
    return x if index is None else np.asarray(x).reshape(-1)[index]


# --------------------------------------------------------------------------------------------------- run

def run_spec(spec: Spec, seed: int = 0, isolated: bool = True, record: Optional[RefRecord] = None,
             variant: Optional[str] = None) -> Report:
    """Run `spec` on seeded inputs; return the per-layer report. Raises SpecError for a spec that can't run.

    record: the reference side, recorded before (golden fixtures: no torch needed); None runs it live.
    variant: the model variant `spec.build_impl` builds (an `impl.accel` variant of the LM: "plain", "fused",
        "cpu"). An accelerated variant may lack modules the plain model has (the fused variant's one `qkv_proj`
        replaces q_proj/k_proj/v_proj): those pairs go into `Report.untapped` with the reason, the rest are
        compared. For the plain model (None or "plain") every impl path must exist (a typo is a SpecError).
    """
    t0 = time.perf_counter()
    pairs = spec.expanded_pairs()
    inputs = spec.make_inputs(seed)
    seconds = {}
    if record is None:
        # The reference first, then the impl model: never both full models in memory at once (a 1B LM: 10 GB
        # in fp64 + 5 GB in MLX fp32).
        record = record_reference(spec, seed, isolated, inputs)
        seconds["reference"] = time.perf_counter() - t0
        import gc

        gc.collect()
    elif record.seed != seed or record.spec != spec.name:
        raise SpecError(f"fixture record is for {record.spec!r} seed {record.seed}, not {spec.name!r} seed {seed}")
    t = time.perf_counter()
    impl_model = spec.build_impl()
    # Resolve every impl path before running it: a typo is a SpecError naming the path (an accelerated variant's
    # missing modules are named in `untapped` instead; the plain model, run in every report, keeps the check).
    impl_mods, untapped = {}, {}
    for p in pairs:
        try:
            impl_mods[p.impl] = resolve(impl_model, p.impl, "impl")
        except SpecError as e:
            if variant in (None, "plain"):
                raise
            untapped[pair_key(p)] = f"the {variant} variant has no such module ({e})"
    pairs = [p for p in pairs if p.impl in impl_mods]
    seconds["build"] = time.perf_counter() - t
    t = time.perf_counter()
    with impl_capture(impl_mods) as capi:
        outi = spec.run_impl(impl_model, inputs)
    seconds["impl"] = time.perf_counter() - t

    rows: List[Row] = []
    t = time.perf_counter()
    for p in pairs:
        name = pair_key(p)
        lay, ci = record.layers.get(name), capi.get(p.impl)
        if lay is None or ci is None:
            missing = [w for w, c in (("reference", lay), ("impl", ci)) if c is None]
            rows.append(Row(name, p.impl, p.ref, "layer", 10**9, [], p.tol.describe(), False,
                            note=f"never called in {' and '.join(missing)} run"))
            continue
        got = to_numpy(_select(ci.output, p.select_impl))
        if list(got.shape) != lay.shape:
            res = {"ok": False, "shape": lay.shape, "note": f"shape impl {list(got.shape)} != ref {lay.shape}"}
        else:
            res = compare(_sub(got, lay.index), lay.r64, lay.r32, p.tol)
            res["shape"] = lay.shape
        row = Row(name, p.impl, p.ref, "layer", lay.order, res.pop("shape"), p.tol.describe(), res.pop("ok"),
                  **{k: v for k, v in res.items() if k in Row.__dataclass_fields__})
        if isolated and lay.iso_args is not None:
            try:
                _isolate(row, p, impl_mods[p.impl], lay)
            except Exception as e:  # noqa: BLE001 -- a layer that can't take the reference's inputs fails its row
                row.iso_ok = False
                row.note = "; ".join(filter(None, [row.note, f"isolated call failed: {type(e).__name__}: {e}"]))
        rows.append(row)

    depth0 = len(pairs)
    for j, (oname, tol) in enumerate(spec.outputs.items()):
        if oname not in outi:
            raise SpecError(f"spec {spec.name!r}: output {oname!r} not produced by run_impl")
        res = compare(to_numpy(outi[oname]), record.outputs64[oname], record.outputs32[oname], tol)
        rows.append(Row(f"output:{oname}", oname, oname, "output", depth0 + j, res.pop("shape"), tol.describe(),
                        res.pop("ok"), **{k: v for k, v in res.items() if k in Row.__dataclass_fields__}))
    seconds["compare"] = time.perf_counter() - t

    layers = sorted([r for r in rows if r.kind == "layer"], key=lambda r: r.depth)
    for d, r in enumerate(layers):
        r.depth = d
    outs = [r for r in rows if r.kind == "output"]
    for d, r in enumerate(outs, start=len(layers)):
        r.depth = d
    rows = layers + outs
    first = next((r.name for r in rows if not r.ok), None)
    first_iso = next((r.name for r in layers if r.iso_ok is False), None)
    compared = sum(1 for r in rows if not r.note.startswith("never"))
    if compared == 0:
        raise SpecError(f"spec {spec.name!r} compared zero tensors")
    ok = all(r.ok for r in rows) and all(r.iso_ok is not False for r in rows)
    env = {**_env(), "reference": record.source}
    name = spec.name if variant is None else f"{spec.name}[{variant}]"
    return Report(name, seed, rows, first, first_iso, ok, compared, seconds, spec.description, env, variant or "",
                  untapped)


def _isolate(row: Row, p: Pair, impl_mod, lay: LayerRef) -> None:
    """Isolated error of one layer: the impl layer fed the fp64 reference layer's own inputs."""
    args, kwargs = _mx_args(lay.iso_args), _mx_args(lay.iso_kwargs)
    oi = p.isolate(impl_mod, args, kwargs) if callable(p.isolate) else impl_mod(*args)
    got = to_numpy(_select(oi, p.select_impl))
    if list(got.shape) != lay.shape:
        row.iso_ok, row.note = False, f"isolated shape impl {list(got.shape)} != ref {lay.shape}"
        return
    res = compare(_sub(got, lay.index), lay.r64, lay.iso_floor, p.tol)
    row.iso_max_abs, row.iso_floor = res.get("max_abs"), res.get("floor")
    row.iso_limit, row.iso_ok = res.get("limit"), bool(res["ok"])


def _env() -> Dict[str, str]:
    import platform

    env = {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}
    for pkg in ("mlx", "torch", "numpy", "transformers", "dac", "outetts", "spark-tts-lib"):
        try:
            from importlib.metadata import version

            dist = {"dac": "descript-audio-codec"}.get(pkg, pkg)
            env[pkg] = version(dist)
        except Exception:  # noqa: BLE001 -- not installed is a fine answer here
            pass
    return env


# ------------------------------------------------------------------------------------- what the run ran on

# Unit roundoff of the two float32 matmul modes a GPU backend runs (IEEE float32: 24-bit significand; TF32: the
# float32 exponent with a 10-bit stored mantissa, 11-bit significand: NVIDIA's A100 whitepaper, and MLX's
# docs/src/usage/precision.rst). MLX's CUDA backend asks cuBLAS/cuDNN for TF32 math unless MLX_ENABLE_TF32=0; Apple's
# M5 GPUs run fp32 matmuls on their neural accelerators at comparable precision; MLX's CPU backend has no such mode.
U_FP32 = 2.0 ** -24
U_TF32 = 2.0 ** -11
# Why the TF32 bound is the fp32 limit x 2^13: each float limit the harness derives is first order in the unit
# roundoff of the computation (k x the fp32 reference's own error at that tensor, never below eps x max|ref|): a
# rounding error model |fl(x) - x| <= u |x| propagated through the same layers (Higham, Accuracy and Stability of
# Numerical Algorithms, ch. 2-3: every bound is a multiple of u to first order). Running the products at u_TF32
# scales that multiple by u_TF32 / u_fp32 = 2^13; KL is quadratic in the logit error (parity.spec.KL_WHY), so its
# bound scales by the square. Exact outputs (codes, token ids) have no such bound: an argmax or codebook choice
# between two values closer than the TF32 error flips, which is why parity itself runs in strict fp32.
TF32_SCALE = U_TF32 / U_FP32


def tf32_limit(limit: float, kind: str) -> Optional[float]:
    """The bound under TF32 products of a case whose strict-fp32 limit is `limit` (see TF32_SCALE); None for an
    exact case (no bound: a discrete choice can flip)."""
    if kind == "exact":
        return None
    return float(limit) * (TF32_SCALE ** 2 if kind == "kl" else TF32_SCALE)


PROBE_N = 256


def precision_probe() -> Dict[str, Any]:
    """Which float32 matmul precision the default device runs, measured: an (n x n) @ (n x n) product of
    A = 1 + 2^-15 everywhere and B = 1. In float32 every partial sum k (1 + 2^-15), k <= 256, needs at most 24
    significant bits, so any summation order gives n + n 2^-15 exactly; TF32 rounds A to 1 (10 stored bits) and
    gives n. (A matrix-vector product would stay fp32 on every backend: MLX's precision docs.) Reads
    MLX_ENABLE_TF32 where MLX latches it: call after the run's precision is set."""
    import mlx.core as mx

    n = PROBE_N
    c = mx.full((n, n), 1.0 + 2.0 ** -15, mx.float32) @ mx.ones((n, n), mx.float32)
    got = float(np.array(c)[0, 0])
    exact = n + n * 2.0 ** -15
    mode = "fp32" if got == exact else ("tf32" if got == float(n) else "reduced")
    return {"mode": mode, "probe": f"{n}x{n} fp32 matmul of 1+2^-15 by 1: {got!r} (fp32 gives {exact!r}, TF32 {n}.0)"}


def backend() -> str:
    """MLX's backend for the default device: "cpu", "metal" or "cuda"."""
    import mlx.core as mx

    if mx.default_device() == mx.cpu:
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    return "cuda" if hasattr(mx, "cuda") and mx.cuda.is_available() else "gpu"


def run_platform(precision: str = "fp32") -> Dict[str, str]:
    """What a parity run runs on: device, MLX backend, precision mode (requested and measured), the ops path, the
    BLAS. `precision`: "fp32" (strict: MLX_ENABLE_TF32=0 set before MLX's first product) or "device" (the
    backend's default)."""
    import platform

    import mlx.core as mx

    from impl import ops
    from impl.accel import blas

    info = mx.device_info() if hasattr(mx, "device_info") else {}
    be = backend()
    probe = precision_probe()
    env = os.environ.get("MLX_ENABLE_TF32")
    if be == "cpu":
        mode = "fp32 (the CPU backend has no reduced-precision mode)"
    elif precision == "fp32":
        mode = "fp32 strict (MLX_ENABLE_TF32=0)"
    else:
        mode = f"device default (MLX_ENABLE_TF32={env if env is not None else 'unset: MLX default 1'})"
    if probe["mode"] != "fp32":
        mode += f"; measured: {probe['mode'].upper()} products"
    b = blas.blas_info()
    cpu_blas = b["blas"] + (f" ({b['reason']})" if b.get("reason") else "")
    return {
        "device": f"{be}: {info.get('device_name', platform.processor() or platform.machine())}",
        "backend": be,
        "precision": mode,
        "precision_measured": probe["mode"],
        "precision_probe": probe["probe"],
        "ops_path": ops.path(),
        "blas": cpu_blas if be == "cpu" else f"GPU products on MLX's {be} kernels; CPU-stream BLAS {cpu_blas}",
        "mlx": mx.__version__,
        "python": platform.python_version(),
    }
