"""The tensor-dump protocol (docs/dump-protocol.md, parity/ports/dumps.py): two producers in their own processes
(tools/dump_impl.py, tools/dump_mlx_audio.py) pass the checker; a tampered tensor is reported at exactly that
tensor; missing tensors, wrong shapes, wrong dtypes and wrong protocols are errors naming what is wrong.

The component is the small Llama (fixtures/llama): its inputs, checkpoint and producers run in seconds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from parity.ports import dumps

ROOT = Path(__file__).resolve().parents[1]
COMP = "llama"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dump-inputs")
    dumps.export_inputs(d, [COMP])
    return d


def _produce(tool: str, inputs: Path, out: Path, *extra: str) -> Path:
    """Run a producer as its own process (it shares nothing with this one but the files)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / tool), str(inputs), str(out), COMP, *extra],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def impl_dump(inputs, tmp_path_factory):
    return _produce("dump_impl.py", inputs, tmp_path_factory.mktemp("dump-impl"))


def _check(dump: Path, tmp_path: Path):
    code = dumps.check(dump, tmp_path / "report")
    return code, json.loads((tmp_path / "report" / "report.json").read_text())


def test_dumps_inputs_list_every_recorded_tensor(inputs):
    info = json.loads((inputs / COMP / "component.json").read_text())
    assert info["protocol"] == dumps.PROTOCOL and (inputs / COMP / "checkpoint" / "config.json").exists()
    names = list(info["tensors"])
    # embeddings, 2 layers x (input_layernorm, self_attn, post_attention_layernorm, mlp, layer), final norm; 2 outputs
    assert len(names) == 1 + 2 * 5 + 1 + 2 and names[0] == "model.embed_tokens" and names[-1] == "output:logits_tf"
    assert info["tensors"]["model.layers.0.mlp"] == {"kind": "layer", "shape": [2, 32, 64], "compare": "floor"}


def test_dumps_impl_producer_passes(impl_dump, tmp_path):
    code, rep = _check(impl_dump, tmp_path)
    assert code == 0 and rep["passed"], rep["sections"][0]["first_divergence"]
    assert rep["components"][0]["compared"] == 14


def test_dumps_mlx_audio_producer_passes(inputs, tmp_path):
    from parity.ports import PortUnavailable, activate

    try:
        activate("mlx-audio", "mlx_audio")
    except PortUnavailable as e:
        pytest.skip(str(e))
    dump = _produce("dump_mlx_audio.py", inputs, tmp_path / "dump")
    code, rep = _check(dump, tmp_path)
    assert code == 0 and rep["passed"], rep["sections"][0]["first_divergence"]
    assert "mlx-audio" in json.loads((dump / "dump.json").read_text())["producer"]


def test_dumps_tampered_tensor_is_the_first_divergence(inputs, tmp_path):
    dump = _produce("dump_impl.py", inputs, tmp_path / "dump", "--tamper", "model.layers.1.mlp")
    code, rep = _check(dump, tmp_path)
    comp = rep["components"][0]
    assert code == 1 and comp["first_divergence"] == "model.layers.1.mlp"
    bad = [r["name"] for r in comp["rows"] if not r["ok"]]
    assert bad[0] == "model.layers.1.mlp"
    # the layers before it are untouched and pass
    names = [r["name"] for r in comp["rows"]]
    assert all(r["ok"] for r in comp["rows"][:names.index("model.layers.1.mlp")])


def _edited(src: Path, dst: Path, edit) -> Path:
    import shutil

    shutil.copytree(src, dst)
    f = dst / COMP / "dump.safetensors"
    t = load_file(str(f))
    edit(t)
    save_file(t, str(f))
    return dst


def test_dumps_missing_tensor_is_named(impl_dump, tmp_path, capsys):
    dump = _edited(impl_dump, tmp_path / "d", lambda t: t.pop("model.layers.0.self_attn"))
    code, rep = _check(dump, tmp_path)
    out = capsys.readouterr().out
    assert code == 1 and "error: llama: tensor 'model.layers.0.self_attn' missing (expected shape [2, 32, 64])" in out
    assert rep["components"][0]["first_divergence"] == "model.layers.0.self_attn"


def test_dumps_channels_first_tensor_is_a_named_shape_error(impl_dump, tmp_path, capsys):
    def edit(t):
        t["model.layers.0.mlp"] = np.ascontiguousarray(np.swapaxes(t["model.layers.0.mlp"], 1, 2))

    code, _ = _check(_edited(impl_dump, tmp_path / "d", edit), tmp_path)
    out = capsys.readouterr().out
    assert code == 1
    assert "tensor 'model.layers.0.mlp' has shape [2, 64, 32], expected [2, 32, 64]" in out
    assert "swap axes 1 and 2" in out


def test_dumps_half_precision_is_refused_by_name(impl_dump, tmp_path, capsys):
    def edit(t):
        t["model.norm"] = t["model.norm"].astype(np.float16)

    code, _ = _check(_edited(impl_dump, tmp_path / "d", edit), tmp_path)
    assert code == 1 and "tensor 'model.norm' is float16" in capsys.readouterr().out


def test_dumps_other_protocol_or_no_dump_is_refused(impl_dump, tmp_path):
    import shutil

    d = tmp_path / "d"
    shutil.copytree(impl_dump, d)
    (d / "dump.json").write_text(json.dumps({"protocol": "voiceport-dump/2", "components": [COMP]}))
    with pytest.raises(dumps.DumpError, match="protocol 'voiceport-dump/2'"):
        dumps.check(d, tmp_path / "r")
    with pytest.raises(dumps.DumpError, match="no dump.json"):
        dumps.check(tmp_path, tmp_path / "r")


def test_dumps_check_runs_without_torch(impl_dump, tmp_path):
    """The checker reads fixtures and dumps only: torch and transformers blocked, it still passes the impl dump."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "from pathlib import Path\nfrom parity.ports import dumps\n"
            f"sys.exit(dumps.check(Path({str(impl_dump)!r}), Path({str(tmp_path / 'r')!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
