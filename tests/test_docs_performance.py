"""docs/performance.md is rendered from the stored runs, never typed: the committed page and figures must be exactly
what `./vp bench --docs` (bench.dashboard.render_docs) renders from bench/history/ and the record folders."""
from __future__ import annotations

import json
from pathlib import Path

from bench.dashboard import FIGURES, render_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_docs_performance_page_is_what_the_stored_runs_render():
    rendered = render_docs(ROOT)
    stale = [rel for rel, text in rendered.items()
             if not (DOCS / rel).exists() or (DOCS / rel).read_text() != text]
    extra = sorted(f"{FIGURES}/{p.name}" for p in (DOCS / FIGURES).glob("*.svg")
                   if f"{FIGURES}/{p.name}" not in rendered)
    assert not stale and not extra, (
        f"docs out of date with the stored runs: differ {stale}, not rendered {extra}; run `./vp bench --docs`")


def test_docs_performance_render_names_provenance_of_every_table(tmp_path):
    # a record of an unseen shape still renders, every table with its command, commit, machine and date
    (tmp_path / "bench" / "history").mkdir(parents=True)
    runs = tmp_path / "bench" / "gpu_runs"
    runs.mkdir()
    (runs / "x1-2030-01-02.json").write_text(json.dumps({
        "machine": "box", "git_sha": "abc1234", "commands": {"a": "python3 -m bench.thing"},
        "a": {"rows": [{"case": "k", "ratio": 1.5, "impl": {"s": 0.25}}]}, "b": {"tok_s": 3.0}}))
    page = render_docs(tmp_path)["performance.md"]
    assert "| case | ratio | impl.s |" in page and "| k | 1.5 | 0.25 |" in page
    assert "Command: `python3 -m bench.thing`. Commit `abc1234`, machine: box, date 2030-01-02." in page
    assert "| tok_s |" in page and "| 3 |" in page
    assert any(rel.startswith(FIGURES) for rel in render_docs(tmp_path))  # the ratio column drew a figure
