"""Foreign ports: MLX ports no one here wrote, verified by the same harness, specs and tolerances as `impl`.

A port is described as data (`Port`, one module per port: parity/ports/mlx_audio.py): per official component
(a parity.cli COMPONENTS key: "dac", "llama", "spark-decoder", ...) a `Component` that says

  load(kwargs)      how to build the port from the same seeded official-format checkpoint the official spec uses
                    (`kwargs` are the spec factory's: config, seed, ...), through the port's own loading / sanitize
                    code; a conversion the port does not ship (its hub folders hold pre-converted weights) is the
                    adapter's, written out as data next to it;
  run(model, inputs) the public entry points, returning the spec's outputs by name in impl layout (N, L, C);
  rules             how the official module paths map into the port's tree: (regex on the official path,
                    replacement) in order, the first match wins; a `Layer` says the port module's layouts;
  unmapped          official layers with no counterpart in the port, and why (the report lists them).

`port_spec(official, component, kwargs)` turns the official Spec into one whose impl side is the port: the same
reference side, pairs, tolerances and outputs, so `parity.harness.run_spec` runs a foreign port exactly as it runs
impl (every mapped layer propagated and isolated, first divergence). Nothing here imports the port: `activate()`
puts its install folder (built by `./vp setup-port NAME`) on sys.path, after the environment's packages.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from parity.spec import Pair, Spec, SpecError


class PortUnavailable(RuntimeError):
    """The port's package is not installed (run `./vp setup-port NAME`)."""


@dataclass(frozen=True)
class Layer:
    """How one port module's tensors are laid out, next to impl's (N, L, C) convention.

    out: "nlc" (as impl) or "ncl" (the port module returns (N, C, L): transposed before comparing).
    inp: "nlc" or "ncl": the layout the module takes its first argument in (the isolated run feeds it so).
    select: picks the compared tensor from the module's output (default: itself, or element 0 of a tuple).
    call: isolated call (module, args, kwargs) -> output; default: the official pair's isolate, else module(*args).
    """

    out: str = "nlc"
    inp: str = "nlc"
    select: Optional[Callable[[Any], Any]] = None
    call: Optional[Callable[..., Any]] = None


NLC = Layer()


@dataclass
class Rule:
    """Official path regex (fullmatch) -> the port's path (re.sub replacement) with its `Layer`; port=None marks
    the official layers the port has no counterpart for, with `why`."""

    official: str
    port: Optional[str]
    layer: Layer = NLC
    why: str = ""


@dataclass
class Component:
    """One official component (parity.cli COMPONENTS key) as the port implements it."""

    load: Callable[[Dict[str, Any]], Any]
    run: Callable[[Any, Dict[str, Any]], Dict[str, Any]]
    rules: List[Rule] = field(default_factory=list)
    note: str = ""  # what the section compares, in words (the port's entry points)
    official: Optional[str] = None  # the official component's key when this one's differs (a variant)
    quick: Optional[Dict[str, Any]] = None  # spec kwargs replacing parity.cli's quick ones (e.g. a config the
    quick_label: str = ""                   # port can load), and their label in the report
    full: Optional[Dict[str, Any]] = None


@dataclass
class Port:
    """A foreign port: its install name (requirements/ports/NAME.txt), the components it has, the components it
    cannot be compared on (name -> why), and its public contracts (name -> check(record, quick) -> Section)."""

    name: str
    version: str
    components: Dict[str, Component]
    not_comparable: Dict[str, str] = field(default_factory=dict)
    contracts: Dict[str, Callable] = field(default_factory=dict)


def port_dir(name: str) -> Optional[Path]:
    """The port's install folder as `./vp` exports it (VOICEPORT_PORT_DIR_<NAME>), None when not set."""
    d = os.environ.get("VOICEPORT_PORT_DIR_" + name.upper().replace("-", "_"))
    return Path(d) if d else None


def activate(name: str, module: str) -> None:
    """Make `module` (the port's top package) importable: the port's folder appended to sys.path (after the
    environment, so nothing in it shadows a reference package). PortUnavailable names the fix."""
    d = port_dir(name)
    if d is not None and (d / ".complete").exists() and str(d) not in sys.path:
        sys.path.append(str(d))
    try:
        __import__(module)
    except ImportError as e:
        where = f" (looked in {d})" if d else " (VOICEPORT_PORT_DIR_* not set: run through ./vp)"
        raise PortUnavailable(f"port {name} is not installed{where}: run `./vp setup-port {name}` ({e})") from e


def map_path(rules: Sequence[Rule], official: str) -> Tuple[Optional[str], Layer, str]:
    """(port path or None, its Layer, why) for one official module path; no matching rule is a SpecError."""
    for r in rules:
        if re.fullmatch(r.official, official):
            if r.port is None:
                return None, r.layer, r.why
            return re.sub(r.official, r.port, official), r.layer, ""
    raise SpecError(f"no port rule maps official module {official!r}")


def _transpose_last(x: Any) -> Any:
    import mlx.core as mx

    return mx.swapaxes(x, 1, 2) if getattr(x, "ndim", 0) >= 3 else x


def _port_pair(p: Pair, port_path: str, layer: Layer) -> Pair:
    select = layer.select

    def select_impl(out, _sel=select, _out=layer.out):
        from parity.harness import _first_tensor

        x = _sel(out) if _sel is not None else _first_tensor(out)
        return _transpose_last(x) if _out == "ncl" else x

    isolate = p.isolate
    if isolate is not False:
        base = layer.call if layer.call is not None else (p.isolate if callable(p.isolate) else None)

        def isolate(module, args, kwargs, _base=base, _inp=layer.inp):
            if _inp == "ncl" and args:
                args = [_transpose_last(args[0])] + list(args[1:])
            return _base(module, args, kwargs) if _base is not None else module(*args)

    return replace(p, impl=port_path, over=None, select_impl=select_impl, isolate=isolate)


def port_spec(official: Spec, port: Port, component: str, kwargs: Dict[str, Any]) -> Tuple[Spec, Dict[str, str]]:
    """The official spec with the port on the impl side; returns (spec, {official layer: why unmapped})."""
    comp = port.components[component]
    pairs, unmapped = [], {}
    for p in official.expanded_pairs():
        path, layer, why = map_path(comp.rules, p.impl)
        if path is None:
            unmapped[p.impl] = why
            continue
        pairs.append(_port_pair(p, path, layer))
    name = official.name
    if "{" in name:  # a spec factory given a config dict names the spec after the dict: use the port's label
        name = name[:name.index("{")] + (comp.quick_label or "custom")
    spec = replace(official, name=f"{port.name}:{name}", build_impl=lambda: comp.load(kwargs),
                   run_impl=comp.run, pairs=pairs,
                   description=f"{port.name} {port.version}: {comp.note} | official spec: {official.description}")
    return spec, unmapped


def load_port(name: str) -> Port:
    """The Port for `name` (parity/ports/<name with _>.py's PORT)."""
    import importlib

    mod = name.replace("-", "_")
    try:
        return importlib.import_module(f"parity.ports.{mod}").PORT
    except ModuleNotFoundError as e:
        if e.name == f"parity.ports.{mod}":
            raise SpecError(f"unknown port {name!r}: no parity/ports/{mod}.py") from e
        raise
