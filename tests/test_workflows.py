"""Every step of the CI workflows runs here, on Linux, in a cheap form: the macOS job cannot run on this machine,
so each of its commands is parsed from the YAML and checked with the real tools -- `./vp setup` and `./vp python -c`
run, pytest collects the suite with the step's options, `parity`/`fixtures`/`bench` parse with the CLI's own
argument parser and the parity and fixture commands run on their cheapest inputs (the toy, the manifest), pip
install lines' requirement files exist and parse. A command this test does not know fails it: a new step comes
with its check."""
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def commands(script: str) -> List[str]:
    """The shell commands of a `run:` block: continuation lines joined, blanks and comments dropped."""
    out, cur = [], ""
    for line in script.splitlines():
        line = line.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip() and not cur.strip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def steps(name: str) -> Iterator[Tuple[str, str, dict, str]]:
    """(job, step name, step env, command) of every `run:` command of workflow `name`."""
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    for job, spec in wf["jobs"].items():
        for i, step in enumerate(spec["steps"]):
            if "run" in step:
                for cmd in commands(step["run"]):
                    yield job, step.get("name", f"step {i}"), {**spec.get("env", {}), **step.get("env", {})}, cmd


def _run(argv: List[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, cwd=ROOT, env={**os.environ, **{k: str(v) for k, v in env.items()}},
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(argv)}: exit {res.returncode}\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}"
    return res


def _outside(args: List[str], tmp: Path) -> List[str]:
    """Output paths (out/...) moved into the test's temporary folder."""
    return [str(tmp / a) if a.startswith("out/") else a for a in args]


def check_dev_cli(args: List[str], env: dict, tmp: Path) -> str:
    """`./vp CMD ...` / `python -m parity.dev_cli CMD ...`: parsed by the real parser; parity and fixtures run."""
    from parity.dev_cli import build_parser

    args = _outside(args, tmp)
    ns = build_parser(only=args[0]).parse_args(args)
    if args[0] == "parity":
        assert not ns.components, "a CI report runs every component: a cheap check would not be the same command"
        _run([sys.executable, "-m", "parity.dev_cli", *args[:1], "toy", *args[1:]], env)  # same flags, the toy
        return "parsed; ran on the toy"
    if args[0] == "fixtures":
        _run([sys.executable, "-m", "parity.dev_cli", *args], env)
        return "ran"
    return "parsed"


def check(cmd: str, env: dict, tmp: Path) -> str:
    negated = cmd.startswith("! ")
    argv = shlex.split(cmd[2:] if negated else cmd)
    if argv[0] == "./vp":
        if argv[1] == "setup":
            _run([str(ROOT / "vp"), "setup"], env)
            return "ran"
        if argv[1] == "python":
            assert argv[2] == "-c", cmd
            _run([str(ROOT / "vp"), *argv[1:]], env)
            return "ran"
        if argv[1] == "test":
            _run([sys.executable, "-m", "pytest", *argv[2:], "--collect-only", "-q", "-p", "no:cacheprovider"], env)
            return "collected"
        return check_dev_cli(argv[1:], env, tmp)
    if argv[0] == "python":
        if argv[1:3] == ["-m", "parity.dev_cli"]:
            return check_dev_cli(argv[3:], env, tmp)
        if argv[1:3] == ["-m", "pytest"]:
            files = [a for a in argv[3:] if a.endswith(".py")]
            assert files and all((ROOT / f).exists() for f in files), cmd
            _run([sys.executable, "-m", "pytest", *argv[3:], "--collect-only"], env)
            return "collected"
        if argv[1:4] == ["-m", "pip", "install"]:
            return check_pip(argv[4:])
        if argv[1] == "-c":
            compile(argv[2], "<workflow>", "exec")
            if negated:  # `! python -c "import torch"`: holds only in the torch-free install, not here
                return "compiled (negated: the torch-free install's own check)"
            _run([sys.executable, "-c", argv[2]], env)
            return "ran"
    if argv[:1] == ["bash"] and len(argv) == 2 or argv[0].startswith(("tools/", ".ci/")):
        script = ROOT / argv[-1]
        assert script.is_file(), cmd
        _run(["bash", "-n", str(script)], env)
        return "syntax checked"
    raise AssertionError(f"workflow command this test cannot check: {cmd!r} (add its check here)")


def check_pip(args: List[str]) -> str:
    from packaging.requirements import Requirement

    i = 0
    while i < len(args):
        a = args[i]
        if a == "-r":
            assert (ROOT / args[i + 1]).is_file(), args[i + 1]
            i += 2
            continue
        if a == "-e":
            assert (ROOT / args[i + 1] / "pyproject.toml").is_file()
            i += 2
            continue
        if not a.startswith("-"):
            Requirement(a)
        i += 1
    return "requirement files exist, specifiers parse"


def test_workflow_commands_are_split_like_a_shell():
    assert commands("a \\\n  b\n# c\n\n! d e\n") == ["a    b", "! d e"]


@pytest.mark.parametrize("job", ["live", "fixtures", "bench"])
def test_macos_workflow_steps_run_on_linux(job, tmp_path):
    """The macOS jobs' steps, each in its cheap form; the live job runs the live suite and the report (not only the
    fixture replay), with strict fp32 for the suite."""
    done = [(step, cmd, check(cmd, env, tmp_path)) for j, step, env, cmd in steps("macos.yml") if j == job]
    cmds = [c for _, c, _ in done]
    if job == "live":
        assert "./vp test --hypothesis-profile=ci" in cmds and any(c.startswith("./vp parity ") and "--fixtures"
                                                                   not in c for c in cmds)
        env = {s: e for j, s, e, c in steps("macos.yml") if j == job and c.startswith("./vp test")}
        assert list(env.values()) == [{"MLX_ENABLE_TF32": "0"}]
    assert done and all(how for _, _, how in done)


def test_linux_workflow_steps_run_on_linux(tmp_path):
    done = [check(cmd, env, tmp_path) for _, _, env, cmd in steps("linux.yml")]
    assert len(done) >= 4
