"""tools/spark_ast_check.py: the proof that spark-tts-lib 0.2.1 is the official Spark-TTS code.

The normalisation is checked on a small pair written here (formatting, import order, docstrings, licence header and
the package rename do not count; a changed constant does, and is named). The installed package is then re-checked
on every run against the stored digest of the official tree (fixtures/spark/official_digest.json, SparkAudio/
Spark-TTS 2f1ea90; the official code itself is not stored): every definition equal, the import differences exactly
the recorded ones.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("spark_ast_check", ROOT / "tools" / "spark_ast_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


OFFICIAL = '''import torch
import torch.nn as nn
from sparktts.modules.blocks.layers import Snake1d, WNConv1d


class A(nn.Module):
    """Docstring."""

    def forward(self, x):
        return x * 0.5 + self.b(x)


def helper(x):
    return torch.tanh(x)
'''

PACKAGE = '''# Copyright (c) 2025 Someone
#
# Licensed under the Apache License, Version 2.0
"""A module docstring the official file lacks."""
import torch.nn as nn
from spark_tts_lib.modules.blocks.layers import (
    WNConv1d,
    Snake1d,
)
import torch


class A(nn.Module):
    def forward(self, x):
        # a comment
        return (x * 0.5
                + self.b(x))


def helper(x):
    """Other words."""
    return torch.tanh(x)
'''


def _pair(tmp_path: Path, package_src: str):
    off, pkg = tmp_path / "official", tmp_path / "package"
    (off / "m").mkdir(parents=True)
    (pkg / "m").mkdir(parents=True)
    (off / "m" / "a.py").write_text(OFFICIAL)
    (pkg / "m" / "a.py").write_text(package_src)
    (pkg / "extra.py").write_text("X = 1\n")
    return off, pkg


def test_formatting_imports_docstrings_and_rename_do_not_count(tmp_path):
    tool = _tool()
    off, pkg = _pair(tmp_path, PACKAGE)
    res = tool.compare_trees(off, pkg, {"spark_tts_lib": "sparktts"})
    assert res["m/a.py"]["status"] == "same", res
    assert res["extra.py"]["status"] == "package only"
    assert tool.main([str(off), str(pkg)]) == 0


def test_a_changed_constant_is_named(tmp_path):
    tool = _tool()
    off, pkg = _pair(tmp_path, PACKAGE.replace("x * 0.5", "x * 0.25"))
    res = tool.compare_trees(off, pkg, {"spark_tts_lib": "sparktts"})
    assert res["m/a.py"]["status"] == "differs"
    assert res["m/a.py"]["differs"] == ["class A: forward"]
    assert tool.main([str(off), str(pkg)]) == 1
    # the digest route (stored official tree vs installed package) gives the same verdict
    d = tool.compare_digests(tool.tree_digest(off, {}), tool.tree_digest(pkg, {"spark_tts_lib": "sparktts"}))
    assert d["m/a.py"]["differs"] == ["class A"]


def test_a_changed_import_is_named(tmp_path):
    tool = _tool()
    src = PACKAGE.replace("from spark_tts_lib.modules.blocks.layers", "from spark_tts_lib.modules.blocks.other")
    off, pkg = _pair(tmp_path, src)
    res = tool.compare_trees(off, pkg, {"spark_tts_lib": "sparktts"})
    assert res["m/a.py"]["status"] == "differs" and res["m/a.py"]["differs"] == []
    assert ["sparktts.modules.blocks.other", "Snake1d", ""] in res["m/a.py"]["imports_only_package"]


def test_bad_folder_is_one_error_exit_2(tmp_path, capsys):
    tool = _tool()
    assert tool.main([str(tmp_path / "nope"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "official tree" in err[0] and "nope" in err[0]


# What the recorded run found (fixtures/spark/ast_check.json): every definition identical; these import differences
# only. Numerically neutral: both weight norms compute torch._weight_norm(v, g, 0) (the official folds it once at
# load, the package per forward: bit-identical outputs, `--numeric` on the real-size seeded BiCodec); DictConfig,
# Set, Union are unused names; `ceil` is called by round_up_multiple, training-only (quantize dropout), which the
# official file calls without importing it.
EXPECTED_IMPORT_DIFFERENCES = {
    "models/bicodec.py": ([["omegaconf", "DictConfig", ""]], []),
    "modules/blocks/layers.py": ([["torch.nn.utils", "weight_norm", ""]],
                                 [["torch.nn.utils.parametrizations", "weight_norm", ""]]),
    "modules/blocks/vocos.py": ([["torch.nn.utils", "weight_norm", ""]],
                                [["torch.nn.utils.parametrizations", "weight_norm", ""]]),
    "modules/vq/factorized_vector_quantize.py": ([["torch.nn.utils", "weight_norm", ""]],
                                                 [["torch.nn.utils.parametrizations", "weight_norm", ""]]),
    "modules/fsq/residual_fsq.py": ([], [["math", "ceil", ""]]),
    "utils/file.py": ([["typing", "Set", ""], ["typing", "Union", ""]], []),
}


def test_installed_package_matches_the_official_digest():
    pytest.importorskip("torch")
    spec = importlib.util.find_spec("spark_tts_lib")
    if spec is None:
        pytest.skip("spark-tts-lib is not installed")
    tool = _tool()
    official = json.loads((ROOT / "fixtures" / "spark" / "official_digest.json").read_text())
    package = tool.tree_digest(Path(spec.origin).parent, {"spark_tts_lib": "sparktts"})
    res = tool.compare_digests(official, package)
    assert {k for k, r in res.items() if r["status"] == "package only"} == {
        "SparkTTS.py", "__init__.py", "utils/download.py"}
    for rel, r in res.items():
        if r["status"] == "package only":
            continue
        assert r["differs"] == [], f"{rel}: definitions differ from the official tree: {r['differs']}"
        got = (r["imports_only_official"], r["imports_only_package"])
        assert got == EXPECTED_IMPORT_DIFFERENCES.get(rel, ([], [])), f"{rel}: imports {got}"
