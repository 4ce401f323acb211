"""Parity report: `report.json` + a self-contained `index.html` (inline SVG, no scripts, no network).

The page opens with one row per section (verdict, what was compared, cases, worst error against its limit, the
limit's derivation, first divergence): the whole statement of parity at a glance. Below, each section's cases,
and for the layer-by-layer sections the error-vs-depth plot and the per-layer table.
"""
from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from parity.harness import Report


def write_report(sections: Sequence, out_dir, reports: Sequence[Report] = (), skipped: Optional[dict] = None,
                 platform: Optional[dict] = None, device_precision: Optional[dict] = None,
                 variants: Sequence[str] = ()) -> Path:
    """Write report.json and index.html into `out_dir`; returns the HTML path.

    sections: parity.contracts.Section (a bare harness Report is turned into one); reports: the per-layer reports
    behind the layer sections (their rows go into report.json's "components" and the page's tables); platform:
    what the run ran on (parity.harness.run_platform: device, backend, precision, ops path, BLAS), also each
    section's `platform` with its variant; device_precision: the device-default-precision statement
    (parity.cli._device_precision: {"applicable", "why", ...}); variants: the LM variants checked."""
    from parity.contracts import Section, from_report

    secs, reps = [], list(reports)
    for s in sections:
        if isinstance(s, Report):
            reps.append(s)
            secs.append(from_report(s, s.spec, f"{s.compared} tensors"))
        elif isinstance(s, Section):
            secs.append(s)
        else:
            raise TypeError(f"cannot report a {type(s).__name__}")
    from parity.sensitivity import note_for  # what each section can see (fixtures/sensitivity.json)

    for s in secs:
        line = note_for(getattr(s, "component", None) or "", section=s.name)
        if line and line not in s.notes:
            s.notes.append(line)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    passed = bool(secs) and all(s.passed for s in secs) and not skipped
    data = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "passed": passed,
        "ok": passed,
        "platform": platform or {},
        "device_precision": device_precision or {},
        "variants": list(variants),
        "sections": [s.to_dict() for s in secs],
        "components": [r.to_dict() for r in reps],
        "not_run": skipped or {},
    }
    _atomic_write(out / "report.json", json.dumps(data, indent=1))
    page = _html(secs, reps, data)
    _atomic_write(out / "index.html", page)
    return out / "index.html"


DEVICE_SECTION = "device default precision (TF32) vs official"


def device_precision_section(child: dict):
    """One section from the report.json of a run at the device's default precision (`--precision device`): every
    float case of every section against its TF32 bound (parity.harness.tf32_limit: the strict-fp32 limit x 2^13,
    KL x 2^26); exact cases (codes, ids) are counted and named, not bounded (a discrete choice between values
    closer than the TF32 error flips: exactness is what the strict fp32 sections prove). A float case computed
    from flipped ids has no bound either: in a contract section, a float case over its bound that follows a
    differing exact case of the same case group (the name before ": ", e.g. "clone-transcript: generated ids" ->
    "clone-transcript: audio") is listed as downstream of that flip, not judged."""
    from parity.contracts import Case, section
    from parity.harness import TF32_SCALE, tf32_limit

    cases, exact, downstream, unrun, strict_fail = [], [], [], [], 0
    for s in child.get("sections", []):
        strict_fail += not s.get("passed", False)
        if not s.get("details"):
            unrun.append(s["name"])
            cases.append(Case(f"{s['name']}", math.inf, 0.0, False, "floor",
                              f"could not run: {s.get('first_divergence') or s.get('limit_why')}"))
            continue
        flipped: Dict[str, str] = {}  # case group -> its first differing exact case
        for c in s["details"]:
            name, kind = f"{s['name']}: {c['case']}", c["kind"]
            group = str(c["case"]).split(": ", 1)[0] if ": " in str(c["case"]) else None
            err, lim = _num(c["err"]), _num(c["limit"])
            if kind == "exact":
                exact.append((name, err, c.get("detail", "")))
                if err != 0 and group is not None:
                    flipped.setdefault(group, str(c["case"]))
                continue
            bound = tf32_limit(lim, kind)
            ok = math.isfinite(err) and err <= bound
            if not ok and group in flipped:
                downstream.append((name, err, f"computed from different ids ({flipped[group]} differs): "
                                              f"{c.get('detail', '')}"))
                continue
            scale = f"{TF32_SCALE ** 2:.3g}" if kind == "kl" else f"2^13 = {TF32_SCALE:.0f}"
            cases.append(Case(name, err, bound, ok, kind, f"strict-fp32 limit {lim:.3g} x {scale}"
                              + ("" if err <= lim else f" (over the fp32 limit by {err / lim:.3g}x)" if lim > 0
                                 else "")))
    differ = [(n, e, d) for n, e, d in exact if e != 0]
    plat = child.get("platform", {})
    notes = [f"ran at: {plat.get('precision', '?')}; {plat.get('precision_probe', '')}".rstrip("; "),
             f"{strict_fail} of {len(child.get('sections', []))} sections of this run fail their strict-fp32 limits"
             + (" (reduced-precision products are not fp32 roundings)" if strict_fail else "")
             + "; here each float case is judged against its TF32 bound",
             f"exact outputs (codes, token ids; not bounded under TF32): {len(differ)} of {len(exact)} cases differ"
             + (": " + "; ".join(f"{n} ({e:.0f} mismatches{', ' + d if d else ''})" for n, e, d in differ[:12])
                if differ else "")]
    if downstream:
        notes.append(f"{len(downstream)} float cases computed from those differing ids (not bounded): "
                     + "; ".join(f"{n} ({d})" for n, _, d in downstream))
    if unrun:
        notes.append(f"could not run at the device default: {', '.join(unrun)}")
    sec = section(DEVICE_SECTION, f"{len(cases)} float cases of {len(child.get('sections', []))} sections, "
                  "replayed at the device's default precision (a child run, --precision device): error vs the "
                  "official, each against its TF32 bound", cases,
                  "TF32 bound = the strict-fp32 limit x u_TF32/u_fp32 = 2^-11/2^-24 = 2^13 (KL: its square): "
                  "parity.harness.TF32_SCALE", "max|impl - ref64| per case (KL rows: KL), TF32 products",
                  notes=notes)
    sec.details += [{"case": n, "kind": "exact", "err": e, "limit": None, "ok": True,
                     "detail": f"not bounded under TF32 ({e:.0f} mismatches){': ' + d if d else ''}"}
                    for n, e, d in exact]
    sec.details += [{"case": n, "kind": "downstream", "err": e, "limit": None, "ok": True,
                     "detail": f"not bounded under TF32: {d}"} for n, e, d in downstream]
    sec.reference = "; ".join(dict.fromkeys(s.get("reference", "?") for s in child.get("sections", []))) or "-"
    return sec


def _num(x) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return float(x)  # "inf" / "-inf" (report.json's spelling)
    return float(x)


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
    rows = [r for r in report.rows if r.tol != "exact" and r.kl is None]
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


def _layer_table(report: Report) -> str:
    head = ("<tr><th>#</th><th>layer (impl &lt;- ref)</th><th>shape</th><th>tolerance</th><th>max|d| vs ref64</th>"
            "<th>max rel</th><th>cosine</th><th>vs ref32</th><th>floor</th><th>limit</th><th>isolated</th>"
            "<th>iso floor</th><th>iso limit</th><th>mismatches / KL</th><th>verdict</th></tr>")
    body = []
    for r in report.rows:
        cls = "first" if r.name == report.first_divergence else ("bad" if not r.ok or r.iso_ok is False else "")
        verdict = "ok" if r.ok and r.iso_ok is not False else ("FAIL" + (f" ({r.note})" if r.note else ""))
        extra = r.mismatches if r.kl is None else f"KL {r.kl:.3g} (floor {r.kl_floor:.3g})"
        body.append(
            f'<tr class="{cls}"><td>{r.depth}</td><td>{html.escape(r.name)}</td><td>{_fmt(r.shape)}</td>'
            f"<td>{html.escape(r.tol)}</td><td>{_fmt(r.max_abs)}</td><td>{_fmt(r.max_rel)}</td>"
            f"<td>{_fmt(r.cosine)}</td><td>{_fmt(r.max_abs_vs_ref32)}</td><td>{_fmt(r.floor)}</td>"
            f"<td>{_fmt(r.limit)}</td><td>{_fmt(r.iso_max_abs)}</td><td>{_fmt(r.iso_floor)}</td>"
            f"<td>{_fmt(r.iso_limit)}</td><td>{_fmt(extra)}</td><td>{html.escape(verdict)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _bar(ratio: float) -> str:
    """err / limit on a log scale, 1e-4 .. 10: the limit is the dashed line."""
    w = 120
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return ""
    r = ratio if isinstance(ratio, (int, float)) else float("inf")
    pos = w if not math.isfinite(r) else (0 if r <= 1e-4 else min(w, w * (math.log10(r) + 4) / 5))
    color = "#2a7d2a" if r <= 1 else "#c00"
    lim = w * 4 / 5
    return (f'<svg width="{w}" height="10"><rect width="{w}" height="10" fill="#f0f0f0"/>'
            f'<rect width="{pos:.0f}" height="10" fill="{color}"/><line x1="{lim:.0f}" x2="{lim:.0f}" y1="0" '
            f'y2="10" stroke="#333" stroke-dasharray="2 1"/></svg>')


def _overview(secs) -> str:
    head = ("<tr><th>section</th><th>verdict</th><th>variant</th><th>compared</th><th>cases</th><th>worst</th>"
            "<th>limit</th>"
            "<th>worst / limit</th><th></th><th>limit from</th><th>first divergence</th><th>reference</th>"
            "<th>s</th></tr>")
    body = []
    for i, s in enumerate(secs):
        cls = "" if s.passed else "bad"
        body.append(
            f'<tr class="{cls}"><td><a href="#s{i}">{html.escape(s.name)}</a></td>'
            f"<td class='{'ok' if s.passed else 'fail'}'><b>{'PASS' if s.passed else 'FAIL'}</b></td>"
            f"<td class='l'>{html.escape(str(getattr(s, 'platform', {}).get('variant', '-')).split(' (')[0])}</td>"
            f"<td class='l'>{html.escape(s.compared)}</td><td>{s.cases}</td><td>{_fmt(s.worst)}</td>"
            f"<td>{_fmt(s.limit)}</td><td>{_fmt(s.worst_ratio)}</td><td>{_bar(s.worst_ratio)}</td>"
            f"<td class='l'><small>{html.escape(s.limit_why)}</small></td>"
            f"<td class='l'>{html.escape(s.first_divergence or 'none')}</td><td>{html.escape(s.reference)}</td>"
            f"<td>{s.seconds:.0f}</td></tr>")
    return f"<table class='overview'>{head}{''.join(body)}</table>"


def _cases(s) -> str:
    head = "<tr><th>case</th><th>kind</th><th>error</th><th>limit</th><th>verdict</th><th>detail</th></tr>"
    body = []
    for c in s.details:
        cls = "" if c["ok"] else "bad"
        body.append(f'<tr class="{cls}"><td class="l">{html.escape(str(c["case"]))}</td><td>{c["kind"]}</td>'
                    f"<td>{_fmt(c['err'])}</td><td>{_fmt(c['limit'])}</td><td>{'ok' if c['ok'] else 'FAIL'}</td>"
                    f"<td class='l'>{html.escape(str(c['detail']))}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


PLATFORM_FIELDS = (("device", "device"), ("backend", "MLX backend"), ("precision", "precision"),
                   ("variant", "model variant"), ("ops_path", "ops path (impl.ops.path())"), ("blas", "BLAS"))


def _platform_table(data: dict) -> str:
    """The header: what every section ran on, and the device-default-precision statement."""
    plat = data.get("platform") or {}
    if not plat:
        return ""
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td class='l'>{html.escape(str(plat[k]))}</td></tr>"
                   for k, label in PLATFORM_FIELDS if k in plat)
    rows += (f"<tr><td>model variant</td><td class='l'>per section (column <i>variant</i>); LM variants checked: "
             f"{html.escape(', '.join(data.get('variants', [])) or '-')}</td></tr>")
    rows += "".join(f"<tr><td>{k}</td><td class='l'>{html.escape(str(plat[k]))}</td></tr>"
                    for k in ("precision_probe", "mlx", "python") if k in plat)
    dev = data.get("device_precision") or {}
    if dev:
        why = dev.get("why", "")
        if why == "measured":
            why = f"measured: see the section “{DEVICE_SECTION}”"
        rows += f"<tr><td>device default precision</td><td class='l'>{html.escape(why)}</td></tr>"
    return f"<table class='platform'>{rows}</table>"


def _ran_on(plat: dict) -> str:
    if not plat:
        return ""
    return "<p><small>ran on: " + " &middot; ".join(f"{html.escape(label)}: {html.escape(str(plat[k]))}"
                                                   for k, label in PLATFORM_FIELDS if k in plat) + "</small></p>"


_CSS = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:right;vertical-align:top}td.l,td:first-child{text-align:left}
tr.bad{background:#fde2e2}tr.first{background:#f8b4b4;font-weight:bold}.ok{color:#2a7d2a}.fail{color:#c00}
h2{margin-top:32px}code{background:#f4f4f4;padding:1px 4px}table.overview td{max-width:340px}"""


def _html(secs, reps: Sequence[Report], data: dict) -> str:
    n_ok = sum(1 for s in secs if s.passed)
    parts: List[str] = [f"<!doctype html><html><head><meta charset='utf-8'><title>voiceport parity report</title>"
                        f"<style>{_CSS}</style></head><body><h1>voiceport parity report</h1>"
                        f"<p>generated {data['generated']} &middot; overall: "
                        f"<b class='{'ok' if data['passed'] else 'fail'}'>{'PASS' if data['passed'] else 'FAIL'}</b>"
                        f" &middot; {n_ok} of {len(secs)} sections pass</p>"
                        "<p>One section per contract. Floats: error against the fp64 reference, limit = k &times; "
                        "max(floor, &epsilon;&middot;max|ref|) with the floor the fp32 reference's own error; "
                        "integers, ids, codes and lengths: exact. The bar shows worst / limit on a log scale "
                        "(10<sup>-4</sup> .. 10, the dashed line is the limit).</p>", _platform_table(data),
                        _overview(secs)]
    for name, why in data["not_run"].items():
        parts.append(f"<p class='fail'>not run: <b>{html.escape(name)}</b>: {html.escape(why)}</p>")
    by_spec = {r.spec: r for r in reps}
    for i, s in enumerate(secs):
        status = "PASS" if s.passed else "FAIL"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in s.notes)
        parts.append(
            f"<h2 id='s{i}'>{html.escape(s.name)} <span class='{'ok' if s.passed else 'fail'}'>{status}</span></h2>"
            f"<p>{html.escape(s.compared)}</p><p>{s.cases} cases &middot; worst {_fmt(s.worst)} "
            f"({html.escape(s.worst_case or '-')}) vs limit {_fmt(s.limit)} &middot; metric: "
            f"{html.escape(s.metric)} &middot; limit: {html.escape(s.limit_why)} &middot; first divergence: "
            f"<b>{html.escape(s.first_divergence or 'none')}</b> &middot; reference: {html.escape(s.reference)}</p>"
            + _ran_on(getattr(s, "platform", {})) + (f"<ul>{notes}</ul>" if notes else ""))
        rep = by_spec.get(s.component)
        if rep is not None and not s.name.startswith("LM KL"):
            env = ", ".join(f"{k} {v}" for k, v in rep.env.items())
            parts.append(f"<p>{html.escape(rep.description)}</p><p><small>{html.escape(env)} &middot; seconds "
                         f"{', '.join(f'{k} {v:.1f}' for k, v in rep.seconds.items())}</small></p>"
                         f"{_plot(rep)}<details><summary>per layer</summary>{_layer_table(rep)}</details>")
        else:
            parts.append(f"<details{' open' if not s.passed else ''}><summary>{len(s.details)} cases</summary>"
                         f"{_cases(s)}</details>")
    parts.append("</body></html>")
    return "".join(parts)
