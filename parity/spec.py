"""Parity specs: declarative maps from impl (MLX) modules to reference (torch) modules.

A spec says *what* to compare; `parity.harness` does the running, capturing and comparing.

    Spec(
        name="dac",
        build_impl=lambda: load_impl_model(),            # MLX nn.Module, fp32
        build_ref=lambda dtype: load_ref_model(dtype),   # torch nn.Module in `dtype` (float32 / float64)
        make_inputs=lambda seed: {"audio": ...},          # numpy arrays, seeded
        run_impl=lambda model, inputs: {...},             # numpy/mlx outputs by name
        run_ref=lambda model, inputs: {...},              # numpy/torch outputs by name
        pairs=[Pair("decoder.model.{i}", "decoder.model.{i}", over=range(1, 5), layout="ncl")],
        outputs={"codes": Tol.exact(), "audio": Tol.floor(k=10, why=FLOOR_WHY)},
    )

Module paths are dotted; integer parts index lists (`decoder.model.1.block.0`). A pattern part `{expr}` is
evaluated with `i` bound to each value of `over` (`decoder.blocks.{i}` <-> `decoder.model.{i+1}`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np


class SpecError(ValueError):
    """A spec that cannot be run as written (unknown module path, bad pattern, no pairs)."""


# fp32 unit roundoff: the smallest meaningful relative error of an fp32 computation.
FP32_EPS = float(np.finfo(np.float32).eps)


# Why 10 x the floor (the default k): the port and the fp32 reference are both fp32 computations of the same
# formula; they differ from the fp64 truth by rounding that depends on summation order and kernel choice, whose
# size is the reference's own measured error (the floor) times a small factor. 10 leaves that factor room while a
# porting bug (a wrong constant, offset or order) is orders of magnitude above it (tests/test_harness.py).
FLOOR_WHY = "10 x the measured fp32 noise floor (|ref32 - ref64| at that tensor): both sides are fp32 roundings"
KL_WHY = ("KL is quadratic in the logit error: an impl within k x the fp32 floor in max|d| is within k^2 x the "
          "floor's KL(ref64 || ref32)")


@dataclass(frozen=True)
class Tol:
    """Tolerance policy for one compared tensor. Every kind but `exact` carries `why`: its derivation (floor x k,
    an error bound) or stated reason; a Tol without one is a SpecError at construction (tests/test_harness.py).

    kind:
      exact   -- integers (codes, token ids): every element equal; mismatches are counted.
      floor   -- floats: max|impl - ref64| <= k * floor + atol, where floor = max|ref32 - ref64| for that tensor
                 (the measured fp32 noise floor), never below `min_rel * max|ref64|` (fp32 cannot be exacter).
      allclose-- floats, fixed atol/rtol: only with a stated reason (e.g. fp16 paths with no fp64 twin).
      cosine  -- floats: cosine(impl, ref64) >= 1 - k * (1 - cosine(ref32, ref64)) - atol.
      kl      -- logits on the last axis: KL(ref64 || impl) <= k^2 * max(KL(ref64 || ref32), kl_min) + atol, where
                 kl_min = (min_rel * max|ref64|)^2 / 2, the KL of an error at fp32 resolution.
    """

    kind: str = "floor"
    k: float = 10.0
    atol: float = 0.0
    rtol: float = 0.0
    min_rel: float = FP32_EPS
    why: str = ""

    def __post_init__(self):
        if self.kind not in ("exact", "floor", "allclose", "cosine", "kl"):
            raise SpecError(f"unknown tolerance kind {self.kind!r}")
        if self.kind != "exact" and not self.why.strip():
            raise SpecError(f"a {self.kind} tolerance needs why=: its derivation (floor x k, a written error bound) "
                            "or stated reason")

    @property
    def reason(self) -> str:  # the name before `why`
        return self.why

    @staticmethod
    def exact() -> "Tol":
        return Tol(kind="exact", k=0.0, why="exact: integers")

    @staticmethod
    def floor(k: float = 10.0, why: str = "") -> "Tol":
        return Tol(kind="floor", k=k, why=why)

    @staticmethod
    def allclose(atol: float, rtol: float, why: str) -> "Tol":
        return Tol(kind="allclose", atol=atol, rtol=rtol, why=why)

    @staticmethod
    def kl(k: float = 10.0, why: str = "", atol: float = 0.0) -> "Tol":
        return Tol(kind="kl", k=k, atol=atol, why=why)

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "floor":
            return f"{self.k:g} x floor"
        if self.kind == "allclose":
            return f"atol {self.atol:g} rtol {self.rtol:g}"
        if self.kind == "kl":
            return f"KL <= {self.k:g}^2 x floor KL" + (f" + {self.atol:g}" if self.atol else "")
        return f"{self.kind} k={self.k:g}"


DEFAULT_TOL = Tol.floor(10.0, why=FLOOR_WHY)


def to_impl_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Reference tensor -> impl layout. 'ncl': torch (N, C, L) -> MLX (N, L, C); 'same': unchanged."""
    if layout == "same" or x.ndim < 3:
        return x
    if layout == "ncl":
        return np.swapaxes(x, 1, 2)
    raise SpecError(f"unknown layout {layout!r} (expected 'ncl' or 'same')")


@dataclass
class Pair:
    """One impl module <-> one reference module, possibly a pattern over `over`.

    select_ref: picks the compared tensor from the reference module's output (default: itself, or element 0
        of a tuple). select_impl: likewise for the impl module.
    isolate: how to run the impl module on the reference module's captured inputs, for the isolated error:
        isolate(impl_module, ref_args: list[np.ndarray in impl layout], ref_kwargs) -> output. Default calls
        impl_module(*ref_args). isolate=False skips the isolated comparison for this pair.
    """

    impl: str
    ref: str
    over: Optional[Sequence[int]] = None
    tol: Tol = DEFAULT_TOL
    layout: str = "ncl"
    select_ref: Optional[Callable[[Any], Any]] = None
    select_impl: Optional[Callable[[Any], Any]] = None
    isolate: Any = None

    def expand(self) -> List["Pair"]:
        if self.over is None:
            if "{" in self.impl or "{" in self.ref:
                raise SpecError(f"pattern pair {self.impl!r} <-> {self.ref!r} needs `over`")
            return [self]
        out = []
        for i in self.over:
            out.append(Pair(_fill(self.impl, i), _fill(self.ref, i), None, self.tol, self.layout,
                            self.select_ref, self.select_impl, self.isolate))
        return out


_PATTERN = re.compile(r"\{([^{}]+)\}")


def _fill(pattern: str, i: int) -> str:
    def repl(m: re.Match) -> str:
        expr = m.group(1)
        if not re.fullmatch(r"[\si0-9+\-*/()]+", expr):
            raise SpecError(f"pattern {pattern!r}: only arithmetic on i is allowed, got {{{expr}}}")
        return str(int(eval(expr, {"__builtins__": {}}, {"i": i})))  # noqa: S307 -- checked above

    return _PATTERN.sub(repl, pattern)


@dataclass
class Spec:
    name: str
    build_impl: Callable[[], Any]
    build_ref: Callable[[Any], Any]
    make_inputs: Callable[[int], Dict[str, np.ndarray]]
    run_impl: Callable[[Any, Dict[str, np.ndarray]], Dict[str, Any]]
    run_ref: Callable[[Any, Dict[str, np.ndarray]], Dict[str, Any]]
    pairs: List[Pair] = field(default_factory=list)
    outputs: Dict[str, Tol] = field(default_factory=dict)
    output_layout: Dict[str, str] = field(default_factory=dict)
    description: str = ""

    def expanded_pairs(self) -> List[Pair]:
        pairs = [p for pair in self.pairs for p in pair.expand()]
        if not pairs and not self.outputs:
            raise SpecError(f"spec {self.name!r} compares nothing: give pairs or outputs")
        return pairs


def resolve(root: Any, path: str, tree: str = "impl") -> Any:
    """Walk a dotted module path in an MLX or torch tree; a clear SpecError names the missing part."""
    node = root
    walked = []
    for part in path.split(".") if path else []:
        nxt = _child(node, part)
        if nxt is _MISSING:
            where = ".".join(walked) or "<root>"
            raise SpecError(
                f"{tree} module {path!r} does not exist: {where!r} has no child {part!r} "
                f"(children: {', '.join(_children(node)[:20]) or 'none'})")
        node = nxt
        walked.append(part)
    return node


_MISSING = object()


def _child(node: Any, part: str) -> Any:
    if isinstance(node, (list, tuple)):
        if part.isdigit() and int(part) < len(node):
            return node[int(part)]
        return _MISSING
    if hasattr(node, "_modules") and isinstance(getattr(node, "_modules"), dict):  # torch
        mods = node._modules
        return mods[part] if part in mods else _MISSING
    if isinstance(node, dict) and part in node:  # mlx.nn.Module is a dict
        return node[part]
    return _MISSING


def _children(node: Any) -> List[str]:
    if isinstance(node, (list, tuple)):
        return [str(i) for i in range(len(node))]
    if hasattr(node, "_modules") and isinstance(getattr(node, "_modules"), dict):
        return list(node._modules)
    if isinstance(node, dict):
        return [k for k, v in node.items() if isinstance(v, (dict, list))]
    return []
