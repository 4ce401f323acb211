"""Self-contained HTML dashboard of the bench history: per case, time and speedup over commits (inline SVG)."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


def _svg_series(title: str, labels: Sequence[str], series: Dict[str, Tuple[List[Optional[float]], str]],
                log: bool = False, width: int = 460, height: int = 170) -> str:
    vals = [v for vs, _ in series.values() for v in vs if v is not None and v > 0]
    if not vals:
        return ""
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    lo, hi = f(min(vals)), f(max(vals))
    if not log:
        lo = min(0.0, lo)
    if hi - lo < 1e-12:
        hi = lo + 1
    left, right, top, bottom = 50, 10, 20, 40
    pw, ph = width - left - right, height - top - bottom
    n = len(labels)

    def xy(i, v):
        return left + pw * (i / max(n - 1, 1)), top + ph * (hi - f(v)) / (hi - lo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="10"><text x="{left}" y="12" font-weight="bold">{html.escape(title)}</text>'
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        y = top + ph * (1 - frac)
        lab = f"{10 ** v:.3g}" if log else f"{v:.3g}"
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{lab}</text>')
    for i, lab in enumerate(labels):
        x = left + pw * (i / max(n - 1, 1))
        out.append(f'<text x="{x:.1f}" y="{top + ph + 12}" text-anchor="middle">{html.escape(lab)}</text>')
    for k, (name, (vs, color)) in enumerate(series.items()):
        pts = [xy(i, v) for i, v in enumerate(vs) if v is not None and v > 0]
        if len(pts) > 1:
            out.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="none" '
                       f'stroke="{color}" stroke-width="1.5"/>')
        out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in pts)
        out.append(f'<text x="{left + 6 + 110 * k}" y="{height - 6}" fill="{color}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def write_dashboard(history: List[Dict], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [f"{h['sha']}{'q' if h.get('quick') else ''}" for h in history]
    cases = sorted({c for h in history for c in h["cases"]})
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>voiceport bench</title><style>"
             "body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             ".case{display:inline-block;margin:6px;vertical-align:top}</style></head><body>"
             "<h1>voiceport benchmarks</h1><p>speedup = reference time / impl time, measured in the same run "
             "(&gt; 1: impl faster). Each point is one history entry (commit sha; q = --quick).</p>"]
    if history:
        last = history[-1]
        rl = ", ".join(f"{k} {v:.1f}" for k, v in last.get("roofline", {}).items())
        parts.append(f"<h2>latest: {html.escape(last['sha'])} at {html.escape(last['time'])}</h2>"
                     f"<p>{html.escape(json.dumps(last['machine']))}<br>blas: {html.escape(str(last['blas']))}"
                     f"<br>roofline: {html.escape(rl)}<br>{html.escape(json.dumps(last['versions']))}</p>")
        parts.append("<table><tr><th>case</th><th>median ms</th><th>speedup (ref/impl)</th><th>extra</th></tr>")
        for name, c in sorted(last["cases"].items()):
            extra = {k: v for k, v in c.get("extra", {}).items() if k != "ratio"}
            ratio = c.get("ratio")
            parts.append(f"<tr><td>{html.escape(name)}</td><td>{c['median_s'] * 1e3:.2f}</td>"
                         f"<td>{'%.2fx' % ratio if ratio else '–'}</td><td>{html.escape(json.dumps(extra))}</td></tr>")
        parts.append("</table><h2>history</h2>")
    for name in cases:
        times = [h["cases"].get(name, {}).get("median_s") for h in history]
        ratios = [h["cases"].get(name, {}).get("ratio") for h in history]
        parts.append("<div class='case'>" + _svg_series(f"{name}: median s", labels,
                     {"median s": ([t for t in times], "#1f77b4")}, log=True))
        if any(r for r in ratios):
            parts.append(_svg_series(f"{name}: speedup", labels, {"ref/impl": (ratios, "#2ca02c")}))
        parts.append("</div>")
    parts.append("</body></html>")
    page = out_dir / "index.html"
    tmp = page.with_suffix(".tmp")
    tmp.write_text("".join(parts))
    tmp.replace(page)
    return page


# ------------------------------------------------------------------------------------ docs/performance.md
# The page and its figures are rendered from the stored runs only (bench/history/ and the record folders), so that
# no number in the docs is typed by hand; tests/test_docs_performance.py checks the committed page against this.

RECORD_FOLDERS = ("gpu_runs", "cpu_runs")  # free-form run records: any JSON, rendered generically
META_KEYS = ("page", "machine", "git_sha", "commit", "date", "time", "source", "command", "commands", "note", "notes")
FIGURES = "perf"  # docs/perf/*.svg


def _date_of(name: str, rec: Dict) -> str:
    import re

    for key in ("date", "time"):
        if isinstance(rec.get(key), str):
            return rec[key]
    m = re.search(r"(\d{4})-?(\d{2})-?(\d{2})", name)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else "unknown"


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 240)


def _flat(row: Dict) -> Dict[str, object]:
    """A row's scalar cells, a nested dict of scalars flattened one level (`impl.s`); lists and long text left out."""
    out = {}
    for k, v in row.items():
        if _is_scalar(v):
            out[k] = v
        elif isinstance(v, dict):
            out.update({f"{k}.{k2}": v2 for k2, v2 in v.items() if _is_scalar(v2)})
    return out


def _table(rows: Sequence[Dict]) -> Tuple[List[str], str]:
    flat = [_flat(r) for r in rows]
    cols: List[str] = []
    for r in flat:
        cols.extend(k for k in r if k not in cols)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in flat]
    return cols, "\n".join(lines)


def _machine_text(m) -> str:
    if isinstance(m, str):
        return m
    if not isinstance(m, dict):
        return "unknown"
    keys = ("gpu", "ref_device_name", "processor", "cpus", "system", "machine", "mlx", "mlx_device", "torch",
            "conv_path", "blas")
    return ", ".join(f"{k} {m[k]}" for k in keys if k in m and m[k] is not None) or "unknown"


def _command_text(c) -> str:
    if not c:
        return "not recorded"
    return c if c == "the record's commands, above" else f"`{c}`"


def _bars(title: str, labels: Sequence[str], values: Sequence[Optional[float]], width: int = 460) -> str:
    """Horizontal bars with a line at 1.0 (the ratio where both sides are level)."""
    vals = [v for v in values if isinstance(v, (int, float)) and v > 0]
    if not vals:
        return ""
    row, left, top = 16, 170, 22
    height = top + row * len(labels) + 14
    hi = max(max(vals), 1.0) * 1.1
    pw = width - left - 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="10"><text x="4" y="12" font-weight="bold">{html.escape(title)}</text>']
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = top + row * i
        out.append(f'<text x="{left - 4}" y="{y + 11}" text-anchor="end">{html.escape(lab[:32])}</text>')
        if isinstance(v, (int, float)) and v > 0:
            w = pw * v / hi
            color = "#2ca02c" if v >= 1 else "#d62728"
            out.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{color}"/>'
                       f'<text x="{left + w + 3:.1f}" y="{y + 11}">{v:.2f}</text>')
    x1 = left + pw / hi
    out.append(f'<line x1="{x1:.1f}" y1="{top}" x2="{x1:.1f}" y2="{height - 12}" stroke="#333" '
               f'stroke-dasharray="3,2"/><text x="{x1:.1f}" y="{height - 2}" text-anchor="middle">1.0</text></svg>')
    return "".join(out)


def _slug(*parts: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


class _Page:
    def __init__(self):
        self.lines: List[str] = []
        self.figures: Dict[str, str] = {}

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def figure(self, name: str, svg: str, caption: str) -> None:
        if not svg:
            return
        self.figures[f"{FIGURES}/{name}.svg"] = svg + "\n"
        self.add(f"![{name}]({FIGURES}/{name}.svg)", "", f"*{caption}*", "")


def _history_section(page: _Page, history: List[Dict]) -> None:
    page.add("## CPU bench history (`./vp bench`)", "",
             "Each entry is one `./vp bench` run (`bench/history/<utc>-<sha>.json`): every case runs impl and the "
             "official package in the same process on the same seeded weights; *speedup* = reference time / impl "
             "time (> 1: impl faster); *q* marks a `--quick` run (small configs, short inputs).", "")
    if not history:
        page.add("No entries.", "")
        return
    page.add("| entry | date (UTC) | command | machine | BLAS | load 1 min before / after | matmul GFLOP/s "
             "| read GB/s |",
             "|---|---|---|---|---|---|---|---|")
    for h in history:
        m, rl = h.get("machine", {}), h.get("roofline", {})
        load = m.get("load_1min")
        page.add("| " + " | ".join([
            f"`{h['sha']}`", h["time"], f"`./vp bench{' --quick' if h.get('quick') else ''}`", _machine_text(m),
            _cell(h.get("blas", {}).get("blas")), " / ".join(_cell(x) for x in load) if load else "not recorded",
            _cell(rl.get("mlx_GFLOPs")), _cell(rl.get("read_GBps"))]) + " |")
    page.add("")
    cases = sorted({c for h in history for c in h["cases"]})
    heads = [f"{h['sha']}{' q' if h.get('quick') else ''}" for h in history]
    page.add("Median impl time, ms (speedup):", "", "| case | " + " | ".join(heads) + " |",
             "|---|" + "---|" * len(heads))
    for name in cases:
        cells = []
        for h in history:
            c = h["cases"].get(name)
            cells.append("–" if c is None else f"{c['median_s'] * 1e3:.4g}"
                         + (f" ({c['ratio']:.2f}×)" if c.get("ratio") else ""))
        page.add(f"| `{name}` | " + " | ".join(cells) + " |")
    page.add("")
    labels = [h["sha"] for h in history]
    first, last = history[0], history[-1]
    span = f"entries {first['sha']} ({first['time'][:10]}) … {last['sha']} ({last['time'][:10]})"
    machine = _machine_text(history[-1].get("machine", {}))
    for name in cases:
        ratios = [h["cases"].get(name, {}).get("ratio") for h in history]
        times = [h["cases"].get(name, {}).get("median_s") for h in history]
        svg = _svg_series(f"{name}: speedup (ref/impl)", labels, {"ref/impl": (ratios, "#2ca02c")}) \
            if any(ratios) else _svg_series(f"{name}: median s", labels, {"median s": (times, "#1f77b4")}, log=True)
        page.figure(_slug("history", name), svg,
                    f"{name}: command `./vp bench [--quick]`, commits {', '.join(labels)}; {span}; machine {machine}")


def _record_sections(page: _Page, name: str, rec: Dict, level: int, prov: Dict) -> None:
    """Render one record (or a section of it): its tables, then its nested sections, each with its provenance."""
    prov = dict(prov)
    for k in ("machine", "git_sha", "commit", "date", "time"):
        if k in rec:
            prov["commit" if k == "git_sha" else ("date" if k == "time" else k)] = rec[k]
    scalars = {k: v for k, v in rec.items() if k not in META_KEYS and _is_scalar(v) and k != "rows"}
    rows = rec.get("rows")
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        _rows_table(page, name, rows, prov)
    if scalars and not any(isinstance(v, (dict, list)) for k, v in rec.items() if k not in META_KEYS):
        _rows_table(page, name, [scalars], prov)
        return
    if scalars:
        page.add("Values: " + ", ".join(f"{k} {_cell(v)}" for k, v in scalars.items()), "")
    for k, v in rec.items():
        if k in META_KEYS or k == "rows":
            continue
        if v in ({}, [], None):
            continue
        sub = dict(prov)
        cmds = sub.pop("commands", None)
        if isinstance(cmds, dict):  # a section's command: its own key, else the longest key it starts with
            own = sorted((c for c in cmds if k == c or k.startswith(c + "_")), key=len)
            sub["command"] = cmds[own[-1]] if own else "the record's commands, above"
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            page.add(f"{'#' * level} {k}", "")
            _rows_table(page, f"{name}-{k}", v, sub)
        elif isinstance(v, dict):
            page.add(f"{'#' * level} {k}", "")
            _record_sections(page, f"{name}-{k}", v, min(level + 1, 6), sub)
        elif isinstance(v, str) and len(v) > 60:
            page.add(f"{k}: {_cell(v)}", "")


def _rows_table(page: _Page, name: str, rows: Sequence[Dict], prov: Dict) -> None:
    cols, table = _table(rows)
    cmd = prov.get("command") or ("the record's commands, above" if prov.get("commands") else None)
    page.add(f"Command: {_command_text(cmd)}. Commit `{prov.get('commit', 'not recorded')}`, "
             f"machine: {_machine_text(prov.get('machine'))}, date {prov.get('date', 'unknown')}.", "", table, "")
    key = next((c for c in ("ratio", "speedup") if c in cols), None)
    if key is None:
        return
    label_cols = [c for c in cols if c in ("case", "seconds", "phase", "clip", "what", "name")] or cols[:1]
    labels = [" ".join(_cell(_flat(r).get(c)) for c in label_cols) for r in rows]
    values = [_flat(r).get(key) for r in rows]
    page.figure(_slug(name), _bars(f"{name}: {key}", labels, values),
                f"{name}: {key} per row; command {_command_text(cmd)}, commit {prov.get('commit', 'not recorded')}, "
                f"machine {_machine_text(prov.get('machine'))}, date {prov.get('date', 'unknown')}")


INTRO = """# Performance

*Rendered by `./vp bench --docs` from the stored runs in `bench/history/` and `bench/{folders}/`: do not edit by
hand; store a run and render again (`tests/test_docs_performance.py` fails when this page and the runs disagree).*

What is measured: impl (MLX) against the official PyTorch package on the same seeded checkpoints at the real
architectures, in the same process where both sides run (*speedup* or *ratio* = official time / impl time; > 1:
impl faster); throughput in tokens a second; RTF = compute time / seconds of audio. Random weights write little
real audio, so an LM's RTF counts the audio its tokens stand for (OuteTTS 150 tokens a second, Spark-TTS 50).
Every table and figure names its command, commit, machine and date. A shared host's load moves ratios more than
most changes do: entries record it where it was measured. Records marked *transcribed from the README of
<commit>* were measured before runs were stored; their command, commit and date are the README's.
"""


PARITY_INTRO = """# Parity runs of record

*Rendered by `./vp bench --docs` from the stored records whose `"page"` is `"parity-runs"` (`bench/cpu_runs/`): do
not edit by hand. What the sections and tolerances mean: [parity.md](parity.md); the mutation catalogue:
[mutations.md](mutations.md).*
"""

MUTATIONS_INTRO = """# Mutation catalogue

*Rendered by `./vp bench --docs` from `parity/mutate.py`'s `CATALOGUE` and the latest stored mutation run
(`bench/cpu_runs/mutate-*.json`): do not edit by hand.* Each entry is a one-line porting bug applied alone to a copy
of the tree; `./vp parity mutate NAME` runs it, `./vp parity mutate --list` names them all, and
`tests/test_mutate.py` checks that every entry still applies exactly once. *inert*: the bug cannot change any
output (it must pass every check); *outside the report's configs*: it changes outputs only for inputs the report
does not run, and a fast test holds it.
"""


def _mutations_page(records: List[Tuple[str, Dict]]) -> str:
    from parity.mutate import CATALOGUE

    runs = [(n, r) for n, r in records if n.startswith("mutate-")]
    last: Dict[str, Tuple[str, Dict]] = {}
    for n, r in runs:  # later files win, name by name
        last.update({row["bug"]: (n, row) for row in r.get("rows", [])})
    lines = [MUTATIONS_INTRO, "| bug | file | what | first failing fast test | failed report section | verdict | run |",
             "|---|---|---|---|---|---|---|"]
    for m in CATALOGUE:
        note = m.inert and f" (inert: {m.inert})" or m.blind and f" (outside the report's configs: {m.blind})" or ""
        run, row = last.get(m.name, ("not run since added", {}))
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{m.name}`", f"`{m.file}`", m.what + note, row.get("first failing fast test", "–"),
            row.get("failed report section", "–"), row.get("verdict", "–"), run)) + " |")
    return "\n".join(lines) + "\n"


def render_docs(root: Path) -> Dict[str, str]:
    """docs/performance.md, docs/parity-runs.md, docs/mutations.md and the figures, rendered from the stored runs:
    {path relative to docs/: text}."""
    bench = Path(root) / "bench"
    page = _Page()
    page.add(INTRO.format(folders=", bench/".join(RECORD_FOLDERS)))
    parity = _Page()
    parity.add(PARITY_INTRO)
    entries = [(p, _load_record(p)) for p in sorted((bench / "history").glob("*.json"))]
    _history_section(page, [e for _, e in entries if isinstance(e.get("cases"), dict) and "sha" in e])
    records: List[Tuple[str, Dict]] = []
    for folder in ("history", *RECORD_FOLDERS):
        files = [(p, _load_record(p)) for p in sorted((bench / folder).glob("*.json"))]
        if folder == "history":  # a history file of another shape is rendered as a record
            files = [(p, r) for p, r in files if not (isinstance(r.get("cases"), dict) and "sha" in r)]
        if any(r.get("page") is None for _, r in files):
            page.add(f"## Stored runs: `bench/{folder}/`", "")
        for path, rec in files:
            records.append((path.stem, rec))
            on = parity if rec.get("page") == "parity-runs" else page
            _record(on, folder, path, rec)
    text = "\n".join(page.lines).rstrip("\n") + "\n"
    return {"performance.md": text, "parity-runs.md": "\n".join(parity.lines).rstrip("\n") + "\n",
            "mutations.md": _mutations_page(records), **page.figures, **parity.figures}


def _load_record(path: Path) -> Dict:
    """A stored run as a dict: a JSON list of rows becomes {"rows": [...]}, any other value {"value": ...}."""
    rec = json.loads(path.read_text())
    if isinstance(rec, dict):
        return rec
    if isinstance(rec, list) and all(isinstance(r, dict) for r in rec):
        return {"rows": rec}
    return {"value": rec}


def _record(page: _Page, folder: str, path: Path, rec: Dict) -> None:
    page.add(f"### {path.stem} (`bench/{folder}/{path.name}`)", "")
    cmds = next((rec[k] for k in ("commands", "command") if isinstance(rec.get(k), dict)), None)
    cmd = rec.get("command") if isinstance(rec.get("command"), str) else None
    prov = {"date": _date_of(path.name, rec), "command": cmd, "commands": cmds}
    for k in ("source", "note", "notes"):
        if isinstance(rec.get(k), str):
            page.add(f"{k.capitalize()}: {_cell(rec[k])}", "")
    if cmds:
        page.add("Commands:", "", *(f"- {k}: `{v}`" for k, v in cmds.items()), "")
    _record_sections(page, path.stem, rec, 4, prov)


def write_docs(root: Path) -> List[Path]:
    """Write render_docs(root) under root/docs, removing figures no longer rendered; returns the files written."""
    docs = Path(root) / "docs"
    files = render_docs(root)
    (docs / FIGURES).mkdir(parents=True, exist_ok=True)
    for old in (docs / FIGURES).glob("*.svg"):
        if f"{FIGURES}/{old.name}" not in files:
            old.unlink()
    written = []
    for rel, text in files.items():
        path = docs / rel
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------------- docs/api
API = "api"  # docs/api/: the reference of the public impl API, HTML from the docstrings (pdoc)


def api_modules(root: Path) -> List[str]:
    """Every public module of impl (no `_`-prefixed part): `impl` itself, whose walk pdoc does, and the modules
    that walk misses (submodules of a package whose `__all__` lists names, not modules)."""
    from pdoc.extract import walk_specs

    files = set()
    for p in sorted((Path(root) / "impl").rglob("*.py")):
        parts = p.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if "__pycache__" not in parts and not any(x.startswith("_") for x in parts):
            files.add(".".join(parts))
    walked = set(walk_specs(["impl"]))
    private = sorted(m for m in walked if any(x.startswith("_") for x in m.split(".")))
    return ["impl"] + sorted(files - walked) + [f"!{m}" for m in private]


def build_api(root: Path, out: Path) -> List[str]:
    """Write the API reference of impl into `out` (emptied first); returns the warnings pdoc raised (none: clean)."""
    import shutil
    import warnings

    import pdoc
    import pdoc.render

    if out.exists():
        shutil.rmtree(out)
    pdoc.render.configure(docformat="markdown", show_source=False, search=False,
                          footer_text="voiceport: rendered by ./vp bench --docs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*api_modules(root), output_directory=out)
    return [f"{w.category.__name__}: {w.message}" for w in caught]
