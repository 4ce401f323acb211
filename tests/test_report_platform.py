"""The report proves what runs: device, backend, precision, variant, ops path and BLAS in the header and per section;
one section set per shipped LM variant (`--variant` picks one); strict fp32 (MLX_ENABLE_TF32=0) and, on a GPU
backend, a device-default-precision section judged against derived TF32 bounds (not applicable on the CPU)."""
import json
import math
import os

import numpy as np
import pytest

from parity import toy
from parity.dev_cli import main
from parity.harness import TF32_SCALE, U_FP32, U_TF32, precision_probe, run_spec, tf32_limit
from parity.report import DEVICE_SECTION, device_precision_section
from parity.spec import Pair, SpecError

FIELDS = ("device", "backend", "precision", "ops_path", "blas")


def _tf32(x: np.ndarray) -> np.ndarray:
    """float32 -> TF32 (10 stored mantissa bits, round to nearest even), as float32: what TF32 products read."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    drop = 13  # 23 - 10 mantissa bits
    half, mask = 1 << (drop - 1), (1 << drop) - 1
    lsb = (b >> drop) & 1
    r = ((b + half - 1 + lsb) & ~np.uint64(mask)).astype(np.uint32)
    return r.view(np.float32)


def test_tf32_bound_is_the_fp32_limit_times_the_unit_roundoff_ratio():
    assert (U_FP32, U_TF32) == (2.0 ** -24, 2.0 ** -11) and TF32_SCALE == 2 ** 13
    assert tf32_limit(1e-6, "floor") == pytest.approx(8.192e-3)
    assert tf32_limit(1e-6, "bound") == pytest.approx(8.192e-3)
    assert tf32_limit(1e-10, "kl") == pytest.approx(1e-10 * 2 ** 26)  # KL: quadratic in the logit error
    assert tf32_limit(0.0, "exact") is None  # codes and ids: no bound, a discrete choice can flip
    # The ratio is what TF32 rounding does to a product's inputs: |tf32(x) - x| <= u_TF32 |x| (and not much less).
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    rel = np.abs(_tf32(x).astype(np.float64) - x) / np.abs(x)
    assert rel.max() <= U_TF32 and rel.max() > 0.9 * U_TF32


def test_precision_probe_measures_fp32_here_and_would_see_tf32():
    """On this CPU the probe product is exact (fp32); the same product on TF32-rounded inputs gives n, which the
    probe names "tf32": it can tell the two apart."""
    got = precision_probe()
    assert got["mode"] == "fp32", got
    n = 256
    a = np.full((n, n), 1 + 2.0 ** -15, np.float32)
    assert (a @ np.ones((n, n), np.float32))[0, 0] == n + n * 2.0 ** -15
    assert (_tf32(a) @ np.ones((n, n), np.float32))[0, 0] == n


def test_report_header_and_sections_name_what_ran(tmp_path):
    assert main(["parity", "toy", "--report", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    plat = data["platform"]
    assert all(plat[k] for k in FIELDS), plat
    assert plat["backend"] == "cpu" and plat["precision_measured"] == "fp32"
    for sec in data["sections"]:
        assert {**plat, "variant": sec["platform"]["variant"]} == sec["platform"]
    dev = data["device_precision"]
    assert dev["applicable"] is False and dev["why"].startswith("not applicable (no TF32 on this backend)")
    assert not any(s["name"] == DEVICE_SECTION for s in data["sections"])
    page = (tmp_path / "index.html").read_text()
    for label in ("MLX backend", "precision", "model variant", "ops path (impl.ops.path())", "BLAS",
                  "not applicable (no TF32 on this backend)"):
        assert label in page, label
    assert page.count("ran on: ") == len(data["sections"])


def test_parity_sets_strict_fp32_for_the_run_and_restores(monkeypatch):
    """`./vp parity` sets MLX_ENABLE_TF32=0 before the sub-command imports MLX; `--precision device` removes it;
    both restore the caller's value."""
    from impl import cli

    seen = []
    monkeypatch.setattr(cli, "main", lambda argv, **kw: seen.append(os.environ.get("MLX_ENABLE_TF32")) or 0)
    monkeypatch.setenv("MLX_ENABLE_TF32", "1")
    main(["parity", "toy"])
    main(["parity", "toy", "--precision", "device"])
    main(["parity", "toy", "--precision=device"])
    main(["dac", "--help"])
    assert seen == ["0", None, None, "1"] and os.environ["MLX_ENABLE_TF32"] == "1"


def _shipped():
    from impl import accel

    return accel.shipped_variants()


def test_lm_specs_run_on_every_shipped_variant_and_variant_picks_one(tmp_path):
    shipped = _shipped()
    assert shipped[:2] == ["plain", "fused"] and "cpu" in shipped  # this machine's CPU device ships "cpu"
    assert main(["parity", "llama", "qwen2-0.5b", "--fixtures", "--report", str(tmp_path / "all")]) == 0
    data = json.loads((tmp_path / "all" / "report.json").read_text())
    names = [s["name"] for s in data["sections"]]
    assert names == [n for v in shipped for n in (f"LM layers (llama-small[{v}])", f"LM KL (llama-small[{v}], "
                                                  "teacher-forced through the KV cache)")] + \
        [f"Spark LM (Qwen2) layers (qwen2-small[{v}])" for v in shipped]
    assert [s["platform"]["variant"] for s in data["sections"]] == [v for v in shipped for _ in (0, 1)] + shipped
    assert data["variants"] == shipped
    by = {s["name"]: s for s in data["sections"]}
    # Fused projections have no q/k/v modules: named, not silently dropped; the plain model taps them all.
    plain, fused = by["Spark LM (Qwen2) layers (qwen2-small[plain])"], by["Spark LM (Qwen2) layers (qwen2-small[fused])"]
    assert not plain["notes"] and fused["cases"] == plain["cases"] - 2 * 6  # 3 projections x 2 layers, propagated+iso
    assert "model.layers.0.self_attn.q_proj" in fused["notes"][0] and "o_proj" not in fused["notes"][0]
    comp = {c["spec"]: c for c in data["components"]}
    assert "qkv_proj" in comp["qwen2-small[fused]"]["untapped"]["model.layers.1.self_attn.v_proj"]

    assert main(["parity", "llama", "--fixtures", "--variant", "fused", "--report", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert [s["platform"]["variant"] for s in one["sections"]] == ["fused", "fused"]
    assert main(["parity", "llama", "--fixtures", "--variant", "turbo", "--report", str(tmp_path / "bad")]) == 2


def test_variant_section_fails_on_a_perturbed_variant(tmp_path, monkeypatch):
    """A bug only in the fused variant (its q|k|v matrix's k rows scaled) fails the fused section, not plain."""
    import mlx.core as mx

    from impl.accel import lm

    fuse = lm.fuse

    def broken(model):
        fuse(model)
        a = model.layers[0].self_attn
        H, hd = a.n_heads, a.head_dim
        w = a.qkv_proj.weight
        a.qkv_proj.weight = mx.concatenate([w[:H * hd], w[H * hd:] * 1.001])
        return model

    monkeypatch.setattr(lm, "fuse", broken)
    assert main(["parity", "llama", "--fixtures", "--report", str(tmp_path)]) == 1
    data = json.loads((tmp_path / "report.json").read_text())
    verdicts = {s["platform"]["variant"]: s["passed"] for s in data["sections"] if s["name"].startswith("LM layers")}
    assert verdicts["plain"] and not verdicts["fused"], verdicts


def test_untapped_pairs_only_for_accelerated_variants():
    """A path the model lacks is a SpecError for the plain model (a typo), an untapped pair for a variant."""
    spec = toy.spec(pairs=[Pair("conv1", "conv1"), Pair("conv9", "conv2")])
    with pytest.raises(SpecError, match="conv9"):
        run_spec(spec, variant="plain")
    rep = run_spec(spec, variant="fused")
    assert list(rep.untapped) == ["conv9 <- conv2"] and "children: " in rep.untapped["conv9 <- conv2"]
    assert [r.name for r in rep.rows] == ["conv1", "output:y"] and rep.ok and rep.spec == "toy[fused]"


def _child(cases, name="LM layers (llama-small[fused])", passed=False):
    return {"platform": {"precision": "device default", "precision_probe": "probe: tf32"},
            "sections": [{"name": name, "passed": passed, "reference": "fixture x", "details": [
                {"case": c, "kind": k, "err": e, "limit": lim, "ok": e <= lim, "detail": ""}
                for c, k, e, lim in cases]}]}


def test_device_precision_section_judges_each_case_against_its_tf32_bound():
    child = _child([("a", "floor", 3.6e-4, 1.1e-6), ("a (isolated)", "floor", 1e-7, 1e-6), ("kl", "kl", 1e-4, 1e-10),
                    ("ids", "exact", 45.0, 0.0), ("codes", "exact", 0.0, 0.0)])
    sec = device_precision_section(child)
    assert sec.passed and sec.name == DEVICE_SECTION and sec.cases == 3  # float cases; exact ones listed apart
    assert sec.worst_case == "LM layers (llama-small[fused]): a" and sec.limit == pytest.approx(1.1e-6 * 8192)
    assert "1 of 1 sections of this run fail their strict-fp32 limits" in sec.notes[1]
    assert "1 of 2 cases differ" in sec.notes[2] and "ids (45 mismatches" in sec.notes[2]
    exact = [d for d in sec.details if d["kind"] == "exact"]
    assert [d["detail"].split(" (")[0] for d in exact] == ["not bounded under TF32"] * 2
    # over the TF32 bound: a failed section naming the case (a real bug is orders above any rounding)
    bad = device_precision_section(_child([("a", "floor", 1e-2, 1.1e-6), ("b", "kl", 1.0, 1e-10)]))
    assert not bad.passed and bad.first_divergence.startswith("LM layers (llama-small[fused]): a")
    assert "over the fp32 limit by" in bad.details[0]["detail"]
    # a float computed from flipped ids (same case group, after the differing exact case) is named, not bounded;
    # the same error in another group, or before the flip, is judged
    flip = [("clone: ids", "exact", 0.0, 0.0), ("clone: audio", "floor", 1e-4, 1e-6),
            ("tr: audio first", "floor", math.inf, 0.0), ("tr: ids", "exact", 3.0, 0.0), ("tr: audio", "floor",
                                                                                       math.inf, 0.0)]
    sec = device_precision_section(_child(flip, name="Spark generation (greedy)"))
    assert not sec.passed and sec.first_divergence.startswith("Spark generation (greedy): tr: audio first")
    down = [d for d in sec.details if d["kind"] == "downstream"]
    assert [d["case"] for d in down] == ["Spark generation (greedy): tr: audio"]
    assert "computed from different ids (tr: ids differs)" in down[0]["detail"] and "1 float cases" in sec.notes[-1]
    assert device_precision_section(_child([flip[0], flip[1], *flip[3:]])).passed
    # a section that could not run at the device default is a failed case, not a silent gap
    gone = device_precision_section({"sections": [{"name": "x", "passed": False, "details": [],
                                                   "first_divergence": "RuntimeError: boom"}]})
    assert not gone.passed and "could not run: RuntimeError: boom" in gone.first_divergence


def test_gpu_backend_adds_the_device_precision_section_from_a_child_run(tmp_path, monkeypatch):
    """Where the backend is a GPU's, the strict run starts a child at the device default and reports its errors
    against TF32 bounds as one more section (here the child runs on this CPU: every case within its bound)."""
    import parity.harness as h

    real = h.run_platform
    monkeypatch.setattr(h, "run_platform", lambda precision="fp32": {**real(precision), "backend": "cuda"})
    assert main(["parity", "toy", "--report", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert [s["name"] for s in data["sections"]] == ["toy (toy)", DEVICE_SECTION]
    dev, sec = data["device_precision"], data["sections"][-1]
    assert dev["applicable"] and dev["why"] == "measured" and dev["child_exit"] == 0
    child = json.loads((tmp_path / dev["report"]).read_text())
    assert child["device_precision"]["why"] == "this run is the device-default run"
    assert sec["passed"] and sec["cases"] == child["sections"][0]["cases"]
    assert main(["parity", "toy", "--no-device-precision", "--report", str(tmp_path / "off")]) == 0
    off = json.loads((tmp_path / "off" / "report.json").read_text())
    assert len(off["sections"]) == 1 and off["device_precision"]["why"].startswith("not measured")


def test_live_lm_reference_is_recorded_once_for_all_variants(tmp_path, monkeypatch):
    import parity.harness as h

    calls = []
    real = h.record_reference
    monkeypatch.setattr(h, "record_reference", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    assert main(["parity", "llama", "--quick", "--report", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert calls == ["llama-small"] and len(data["sections"]) == 2 * len(_shipped())
    assert {s["reference"] for s in data["sections"]} == {"live"}
