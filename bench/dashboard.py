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
