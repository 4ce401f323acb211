"""Spark-TTS golden fixtures (the spark-* components' quick runs, recorded by `./vp fixtures generate spark-decoder
spark-global spark-semantic spark-wav2vec2`) replay with torch unimportable, as on a machine without the reference:
clean impl passes every layer of the four paths, and a perturbation is named as the first divergence."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from parity import fixtures as fx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPECS = {"spark-decoder": "decoder_spec", "spark-global": "global_spec", "spark-semantic": "semantic_spec",
         "spark-wav2vec2": "wav2vec2_spec"}

_REPLAY = """
import sys, json; sys.modules['torch'] = None
from pathlib import Path
from parity import fixtures as fx
from parity.harness import run_spec
from parity.specs import spark as S
folder = Path({folder!r})
manifest = fx.read_manifest(folder)
out = {{}}
for name, entry in sorted(manifest["files"].items()):
    if entry.get("component") not in {specs!r}:
        continue
    spec = getattr(S, {specs!r}[entry["component"]])(**entry["kwargs"])
    {patch}
    rep = run_spec(spec, record=fx.load_record(*fx.find(folder, spec, entry["seed"])))
    out[entry["component"]] = [rep.ok, rep.compared, rep.first_divergence, len(entry["layers"])]
print(json.dumps(out))
"""


def _replay(patch: str = "pass") -> dict:
    code = _REPLAY.format(folder=str(FIXTURES), specs=SPECS, patch=patch)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_spark_fixtures_in_the_manifest_and_small():
    entries = {e.get("component"): e for e in fx.read_manifest(FIXTURES)["files"].values()}
    assert set(SPECS) <= set(entries), f"missing: {sorted(set(SPECS) - set(entries))}"
    total = sum(entries[c]["bytes"] for c in SPECS)
    # a budget, not a bound: 4.6 MB since the report's long wav2vec2 clip and pooling probes (e772505)
    assert total <= 5.0e6, f"spark fixtures {total / 1e6:.2f} MB"
    assert all(entries[c]["kwargs"]["config"] == "tiny" for c in SPECS)


def test_spark_fixtures_replay_without_torch():
    got = _replay()
    assert set(got) == set(SPECS), got
    for name, (ok, compared, first, layers) in got.items():
        assert ok and first is None, (name, first)
        assert compared >= layers > 0, (name, compared, layers)


@pytest.mark.parametrize("component,path", [("spark-decoder", "prenet.vocos_backbone.convnext.1"),
                                            ("spark-semantic", "encoder.encoder.convnext.0")])
def test_spark_fixtures_replay_names_a_perturbed_block(component, path):
    """One ConvNeXt block's layer scale (gamma) times 1.001 in impl: the replay fails, first at that block."""
    obj, idx = path.rsplit(".", 2)[0], int(path.rsplit(".", 1)[1])
    patch = (f"build = spec.build_impl\n"
             f"    def broken(build=build):\n"
             f"        m = build()\n"
             f"        b = m.{obj}.convnext[{idx}]\n"
             f"        b.gamma = b.gamma * 1.001\n"
             f"        return m\n"
             f"    spec.build_impl = broken if entry['component'] == {component!r} else spec.build_impl")
    got = _replay(patch)
    ok, _, first, _ = got[component]
    assert not ok and first == path, got[component]
    assert all(v[0] for k, v in got.items() if k != component)
