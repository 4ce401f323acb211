"""Parity contracts: one report section per promise the port makes (DAC codec, interface, LM, prompt, sampler,
speaker profile, audio path, end-to-end generation), each runnable live (the official packages) or replayed from a
golden record (no torch).

A `Contract` has two halves:
  record(quick) -> dict   the reference side, run through the official packages (torch): the inputs that are not
                          regenerable without them, and the official outputs. Nested dicts/lists of numpy arrays,
                          str, int, float, bool, None. A float output compared against the fp32 noise floor is a
                          `floor_ref(r32, r64)` (fixtures subsample it, recording the indices).
  check(record, quick) -> Section   the impl side, torch-free: runs impl on the same inputs and compares.
The layer-by-layer specs (parity/specs/dac.py, llama.py) become sections through `from_report`.

Every section says what it compared, how many cases, the worst error against its limit (the limit's derivation in
`limit_why`), and the first divergence; `Section.to_dict()` is what report.json carries.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from parity.spec import FLOOR_WHY, Tol


# ------------------------------------------------------------------------------------------------- section

@dataclass
class Case:
    """One compared case: `err` against `limit` (exact cases: mismatches against 0)."""

    name: str
    err: float
    limit: float
    ok: bool
    kind: str = "floor"  # floor | exact | bound | kl
    detail: str = ""     # where it first differs, or the measured floor

    @property
    def ratio(self) -> float:
        if self.ok and self.err == 0:
            return 0.0
        if self.limit > 0:
            return self.err / self.limit
        return math.inf if self.err > 0 or not self.ok else 0.0


@dataclass
class Section:
    name: str
    compared: str                 # what was compared, in words
    cases: int
    worst: float                  # the worst case's error (exact: its mismatch count)
    limit: float                  # that case's limit
    worst_case: Optional[str]
    first_divergence: Optional[str]
    passed: bool
    limit_why: str                # how the limit is derived
    metric: str = "max|impl - ref64|"
    reference: str = "live"
    seconds: float = 0.0
    details: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    component: str = ""           # the layer report behind it (dac/llama), if any
    platform: Dict[str, Any] = field(default_factory=dict)  # device, backend, precision, variant, ops path, BLAS

    @property
    def worst_ratio(self) -> float:
        if self.worst == 0:
            return 0.0
        return self.worst / self.limit if self.limit > 0 else math.inf

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["worst_ratio"] = self.worst_ratio
        return _json_safe(d)

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        first = self.first_divergence or "none"
        return (f"{verdict} {self.name}: {self.cases} cases, worst {_g(self.worst)} vs limit {_g(self.limit)} "
                f"({self.metric}), first divergence: {first}")


def _g(x: float) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else (("inf" if x > 0 else "-inf") if math.isinf(x) else x)
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def section(name: str, compared: str, cases: Sequence[Case], limit_why: str, metric: str,
            notes: Sequence[str] = ()) -> Section:
    """A section from its cases: worst = the case with the largest err / limit; first divergence = the first
    failing case (with its detail)."""
    if not cases:
        return Section(name, compared, 0, math.nan, math.nan, None, "no cases compared", False, limit_why, metric,
                       notes=list(notes))
    worst = max(cases, key=lambda c: c.ratio)
    bad = next((c for c in cases if not c.ok), None)
    first = None if bad is None else (f"{bad.name}: {bad.detail}" if bad.detail else bad.name)
    details = [{"case": c.name, "kind": c.kind, "err": c.err, "limit": c.limit, "ok": c.ok, "detail": c.detail}
               for c in cases]
    worst_name = worst.name if worst.ratio > 0 else None  # all exact / zero error: no worst case to name
    return Section(name, compared, len(cases), float(worst.err), float(worst.limit), worst_name, first,
                   bad is None, limit_why, metric, details=details, notes=list(notes))


# ------------------------------------------------------------------------------------------------- compare

def floor_ref(r32: np.ndarray, r64: np.ndarray) -> Dict[str, Any]:
    """A float reference for a floor comparison: fp32 (what outetts runs) and fp64 (the truth)."""
    r32, r64 = np.asarray(r32), np.asarray(r64)
    if r32.shape != r64.shape:
        raise ValueError(f"fp32 and fp64 reference shapes differ: {r32.shape} vs {r64.shape}")
    return {"r32": r32, "r64": r64, "shape": list(r64.shape)}


def floor_case(name: str, got: np.ndarray, ref: Dict[str, Any], k: float = 10.0, why: str = FLOOR_WHY) -> Case:
    """max|impl - ref64| <= k * max(floor, eps * max|ref64|) on the recorded elements (all, or the fixture's
    subsample); the shape is compared in full first (a length is part of the contract)."""
    from parity.harness import compare

    got = np.asarray(got)
    if list(got.shape) != list(ref["shape"]):
        return Case(name, math.inf, 0.0, False, "floor", f"shape {list(got.shape)} != official {ref['shape']}")
    idx = ref.get("index")
    sub = got.reshape(-1)[idx] if idx is not None else got
    res = compare(sub, ref["r64"], ref["r32"], Tol.floor(k, why=why))
    if not res["ok"] and "note" in res and "max_abs" not in res:
        return Case(name, math.inf, 0.0, False, "floor", res["note"])
    err, lim = float(res["max_abs"]), float(res["limit"])
    detail = f"floor {res['floor']:.3g}"
    if not res["ok"]:
        d = np.abs(np.asarray(sub, np.float64).reshape(-1) - np.asarray(ref["r64"], np.float64).reshape(-1))
        at = int(np.argmax(d > lim)) if np.any(d > lim) else int(np.argmax(d))
        pos = int(idx[at]) if idx is not None else at
        detail = (f"first over the limit at flat index {pos}: |d| {d[at]:.3g} > {lim:.3g}"
                  if np.isfinite(d).all() else "NaN/Inf in impl output")
    return Case(name, err, lim, bool(res["ok"]), "floor", detail)


def exact_case(name: str, got: Any, want: Any) -> Case:
    """Integers / ids / strings equal; err = mismatching elements, detail = the first differing position."""
    g, w = np.asarray(got), np.asarray(want)
    if g.shape != w.shape:
        n = min(g.reshape(-1).size, w.reshape(-1).size) if g.ndim <= 1 and w.ndim <= 1 else 0
        pos = first_difference(list(g.reshape(-1)), list(w.reshape(-1))) if n else None
        detail = f"shape {list(g.shape)} != official {list(w.shape)}"
        if pos is not None and pos < n:
            detail += f"; first difference at {pos}"
        return Case(name, float(max(g.size, w.size)), 0.0, False, "exact", detail)
    diff = g != w
    n = int(np.count_nonzero(diff))
    detail = ""
    if n:
        at = tuple(int(i) for i in np.argwhere(diff)[0])
        detail = f"first at {list(at) if len(at) > 1 else at[0]}: impl {g[at]} != official {w[at]}"
    return Case(name, float(n), 0.0, n == 0, "exact", detail)


def first_difference(a: Sequence[Any], b: Sequence[Any]) -> Optional[int]:
    """First index where the sequences differ (the shorter's length if one is a prefix); None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def ids_case(name: str, got: Sequence[int], want: Sequence[int]) -> Case:
    """Sequences (token ids, words) equal; detail: the first differing position and the items there."""
    got = [int(t) if isinstance(t, (int, np.integer)) else t for t in got]
    want = [int(t) if isinstance(t, (int, np.integer)) else t for t in want]
    pos = first_difference(got, want)
    if pos is None:
        return Case(name, 0.0, 0.0, True, "exact", f"{len(want)} ids")
    n = sum(1 for x, y in zip(got, want) if x != y) + abs(len(got) - len(want))
    return Case(name, float(n), 0.0, False, "exact",
                f"position {pos} of {len(want)}: impl {got[pos:pos + 3]} != official {want[pos:pos + 3]}")


# ------------------------------------------------------------------------------------------- layer reports

def from_report(report, name: str, compared: str, outputs: Optional[Sequence[str]] = None,
                exclude: Sequence[str] = ()) -> Section:
    """A harness Report (per-layer spec) as a section: every layer (propagated and isolated) and output row a
    case; KL rows compare KL against its limit."""
    cases = []
    for r in report.rows:
        if r.name in exclude or (outputs is not None and r.kind == "output" and r.name not in outputs):
            continue
        if r.kl is not None:
            err = r.kl
        elif r.tol == "exact":
            err = float(r.mismatches or 0) if r.mismatches is not None else (math.inf if not r.ok else 0.0)
        else:
            err = r.max_abs if r.max_abs is not None and not _nan(r.max_abs) else math.inf
        lim = r.limit if r.limit is not None and not _nan(r.limit) else 0.0
        cases.append(Case(r.name, float(err), float(lim), bool(r.ok), "kl" if r.kl is not None else
                          ("exact" if r.tol == "exact" else "floor"), r.note or f"{r.tol}, floor {_g(r.floor)}"))
        if r.iso_ok is not None:
            cases.append(Case(r.name + " (isolated)", float(r.iso_max_abs if r.iso_max_abs is not None else math.inf),
                              float(r.iso_limit or 0.0), bool(r.iso_ok), "floor", f"iso floor {_g(r.iso_floor)}"))
    sec = section(name, compared, cases, FLOOR_WHY, "max|impl - ref64| per layer (KL rows: KL)")
    sec.component = report.spec
    sec.reference = report.env.get("reference", "live")
    sec.seconds = float(sum(report.seconds.values()))
    if report.first_divergence and sec.first_divergence:
        sec.first_divergence = report.first_divergence + (
            f" (isolated: {report.first_isolated_divergence})" if report.first_isolated_divergence else "")
    return sec


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ------------------------------------------------------------------------------------------------ contract

@dataclass
class Contract:
    name: str
    record: Callable[[bool], Dict[str, Any]]
    check: Callable[[Dict[str, Any], bool], Section]
    version: int = 1  # bump when the record's layout changes: fixtures of another version are stale


def run_contract(contract: Contract, quick: bool, record: Optional[Dict[str, Any]] = None,
                 progress: Optional["Progress"] = None) -> Section:
    """Record the reference side live (unless `record` is given), then check impl against it."""
    t0 = time.perf_counter()
    source = "live"
    if record is None:
        if progress:
            progress.stage(contract.name, "official side (reference packages)")
        record = contract.record(quick)
    else:
        source = record.get("__source__", "fixture")
    if progress:
        progress.stage(contract.name, "impl side + compare")
    sec = contract.check(record, quick)
    sec.reference, sec.seconds = source, time.perf_counter() - t0
    return sec


# ------------------------------------------------------------------------------------------------ progress

class Progress:
    """One line per component and stage, with the time since the report started: `[parity 1:23] dac: stage`."""

    def __init__(self, stream=None):
        self.t0 = time.perf_counter()
        self.stream = stream or sys.stderr

    def stamp(self) -> str:
        s = int(time.perf_counter() - self.t0)
        return f"{s // 60}:{s % 60:02d}"

    def stage(self, component: str, what: str) -> None:
        print(f"[parity {self.stamp()}] {component}: {what}", file=self.stream, flush=True)

    def done(self, sec: Section) -> None:
        print(f"[parity {self.stamp()}] {sec.line()} ({sec.seconds:.0f} s)", file=self.stream, flush=True)


@contextlib.contextmanager
def quiet_official(live: bool = True):
    """Keep the official packages' noise out of the report's output: torch's FutureWarnings (weight_norm),
    transformers' shard bars and info logs, outetts' loguru lines. Restored on exit. live=False (fixture mode)
    imports none of them."""
    env = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning,
                                    module=r"(torch|torchaudio|transformers|pyloudnorm|librosa)")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            if live:
                _quiet_loggers()
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quiet_loggers() -> None:
    try:
        from loguru import logger

        logger.disable("outetts")
    except ImportError:
        pass
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
