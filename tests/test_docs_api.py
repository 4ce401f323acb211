"""impl's API reference (docs/api/, `./vp bench --docs`) builds from the docstrings without a warning, and covers
the entry points the README uses."""
from __future__ import annotations

from pathlib import Path

from bench.dashboard import api_modules, build_api

ROOT = Path(__file__).resolve().parents[1]


def test_docs_api_builds_without_warnings(tmp_path):
    problems = build_api(ROOT, tmp_path / "api")
    assert problems == [], "\n".join(problems)
    pages = {p.relative_to(tmp_path / "api").as_posix() for p in (tmp_path / "api").rglob("*.html")}
    for page in ("impl/accel.html", "impl/accel/blas.html", "impl/dac.html", "impl/outetts/generate.html",
                 "impl/speaker.html", "impl/spark/generate.html", "impl/llama.html", "impl/seeded.html"):
        assert page in pages, f"{page} missing from the API reference"
    assert "enable_fast_blas" in (tmp_path / "api" / "impl/accel/blas.html").read_text()
    assert not any("/_" in p or p.startswith("impl/_") for p in pages), "a private module was documented"


def test_docs_api_modules_reach_package_submodules():
    mods = api_modules(ROOT)
    assert mods[0] == "impl" and "impl.spark.generate" in mods and "impl.dac.model" in mods
