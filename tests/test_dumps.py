"""The tensor-dump protocol (docs/dump-protocol.md, parity/ports/dumps.py): two producers in their own processes
(tools/dump_impl.py, tools/dump_mlx_audio.py) pass the checker; a tampered tensor is reported at exactly that
tensor; missing tensors, wrong shapes, wrong dtypes and wrong protocols are errors naming what is wrong.

The layer component is the small Llama (fixtures/llama): its inputs, checkpoint and producers run in seconds. The
contract components (protocol §5, parity/ports/dump_contracts.py) are the prompt ids, the two samplers and the
speaker profile (the real-size DAC on three LibriVox clips, the slowest: tens of seconds)."""
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
CONTRACTS = ["outetts-prompt", "outetts-sampler", "speaker-profile", "spark-prompt", "spark-sampler"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dump-inputs")
    dumps.export_inputs(d, [COMP])
    return d


def _produce(tool: str, inputs: Path, out: Path, *extra: str, comps=(COMP,)) -> Path:
    """Run a producer as its own process (it shares nothing with this one but the files)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / tool), str(inputs), str(out), *comps, *extra],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
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
    (d / "dump.json").write_text(json.dumps({"protocol": "voiceport-dump/3", "components": [COMP]}))
    with pytest.raises(dumps.DumpError, match="protocol 'voiceport-dump/3', this checker reads 'voiceport-dump/1' "
                                              "and 'voiceport-dump/2'"):
        dumps.check(d, tmp_path / "r")
    with pytest.raises(dumps.DumpError, match="no dump.json"):
        dumps.check(tmp_path, tmp_path / "r")


def test_dumps_version_1_layer_dump_is_still_read(impl_dump, tmp_path, capsys):
    """A voiceport-dump/1 dump of a layer component is judged as before; its not-produced list is version 1's."""
    import shutil

    d = tmp_path / "d"
    shutil.copytree(impl_dump, d)
    (d / "dump.json").write_text(json.dumps({"protocol": "voiceport-dump/1", "components": [COMP]}))
    code, rep = _check(d, tmp_path)
    assert code == 0 and rep["protocol"] == "voiceport-dump/1"
    assert rep["not_produced"] == [c for c in dumps.COMPONENTS if c != COMP]


def test_dumps_version_1_contract_component_is_refused(impl_dump, tmp_path):
    import shutil

    d = tmp_path / "d"
    shutil.copytree(impl_dump, d)
    (d / "outetts-prompt").mkdir()
    (d / "dump.json").write_text(json.dumps({"protocol": "voiceport-dump/1", "components": ["outetts-prompt"]}))
    with pytest.raises(dumps.DumpError, match="unknown voiceport-dump/1 component 'outetts-prompt' \\(a "
                                              "voiceport-dump/2 component"):
        dumps.check(d, tmp_path / "r")


def _check_torch_free(dump: Path, report: Path) -> None:
    """The checker reads fixtures and dumps only: torch and transformers blocked, it still passes the dump."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "from pathlib import Path\nfrom parity.ports import dumps\n"
            f"sys.exit(dumps.check(Path({str(dump)!r}), Path({str(report)!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]


def test_dumps_check_runs_without_torch(impl_dump, tmp_path):
    _check_torch_free(impl_dump, tmp_path / "r")


# ------------------------------------------------------------------------------------- contract components

@pytest.fixture(scope="module")
def contract_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract-inputs")
    dumps.export_inputs(d, CONTRACTS)
    return d


@pytest.fixture(scope="module")
def contract_dump(contract_inputs, tmp_path_factory):
    return _produce("dump_impl.py", contract_inputs, tmp_path_factory.mktemp("contract-impl"), comps=CONTRACTS)


def _contract_cases(name: str) -> int:
    """The number of cases the live contract's record holds for a dump component."""
    from parity.ports import dump_contracts

    rec, _ = dump_contracts.record(name, ROOT / "fixtures")
    return {"outetts-prompt": lambda: int(rec["n"]), "spark-prompt": lambda: 3 * len(rec["text"]),
            "outetts-sampler": lambda: len(rec["sets"]), "spark-sampler": lambda: len(rec["sets"]),
            "speaker-profile": lambda: None}[name]()


def _section(rep, comp):
    return next(s for s in rep["sections"] if s["name"].startswith(f"dump {comp} "))


def test_dumps_contract_inputs_are_self_describing(contract_inputs):
    for comp in CONTRACTS:
        info = json.loads((contract_inputs / comp / "component.json").read_text(encoding="utf-8"))
        assert info["protocol"] == dumps.PROTOCOL and info["kind"] == "contract" and info["outputs"]
        assert (contract_inputs / comp / "inputs.json").exists()
    prompt = json.loads((contract_inputs / "outetts-prompt" / "inputs.json").read_text(encoding="utf-8"))["cases"]
    assert len(prompt) == _contract_cases("outetts-prompt") and {c["speaker"] is None for c in prompt} == {True, False}
    assert (contract_inputs / "outetts-prompt" / "tokenizer" / "tokenizer.json").exists()
    assert (contract_inputs / "spark-prompt" / "tokenizer" / "tokenizer.json").exists()
    sets = json.loads((contract_inputs / "outetts-sampler" / "inputs.json").read_text())["sets"]
    x = load_file(str(contract_inputs / "outetts-sampler" / "inputs.safetensors"))
    assert all(list(x[f"logits:{s['name']}"].shape) == s["shape"] for s in sets)
    spk = json.loads((contract_inputs / "speaker-profile" / "inputs.json").read_text(encoding="utf-8"))["cases"]
    assert all((contract_inputs / "speaker-profile" / c["audio"]).is_file() and c["words"] for c in spk)


def test_dumps_impl_contracts_pass(contract_dump, tmp_path, capsys):
    code, rep = _check(contract_dump, tmp_path)
    out = capsys.readouterr().out
    assert code == 0 and rep["passed"], out[-3000:]
    for comp in CONTRACTS:
        sec = _section(rep, comp)
        n = _contract_cases(comp)
        assert sec["passed"] and (n is None or sec["cases"] == n), (comp, sec["cases"], n)
    # the profile's values before rounding were given and compared
    assert any("before rounding" in d["case"] for d in _section(rep, "speaker-profile")["details"])
    assert rep["not_produced"] == list(dumps.COMPONENTS)  # the layer components: not in this dump
    assert "NOT PRODUCED dac" in out


def _edited_contract(src: Path, dst: Path, comp: str, edit) -> Path:
    import shutil

    shutil.copytree(src, dst)
    f = dst / comp / "dump.safetensors"
    t = load_file(str(f))
    edit(t)
    save_file(t, str(f))
    return dst


def test_dumps_tampered_prompt_id_is_named(contract_dump, tmp_path):
    def edit(t):
        t["ids:case-037"] = t["ids:case-037"].copy()
        t["ids:case-037"][-2] += 1

    code, rep = _check(_edited_contract(contract_dump, tmp_path / "d", "outetts-prompt", edit), tmp_path)
    sec = _section(rep, "outetts-prompt")
    assert code == 1 and not sec["passed"] and sec["first_divergence"].startswith("ids:case-037 ")
    assert [d["case"].split()[0] for d in sec["details"] if not d["ok"]] == ["ids:case-037"]
    n = len(load_file(str(contract_dump / "outetts-prompt" / "dump.safetensors"))["ids:case-037"])
    assert f"position {n - 2} of {n}" in sec["first_divergence"]
    assert _section(rep, "spark-prompt")["passed"]  # the other components are untouched


def test_dumps_tampered_spark_prompt_mode_is_named(contract_dump, tmp_path):
    def edit(t):
        t["ids:case-004:create"] = t["ids:case-004:create"][:-1]

    code, rep = _check(_edited_contract(contract_dump, tmp_path / "d", "spark-prompt", edit), tmp_path)
    assert code == 1 and _section(rep, "spark-prompt")["first_divergence"].startswith("ids:case-004:create ")


def test_dumps_tampered_distribution_is_named(contract_dump, tmp_path):
    """1e-3 of the top token's probability moved to the runner-up: ~230x the float32 softmax bound (1.01 x 71 u relative)."""
    def edit(t):
        p = t["p:set-010"].astype(np.float64)
        flat = p.reshape(-1)
        top, second = np.argsort(flat)[::-1][:2]
        flat[top], flat[second] = flat[top] * (1 - 1e-3), flat[second] + flat[top] * 1e-3
        t["p:set-010"] = p.astype(np.float32)

    code, rep = _check(_edited_contract(contract_dump, tmp_path / "d", "outetts-sampler", edit), tmp_path)
    sec = _section(rep, "outetts-sampler")
    assert code == 1 and sec["first_divergence"].startswith("p:set-010 ")
    assert [d["case"].split()[0] for d in sec["details"] if not d["ok"]] == ["p:set-010"]


def test_dumps_distribution_support_and_shape_errors_are_named(contract_dump, tmp_path, capsys):
    def edit(t):
        p = t["p:set-000"].copy()
        p.reshape(-1)[np.flatnonzero(p.reshape(-1) == 0)[0]] = 1e-30  # a removed token kept
        t["p:set-000"] = p
        t["p:set-003"] = np.ascontiguousarray(t["p:set-003"].T)
        t.pop("p:set-004")

    code, rep = _check(_edited_contract(contract_dump, tmp_path / "d", "spark-sampler", edit), tmp_path)
    out = capsys.readouterr().out
    sec = _section(rep, "spark-sampler")
    assert code == 1 and sec["first_divergence"].startswith("p:set-000 ") and "support differs" in \
        sec["first_divergence"]
    assert "error: spark-sampler: tensor 'p:set-003' is float32" in out
    assert "error: spark-sampler: tensor 'p:set-004' missing" in out


def test_dumps_tampered_profile_code_is_named(contract_dump, tmp_path, capsys):
    import shutil

    d = tmp_path / "d"
    shutil.copytree(contract_dump, d)
    f = d / "speaker-profile" / "profiles.json"
    profiles = json.loads(f.read_text(encoding="utf-8"))
    name = sorted(profiles)[1]
    profiles[name]["words"][2]["c2"][0] = (profiles[name]["words"][2]["c2"][0] + 1) % 1024
    f.write_text(json.dumps(profiles, ensure_ascii=False, indent=2), encoding="utf-8")
    code, rep = _check(d, tmp_path)
    sec = _section(rep, "speaker-profile")
    assert code == 1 and sec["first_divergence"].startswith(f"{name} ") and "c2 codes" in sec["first_divergence"]
    bad = {d["case"].split(": ")[-1] for d in sec["details"] if not d["ok"]}
    assert bad == {"c2 codes", "JSON file bytes"}, bad


def test_dumps_missing_profile_is_named(contract_dump, tmp_path, capsys):
    import shutil

    d = tmp_path / "d"
    shutil.copytree(contract_dump, d)
    f = d / "speaker-profile" / "profiles.json"
    profiles = json.loads(f.read_text(encoding="utf-8"))
    name = sorted(profiles)[0]
    del profiles[name]
    f.write_text(json.dumps(profiles), encoding="utf-8")
    code, _ = _check(d, tmp_path)
    assert code == 1 and f"error: speaker-profile: profile {name!r} missing from profiles.json" in \
        capsys.readouterr().out


def test_dumps_contract_check_runs_without_torch(contract_dump, tmp_path):
    _check_torch_free(contract_dump, tmp_path / "r")


def test_dumps_producer_tamper_flag_names_the_id(contract_inputs, tmp_path):
    """The producer's own --tamper (the checker self-test a porter can run) on one prompt's ids."""
    dump = _produce("dump_impl.py", contract_inputs, tmp_path / "dump", "--tamper", "ids:case-011",
                    comps=["outetts-prompt"])
    code, rep = _check(dump, tmp_path)
    assert code == 1 and _section(rep, "outetts-prompt")["first_divergence"].startswith("ids:case-011 ")


def test_dumps_mlx_audio_contracts_are_judged(contract_inputs, tmp_path, capsys):
    """mlx-audio's own prompt builders and sampler, through its producer: the Spark prompt equals the official;
    its OuteTTS prompt normalises text with outetts' older utils/preprocessing rules (no ftfy / NFKC), and its
    sampler filters the untempered distribution (mlx_lm make_sampler: top-p, min-p, top-k, then temperature in the
    draw): both reported at their first case."""
    from parity.ports import PortUnavailable, activate

    try:
        activate("mlx-audio", "mlx_audio")
    except PortUnavailable as e:
        pytest.skip(str(e))
    comps = ["outetts-prompt", "outetts-sampler", "spark-prompt"]
    dump = _produce("dump_mlx_audio.py", contract_inputs, tmp_path / "dump", comps=comps)
    code, rep = _check(dump, tmp_path)
    assert code == 1 and "mlx-audio" in rep["producer"]
    assert _section(rep, "spark-prompt")["passed"]
    assert _section(rep, "outetts-prompt")["first_divergence"].startswith("ids:case-000 ")
    assert "support differs" in _section(rep, "outetts-sampler")["first_divergence"]

