"""Docstrings and comments in impl/ state contracts, not measurement logs (issue 31): none holds a date, a load
average or a before/after timing. Measurements live in bench/ records and commit messages, rendered into docs/."""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]

_NUM = r"~?\d[\d.,]*(?:\s*[-–/]\s*\d[\d.,]*)*"  # 4.3, 1,572, 10-12, 7.33/16.74/43.14
_UNIT = r"(?:ns|µs|us|ms|s|min|tok/s|tokens/s|GB/s|GFLOP/s|x|×|%)"
LOG_PATTERNS = {
    "a date": re.compile(r"\b20\d\d-\d\d-\d\d\b|\b\d{1,2}:\d\d UTC\b|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|"
                         r"Dec)[a-z]* 20\d\d\b"),
    "a load average": re.compile(r"\bload(?: average)?s?(?: of)? ~?\d|\bload \d[\d.]*\s*(?:->|→)", re.I),
    "a before/after timing": re.compile(
        rf"{_NUM}\s*{_UNIT}?\s*(?:->|→|instead of|vs\.?|against)\s*{_NUM}\s*{_UNIT}(?![\w])"
        rf"|{_NUM}\s*{_UNIT}(?![\w])[^.;:\n]{{0,40}}\b(?:vs\.?|against|instead of)\s+{_NUM}\s*{_UNIT}(?![\w])", re.I),
}


def texts(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, text) of every docstring and comment of one file."""
    src = path.read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def findings(root: Path) -> List[str]:
    out = []
    for path in sorted((root / "impl").rglob("*.py")):
        for line, text in texts(path):
            flat = " ".join(text.split())
            for what, pattern in LOG_PATTERNS.items():
                out += [f"{path.relative_to(root)}:{line}: {what}: {m.group(0)!r}" for m in pattern.finditer(flat)]
    return out


def test_docs_impl_docstrings_hold_no_measurement_logs():
    bad = findings(ROOT)
    assert not bad, "measurement logs in impl/ docstrings or comments (move them to bench/ records):\n" + "\n".join(bad)


def test_docs_impl_docstrings_check_catches_each_kind(tmp_path):
    impl = tmp_path / "impl"
    impl.mkdir()
    (impl / "m.py").write_text(
        '"""A module.\n\nMeasured 2026-11-28 on a quiet host."""\n'
        "def f():\n    \"\"\"Faster at load 2.1.\"\"\"\n"
        "# decode 93 -> 83 ms/token\n"
        "def g():\n    \"\"\"Was 0.37 ms vs 0.20 ms compiled.\"\"\"\n"
        "def h():\n    \"\"\"Returns (B, L) float32; 15 ms fades; 2048-code chunks.\"\"\"\n")
    kinds = [line.split(": ")[1] for line in findings(tmp_path)]
    assert kinds == ["a date", "a load average", "a before/after timing", "a before/after timing"], kinds
