"""`voiceport parity [COMPONENT ...] --report DIR`: run parity specs, write report.json + index.html."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]  # defaults live in the clone, whatever the working directory
# component -> (spec factory "module:function", kwargs for the full run, kwargs for --quick)
COMPONENTS: Dict[str, tuple] = {
    "dac": ("parity.specs.dac:spec", {"config": "24khz_speech", "seconds": 1.0, "signal": "speech"},
            {"config": "24khz_speech", "seconds": 0.5, "signal": "speech"}),
    "llama": ("parity.specs.llama:spec", {"config": "1b", "seq_len": 32}, {"config": "small", "seq_len": 32}),
}
DEFAULT = ["dac", "llama"]
EXTRA = {"toy": ("parity.toy:spec", {}, {})}  # the harness self-test, on request only


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("components", nargs="*", metavar="COMPONENT",
                   help=f"components to check (default: {' '.join(DEFAULT)}; also: toy)")
    p.add_argument("--report", default=str(ROOT / "out" / "report"),
                   help="output folder for report.json and index.html (default: out/report in the clone)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    p.add_argument("--quick", action="store_true", help="small configs / short inputs (minutes -> seconds)")
    p.add_argument("--no-isolated", action="store_true", help="skip the isolated (per-layer) comparison")
    p.add_argument("--bug", default=None, help="toy only: inject a bug into this layer (harness demo)")
    p.add_argument("--fixtures", nargs="?", const=str(ROOT / "fixtures"), default=None, metavar="DIR",
                   help="fixture mode: compare against recorded reference outputs (no torch needed) "
                        "instead of running the reference live (default DIR: fixtures/ in the clone)")


def factory(ref: str):
    mod, fn = ref.split(":")
    return getattr(importlib.import_module(mod), fn)


def run(args) -> int:
    from parity.harness import run_spec
    from parity.report import write_report
    from parity.spec import SpecError

    table = {**COMPONENTS, **EXTRA}
    names = args.components or DEFAULT
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SpecError(f"unknown component(s) {unknown}; known: {sorted(table)}")
    reports, not_run = [], {}
    for name in names:
        ref, full, quick = table[name]
        try:
            make = factory(ref)
        except ModuleNotFoundError as e:
            not_run[name] = f"spec not available ({e})"
            print(f"[parity] {name}: NOT RUN: {not_run[name]}", file=sys.stderr)
            continue
        kwargs = dict(quick if (args.quick or args.fixtures) else full)  # fixtures hold the quick runs
        if name == "toy" and args.bug:
            kwargs["bug"] = args.bug
        print(f"[parity] {name}: {kwargs} ...", file=sys.stderr, flush=True)
        spec = make(**kwargs)
        record = None
        if args.fixtures:
            from parity.fixtures import find, load_record

            record = load_record(*find(Path(args.fixtures), spec, args.seed))
        report = run_spec(spec, seed=args.seed, isolated=not args.no_isolated, record=record)
        print(report.summary(), flush=True)
        reports.append(report)
    page = write_report(reports, args.report, skipped=not_run)
    print(f"[parity] report: {page} and {page.parent / 'report.json'}")
    return 0 if reports and all(r.ok for r in reports) and not not_run else 1
