"""Golden fixtures in the repo: verify passes, corruption and staleness are named, size budget holds."""
import json
import shutil
from pathlib import Path

from parity.dev_cli import main
from parity import fixtures as fx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_fixtures_repo_verify_ok_and_under_20mb():
    assert fx.verify(FIXTURES) == []
    manifest = fx.read_manifest(FIXTURES)
    assert sum(e["bytes"] for e in manifest["files"].values()) <= 20e6


def test_fixtures_corruption_and_version_drift_are_named(tmp_path, capsys):
    shutil.copytree(FIXTURES / "toy", tmp_path / "toy")
    manifest = fx.read_manifest(FIXTURES)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k.startswith("toy/")}
    name = next(iter(manifest["files"]))
    # drift is judged on the recorded packages that are installed: none of them in a torch-free env (macOS CI)
    drifted = next((p for p in manifest["files"][name]["versions"] if p in fx._env()), None)
    if drifted:
        manifest["files"][name]["versions"][drifted] = "0.0.1"
    fx.write_manifest(tmp_path, manifest)
    f = tmp_path / name
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    assert main(["fixtures", "verify", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "sha256" in out
    assert (f"generated with {drifted} 0.0.1" in out) if drifted else ("generated with" not in out)


def test_fixtures_version_drift_is_a_release_not_a_build(tmp_path, monkeypatch):
    """torch 2.13.0 (macOS wheel, or a CUDA build) verifies fixtures recorded with 2.13.0+cpu; 2.12.0+cpu does not."""
    shutil.copytree(FIXTURES / "toy", tmp_path / "toy")
    manifest = fx.read_manifest(FIXTURES)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k.startswith("toy/")}
    for entry in manifest["files"].values():
        entry["versions"] = {"torch": "2.13.0+cpu"}
    fx.write_manifest(tmp_path, manifest)
    for installed, stale in (("2.13.0+cpu", False), ("2.13.0", False), ("2.13.0+cu130", False),
                             ("2.12.0+cpu", True), ("2.13.1", True)):
        monkeypatch.setattr(fx, "_env", lambda v=installed: {"torch": v})
        problems = fx.verify(tmp_path)
        assert bool(problems) == stale, (installed, problems)
        assert all(f"installed {installed}: stale" in p for p in problems)


def test_fixtures_missing_manifest_is_clear(tmp_path, capsys):
    assert main(["fixtures", "verify", "--dir", str(tmp_path)]) == 2
    assert "./vp fixtures generate" in capsys.readouterr().err


def test_fixtures_parity_toy_fixture_mode(tmp_path):
    assert main(["parity", "toy", "--fixtures", str(FIXTURES), "--report", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["components"][0]["env"]["reference"].startswith("fixture")
    assert main(["parity", "toy", "--bug", "conv3", "--fixtures", str(FIXTURES), "--report", str(tmp_path)]) == 1


def test_fixtures_dac_and_llama_replay_without_torch_and_catch_a_perturbation():
    """The repo's DAC and LM fixtures replay with torch unimportable (as on an Apple Silicon runner): clean
    impl passes every layer; one Snake alpha scaled by 1.001 fails, first at that residual unit."""
    import subprocess
    import sys

    code = f"""
import sys, json; sys.modules['torch'] = None
import impl
from pathlib import Path
from parity.cli import COMPONENTS, factory
from parity.fixtures import find, load_record
from parity.harness import run_spec
folder = Path({str(FIXTURES)!r})
out = []
for name in ("dac", "llama"):
    spec = factory(COMPONENTS[name][0])(**COMPONENTS[name][2])
    path, entry = find(folder, spec, 0)
    rec = load_record(path, entry)
    rep = run_spec(spec, record=rec)
    out.append((rep.ok, rep.compared))
spec = factory(COMPONENTS["dac"][0])(**COMPONENTS["dac"][2])
build = spec.build_impl
def broken():
    m = build()
    u = m.decoder.model[3].block[2].block[0]
    u.alpha = u.alpha * 1.001
    return m
spec.build_impl = broken
path, entry = find(folder, spec, 0)
bad = run_spec(spec, record=load_record(path, entry))
print(json.dumps([out, bad.ok, bad.first_divergence]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    (dac_ok, dac_n), (llama_ok, llama_n) = json.loads(res.stdout.strip().splitlines()[-1])[0]
    bad_ok, first = json.loads(res.stdout.strip().splitlines()[-1])[1:]
    assert dac_ok and dac_n == 54 and llama_ok and llama_n >= 10
    assert not bad_ok and first == "decoder.model.3.block.2"


_REPLAY = """
import sys, json; sys.modules['torch'] = None
{patch}
from parity.dev_cli import main
rc = main(["parity", *{names!r}, "--fixtures", {fixtures!r}, "--report", {out!r}])
data = json.load(open({out!r} + "/report.json"))
print(json.dumps([rc, [(s["name"], s["passed"], s["cases"], s["first_divergence"], s["reference"])
                       for s in data["sections"]]]))
"""


def _replay(names, out, patch=""):
    import subprocess
    import sys

    code = _REPLAY.format(patch=patch, names=list(names), fixtures=str(FIXTURES), out=str(out))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip(), res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


CHEAP = ["prompt-ids", "sampler", "audio-path", "lm-greedy", "generation", "spark-prompt-ids", "spark-sampler"]


def test_fixtures_contract_sections_replay_without_torch(tmp_path):
    """The contract sections replay from fixtures/contracts with torch unimportable: every one passes, from its
    fixture, with cases; a one-line sampler bug (penalty window 63) fails the sampler section."""
    rc, secs = _replay(CHEAP, tmp_path / "good")
    assert rc == 0, secs
    assert len(secs) == len(CHEAP) and all(ok and n > 0 and ref.startswith("fixture") for _, ok, n, _, ref in secs)
    patch = ("import dataclasses, impl.outetts.sampler as S\n"
             "S.SamplerConfig.__dataclass_fields__['repetition_range'].default = 63\n"
             "S.SamplerConfig.__init__.__defaults__ = tuple(63 if d == 64 else d for d in "
             "S.SamplerConfig.__init__.__defaults__)\n")
    rc, secs = _replay(["sampler"], tmp_path / "bad", patch)
    (name, ok, _, first, _), = secs
    assert rc == 1 and not ok and first, secs


def test_fixtures_manifest_covers_every_contract():
    from parity.cli import CONTRACTS, contract

    manifest = fx.read_manifest(FIXTURES)
    for name in CONTRACTS:
        c = contract(name)
        path = fx.find_contract(FIXTURES, c.name, c.version)
        assert manifest["files"][str(path.relative_to(FIXTURES))]["bytes"] <= 1.5e6, name
