"""Golden fixtures in the repo: verify passes, corruption and staleness are named, size budget holds."""
import json
import shutil
from pathlib import Path

from impl.cli import main
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
    manifest["files"][name]["versions"]["torch"] = "0.0.1"
    fx.write_manifest(tmp_path, manifest)
    f = tmp_path / name
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    assert main(["fixtures", "verify", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "sha256" in out and "generated with torch 0.0.1" in out


def test_fixtures_missing_manifest_is_clear(tmp_path, capsys):
    assert main(["fixtures", "verify", "--dir", str(tmp_path)]) == 2
    assert "voiceport fixtures generate" in capsys.readouterr().err


def test_fixtures_parity_toy_fixture_mode(tmp_path):
    assert main(["parity", "toy", "--fixtures", str(FIXTURES), "--report", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["components"][0]["env"]["reference"].startswith("fixture")
    assert main(["parity", "toy", "--bug", "conv3", "--fixtures", str(FIXTURES), "--report", str(tmp_path)]) == 1
