"""impl read as an import graph (issue 27): no import cycle, and the library never imports a CLI module.

The graph is built from the source (ast), every `import` and `from ... import` counted wherever it sits -- module
level or inside a function (impl imports lazily, so a function-level import is a real edge). `from pkg import name`
is an edge to `pkg.name` when that is a module, else to `pkg`. A module's import of its own enclosing package
(`from impl.seeded import cache_dir` in impl/seeded/dac.py) is no edge: Python imports a package before any of its
modules, so that import adds no order the package does not already have. CLI modules: `impl/cli.py`, every
`impl/**/cli.py`, and `impl/spark/tts.py` (`voiceport tts --model spark`); every other module is library.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parents[1]
CLI_EXTRA = {"impl.spark.tts"}  # `voiceport tts --model spark` (its run(args) is called by impl.outetts.cli)


def modules(root: Path = ROOT) -> Dict[str, Path]:
    """{dotted name: file} of every module under impl/ (a package is its __init__)."""
    out = {}
    for f in sorted((root / "impl").rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _resolve(name: str, known: Dict[str, Path]) -> Optional[str]:
    """The longest known module that `name` is or lies in (`impl.spark.generate.load` -> `impl.spark.generate`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str, source: str, known: Dict[str, Path], is_package: bool = False) -> Set[str]:
    """The impl modules that `module`'s source imports, anywhere in it."""
    edges = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
            # `from pkg import name`: the module pkg.name if it is one, else pkg itself
            targets = [t for t in targets[:-1] if t in known] or [base]
        else:
            continue
        for t in targets:
            hit = _resolve(t, known)
            if hit is not None and hit != module and not module.startswith(hit + "."):
                edges.add(hit)
    return edges


def graph(root: Path = ROOT) -> Dict[str, Set[str]]:
    known = modules(root)
    return {m: imports(m, f.read_text(), known, f.name == "__init__.py") for m, f in known.items()}


def cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted; sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def is_cli(module: str) -> bool:
    return module == "impl.cli" or module.endswith(".cli") or module in CLI_EXTRA


def test_import_graph_impl_has_no_cycle():
    found = cycles(graph())
    assert not found, "import cycles in impl (each a set of modules that import one another): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_import_graph_library_imports_no_cli_module():
    g = graph()
    bad = sorted(f"{m} imports {t}" for m, ts in g.items() if not is_cli(m) for t in ts if is_cli(t))
    assert not bad, "library modules importing CLI modules: " + "; ".join(bad)


def test_import_graph_sees_function_level_imports_and_cycles(tmp_path):
    """The checks can fail: a function-level import is an edge, a two-module cycle and a library -> CLI import
    are found, `from pkg import module` resolves to the module."""
    pkg = tmp_path / "impl"
    (pkg / "m").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "m" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from impl.m import b\n")
    (pkg / "m" / "b.py").write_text("from .. import a\nimport impl.m.cli\n")
    (pkg / "m" / "cli.py").write_text("from impl import a\n")
    g = graph(tmp_path)
    assert g["impl.a"] == {"impl.m.b"} and g["impl.m.b"] == {"impl.a", "impl.m.cli"}
    assert cycles(g) == [["impl.a", "impl.m.b", "impl.m.cli"]]
    assert [t for m, ts in g.items() if not is_cli(m) for t in ts if is_cli(t)] == ["impl.m.cli"]
