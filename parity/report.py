"""Parity report: `report.json` + a self-contained `index.html` (inline SVG, no scripts, no network)."""
from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import List, Optional, Sequence

from parity.harness import Report


def write_report(reports: Sequence[Report], out_dir, skipped: Optional[dict] = None) -> Path:
    """Write report.json and index.html into `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ok": all(r.ok for r in reports) and not skipped,
        "components": [r.to_dict() for r in reports],
        "not_run": skipped or {},
    }
    _atomic_write(out / "report.json", json.dumps(data, indent=1))
    page = _html(reports, data)
    _atomic_write(out / "index.html", page)
    return out / "index.html"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.3g}"
    return html.escape(str(x))


def _plot(report: Report, width: int = 760, height: int = 240) -> str:
    """log10 error vs depth: propagated, isolated, floor, limit."""
    rows = [r for r in report.rows if r.tol != "exact"]
    if not rows:
        return ""
    series = {
        "propagated |impl-ref64|": ([r.max_abs for r in rows], "#d62728"),
        "isolated": ([r.iso_max_abs for r in rows], "#ff7f0e"),
        "floor |ref32-ref64|": ([r.floor for r in rows], "#1f77b4"),
        "limit": ([r.limit for r in rows], "#7f7f7f"),
    }
    vals = [v for s, _ in series.values() for v in s if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return ""
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    hi = max(hi, lo + 1)
    left, right, top, bottom = 60, 170, 10, 30
    pw, ph = width - left - right, height - top - bottom
    n = len(rows)

    def xy(i, v):
        x = left + (pw * i / max(n - 1, 1))
        y = top + ph * (hi - math.log10(v)) / (hi - lo)
        return x, y

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for e in range(lo, hi + 1):
        y = top + ph * (hi - e) / (hi - lo)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 5}" text-anchor="middle">depth (layer order)</text>')
    for k, (name, (vs, color)) in enumerate(series.items()):
        pts = [xy(i, v) for i, v in enumerate(vs) if v is not None and v > 0 and math.isfinite(v)]
        if pts:
            dash = ' stroke-dasharray="4 3"' if name == "limit" else ""
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        ly = top + 14 + 16 * k
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{color}" stroke-width="2"/><text x="{left + pw + 34}" y="{ly}">'
                     f'{html.escape(name)}</text>')
    first = next((i for i, r in enumerate(rows) if r.name == report.first_divergence), None)
    if first is not None:
        x = left + pw * first / max(n - 1, 1)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#d62728" '
                     f'stroke-dasharray="2 2"/><text x="{x + 3:.1f}" y="{top + 12}" fill="#d62728">'
                     f'first divergence</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(report: Report) -> str:
    head = ("<tr><th>#</th><th>layer (impl &lt;- ref)</th><th>shape</th><th>tolerance</th><th>max|d| vs ref64</th>"
            "<th>max rel</th><th>cosine</th><th>vs ref32</th><th>floor</th><th>limit</th><th>isolated</th>"
            "<th>iso floor</th><th>iso limit</th><th>mismatches</th><th>verdict</th></tr>")
    body = []
    for r in report.rows:
        cls = "first" if r.name == report.first_divergence else ("bad" if not r.ok or r.iso_ok is False else "")
        verdict = "ok" if r.ok and r.iso_ok is not False else ("FAIL" + (f" ({r.note})" if r.note else ""))
        body.append(
            f'<tr class="{cls}"><td>{r.depth}</td><td>{html.escape(r.name)}</td><td>{_fmt(r.shape)}</td>'
            f"<td>{html.escape(r.tol)}</td><td>{_fmt(r.max_abs)}</td><td>{_fmt(r.max_rel)}</td>"
            f"<td>{_fmt(r.cosine)}</td><td>{_fmt(r.max_abs_vs_ref32)}</td><td>{_fmt(r.floor)}</td>"
            f"<td>{_fmt(r.limit)}</td><td>{_fmt(r.iso_max_abs)}</td><td>{_fmt(r.iso_floor)}</td>"
            f"<td>{_fmt(r.iso_limit)}</td><td>{_fmt(r.mismatches)}</td><td>{html.escape(verdict)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


_CSS = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}td:nth-child(2){text-align:left}
tr.bad{background:#fde2e2}tr.first{background:#f8b4b4;font-weight:bold}.ok{color:#2a7d2a}.fail{color:#c00}
h2{margin-top:32px}code{background:#f4f4f4;padding:1px 4px}"""


def _html(reports: Sequence[Report], data: dict) -> str:
    parts: List[str] = [f"<!doctype html><html><head><meta charset='utf-8'><title>voiceport parity report</title>"
                        f"<style>{_CSS}</style></head><body><h1>voiceport parity report</h1>"
                        f"<p>generated {data['generated']} &middot; overall: "
                        f"<b class='{'ok' if data['ok'] else 'fail'}'>{'PASS' if data['ok'] else 'FAIL'}</b></p>"
                        "<p>Error is measured against the fp64 reference; the floor is the fp32 reference's own "
                        "error against fp64 at that layer; limit = k &times; max(floor, &epsilon;&middot;max|ref|). "
                        "Isolated: the impl layer fed the reference layer's own input.</p>"]
    for name, why in data["not_run"].items():
        parts.append(f"<p class='fail'>not run: <b>{html.escape(name)}</b>: {html.escape(why)}</p>")
    for r in reports:
        status = "PASS" if r.ok else "FAIL"
        env = ", ".join(f"{k} {v}" for k, v in r.env.items())
        parts.append(
            f"<h2>{html.escape(r.spec)} <span class='{'ok' if r.ok else 'fail'}'>{status}</span></h2>"
            f"<p>{html.escape(r.description)}</p><p>{r.compared} tensors compared &middot; "
            f"first divergence: <b>{html.escape(r.first_divergence or 'none')}</b> &middot; first isolated "
            f"divergence: <b>{html.escape(r.first_isolated_divergence or 'none')}</b> &middot; seed {r.seed} "
            f"&middot; seconds {', '.join(f'{k} {v:.1f}' for k, v in r.seconds.items())}</p>"
            f"<p><small>{html.escape(env)}</small></p>{_plot(r)}{_table(r)}")
    parts.append("</body></html>")
    return "".join(parts)
