"""The Qwen2 LM's golden fixture (the `qwen2-0.5b` component's quick run, recorded by `./vp fixtures generate
qwen2-0.5b`) replays with torch unimportable, as on a machine without the reference: clean impl passes every layer,
the teacher-forced KL and the 64 greedy ids; a perturbed q_proj bias is named as the first divergence."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from parity import fixtures as fx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

_REPLAY = """
import sys, json; sys.modules['torch'] = None
from pathlib import Path
from parity import fixtures as fx
from parity.cli import COMPONENTS, factory
from parity.harness import run_spec
folder = Path({folder!r})
spec = factory(COMPONENTS["qwen2-0.5b"][0])(**COMPONENTS["qwen2-0.5b"][2])
{patch}
rep = run_spec(spec, record=fx.load_record(*fx.find(folder, spec, 0)))
print(json.dumps([rep.ok, rep.compared, rep.first_divergence, rep.first_isolated_divergence,
                  sorted(r.name for r in rep.rows if r.kind == "output")]))
"""


def _replay(patch: str = "pass") -> list:
    res = subprocess.run([sys.executable, "-c", _REPLAY.format(folder=str(FIXTURES), patch=patch)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_qwen2_fixture_in_the_manifest_and_small():
    entries = [e for e in fx.read_manifest(FIXTURES)["files"].values() if e.get("component") == "qwen2-0.5b"]
    assert len(entries) == 1 and entries[0]["kwargs"]["config"] == "small"
    assert entries[0]["bytes"] <= 1.5e6, f"qwen2 fixture {entries[0]['bytes'] / 1e6:.2f} MB"


def test_qwen2_fixture_replays_without_torch():
    ok, compared, first, first_iso, outputs = _replay()
    assert ok and first is None and first_iso is None
    assert compared == 1 + 9 * 2 + 1 + 3 and outputs == ["output:greedy", "output:logits", "output:logits_tf"]


def test_qwen2_fixture_replay_names_a_perturbed_bias():
    """Layer 1's q_proj bias times 1.001 in impl: the replay fails, first at that projection (isolated too)."""
    patch = ("build = spec.build_impl\n"
             "def broken(build=build):\n"
             "    m = build()\n"
             "    q = m.model.layers[1].self_attn.q_proj\n"
             "    q.bias = q.bias * 1.001\n"
             "    return m\n"
             "spec.build_impl = broken")
    ok, _, first, first_iso, _ = _replay(patch)
    assert not ok and first == first_iso == "model.layers.1.self_attn.q_proj"
