"""The harness can fail: a bug injected into one middle layer of a toy port is named as the first divergence."""
import json

import numpy as np
import pytest

from parity import toy
from parity.harness import compare, run_spec
from parity.report import write_report
from parity.spec import FLOOR_WHY, Pair, SpecError, Tol, resolve


def test_harness_clean_toy_passes():
    report = run_spec(toy.spec())
    assert report.ok, report.summary()
    assert report.first_divergence is None
    assert report.compared == 6  # 5 layers + 1 output
    for row in report.rows:
        assert row.floor > 0, f"{row.name}: fp32-vs-fp64 floor not measured"
        assert row.max_abs <= row.limit
        if row.kind == "layer":
            assert row.iso_ok, row


def test_harness_injected_bug_named_as_first_divergence():
    report = run_spec(toy.spec(bug="conv2"))
    assert not report.ok
    assert report.first_divergence == "conv2", report.summary()
    assert report.first_isolated_divergence == "conv2"
    rows = {r.name: r for r in report.rows}
    # Before the bug: at the floor. The buggy layer: isolated error above tolerance.
    assert rows["conv1"].ok and rows["act"].ok
    assert rows["conv2"].iso_max_abs > rows["conv2"].iso_limit
    # The next layer, fed the reference's own input, is at the floor again.
    assert rows["lin"].iso_ok and rows["lin"].iso_max_abs <= rows["lin"].iso_limit
    # ... while its propagated error carries the bug on.
    assert not rows["lin"].ok
    assert not rows["output:y"].ok
    # the summary counts isolated failures too (a layer can fail only in isolation)
    assert "1 over tolerance in isolation, first: conv2" in report.summary()
    assert "conv2 (isolated): max|d|=" in report.summary()


def test_harness_bug_in_last_layer_only_fails_there():
    report = run_spec(toy.spec(bug="conv3"))
    assert report.first_divergence == "conv3"
    assert [r.name for r in report.rows if r.iso_ok is False] == ["conv3"]


def test_harness_unknown_module_is_a_clear_error():
    bad = toy.spec(pairs=[Pair("conv9", "conv1")])
    with pytest.raises(SpecError, match=r"impl module 'conv9' does not exist.*children: .*conv1"):
        run_spec(bad)
    bad = toy.spec(pairs=[Pair("conv1", "encoder.conv1")])
    with pytest.raises(SpecError, match=r"reference module 'encoder.conv1' does not exist"):
        run_spec(bad)


def test_toy_bug_in_unknown_layer_is_a_clear_error(capsys, tmp_path):
    """`voiceport parity toy --bug NAME` with a layer the toy lacks: exit 2 and the toy's layers, no traceback."""
    from parity.dev_cli import main

    assert main(["parity", "toy", "--bug", "blocks.2", "--report", str(tmp_path / "toy-bad")]) == 2
    err = capsys.readouterr().err
    assert "'blocks.2'" in err and "conv1, act, conv2, lin, conv3" in err


def test_harness_pattern_pairs_expand():
    p = Pair("decoder.blocks.{i}", "decoder.model.{i+1}", over=range(3))
    assert [(q.impl, q.ref) for q in p.expand()] == [
        ("decoder.blocks.0", "decoder.model.1"), ("decoder.blocks.1", "decoder.model.2"),
        ("decoder.blocks.2", "decoder.model.3")]
    with pytest.raises(SpecError, match="needs `over`"):
        Pair("a.{i}", "b.{i}").expand()
    with pytest.raises(SpecError, match="only arithmetic"):
        Pair("a.{__import__('os')}", "b", over=[0]).expand()


def test_harness_resolve_lists_and_dicts():
    ref = toy.ref_model()
    assert resolve(ref, "conv2", "reference") is ref.conv2


def test_harness_compare_exact_counts_mismatches_and_nan_fails():
    a = np.array([1, 2, 3, 4])
    res = compare(np.array([1, 2, 0, 4]), a, a, Tol.exact())
    assert not res["ok"] and res["mismatches"] == 1
    x = np.ones(8)
    res = compare(np.array([np.nan] + [1.0] * 7), x, x, Tol.floor(why=FLOOR_WHY))
    assert not res["ok"]
    res = compare(np.ones((2, 3)), np.ones((3, 2)), None, Tol.floor(why=FLOOR_WHY))
    assert not res["ok"] and "shape" in res["note"]


def test_harness_report_files(tmp_path):
    report = run_spec(toy.spec(bug="conv2"))
    write_report([report], tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["components"][0]["first_divergence"] == "conv2"
    assert data["passed"] is False and data["sections"][0]["passed"] is False
    html = (tmp_path / "index.html").read_text()
    assert "<svg" in html and "first divergence" in html and "conv2" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_harness_fixture_mode_same_verdicts_and_fails_on_perturbed_impl(tmp_path):
    """Recorded reference -> fixture -> replay: clean impl passes, a perturbed impl fails at the same layer."""
    from parity.fixtures import load_record, save_record
    from parity.harness import record_reference

    spec = toy.spec()
    entry = save_record(record_reference(spec, 0), spec, tmp_path / "toy.safetensors")
    rec = load_record(tmp_path / "toy.safetensors", entry)
    assert rec.source.startswith("fixture")
    live, replay = run_spec(spec), run_spec(spec, record=rec)
    assert replay.ok, replay.summary()
    assert [r.ok for r in live.rows] == [r.ok for r in replay.rows]
    bad = run_spec(toy.spec(bug="conv2"), record=rec)
    assert not bad.ok and bad.first_divergence == "conv2" and bad.first_isolated_divergence == "conv2"


def test_harness_fixture_mode_runs_without_torch(tmp_path):
    """The replay side imports no torch: run it in a subprocess where torch cannot be imported."""
    import subprocess
    import sys

    from parity.fixtures import save_record
    from parity.harness import record_reference

    spec = toy.spec()
    entry = save_record(record_reference(spec, 0), spec, tmp_path / "toy.safetensors")
    (tmp_path / "entry.json").write_text(json.dumps(entry))
    code = f"""
import sys, json; sys.modules['torch'] = None
from pathlib import Path
from parity import toy
from parity.fixtures import load_record
from parity.harness import run_spec
p = Path({str(tmp_path)!r})
rec = load_record(p / 'toy.safetensors', json.loads((p / 'entry.json').read_text()))
good, bad = run_spec(toy.spec(), record=rec), run_spec(toy.spec(bug='lin'), record=rec)
print(good.ok, bad.ok, bad.first_divergence)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.split() == ["True", "False", "lin"], res.stderr[-3000:]


def test_harness_fixture_regeneration_is_byte_identical(tmp_path):
    from parity.fixtures import save_record, sha256
    from parity.harness import record_reference

    spec = toy.spec()
    save_record(record_reference(spec, 0), spec, tmp_path / "a.safetensors")
    save_record(record_reference(spec, 0), spec, tmp_path / "b.safetensors")
    from safetensors.numpy import load_file
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []
    assert sha256(tmp_path / "a.safetensors") == sha256(tmp_path / "b.safetensors")


def test_harness_tolerance_without_why_is_an_error():
    """Every tolerance but exact states its derivation or reason (why=); without one it cannot be built."""
    for make in (lambda: Tol.floor(), lambda: Tol.floor(k=3, why="  "), lambda: Tol.kl(10), lambda: Tol(),
                 lambda: Tol.allclose(1e-3, 0, why=""), lambda: Tol(kind="cosine", k=2)):
        with pytest.raises(SpecError, match="why="):
            make()
    assert Tol.exact().kind == "exact" and Tol.floor(why=FLOOR_WHY).k == 10


def test_harness_every_tol_call_states_why():
    """Static check over parity/ and tests/: every Tol(...) / Tol.floor|kl|allclose(...) call passes why= (a
    Tol built in a branch no test reaches would otherwise escape the construction check)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    missing = []
    for path in sorted([*root.glob("parity/**/*.py"), *root.glob("tests/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                f.value.id == "Tol" else ("Tol" if isinstance(f, ast.Name) and f.id == "Tol" else None)
            if name is None or name == "exact":
                continue
            if path.name == "test_harness.py" and node.lineno < _this_test_line():
                continue  # the negative cases above
            kw = {k.arg for k in node.keywords}
            if "why" not in kw and not (name == "Tol" and any(k.arg == "kind" for k in node.keywords) and
                                        _kind(node) == "exact"):
                missing.append(f"{path.relative_to(root)}:{node.lineno} Tol.{name}")
    assert not missing, "tolerances without why=: " + ", ".join(missing)


def _kind(node):
    import ast

    for k in node.keywords:
        if k.arg == "kind" and isinstance(k.value, ast.Constant):
            return k.value.value
    return None


def _this_test_line():
    import inspect

    return inspect.getsourcelines(test_harness_every_tol_call_states_why)[1]


def test_report_json_sections_interface(tmp_path):
    """report.json's machine-readable interface: {"passed", "sections": [{"name", "passed", "cases", "worst",
    "limit", "first_divergence", ...}]}; ./vp parity exits 1 when a section fails, 0 when all pass."""
    from parity.dev_cli import main

    assert main(["parity", "toy", "--report", str(tmp_path / "good")]) == 0
    assert main(["parity", "toy", "--bug", "lin", "--report", str(tmp_path / "bad")]) == 1
    for name, passed in (("good", True), ("bad", False)):
        data = json.loads((tmp_path / name / "report.json").read_text())
        assert data["passed"] is passed
        (sec,) = data["sections"]
        assert {"name", "passed", "cases", "worst", "limit", "first_divergence", "compared", "limit_why",
                "worst_ratio", "details"} <= set(sec)
        assert sec["passed"] is passed and sec["cases"] >= 6
        if passed:
            assert sec["first_divergence"] is None and sec["worst"] <= sec["limit"]
        else:
            assert sec["first_divergence"].startswith("lin") and sec["worst"] > sec["limit"]


def test_contract_section_worst_and_first_divergence():
    from parity.contracts import Case, floor_case, floor_ref, ids_case, section

    r64 = np.linspace(-1, 1, 50)
    ref = floor_ref((r64 + 1e-7).astype(np.float32), r64)
    cases = [floor_case("good", r64.astype(np.float32), ref), ids_case("ids", [1, 2, 3], [1, 2, 3]),
             floor_case("short", r64[:49].astype(np.float32), ref), ids_case("ids2", [1, 5, 3, 4], [1, 2, 3])]
    sec = section("s", "what", cases, "why", "metric")
    assert not sec.passed and sec.cases == 4
    assert sec.first_divergence == "short: shape [49] != official [50]"
    assert cases[3].detail.startswith("position 1 of 3") and cases[3].err == 2
    ok = section("s", "what", cases[:2], "why", "metric")
    assert ok.passed and ok.first_divergence is None and ok.worst <= ok.limit
    bad = floor_case("off", (r64 + 1e-3).astype(np.float32), ref)
    assert not bad.ok and "first over the limit at flat index 0" in bad.detail
    assert Case("x", 0.0, 0.0, True, "exact").ratio == 0.0


def test_report_progress_is_quiet_and_timed(tmp_path):
    """`./vp parity` prints one line per component and stage with the elapsed time, nothing from the official
    packages (pyloudnorm's clipping warnings, torch FutureWarnings, transformers' bars, outetts' loguru lines)."""
    import re
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "parity.dev_cli", "parity", "audio-path", "--report",
                          str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    stray = [ln for ln in lines if not re.match(r"\[parity \d+:\d\d\] ", ln)]
    assert not stray, stray
    assert any("audio-path: official side" in ln for ln in lines)
    assert any(ln.split("] ", 1)[1].startswith("PASS audio path: 26 cases") for ln in lines), lines
