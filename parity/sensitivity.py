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
the section's path: e.g. the Perceiver's RMSNorm scale in the decoder's model, or unused). Results: fixtures/sensitivity.json (computed once, rendered
as a note in each report section by parity/report.py; `--out` to write elsewhere).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

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


def note_for(spec_name: str, path: Path = OUT) -> Optional[str]:
    """One line for a report section built from layer spec `spec_name` (None when not computed)."""
    data = load(path).get("components", {})
    hit = next((v for v in data.values() if v.get("spec") == spec_name), None)
    if hit is None:
        return None
    s = hit["smallest_relative_perturbation_detected"]
    parts = [f"{k} {_fmt(v)}" for k, v in s.items()]
    return ("sensitivity (parity/sensitivity.py, smallest relative perturbation of the port that fails this section, "
            f"at the --quick config): {'; '.join(parts)}")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parity.sensitivity", description=__doc__.split("\n\n")[0])
    p.add_argument("components", nargs="*", default=["spark-decoder", "spark-global", "spark-semantic", "llama"])
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    data = load(Path(args.out)) or {"components": {}}
    for name in args.components:
        print(f"[sensitivity] {name} ...", file=sys.stderr, flush=True)
        data["components"][name] = component(name)
        print(f"[sensitivity] {name}: {data['components'][name]['smallest_relative_perturbation_detected']}",
              file=sys.stderr, flush=True)
        Path(args.out).write_text(json.dumps(data, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
