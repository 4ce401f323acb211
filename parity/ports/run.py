"""`./vp parity --port NAME [COMPONENT ...] --report DIR`: the parity report of a foreign port (parity/ports/<name>.py).

Every component the port has runs through `parity.harness.run_spec` on the official spec with the port on the impl
side (parity.ports.port_spec): the same reference run, layers, tolerances and outputs as `./vp parity`; the port's
contracts (e.g. greedy-64 of its decode loop) check the official contract records. Components and contracts the port
cannot be compared on are listed with their reason in the report's `not_run` (the verdict is then not a pass).
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Dict, List

from parity.ports import PortUnavailable, load_port, port_spec


def run(args) -> int:
    from parity import cli
    from parity.contracts import Progress, from_report, quiet_official
    from parity.harness import run_spec
    from parity.report import write_report
    from parity.spec import SpecError

    if args.fixtures:
        raise SpecError("--port runs the reference live (the fixtures are keyed by impl's layer map); drop --fixtures")
    port = load_port(args.port)
    known = list(port.components) + list(port.contracts) + list(port.not_comparable)
    # the report's order: parity.cli's, each port variant (Component.official) right after its official component
    order = [m for n in cli.DEFAULT for m in [n] + [k for k, c in port.components.items() if c.official == n]]
    names = args.components or [n for n in order if n in known]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SpecError(f"port {port.name} has no component(s) {unknown}; known: {known}")
    progress = Progress()
    sections, reports, not_run = [], [], {}
    quick = bool(args.quick)
    with quiet_official(live=True) if not args.verbose else cli._nothing():
        for name in names:
            if name in port.not_comparable:
                not_run[f"{port.name} {name}"] = port.not_comparable[name]
                continue
            if name in port.contracts:
                title = f"{port.name} {name}"
                progress.stage(title, "official record + port check")
                try:
                    record = cli.contract(name).record(quick)
                    sec = port.contracts[name](record, quick)
                    sec.name = f"{port.name}: {sec.name}"
                except PortUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001 -- a failed section, the report goes on
                    sec = cli._failed(title, _why(e))
                progress.done(sec)
                sections.append(sec)
                continue
            comp = port.components[name]
            ref, full, quick_kw = cli.COMPONENTS[comp.official or name]
            kwargs = dict(quick_kw if quick else full)
            kwargs.update((comp.quick if quick else comp.full) or {})
            official = cli.factory(ref)(**kwargs)
            spec, unmapped = port_spec(official, port, name, kwargs)
            label = (comp.quick_label if quick and comp.quick_label else str(kwargs.get("config", "")))
            title = f"{port.name}: {cli.LAYER_TITLES.get(comp.official or name, name)} ({label})"
            if comp.official:
                title += f" [{name}]"
            progress.stage(title, "reference (fp64 + fp32, every mapped layer), then the port")
            try:
                report = run_spec(spec, seed=args.seed, isolated=not args.no_isolated)
            except PortUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 -- a port that cannot load or run is a failed section
                sec = cli._failed(title, _why(e), spec.name)
                sec.notes.append(comp.note)
                progress.done(sec)
                sections.append(sec)
                continue
            sec = from_report(report, title, f"{report.compared} tensors: every mapped layer (propagated and "
                              f"isolated) and the outputs; port entry points: {comp.note}")
            sec.notes += [f"not mapped: {k} ({v})" for k, v in unmapped.items()]
            progress.done(sec)
            sections.append(sec)
            reports.append(report)
            cli._release_memory()
    page = write_report(sections, args.report, reports=reports, skipped=not_run)
    n_bad = sum(1 for s in sections if not s.passed)
    print(f"[parity {progress.stamp()}] port {port.name} {port.version}: {len(sections) - n_bad} of {len(sections)} "
          f"sections pass, {len(not_run)} not comparable; report: {page} and {page.parent / 'report.json'}")
    return 0 if sections and n_bad == 0 and not not_run else 1


def _why(e: Exception) -> str:
    where = traceback.extract_tb(e.__traceback__)[-1]
    return f"{type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})"


def components(port_name: str) -> List[str]:
    port = load_port(port_name)
    return list(port.components) + list(port.contracts)


def not_comparable(port_name: str) -> Dict[str, str]:
    return dict(load_port(port_name).not_comparable)
