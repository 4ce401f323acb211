"""Is a repackaged Spark-TTS tree the official code? Compare every module's AST, formatting aside.

    python tools/spark_ast_check.py OFFICIAL_TREE PACKAGE_TREE [--extra cli/SparkTTS.py=SparkTTS.py]
        [--numeric BICODEC_DIR] [--digest OUT] [--json OUT]

OFFICIAL_TREE is the official `sparktts/` folder (SparkAudio/Spark-TTS; `git archive HEAD sparktts`), PACKAGE_TREE
the repackaged one (`spark_tts_lib/` from the spark-tts-lib wheel). For every module of the official tree (and
every module only the package has), both files are parsed and normalised:

- the package name is renamed (`spark_tts_lib` -> `sparktts`) in every import;
- docstrings (module, class, function) are dropped; comments, licence headers and formatting never reach the AST;
- top-level imports are taken out of the body and compared as a set of (module, name, alias) triples, so their
  order and grouping do not count; imports inside functions stay in place, their names sorted.

The rest of each module is compared with `ast.dump` (no line numbers), top-level statement by statement. A module
is `same` when the import sets and the bodies are equal; otherwise the differing top-level definitions are named
(`class X`, `def f`, `X.method`). Exit status: 0 when every official module is `same`, 1 otherwise, 2 on bad
arguments.

`--digest OUT` stores the official tree without its code (per module: the import set and a sha256 per top-level
definition): fixtures/spark/official_digest.json, against which tests/test_spark_ast_check.py re-checks the installed
package on every run. `--numeric BICODEC_DIR` loads one BiCodec folder with both trees and compares their outputs.
The recorded run (official 2f1ea90 vs spark-tts-lib 0.2.1) is fixtures/spark/ast_check.json; its summary is in
reference/spark.py's docstring.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple


def _strip_docstring(body: list) -> list:
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:] or [ast.Pass()]
    return body


class _Normalise(ast.NodeTransformer):
    def __init__(self, renames: Dict[str, str]):
        self.renames = renames

    def _rename(self, name: Optional[str]) -> Optional[str]:
        if name is None:
            return None
        for old, new in self.renames.items():
            if name == old or name.startswith(old + "."):
                return new + name[len(old):]
        return name

    def visit_Import(self, node):
        node.names = sorted((ast.alias(name=self._rename(a.name), asname=a.asname) for a in node.names),
                            key=lambda a: (a.name, a.asname or ""))
        return node

    def visit_ImportFrom(self, node):
        node.module = self._rename(node.module)
        node.names = sorted(node.names, key=lambda a: (a.name, a.asname or ""))
        return node

    def _body(self, node):
        node.body = _strip_docstring(node.body)
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _body


def _imports(node) -> Set[Tuple[str, str, str]]:
    if isinstance(node, ast.Import):
        return {("", a.name, a.asname or "") for a in node.names}
    return {(("." * node.level) + (node.module or ""), a.name, a.asname or "") for a in node.names}


def normalise(source: str, renames: Dict[str, str]):
    """(set of top-level imports, [(label, ast.dump)] of the other top-level statements)."""
    tree = _Normalise(renames).visit(ast.parse(source))
    imports: Set[Tuple[str, str, str]] = set()
    body = []
    for stmt in _strip_docstring(tree.body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imports |= _imports(stmt)
            continue
        body.append(stmt)
    return imports, body


def _label(stmt) -> str:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"def {stmt.name}"
    if isinstance(stmt, ast.ClassDef):
        return f"class {stmt.name}"
    if isinstance(stmt, ast.Assign):
        return "assign " + ",".join(ast.unparse(t) for t in stmt.targets)
    return type(stmt).__name__ + " " + ast.unparse(stmt)[:40]


def _members(stmt) -> Dict[str, str]:
    """A class's methods (and other statements) by name -> dump, to name the method that differs."""
    out = {}
    for i, s in enumerate(stmt.body):
        name = s.name if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else f"stmt{i}"
        out[name] = ast.dump(s)
    return out


def compare_module(official: str, package: str, renames: Dict[str, str]) -> dict:
    oi, ob = normalise(official, renames)
    pi, pb = normalise(package, renames)
    result = {"status": "same", "imports_only_official": sorted(map(list, oi - pi)),
              "imports_only_package": sorted(map(list, pi - oi)), "differs": []}
    od = {_label(s): s for s in ob}
    pd = {_label(s): s for s in pb}
    for label in list(od) + [x for x in pd if x not in od]:
        a, b = od.get(label), pd.get(label)
        if a is None or b is None:
            result["differs"].append(f"{label} ({'package' if a is None else 'official'} only)")
        elif ast.dump(a) != ast.dump(b):
            if isinstance(a, ast.ClassDef) and isinstance(b, ast.ClassDef):
                ma, mb = _members(a), _members(b)
                names = [n for n in list(ma) + [x for x in mb if x not in ma] if ma.get(n) != mb.get(n)]
                result["differs"].append(f"{label}: " + ", ".join(names))
            else:
                result["differs"].append(label)
    order_same = [_label(s) for s in ob] == [_label(s) for s in pb]
    if result["differs"] or result["imports_only_official"] or result["imports_only_package"]:
        result["status"] = "differs"
    elif not order_same:
        result["status"] = "same (definitions reordered)"
    return result


def compare_trees(official: Path, package: Path, renames: Dict[str, str],
                  extra: Dict[str, str] = None) -> Dict[str, dict]:
    """Per module path (relative to the official tree): the comparison. `extra` maps an official module path to a
    package path elsewhere (the official `cli/SparkTTS.py` is the package's `SparkTTS.py`)."""
    out = {}
    official_mods = {p.relative_to(official).as_posix() for p in official.rglob("*.py")}
    package_mods = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    for rel in sorted(official_mods):
        if rel in package_mods:
            out[rel] = compare_module((official / rel).read_text(), (package / rel).read_text(), renames)
        else:
            out[rel] = {"status": "missing in package"}
    for rel in sorted(package_mods - official_mods):
        out[rel] = {"status": "package only"}
    for off, pkg in (extra or {}).items():
        off_path = Path(off) if Path(off).is_absolute() else official.parent / off
        out[off] = compare_module(off_path.read_text(), (package / pkg).read_text(), renames)
    return out


def module_digest(source: str, renames: Dict[str, str]) -> dict:
    """The normalised module without its source: sha256 of each top-level definition's `ast.dump`, and the import
    set. Two modules are `same` by compare_module iff their digests are equal (definition order aside)."""
    imports, body = normalise(source, renames)
    return {"imports": sorted(map(list, imports)),
            "defs": {_label(s): hashlib.sha256(ast.dump(s).encode()).hexdigest()[:16] for s in body}}


def tree_digest(tree: Path, renames: Dict[str, str]) -> Dict[str, dict]:
    """module_digest of every module of a tree, keyed by its path relative to the tree."""
    return {p.relative_to(tree).as_posix(): module_digest(p.read_text(), renames) for p in sorted(tree.rglob("*.py"))}


def compare_digests(official: Dict[str, dict], package: Dict[str, dict]) -> Dict[str, dict]:
    """compare_module's verdicts from two tree_digest results (a stored official digest vs an installed package)."""
    out = {}
    for rel in sorted(set(official) | set(package)):
        if rel not in package:
            out[rel] = {"status": "missing in package"}
            continue
        if rel not in official:
            out[rel] = {"status": "package only"}
            continue
        o, p = official[rel], package[rel]
        oi, pi = {tuple(x) for x in o["imports"]}, {tuple(x) for x in p["imports"]}
        differs = [k for k in list(o["defs"]) + [k for k in p["defs"] if k not in o["defs"]]
                   if o["defs"].get(k) != p["defs"].get(k)]
        r = {"status": "same", "imports_only_official": sorted(map(list, oi - pi)),
             "imports_only_package": sorted(map(list, pi - oi)), "differs": differs}
        if differs or oi != pi:
            r["status"] = "differs"
        out[rel] = r
    return out


def format_table(results: Dict[str, dict]) -> str:
    lines = [f"{'module':<48} result"]
    for rel, r in results.items():
        detail = ""
        if r.get("differs"):
            detail += " | " + "; ".join(r["differs"])
        if r.get("imports_only_official") or r.get("imports_only_package"):
            detail += f" | imports official-only {r['imports_only_official']} package-only {r['imports_only_package']}"
        lines.append(f"{rel:<48} {r['status']}{detail}")
    return "\n".join(lines)


def numeric_check(official: Path, bicodec_dir: Path, seconds: float = 2.0, seed: int = 0) -> Dict[str, float]:
    """Both trees' `BiCodec.load_from_checkpoint(bicodec_dir)` on the same inputs: max |difference| of the semantic
    ids, global ids, d-vector, x-vector and detokenized audio (0.0 everywhere = bit-identical). Needs torch and the
    package installed; the official tree is imported from `official`'s parent as `sparktts`."""
    import numpy as np
    import torch

    sys.path.insert(0, str(official.resolve().parent))
    from sparktts.models.bicodec import BiCodec as Official
    from spark_tts_lib.models.bicodec import BiCodec as Package

    models = {"official": Official.load_from_checkpoint(bicodec_dir),
              "package": Package.load_from_checkpoint(bicodec_dir)}
    feat_dim = models["official"].encoder.encoder.input_channels
    g = torch.Generator().manual_seed(seed)
    n = int(16000 * seconds)
    batch = {"wav": 0.1 * torch.randn(1, n, generator=g), "ref_wav": 0.1 * torch.randn(1, n, generator=g),
             "feat": torch.randn(1, n // 320, feat_dim, generator=g)}
    outs = {}
    for name, m in models.items():
        with torch.no_grad():
            sem, glob = m.tokenize(batch)
            mel = m.mel_transformer(batch["ref_wav"]).squeeze(1)
            x_vec, d_vec = m.speaker_encoder(mel.transpose(1, 2))
            wav = m.detokenize(sem, glob)
        outs[name] = dict(semantic=sem, global_ids=glob, x_vector=x_vec, d_vector=d_vec, audio=wav)
    return {k: float((outs["official"][k].double() - outs["package"][k].double()).abs().max())
            for k in outs["official"]}


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(prog="spark_ast_check", description=__doc__.split("\n")[0])
    ap.add_argument("official", type=Path, help="the official sparktts/ folder")
    ap.add_argument("package", type=Path, help="the repackaged tree (spark_tts_lib/)")
    ap.add_argument("--rename", action="append", default=None, metavar="OLD=NEW",
                    help="package name in imports to rename (default spark_tts_lib=sparktts)")
    ap.add_argument("--extra", action="append", default=[], metavar="OFFICIAL=PACKAGE",
                    help="also compare OFFICIAL (relative to the official tree's parent) with PACKAGE (relative to "
                         "the package tree), e.g. cli/SparkTTS.py=SparkTTS.py")
    ap.add_argument("--json", type=Path, help="write the per-module results here as JSON")
    ap.add_argument("--digest", type=Path, metavar="OUT",
                    help="write the official tree's digest (per module: import set, sha256 per definition) here")
    ap.add_argument("--numeric", type=Path, metavar="BICODEC_DIR",
                    help="also load this BiCodec folder with both trees and print the max |difference| per output")
    a = ap.parse_args(argv)
    for p, what in ((a.official, "official"), (a.package, "package")):
        if not p.is_dir():
            print(f"spark_ast_check: error: {what} tree {p} is not a folder", file=sys.stderr)
            return 2
    renames = dict(r.split("=", 1) for r in (a.rename or ["spark_tts_lib=sparktts"]))
    extra = dict(e.split("=", 1) for e in a.extra)
    results = compare_trees(a.official, a.package, renames, extra)
    print(format_table(results))
    if a.digest is not None:
        a.digest.write_text(json.dumps(tree_digest(a.official, renames), indent=1, sort_keys=True) + "\n")
    if a.numeric is not None:
        if not (a.numeric / "config.yaml").is_file():
            print(f"spark_ast_check: error: --numeric {a.numeric} holds no config.yaml", file=sys.stderr)
            return 2
        diffs = numeric_check(a.official, a.numeric)
        print("numeric (official vs package, max |d|): " + ", ".join(f"{k} {v:g}" for k, v in diffs.items()))
        results["numeric"] = {"status": "same" if not any(diffs.values()) else "differs", "max_abs": diffs}
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    official_ok = all(r["status"].startswith("same") for k, r in results.items()
                      if r["status"] != "package only" and k not in extra)
    return 0 if official_ok else 1


if __name__ == "__main__":
    sys.exit(main())
