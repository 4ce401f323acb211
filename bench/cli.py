"""`voiceport bench [--quick] [--check]`: run the bench suites, keep history, draw the dashboard.

Each run of the pytest-benchmark suites in bench/ (files `bench_*.py`) becomes one history entry
(`bench/history/<utc>-<sha>.json`: machine, versions, BLAS in use, roofline, and per case the median time and
the speedup recorded by the suite as `benchmark.extra_info["ratio"]` = reference seconds / impl seconds,
measured in the same run). The dashboard
(`out/bench/index.html`) plots each case over the history, offline. `--check` fails when a case got slower than
the median of its recent history by more than a noise-aware margin.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]  # defaults live in the clone, whatever the working directory
MARGIN = 0.25  # a case regresses when slower than (1 + max(MARGIN, 3 * MAD/median)) x its recent median
RECENT = 5


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small configs and short inputs")
    p.add_argument("--check", action="store_true",
                   help=f"exit 1 if a case is slower than its recent median by more than max({MARGIN:.0%}%, 3 MAD)")
    p.add_argument("--history", default=str(ROOT / "bench" / "history"), help="history folder")
    p.add_argument("--out", default=str(ROOT / "out" / "bench"),
                   help="dashboard folder (index.html; default: out/bench in the clone)")
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression to select cases")
    p.add_argument("--no-run", action="store_true", help="only redraw the dashboard from the history")
    p.add_argument("--docs", action="store_true",
                   help="run nothing: render docs/performance.md, parity-runs.md, mutations.md and the figures "
                        "(docs/perf/) from the stored runs (bench/history/, bench/gpu_runs/, bench/cpu_runs/) and "
                        "impl's API reference (docs/api/, pdoc)")


def run_suites(quick: bool, keyword: Optional[str]) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider",
               "-o", "python_files=bench_*.py", "-o", "python_functions=bench_* test_*", "-m", "",
               f"--benchmark-json={out}", "--benchmark-disable-gc"]
        if keyword:
            cmd += ["-k", keyword]
        env = dict(os.environ, VOICEPORT_BENCH_QUICK="1" if quick else "0")
        load = [os.getloadavg()[0]]  # a shared host's load moves ratios more than most changes do: keep it
        res = subprocess.run(cmd, cwd=ROOT, env=env)
        load.append(os.getloadavg()[0])
        if not out.exists():
            raise RuntimeError(f"bench suites wrote no results (pytest exit {res.returncode})")
        data = json.loads(out.read_text())
        data["pytest_exit"] = res.returncode
        data["load"] = load
        return data


def to_entry(data: Dict, quick: bool) -> Dict:
    from impl.accel import blas
    from bench.roofline import measure

    cases = {}
    for b in data.get("benchmarks", []):
        extra = b.get("extra_info", {})
        cases[b["fullname"].split("::")[-1] if "fullname" in b else b["name"]] = {
            "median_s": b["stats"]["median"], "min_s": b["stats"]["min"], "rounds": b["stats"]["rounds"],
            "ratio": extra.get("ratio"), "extra": extra}
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip() or "unknown"
    versions = {}
    for dist in ("mlx", "torch", "numpy", "transformers", "descript-audio-codec", "outetts"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001
            pass
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sha": sha, "quick": quick,
        "machine": {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "processor": _cpu_name(), "python": platform.python_version(),
                    "load_1min": data.get("load")},  # [before, after] the suites
        "versions": versions, "blas": blas.blas_info(), "roofline": measure(quick=quick),
        "pytest_exit": data.get("pytest_exit"), "cases": cases,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_history(folder: Path) -> List[Dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def check(entry: Dict, history: List[Dict]) -> List[str]:
    """Cases of `entry` slower than the median of their last RECENT runs by more than the noise-aware margin."""
    bad = []
    for name, case in entry["cases"].items():
        past = [h["cases"][name]["median_s"] for h in history if name in h["cases"] and h is not entry][-RECENT:]
        if len(past) < 2:
            continue
        med = statistics.median(past)
        mad = statistics.median(abs(x - med) for x in past)
        margin = max(MARGIN, 3 * mad / med if med > 0 else 0)
        if case["median_s"] > med * (1 + margin):
            bad.append(f"{name}: {case['median_s'] * 1e3:.1f} ms > {med * 1e3:.1f} ms x (1 + {margin:.2f})")
    return bad


def run(args) -> int:
    from bench.dashboard import API, build_api, write_dashboard, write_docs

    if args.docs:
        for path in write_docs(ROOT):
            print(f"[bench] {path.relative_to(ROOT)}")
        problems = build_api(ROOT, ROOT / "docs" / API)
        if problems:
            print(*problems, sep="\n", file=sys.stderr)
        print(f"[bench] docs/{API}/ (impl's API reference{f', {len(problems)} warnings' if problems else ''})")
        return 1 if problems else 0

    history_dir = Path(args.history)
    history_dir.mkdir(parents=True, exist_ok=True)
    history = load_history(history_dir)
    status = 0
    if not args.no_run:
        entry = to_entry(run_suites(args.quick, args.keyword), args.quick)
        name = f"{entry['time'].replace(':', '').replace('-', '')}-{entry['sha']}.json"
        (history_dir / name).write_text(json.dumps(entry, indent=1))
        print_table(entry)
        if args.check:
            bad = check(entry, history)
            for line in bad:
                print(f"REGRESSION {line}")
            status = 1 if bad else 0
        if entry["pytest_exit"] not in (0, None):
            print(f"bench suites exited {entry['pytest_exit']}", file=sys.stderr)
            status = status or 1
        history.append(entry)
    page = write_dashboard(history, Path(args.out))
    print(f"[bench] dashboard: {page}; history: {history_dir}")
    return status


def print_table(entry: Dict) -> None:
    print(f"\n{'case':<48} {'median ms':>10} {'speedup ref/impl':>17}")
    for name, c in sorted(entry["cases"].items()):
        ratio = c.get("ratio")
        print(f"{name:<48} {c['median_s'] * 1e3:>10.2f} {('%.2fx' % ratio) if ratio else '':>17}")
    rl = entry["roofline"]
    print("roofline: " + ", ".join(f"{k} {v:.1f}" for k, v in rl.items()) + f"; blas: {entry['blas']['blas']}")
    load = entry["machine"].get("load_1min")
    if load:
        print(f"load (1 min) before/after the suites: {load[0]:.1f} / {load[1]:.1f} on {entry['machine']['cpus']} cpus")
