"""`voiceport fixtures generate|verify`: record golden reference outputs; check them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parity.cli import COMPONENTS, CONTRACTS, DEFAULT, EXTRA, contract, factory

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_COMPONENTS = ["toy"] + DEFAULT


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="run the reference live and record fixtures (needs torch + official pkgs)")
    g.add_argument("components", nargs="*", metavar="COMPONENT",
                   help=f"default: {' '.join(FIXTURE_COMPONENTS)}")
    g.add_argument("--dir", default=str(DEFAULT_DIR), help="fixtures folder")
    g.add_argument("--seed", type=int, default=0, help="seed of the layer specs' inputs (default 0; part of each "
                   "layer fixture's file name)")
    v = sub.add_parser("verify", help="sha256 of every fixture file, and package versions vs the manifest")
    v.add_argument("--dir", default=str(DEFAULT_DIR), help="fixtures folder")
    v.add_argument("--no-versions", action="store_true", help="check sha256 only")


def run(args) -> int:
    from parity import fixtures as fx

    folder = Path(args.dir)
    if args.action == "verify":
        problems = fx.verify(folder, check_versions=not args.no_versions)
        manifest = fx.read_manifest(folder)
        total = sum(e["bytes"] for e in manifest["files"].values())
        for line in problems:
            print(f"STALE {line}")
        print(f"{len(manifest['files'])} fixture files, {total / 1e6:.2f} MB, "
              f"{'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0

    from parity.contracts import quiet_official
    from parity.harness import _env, record_reference

    table = {**COMPONENTS, **EXTRA}
    names = args.components or FIXTURE_COMPONENTS
    unknown = [n for n in names if n not in table and n not in CONTRACTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; known: {sorted([*table, *CONTRACTS])}")
    manifest = fx.read_manifest(folder) if (folder / "manifest.json").exists() else {"files": {}}
    with quiet_official():
        for name in names:
            if name in CONTRACTS:
                c = contract(name)
                print(f"[fixtures] {name}: recording the official side (quick) ...", file=sys.stderr, flush=True)
                rec = c.record(True)
                rel = f"contracts/{c.name}.safetensors"
                entry = fx.save_contract(c.name, c.version, rec, folder / rel, _env())
                entry.update(component=name, kwargs={"quick": True})
            else:
                ref, _, kwargs = table[name]
                try:
                    make = factory(ref)
                except ModuleNotFoundError as e:
                    print(f"[fixtures] {name}: skipped, spec not available ({e})", file=sys.stderr)
                    continue
                spec = make(**kwargs)
                print(f"[fixtures] {name}: recording {kwargs} seed {args.seed} ...", file=sys.stderr, flush=True)
                rec = record_reference(spec, args.seed)
                rel = f"{name}/{spec.name}-s{args.seed}.safetensors"
                entry = fx.save_record(rec, spec, folder / rel)
                entry.update(component=name, kwargs=kwargs)
            entry["sha256"] = fx.sha256(folder / rel)
            manifest["files"][rel] = entry
            fx.write_manifest(folder, manifest)
            print(f"[fixtures] {rel}: {entry['bytes'] / 1e6:.2f} MB sha256 {entry['sha256'][:12]}")
    total = sum(e["bytes"] for e in manifest["files"].values())
    print(f"[fixtures] {folder}: {len(manifest['files'])} files, {total / 1e6:.2f} MB")
    return 0
