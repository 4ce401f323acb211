"""The README cannot drift from the code (issue 16): every fenced block of README.md is checked.

Shell blocks, line by line (a line no rule covers fails `test_readme_every_block_is_covered`):
  ./vp COMMAND ...               parsed by the real `./vp` parser (parity.dev_cli.build_parser), nothing run
  ./vp python -m MODULE ARGS     parsed by the module's own argparse (stopped at parse_args, before any work)
  ./vp test [ARGS], ./vp setup   the launcher's own commands (ARGS: pytest's options, checked by a collection)
  voiceport COMMAND ...          parsed by the installed CLI's parser (impl.cli.build_parser)
  cp SRC DST                     SRC in the clone
  pip install "./[EXTRAS]"       every extra declared in pyproject.toml
The files a command reads (values with a known file extension or a "/", option values given on the line) must be
in the clone (git-tracked) or written by an earlier runnable README command (-o/--out/--report values, cp's DST).
A value under /path/to/ is the reader's own file (a real checkpoint): its line is only parsed, and writes nothing
later lines may use. Python blocks run in a fresh interpreter: the fast ones here, the ones that load the 1B LM under
`-m slow`, which also runs the README's commands verbatim, in README order, in a copy of the clone.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLACEHOLDER = "/path/to/"  # the reader's own files (real checkpoints, a whisper model, word times)
FILE_SUFFIXES = {".wav", ".flac", ".ogg", ".npy", ".json", ".pth", ".safetensors", ".txt", ".html"}
OUTPUT_DESTS = {"out", "report"}  # argparse dests that name what a command writes

# Python blocks by (section heading, index among the section's python blocks): "fast" runs in the normal suite,
# "slow" (loads the seeded 1B LM and generates: minutes) under -m slow, after the commands above it.
PYTHON_BLOCKS = {
    ("Clone a voice and speak", 0): "fast",
    ("Clone a voice and speak", 1): "slow",
    ("Clone a voice and speak", 2): "slow",
}

# Runnable lines the verbatim run leaves out, by prefix, with why.
NOT_VERBATIM = {
    "./vp test": "the suite this test is part of (tools/clean_check runs it on a fresh clone)",
    "./vp bench": "tens of minutes of benchmarks; the benchmark job runs them",
    "./vp python -m bench.": "a benchmark suite; the benchmark job runs it",
}


# ------------------------------------------------------------------------------------------------ the README

@dataclass(frozen=True)
class Block:
    section: str  # the "## " heading above it ("" before the first)
    lang: str
    text: str
    line: int  # 1-based line of the opening fence


def readme_blocks(text: str) -> List[Block]:
    blocks, section, lines, i = [], "", text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("```"):
            start, lang, body = i + 1, line[3:].strip(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"README.md:{start}: unclosed fence"
            blocks.append(Block(section, lang, "\n".join(body) + "\n", start))
        i += 1
    return blocks


@dataclass
class Command:
    block: Block
    line: int  # README line
    raw: str  # the line as written (continuations joined), comment included
    argv: List[str]
    inputs: List[str] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)
    placeholder: bool = False
    runnable: bool = True
    why_not: str = ""
    error: Optional[str] = None  # the check's complaint

    @property
    def id(self) -> str:
        return f"README.md:{self.line} {' '.join(self.argv)[:70]}"


def shell_commands(block: Block) -> List[Command]:
    out, pending, first = [], "", 0
    for k, line in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + 1 + k
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        raw, pending = pending + line, ""
        argv = shlex.split(raw, comments=True)
        if argv:
            out.append(Command(block, first, raw.strip(), argv))
    return out


def is_shell(block: Block) -> bool:
    return block.lang in ("", "sh", "bash", "shell", "console")


# ------------------------------------------------------------------------------------------------ the checks

class _Refused(Exception):
    pass


def _parse(parser_of, argv: List[str]):
    """argparse's Namespace for argv, or _Refused with the parser's one-line error."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser_of().parse_args(argv)
    except SystemExit as e:
        raise _Refused(f"exit {e.code}: {err.getvalue().strip()}") from None


PARSE_MODULE = r"""
import argparse, json, runpy, sys
class Parsed(Exception):
    pass
real = argparse.ArgumentParser.parse_args
def stop(self, args=None, namespace=None):
    raise Parsed(real(self, args, namespace))
argparse.ArgumentParser.parse_args = stop
sys.argv = [sys.argv[1]] + sys.argv[2:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except Parsed as p:
    print("PARSED " + json.dumps(vars(p.args[0]), default=str))
    sys.exit(0)
print("the module ran without parsing arguments with argparse", file=sys.stderr)
sys.exit(3)
"""


def _module_args(module: str, args: List[str]) -> Dict[str, object]:
    """`python -m module args` up to its argparse's parse_args, in a fresh interpreter (no work done)."""
    res = subprocess.run([sys.executable, "-c", PARSE_MODULE, module, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if res.returncode != 0 or "PARSED " not in res.stdout:
        raise _Refused(f"python -m {module}: exit {res.returncode}: {res.stderr.strip()[-600:]}")
    return json.loads(res.stdout.split("PARSED ", 1)[1])


def _pytest_args(args: List[str]) -> None:
    """pytest accepts `args` (its options and the plugins'): a collection of this file with them."""
    res = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider",
                          str(Path(__file__).relative_to(ROOT))], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    if res.returncode not in (0, 5):  # 5: no test selected (a -m that this file does not have)
        raise _Refused(f"pytest {' '.join(args)}: exit {res.returncode}: {res.stdout.strip()[-600:]}")


def _pyproject_extras() -> set:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _paths(ns: Dict[str, object], argv: List[str]) -> Tuple[List[str], List[str]]:
    """(inputs, outputs) among the values given on the line (parser defaults are not the README's)."""
    inputs, outputs = [], []
    for dest, value in ns.items():
        if dest.startswith("_") or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str) or v not in argv:
                continue
            if dest in OUTPUT_DESTS:
                outputs.append(v)
            elif "/" in v or Path(v).suffix.lower() in FILE_SUFFIXES:
                inputs.append(v)
    return inputs, outputs


def check(cmd: Command) -> None:
    """Parse cmd with its real parser; fill inputs/outputs/placeholder/runnable, or cmd.error."""
    from impl import cli
    from parity import dev_cli

    argv = cmd.argv
    cmd.placeholder = any(a.startswith(PLACEHOLDER) or f"={PLACEHOLDER}" in a for a in argv)
    try:
        if argv[0] == "./vp" and len(argv) > 1 and argv[1] in ("setup", "help"):
            if argv[2:]:
                raise _Refused(f"./vp {argv[1]} takes no arguments")
        elif argv[0] == "./vp" and len(argv) > 1 and argv[1] == "test":
            if argv[2:]:
                _pytest_args(argv[2:])
        elif argv[0] == "./vp" and len(argv) > 1 and argv[1] == "python":
            if argv[2:3] != ["-m"] or len(argv) < 4:
                raise _Refused("README runs Python code as `./vp python -m MODULE ...`")
            cmd.inputs, cmd.outputs = _paths(_module_args(argv[3], argv[4:]), argv)
        elif argv[0] in ("./vp", "voiceport") and len(argv) > 1:
            if argv[0] == "./vp":
                ns = _parse(lambda: dev_cli.build_parser(only=argv[1]), argv[1:])
            else:
                ns = _parse(lambda: cli.build_parser(only=argv[1]), argv[1:])
            cmd.inputs, cmd.outputs = _paths(vars(ns), argv)
        elif argv[0] == "cp":
            if len(argv) != 3 or argv[1].startswith("-"):
                raise _Refused("cp SRC DST")
            cmd.inputs, cmd.outputs = [argv[1]], [argv[2]]
        elif argv[:2] == ["pip", "install"]:
            m = re.fullmatch(r"\./?\[([\w,\-]+)\]", argv[2] if len(argv) == 3 else "")
            if not m:
                raise _Refused('pip install "./[EXTRAS]" (this clone with extras)')
            unknown = set(m.group(1).split(",")) - _pyproject_extras()
            if unknown:
                raise _Refused(f"extras not in pyproject.toml: {sorted(unknown)}")
            cmd.runnable, cmd.why_not = False, "an install into the caller's environment (tools/clean_check runs it)"
        else:
            raise _Refused("no README check covers this line: a ./vp, voiceport, cp or pip install command")
    except _Refused as e:
        cmd.error = str(e)
        return
    if cmd.placeholder:
        cmd.runnable, cmd.why_not = False, f"names the reader's own files ({PLACEHOLDER}...)"
    for prefix, why in NOT_VERBATIM.items():
        if cmd.raw.startswith(prefix):
            cmd.runnable, cmd.why_not = False, why


@lru_cache(maxsize=1)
def _tracked() -> Tuple[str, ...]:
    res = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:  # not a git checkout: what is on disk
        return tuple(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file())
    return tuple(res.stdout.splitlines())


def in_clone(path: str) -> bool:
    p = os.path.normpath(path)
    return any(t == p or t.startswith(p + "/") for t in _tracked())


@lru_cache(maxsize=1)
def walk() -> Tuple[List[Block], List[Command]]:
    """Every block and every shell command of the README, checked in README order: an input must be in the clone or
    written by an earlier runnable command."""
    blocks = readme_blocks(README.read_text())
    commands, written = [], set()
    for block in blocks:
        if not is_shell(block):
            continue
        for cmd in shell_commands(block):
            check(cmd)
            if cmd.error is None:
                missing = [p for p in cmd.inputs if not p.startswith(PLACEHOLDER)
                           and os.path.normpath(p) not in written and not in_clone(p)]
                if missing:
                    cmd.error = (f"reads {missing}: neither in the clone nor written by an earlier README command "
                                 "(a runnable one: lines naming /path/to/ files are not run)")
            if cmd.error is None and cmd.runnable:
                written.update(os.path.normpath(p) for p in cmd.outputs)
            commands.append(cmd)
    return blocks, commands


def _python_blocks(blocks: List[Block]) -> Dict[Tuple[str, int], Block]:
    out, seen = {}, {}
    for b in blocks:
        if b.lang == "python":
            k = seen.get(b.section, 0)
            seen[b.section] = k + 1
            out[(b.section, k)] = b
    return out


# ------------------------------------------------------------------------------------------------ fast tests

def _command_ids() -> List[str]:
    ids = []
    for b in readme_blocks(README.read_text()):
        if is_shell(b):
            ids += [f"README.md:{c.line}" for c in shell_commands(b)]
    return ids


def test_readme_every_block_is_covered():
    """A new fenced block must be of a kind a check covers: shell (every line a rule above) or a python block listed
    in PYTHON_BLOCKS as fast or slow; PYTHON_BLOCKS names no block that is gone."""
    blocks, commands = walk()
    assert blocks and commands, "no fenced blocks found in README.md"
    for b in blocks:
        assert is_shell(b) or b.lang == "python", f"README.md:{b.line}: a ```{b.lang} block that no check covers"
    uncovered = [f"{c.id}: {c.error}" for c in commands if c.error and c.error.startswith("no README check")]
    assert not uncovered, "\n".join(uncovered)
    python = _python_blocks(blocks)
    new = [f"README.md:{b.line} ({key})" for key, b in python.items() if key not in PYTHON_BLOCKS]
    assert not new, f"python blocks not in PYTHON_BLOCKS (add them as 'fast' or 'slow'): {new}"
    gone = [key for key in PYTHON_BLOCKS if key not in python]
    assert not gone, f"PYTHON_BLOCKS names blocks the README no longer has: {gone}"
    assert set(PYTHON_BLOCKS.values()) <= {"fast", "slow"}


@pytest.mark.parametrize("where", _command_ids())
def test_readme_command_parses_and_reads_known_files(where):
    """Each command of the README parses with its real parser and reads only files the clone or an earlier README
    command provides."""
    _, commands = walk()
    (cmd,) = [c for c in commands if f"README.md:{c.line}" == where]
    assert cmd.error is None, f"{cmd.id}: {cmd.error}"


def test_readme_check_can_fail():
    """The checks refuse what they should: a missing required option, an unknown option, a file nobody wrote, an
    unknown extra, an uncovered line."""
    block = Block("test", "", "\n".join([
        './vp tts --text "Hi." --speaker speaker.json',                       # no --out
        "./vp dac encode speech.wav -o c.npy --fast",                         # unknown option
        "voiceport profile show nowhere.json",                                # a file nobody wrote
        'pip install "./[tts,gpu]"',                                          # no such extra
        "python make_it_work.py",                                             # no rule covers it
        "./vp python -m bench.bench_dac --seconds one",                       # the module's parser refuses it
    ]) + "\n", 1)
    cmds = shell_commands(block)
    for c in cmds:
        check(c)
    errors = [c.error or "" for c in cmds]
    assert "required: --out" in errors[0]
    assert "unrecognized arguments: --fast" in errors[1]
    assert errors[2] == "" and cmds[2].inputs == ["nowhere.json"] and not in_clone("nowhere.json")
    assert "['gpu']" in errors[3]
    assert errors[4].startswith("no README check")
    assert "invalid" in errors[5] and "--seconds" in errors[5]


def test_readme_quick_start_is_vp_parity_then_test():
    blocks, commands = walk()
    first = [c.raw for c in commands if c.block == blocks[0]]
    assert first == ["./vp parity --report out/report", "./vp test"]


def _run_python(block: Block, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT if not (cwd / "impl").is_dir() else cwd))
    return subprocess.run([sys.executable, "-c", block.text], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("key", [k for k, v in PYTHON_BLOCKS.items() if v == "fast"],
                         ids=lambda k: f"{k[0]}[{k[1]}]")
def test_readme_python_block_runs(key, tmp_path):
    block = _python_blocks(walk()[0])[key]
    res = _run_python(block, tmp_path, timeout=300)
    assert res.returncode == 0, f"README.md:{block.line}:\n{res.stderr[-3000:]}"
    assert list(tmp_path.iterdir()) == []  # writes nothing where it runs


def _block_files(block: Block) -> List[str]:
    """The files a python block names in quotes (relative, with a known suffix, not the reader's own)."""
    names = re.findall(r"[\"']([^\"'\s]+)[\"']", block.text)
    return [n for n in names if Path(n).suffix.lower() in FILE_SUFFIXES and not n.startswith(("/", PLACEHOLDER))]


def _writers(files: List[str]) -> List[Command]:
    """The runnable README commands that write `files`, with those that write their inputs, in README order."""
    _, commands = walk()
    wanted, chosen = set(os.path.normpath(f) for f in files), []
    for cmd in reversed(commands):
        outs = {os.path.normpath(p) for p in cmd.outputs}
        if cmd.runnable and cmd.error is None and outs & wanted:
            chosen.append(cmd)
            wanted = (wanted - outs) | {os.path.normpath(p) for p in cmd.inputs if not in_clone(p)}
    assert not wanted, f"no README command writes {sorted(wanted)}"
    return chosen[::-1]


@pytest.mark.parametrize("key", [k for k, v in PYTHON_BLOCKS.items() if v == "slow"],
                         ids=lambda k: f"{k[0]}[{k[1]}]")
def test_readme_model_python_block_reads_only_what_the_readme_writes(key):
    """The files a slow block reads are written by runnable README commands (found now, run under -m slow)."""
    block = _python_blocks(walk()[0])[key]
    files = _block_files(block)
    assert [c for c in _writers(files)] or not files


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k, v in PYTHON_BLOCKS.items() if v == "slow"],
                         ids=lambda k: f"{k[0]}[{k[1]}]")
def test_readme_model_python_block_runs_on_the_seeded_defaults(key, tmp_path):
    """A model's Python example runs as written on the embedded seeded checkpoints (random weights), in a copy of
    the clone, after the README commands that write the files it reads (`speech.wav`, `speaker.json`): it loads,
    generates, streams, and exits 0. Its settings (greedy, a token cap) are deterministic on those weights."""
    block = _python_blocks(walk()[0])[key]
    root = _copy_clone(tmp_path)
    env = _voiceport_env(tmp_path, root)
    for cmd in _writers(_block_files(block)):
        res = subprocess.run(["bash", "-c", cmd.raw], capture_output=True, text=True, cwd=root, env=env, timeout=3600)
        assert res.returncode == 0, f"{cmd.id}:\n{res.stderr[-3000:]}"
    res = _run_python(block, root, timeout=3600)
    assert res.returncode == 0, f"README.md:{block.line}:\n{res.stderr[-3000:]}"


# ------------------------------------------------------------------------------------------------ slow: verbatim

def _voiceport_env(tmp_path: Path, root: Path) -> Dict[str, str]:
    """The environment a README command runs in: `voiceport` on PATH as the installed entry point would be
    (`python -m impl.cli`), the clone copy at `root` importable."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "voiceport").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m impl.cli "$@"\n')
    (bin_dir / "voiceport").chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(root))


def _copy_clone(dst: Path) -> Path:
    """The clone's tracked files (as they are in the working tree) under dst/voiceport."""
    root = dst / "voiceport"
    for rel in _tracked():
        src = ROOT / rel
        if src.is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    return root


def _run_verbatim(tmp_path: Path, first: int, last: Optional[int] = None) -> List[str]:
    """The runnable commands (NOT_VERBATIM aside) and python blocks of README blocks [first, last), in README order,
    verbatim, in a copy of the clone: each exits 0 and writes the files it names. `voiceport` is the installed entry
    point (`python -m impl.cli`); a command identical to one already run (voiceport == ./vp) runs once."""
    root = _copy_clone(tmp_path)
    env = _voiceport_env(tmp_path, root)
    blocks, commands = walk()
    python = {id(b): key for key, b in _python_blocks(blocks).items()}
    by_block: Dict[int, List[Command]] = {}
    for c in commands:
        by_block.setdefault(id(c.block), []).append(c)
    done, log = set(), []
    for block in blocks[first:last]:
        steps: list = []
        if is_shell(block):
            steps = [c for c in by_block.get(id(block), []) if c.runnable]
        elif PYTHON_BLOCKS.get(python.get(id(block))) is not None:
            steps = [block]
        for step in steps:
            t0 = time.perf_counter()
            if isinstance(step, Block):
                res = _run_python(step, root, timeout=3600)
                what, outputs = f"README.md:{step.line} python block", []
            else:
                key = " ".join(["./vp" if a == "voiceport" and i == 0 else a for i, a in enumerate(step.argv)])
                if key in done:
                    continue
                done.add(key)
                res = subprocess.run(["bash", "-c", step.raw], capture_output=True, text=True, cwd=root, env=env,
                                     timeout=3600)
                what, outputs = step.id, step.outputs
            log.append(f"{time.perf_counter() - t0:7.1f} s  exit {res.returncode}  {what}")
            print(log[-1], flush=True)
            assert res.returncode == 0, f"{what}:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
            for p in outputs:
                assert (root / p).exists(), f"{what}: wrote no {p}"
    return log


@pytest.mark.slow
def test_readme_quick_start_runs_verbatim(tmp_path):
    """The first block: `./vp parity --report out/report` (`./vp test` is this suite; tools/clean_check runs it)."""
    log = _run_verbatim(tmp_path, 0, 1)
    assert len(log) == 1


@pytest.mark.slow
def test_readme_walkthrough_runs_verbatim(tmp_path):
    """Every later block: speak from the committed clip, the dac commands, the tts options, the Python API, the
    profile commands."""
    log = _run_verbatim(tmp_path, 1)
    assert len(log) >= 8, "\n".join(log)
