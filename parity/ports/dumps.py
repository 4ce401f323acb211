"""The tensor-dump protocol (docs/dump-protocol.md): ports in any language verified from files, torch-free.

  export_inputs(DIR)        `./vp parity --dump-inputs DIR`: per component, DIR/<component>/ holds inputs.safetensors
                            (the seeded inputs), checkpoint (a link to the seeded official-format checkpoint) and
                            component.json (what to run, and every tensor to write: name, shape, kind, comparison).
  check(DUMPS, report)      `./vp parity --dumps DUMPS --report OUT`: each DUMPS/<component>/dump.safetensors against
                            the recorded official outputs (fixtures/), at the spec's tolerances; the same report.

What a dump is compared with is the golden fixture of the component's quick spec (parity/fixtures.py: fp64 and fp32
reference outputs per layer, long tensors at fixed subsample indices). Layers are compared propagated only (a dump
holds one run; the isolated error needs the port's layers fed the reference's inputs).

Version 2 adds the contract components (parity/ports/dump_contracts.py: prompt ids, sampler distributions, the
speaker profile JSON), judged against the live contracts' golden records at their tolerances. The checker reads
version 1 dumps too (the six layer components, unchanged).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

PROTOCOL = "voiceport-dump/2"
READS = ("voiceport-dump/1", PROTOCOL)  # /1: the six layer components only
ROOT = Path(__file__).resolve().parents[2]
# component -> (the fixture's spec name, what the producer runs: the spec's forward in words)
COMPONENTS: Dict[str, Tuple[str, str]] = {
    "dac": ("dac-24khz_speech",
            "audio (1, 12000) float32 at 24 kHz -> encoder (audio as (B, L, 1) channels-last, or (B, 1, L) NCL) -> "
            "residual VQ -> decoder on the quantized latent z_q; no padding (12000 samples -> 37 frames)"),
    "llama": ("llama-small",
              "ids (2, 32) -> logits of one full forward (every layer tensor is from this forward); logits_tf: the "
              "same ids through the port's KV cache, a prefill of the first 16 then one token per step, concatenated"),
    "qwen2-0.5b": ("qwen2-small",
                   "ids (1, 32) -> logits (full forward, the layer tensors' run); logits_tf as for llama; greedy: 64 "
                   "argmax ids after the prompt ids[0, :12] (the new ids only)"),
    "spark-decoder": ("spark-decoder-tiny",
                      "semantic (1, 4) + global (1, 1, 8) ids -> BiCodec.detokenize -> audio (1, 1280)"),
    "spark-global": ("spark-global-tiny",
                     "ref_wav (1, 1920) at 16 kHz -> mel (B, T, 128) -> speaker_encoder.tokenize (global_ids) and "
                     "speaker_encoder(mel) (x_vector, d_vector)"),
    "spark-semantic": ("spark-semantic-tiny",
                       "feat (1, 50, 64) -> encoder -> z (B, T, C) -> quantizer.tokenize (semantic_ids)"),
}


# outputs of a layer component's report spec that are not part of the protocol (the report's own probes: the FSQ's
# values before round, the computed-filterbank mel, the ECAPA pooling on short probes): a dump need not hold them
REPORT_ONLY_OUTPUTS = {"spark-global": ("fsq_bounded", "mel_computed", "pool_short")}


def protocol_outputs(component: str, entry: Dict[str, Any]) -> List[str]:
    """The recorded outputs a dump of `component` must hold, in the record's order."""
    return [o for o in entry["outputs"] if o not in REPORT_ONLY_OUTPUTS.get(component, ())]


def _contracts():
    from parity.ports import dump_contracts

    return dump_contracts.COMPONENTS


def all_components() -> List[str]:
    """Every component of the current protocol: the layer components, then the contract components (§5)."""
    return list(COMPONENTS) + list(_contracts())


class DumpError(ValueError):
    """A dump that cannot be compared (no such component, wrong protocol): the message says what to fix."""


def official_name(key: str) -> str:
    """A fixture's layer key ('impl <- ref' when the two trees' paths differ) -> the official module path."""
    return key.split(" <- ")[-1]


def _entry(fixtures: Path, spec_name: str, seed: int = 0) -> Tuple[Path, Dict[str, Any]]:
    from parity.fixtures import read_manifest, sha256

    manifest = read_manifest(fixtures)
    for fname, entry in manifest["files"].items():
        if entry["spec"] == spec_name and entry["seed"] == seed:
            path = fixtures / fname
            if sha256(path) != entry["sha256"]:
                raise DumpError(f"fixture {fname}: sha256 mismatch (run `./vp fixtures verify`)")
            return path, entry
    raise DumpError(f"no fixture for {spec_name!r} seed {seed} in {fixtures}")


def expected_tensors(component: str, fixtures: Path = ROOT / "fixtures") -> Dict[str, Dict[str, Any]]:
    """name -> {kind, shape, compared} of every tensor a dump of `component` must hold (protocol order)."""
    spec_name = COMPONENTS[component][0]
    _, entry = _entry(fixtures, spec_name)
    tols = _tolerances(component)
    out = {}
    for key, meta in sorted(entry["layers"].items(), key=lambda kv: kv[1]["order"]):
        name = official_name(key)
        out[name] = {"kind": "layer", "shape": meta["shape"], "compare": tols[name].kind}
    for name in protocol_outputs(component, entry):
        shape = entry["outputs"][name]
        out[f"output:{name}"] = {"kind": "output", "shape": shape, "compare": tols[f"output:{name}"].kind}
    return out


# ------------------------------------------------------------------------------------------------- inputs

def _spec_kwargs(component: str) -> Dict[str, Any]:
    from parity import cli

    return dict(cli.COMPONENTS[component][2])  # the quick kwargs: what the fixtures recorded


def _checkpoint(component: str, kwargs: Dict[str, Any]) -> Path:
    """The seeded official-format checkpoint the component's spec loads (file or folder)."""
    if component == "dac":
        from impl.seeded.dac import seeded_checkpoint

        return seeded_checkpoint(kwargs["config"], 0)
    if component == "llama":
        from parity.specs.llama import checkpoint

        return checkpoint(kwargs["config"], 0)
    if component == "qwen2-0.5b":
        from parity.specs.qwen2 import checkpoint

        return checkpoint(kwargs["config"], 0)
    from parity.specs.spark import checkpoint

    return checkpoint(kwargs["config"], 0)


def export_inputs(out: Path, components: Optional[List[str]] = None, fixtures: Path = ROOT / "fixtures",
                  seed: int = 0) -> List[Path]:
    """Write the inputs a producer needs into out/<component>/ (see the module docstring); returns the folders."""
    from safetensors.numpy import save_file

    from parity import cli

    out = Path(out)
    written = []
    for comp in components or all_components():
        if comp in _contracts():
            from parity.ports import dump_contracts

            from parity.fixtures import FixtureError

            d = out / comp
            d.mkdir(parents=True, exist_ok=True)
            try:
                info = {"protocol": PROTOCOL, "component": comp, **dump_contracts.export(comp, d, fixtures)}
            except FixtureError as e:  # no official record to export the inputs of: say so, export the rest
                print(f"[dumps] {comp}: not exported: {e}", file=sys.stderr)
                continue
            (d / "component.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(d)
            continue
        if comp not in COMPONENTS:
            raise DumpError(f"no dump protocol for component {comp!r}; known: {all_components()}")
        kwargs = _spec_kwargs(comp)
        spec = cli.factory(cli.COMPONENTS[comp][0])(**kwargs)
        if spec.name != COMPONENTS[comp][0]:
            raise DumpError(f"{comp}: the quick spec is {spec.name!r}, the protocol's fixture {COMPONENTS[comp][0]!r}")
        d = out / comp
        d.mkdir(parents=True, exist_ok=True)
        inputs = spec.make_inputs(seed)
        save_file({k: np.ascontiguousarray(v) for k, v in inputs.items()}, str(d / "inputs.safetensors"))
        ckpt = _checkpoint(comp, kwargs)
        link = d / "checkpoint"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ckpt.resolve())
        info = {
            "protocol": PROTOCOL, "component": comp, "kind": "layers", "spec": spec.name, "seed": seed,
            "config": {k: v for k, v in kwargs.items()},
            "checkpoint": {"path": "checkpoint", "format": _FORMATS[comp]},
            "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in inputs.items()},
            "run": COMPONENTS[comp][1],
            "tensors": expected_tensors(comp, fixtures),
            "layout": "channels-last: (batch, time, channels) for every 3-D tensor, whatever the port computes in",
            "dtypes": "floats as float32 (or float64); ids and codes as any integer type",
        }
        (d / "component.json").write_text(json.dumps(info, indent=1) + "\n")
        written.append(d)
    return written


_FORMATS = {
    "dac": "descript-audio-codec state dict as safetensors (keys as DAC.state_dict(): weight_g/weight_v weight norm, "
           "torch layouts (out, in, k); ConvTranspose1d (in, out, k)); config: impl.dac 24khz_speech",
    "llama": "Hugging Face Llama folder (config.json + model.safetensors)",
    "qwen2-0.5b": "Hugging Face Qwen2 folder (config.json + model.safetensors)",
    "spark-decoder": "Spark-TTS BiCodec folder (config.yaml + model.safetensors, the official state dict)",
    "spark-global": "Spark-TTS BiCodec folder (config.yaml + model.safetensors, the official state dict)",
    "spark-semantic": "Spark-TTS BiCodec folder (config.yaml + model.safetensors, the official state dict)",
}


# ------------------------------------------------------------------------------------------------- check

def read_dump(folder: Path) -> Tuple[Dict[str, Any], Dict[str, Path]]:
    """(dump.json, {component: its dump.safetensors (layer components) or its folder (contract components)});
    DumpError for a folder that is not a dump of a version this checker reads."""
    folder = Path(folder)
    meta_path = folder / "dump.json"
    if not meta_path.exists():
        raise DumpError(f"{folder}: no dump.json (a dump folder holds dump.json and <component>/dump.safetensors)")
    meta = json.loads(meta_path.read_text())
    version = meta.get("protocol")
    if version not in READS:
        raise DumpError(f"{meta_path}: protocol {version!r}, this checker reads {' and '.join(map(repr, READS))}")
    known = list(COMPONENTS) if version == READS[0] else all_components()
    files = {}
    for comp in meta.get("components") or sorted(p.name for p in folder.iterdir() if p.is_dir()):
        if comp not in known:
            extra = f" (a {PROTOCOL} component: write protocol {PROTOCOL!r})" if comp in all_components() else ""
            raise DumpError(f"{folder}: unknown {version} component {comp!r}{extra}; known: {known}")
        if comp in _contracts():
            if not (folder / comp).is_dir():
                raise DumpError(f"{folder}: component {comp!r} listed but {folder / comp} does not exist")
            files[comp] = folder / comp
            continue
        f = folder / comp / "dump.safetensors"
        if not f.exists():
            raise DumpError(f"{folder}: component {comp!r} listed but {f} does not exist")
        files[comp] = f
    if not files:
        raise DumpError(f"{folder}: no component folders with dump.safetensors")
    return meta, files


def check_component(comp: str, dump_file: Path, fixtures: Path = ROOT / "fixtures", producer: str = ""):
    """One component's dump vs its fixture -> (parity.harness.Report, [problems]); problems name each tensor that
    is missing, of the wrong shape or dtype."""
    from safetensors.numpy import load_file

    from parity.fixtures import load_record
    from parity.harness import Report, Row, _sub, compare

    spec_name = COMPONENTS[comp][0]
    path, entry = _entry(fixtures, spec_name)
    record = load_record(path, entry)
    got = load_file(str(dump_file))
    problems: List[str] = []
    tols = _tolerances(comp)
    rows: List[Row] = []
    items = [(official_name(k), lay, "layer") for k, lay in sorted(record.layers.items(), key=lambda kv: kv[1].order)]
    for name, lay, kind in items:
        rows.append(_row(comp, name, got.get(name), lay.shape, lay.r64, lay.r32, lay.index, tols.get(name),
                         kind, len(rows), problems))
    for oname in protocol_outputs(comp, entry):
        r64, r32 = record.outputs64[oname], record.outputs32[oname]
        rows.append(_row(comp, f"output:{oname}", got.get(f"output:{oname}"), list(r64.shape), r64, r32, None,
                         tols.get(f"output:{oname}"), "output", len(rows), problems))
    extra = sorted(set(got) - {r.name for r in rows})
    first = next((r.name for r in rows if not r.ok), None)
    compared = sum(1 for r in rows if not r.note.startswith("missing"))
    env = {"reference": f"fixture {path.name}", "dump": str(dump_file), "producer": producer}
    desc = f"dump of {comp} ({spec_name}) by {producer or 'an unnamed producer'}: {COMPONENTS[comp][1]}"
    if extra:
        desc += f"; {len(extra)} tensors not in the protocol ignored: {', '.join(extra[:5])}"
    report = Report(f"dump:{spec_name}", 0, rows, first, None, all(r.ok for r in rows), compared, {}, desc, env)
    return report, problems


def _row(comp, name, x, shape, r64, r32, index, tol, kind, depth, problems):
    from parity.harness import Row, _sub, compare

    tol = tol or _default_tol()
    row = Row(name, name, name, kind, depth, list(shape), tol.describe(), False)
    if x is None:
        row.note = "missing from the dump"
        problems.append(f"{comp}: tensor {name!r} missing (expected shape {list(shape)})")
        return row
    if list(x.shape) != list(shape):
        hint = ""
        if x.ndim == 3 and list(x.shape) == [shape[0], shape[2], shape[1]]:
            hint = " (looks like (batch, channels, time): the protocol is channels-last, swap axes 1 and 2)"
        row.note = f"shape {list(x.shape)} != expected {list(shape)}{hint}"
        problems.append(f"{comp}: tensor {name!r} has shape {list(x.shape)}, expected {list(shape)}{hint}")
        return row
    if x.dtype.kind == "f" and x.dtype not in (np.float32, np.float64) or x.dtype.kind not in "fiub":
        row.note = f"dtype {x.dtype}: floats must be float32 or float64, ids and codes integers"
        problems.append(f"{comp}: tensor {name!r} is {x.dtype}; floats must be float32 or float64 (fp32 tolerances)")
        return row
    res = compare(_sub(x, index), r64, r32, tol)
    row.ok = bool(res.pop("ok"))
    res.pop("shape", None)
    for k, v in res.items():
        if k in Row.__dataclass_fields__:
            setattr(row, k, v)
    return row


def _default_tol():
    from parity.spec import DEFAULT_TOL

    return DEFAULT_TOL


def _tolerances(comp: str) -> Dict[str, Any]:
    """Official name -> Tol, from the component's spec (the same tolerances as the live harness). Building a spec
    imports impl and the spec module, not torch."""
    from parity import cli
    from parity.harness import pair_key

    spec = cli.factory(cli.COMPONENTS[comp][0])(**_spec_kwargs(comp))
    tols = {official_name(pair_key(p)): p.tol for p in spec.expanded_pairs()}
    tols.update({f"output:{k}": v for k, v in spec.outputs.items()})
    return tols


def check(dumps: Path, report_dir: Path, fixtures: Path = ROOT / "fixtures") -> int:
    """`./vp parity --dumps DUMPS --report OUT`: every component in the dump, one section each; exit code."""
    from parity.contracts import from_report
    from parity.report import _atomic_write, write_report

    meta, files = read_dump(dumps)
    producer = str(meta.get("producer", ""))
    sections, reports, all_problems = [], [], []
    for comp, f in files.items():
        if comp in _contracts():
            from parity.ports import dump_contracts

            from parity.contracts import Section
            from parity.fixtures import FixtureError

            try:
                sec, problems = dump_contracts.check(comp, f, fixtures, producer)
            except FixtureError as e:  # no official record to judge against: this component fails, the rest go on
                sec, problems = Section(f"dump {comp} ({producer or 'producer?'})", "(could not run)", 0,
                                        float("inf"), 0.0, None, str(e), False, "-", "-"), [f"{comp}: {e}"]
            sec.reference = "fixture"
            sec.notes += problems
            sections.append(sec)
            all_problems += problems
            print(("PASS " if sec.passed else "FAIL ") + f"{comp}: {sec.cases} cases, first divergence: "
                  f"{sec.first_divergence or 'none'}")
            continue
        report, problems = check_component(comp, f, fixtures, producer)
        sec = from_report(report, f"dump {comp} ({producer or 'producer?'})",
                          f"{report.compared} tensors of {len(report.rows)} in the protocol: every layer "
                          "(propagated) and the outputs, vs the recorded official outputs")
        sec.notes += problems
        sections.append(sec)
        reports.append(report)
        all_problems += problems
        print(("PASS " if sec.passed else "FAIL ") + f"{comp}: {report.compared} tensors, first divergence: "
              f"{report.first_divergence or 'none'}")
    for p in all_problems:
        print(f"  error: {p}")
    known = list(COMPONENTS) if meta["protocol"] == READS[0] else all_components()
    not_produced = [c for c in known if c not in files]
    for c in not_produced:
        print(f"NOT PRODUCED {c}: the producer omitted it from dump.json (not compared, not a failure)")
    if not_produced and sections:
        sections[0].notes.append(f"{meta['protocol']} components not produced by {producer or 'this producer'} "
                                 f"(not compared): {', '.join(not_produced)}")
    page = write_report(sections, report_dir, reports=reports)
    rj = Path(report_dir) / "report.json"
    data = json.loads(rj.read_text())
    data.update(protocol=meta["protocol"], producer=producer, not_produced=not_produced)
    _atomic_write(rj, json.dumps(data, indent=1))
    n_bad = sum(1 for s in sections if not s.passed)
    print(f"[dumps] {producer or dumps}: {len(sections) - n_bad} of {len(sections)} components pass, "
          f"{len(not_produced)} not produced; report: {page}")
    return 0 if n_bad == 0 else 1
