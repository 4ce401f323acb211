"""Golden fixtures: the reference side of a parity run, recorded once, replayed where torch can't run.

A fixture is a `RefRecord` (see parity.harness) saved as safetensors: per mapped layer the fp64 and fp32
reference outputs (long tensors subsampled at fixed flat indices, enough to localise a divergence), the
isolated-run inputs and floor where they are small enough, and the spec's outputs. `fixtures/manifest.json`
holds, per file, the spec name, seed, spec arguments, a signature of the spec's layer map, package versions and
the file's sha256; no timestamps, so regeneration is byte-identical.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from parity.harness import LayerRef, RefRecord, _env
from parity.spec import Spec

MAX_ELEMS = 4096  # per compared tensor: longer ones keep MAX_ELEMS evenly spaced elements
MAX_ISO_ELEMS = 1 << 16  # isolated inputs are recorded only for layers whose inputs are at most this big
MAX_OUT_ELEMS = 1 << 18  # outputs longer than this are subsampled too (except KL-compared logits)
VERSIONED = ("torch", "transformers", "dac", "outetts", "spark-tts-lib")  # what produces the reference outputs


class FixtureError(ValueError):
    """Fixtures missing, corrupted or stale: the message says which and how to regenerate."""


def spec_signature(spec: Spec) -> str:
    """Hash of what a fixture depends on in the spec: name, layer map, tolerance kinds, outputs."""
    pairs = [(p.impl, p.ref, p.layout, p.tol.kind) for p in spec.expanded_pairs()]
    outs = sorted((k, v.kind) for k, v in spec.outputs.items())
    return hashlib.sha256(json.dumps([spec.name, pairs, outs]).encode()).hexdigest()[:16]


def _index(size: int, cap: int) -> Optional[np.ndarray]:
    if size <= cap:
        return None
    return np.unique(np.linspace(0, size - 1, cap).round().astype(np.int64))


def _flatten(prefix: str, x: Any, tensors: Dict[str, np.ndarray]) -> Any:
    """Nested args -> a JSON skeleton; arrays go to `tensors` under '<prefix>/<path>'."""
    if isinstance(x, np.ndarray):
        tensors[prefix] = np.ascontiguousarray(x)
        return {"__tensor__": prefix}
    if isinstance(x, (list, tuple)):
        return [_flatten(f"{prefix}/{i}", v, tensors) for i, v in enumerate(x)]
    if isinstance(x, dict):
        return {k: _flatten(f"{prefix}/{k}", v, tensors) for k, v in x.items()}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError(f"cannot record {type(x).__name__}")


def _unflatten(skel: Any, tensors: Dict[str, np.ndarray]) -> Any:
    if isinstance(skel, dict) and "__tensor__" in skel:
        return tensors[skel["__tensor__"]]
    if isinstance(skel, list):
        return [_unflatten(v, tensors) for v in skel]
    if isinstance(skel, dict):
        return {k: _unflatten(v, tensors) for k, v in skel.items()}
    return skel


def _nelems(x: Any) -> int:
    if isinstance(x, np.ndarray):
        return x.size
    if isinstance(x, (list, tuple)):
        return sum(_nelems(v) for v in x)
    if isinstance(x, dict):
        return sum(_nelems(v) for v in x.values())
    return 0


def save_record(rec: RefRecord, spec: Spec, path: Path) -> Dict[str, Any]:
    """Write `rec` to `path` (.safetensors); returns its manifest entry (without sha256)."""
    from safetensors.numpy import save

    tensors: Dict[str, np.ndarray] = {}
    layers = {}
    for i, (key, lay) in enumerate(rec.layers.items()):
        idx = _index(int(np.prod(lay.shape)) if lay.shape else 1, MAX_ELEMS)
        p = f"layer{i:03d}"
        tensors[f"{p}/r64"] = np.ascontiguousarray(lay.r64.reshape(-1)[idx] if idx is not None else lay.r64)
        tensors[f"{p}/r32"] = np.ascontiguousarray(lay.r32.reshape(-1)[idx] if idx is not None else lay.r32)
        if idx is not None:
            tensors[f"{p}/index"] = idx
        meta = {"prefix": p, "order": lay.order, "shape": lay.shape, "note": lay.note, "iso": None}
        if lay.iso_args is not None:
            n = _nelems(lay.iso_args) + _nelems(lay.iso_kwargs)
            if n <= MAX_ISO_ELEMS:
                fl = lay.iso_floor.reshape(-1)[idx] if idx is not None else lay.iso_floor
                tensors[f"{p}/iso_floor"] = np.ascontiguousarray(fl)
                meta["iso"] = {"args": _flatten(f"{p}/args", lay.iso_args, tensors),
                               "kwargs": _flatten(f"{p}/kwargs", lay.iso_kwargs, tensors)}
            else:
                meta["note"] = f"isolated inputs not recorded ({n} elements > {MAX_ISO_ELEMS})"
        layers[key] = meta
    outputs = {}
    for name in rec.outputs64:
        o64, o32 = rec.outputs64[name], rec.outputs32[name]
        tensors[f"out/{name}/r64"] = np.ascontiguousarray(o64)
        tensors[f"out/{name}/r32"] = np.ascontiguousarray(o32)
        outputs[name] = list(o64.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # One metadata key: safetensors writes a metadata map in hash order, which would break byte-identity.
    tmp.write_bytes(save(tensors, metadata={"record": json.dumps({"spec": rec.spec, "seed": rec.seed})}))
    tmp.replace(path)
    versions = {k: v for k, v in rec.env.items() if k in VERSIONED}
    return {"spec": rec.spec, "seed": rec.seed, "signature": spec_signature(spec), "versions": versions,
            "layers": layers, "outputs": outputs, "bytes": path.stat().st_size}


def load_record(path: Path, entry: Dict[str, Any]) -> RefRecord:
    from safetensors.numpy import load_file

    t = load_file(str(path))
    layers = {}
    for key, meta in entry["layers"].items():
        p = meta["prefix"]
        lay = LayerRef(meta["order"], meta["shape"], t[f"{p}/r64"], t[f"{p}/r32"], t.get(f"{p}/index"),
                       note=meta["note"])
        if meta["iso"] is not None:
            lay.iso_args = _unflatten(meta["iso"]["args"], t)
            lay.iso_kwargs = _unflatten(meta["iso"]["kwargs"], t)
            lay.iso_floor = t[f"{p}/iso_floor"]
        layers[key] = lay
    o64 = {n: t[f"out/{n}/r64"] for n in entry["outputs"]}
    o32 = {n: t[f"out/{n}/r32"] for n in entry["outputs"]}
    return RefRecord(entry["spec"], entry["seed"], layers, o64, o32, entry["versions"], source=f"fixture {path.name}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> Dict[str, Any]:
    m = folder / "manifest.json"
    if not m.exists():
        raise FixtureError(f"no fixtures at {folder} (manifest.json missing): run `./vp fixtures generate`")
    try:
        return json.loads(m.read_text())
    except json.JSONDecodeError as e:
        raise FixtureError(f"{m} is not valid JSON ({e}): regenerate with `./vp fixtures generate`") from e


def write_manifest(folder: Path, manifest: Dict[str, Any]) -> None:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / "manifest.json")


def _release(version: str) -> str:
    """A version without its local label: torch 2.13.0+cpu (Linux) and 2.13.0 (macOS) are one release."""
    return version.split("+", 1)[0]


def verify(folder: Path, check_versions: bool = True) -> List[str]:
    """Problems with the fixtures in `folder` (empty list: fine): sha256, missing files, version drift.

    Drift is a different release of a recorded package; a different build of the same release (the local label:
    torch's +cpu on Linux, none on macOS) is not: the fixtures hold reference outputs that are compared within
    their floors, and the manifest keeps the full recorded version (label included) to say which build made them."""
    manifest = read_manifest(folder)
    problems = []
    installed = _env()
    for name, entry in manifest["files"].items():
        f = folder / name
        if not f.exists():
            problems.append(f"{name}: missing")
            continue
        digest = sha256(f)
        if digest != entry["sha256"]:
            problems.append(f"{name}: sha256 {digest[:12]} != manifest {entry['sha256'][:12]} (corrupted or edited)")
        if check_versions:
            for pkg, ver in entry["versions"].items():
                if pkg in installed and _release(installed[pkg]) != _release(ver):
                    problems.append(f"{name}: generated with {pkg} {ver}, installed {installed[pkg]}: stale, "
                                    f"regenerate with `./vp fixtures generate`")
    return problems


def find(folder: Path, spec: Spec, seed: int) -> Tuple[Path, Dict[str, Any]]:
    """The fixture file for (spec, seed), checked against the spec's signature and its sha256."""
    manifest = read_manifest(folder)
    for name, entry in manifest["files"].items():
        if entry["spec"] == spec.name and entry["seed"] == seed:
            if entry["signature"] != spec_signature(spec):
                raise FixtureError(f"fixture {name} was recorded for another layer map of spec {spec.name!r}: "
                                   "stale, regenerate with `./vp fixtures generate`")
            path = folder / name
            if not path.exists() or sha256(path) != entry["sha256"]:
                raise FixtureError(f"fixture {name}: missing or sha256 mismatch: run `./vp fixtures verify`")
            return path, entry
    raise FixtureError(f"no fixture for spec {spec.name!r} seed {seed} in {folder}")


# ------------------------------------------------------------------------------------ contract records

MAX_CONTRACT_ELEMS = 1024  # a floor_ref longer than this keeps MAX_CONTRACT_ELEMS evenly spaced elements


def _subsample_floor_refs(x: Any) -> Any:
    """Copy of a contract record with every floor_ref (dict with r32, r64, shape) longer than the cap subsampled
    at fixed flat indices (recorded as `index`); r64 kept as float64, r32 as float32."""
    if isinstance(x, dict):
        if {"r32", "r64", "shape"} <= set(x) and isinstance(x["r64"], np.ndarray):
            idx = _index(int(x["r64"].size), MAX_CONTRACT_ELEMS)
            out = {"shape": list(x["shape"]),
                   "r32": np.asarray(x["r32"], np.float32).reshape(-1) if idx is None else
                   np.asarray(x["r32"], np.float32).reshape(-1)[idx],
                   "r64": np.asarray(x["r64"], np.float64).reshape(-1) if idx is None else
                   np.asarray(x["r64"], np.float64).reshape(-1)[idx]}
            if idx is None:
                out["r32"], out["r64"] = out["r32"].reshape(x["shape"]), out["r64"].reshape(x["shape"])
            else:
                out["index"] = idx
            return out
        return {k: _subsample_floor_refs(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_subsample_floor_refs(v) for v in x]
    return x


def contract_signature(name: str, version: int) -> str:
    return hashlib.sha256(json.dumps(["contract", name, version]).encode()).hexdigest()[:16]


def save_contract(name: str, version: int, record: Dict[str, Any], path: Path, env: Dict[str, str]
                  ) -> Dict[str, Any]:
    """Write a contract record (parity.contracts) to `path` (.safetensors: arrays as tensors, the rest as one JSON
    skeleton in the metadata); returns its manifest entry (without sha256)."""
    from safetensors.numpy import save

    tensors: Dict[str, np.ndarray] = {}
    skel = _flatten("r", _subsample_floor_refs(_plain(record)), tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(save(tensors, metadata={"record": json.dumps({"contract": name, "skeleton": skel},
                                                                 sort_keys=True)}))
    tmp.replace(path)
    versions = {k: v for k, v in env.items() if k in VERSIONED}
    return {"spec": f"contract:{name}", "seed": 0, "signature": contract_signature(name, version),
            "versions": versions, "layers": {}, "outputs": {}, "bytes": path.stat().st_size}


def _plain(x: Any) -> Any:
    """numpy scalars -> Python scalars, tuples -> lists (what the JSON skeleton holds)."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def load_contract(path: Path) -> Dict[str, Any]:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()["record"])
    record = _unflatten(meta["skeleton"], load_file(str(path)))
    record["__source__"] = f"fixture {path.name}"
    return record


def find_contract(folder: Path, name: str, version: int) -> Path:
    """The fixture file of contract `name`, checked against its version signature and sha256."""
    manifest = read_manifest(folder)
    for fname, entry in manifest["files"].items():
        if entry["spec"] == f"contract:{name}":
            if entry["signature"] != contract_signature(name, version):
                raise FixtureError(f"fixture {fname} was recorded for another version of contract {name!r}: "
                                   "stale, regenerate with `./vp fixtures generate`")
            path = folder / fname
            if not path.exists() or sha256(path) != entry["sha256"]:
                raise FixtureError(f"fixture {fname}: missing or sha256 mismatch: run `./vp fixtures verify`")
            return path
    raise FixtureError(f"no fixture for contract {name!r} in {folder}: run `./vp fixtures generate {name}`")
