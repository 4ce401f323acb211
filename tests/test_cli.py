"""The package surface: CLI help, torch-free impl, the README's commands."""
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import impl
import pytest

from impl.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_cli_help_lists_parity(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "parity" in out and "seeded random" in out


def _help_texts(parser, prog=()):
    """(command path, formatted help) for a parser and every sub-command under it, depth first."""
    import argparse
    yield prog, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_texts(sub, prog + (name,))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_renders(command):
    """`voiceport CMD [SUB] --help` formats for every command and sub-command (a stray % in a help string
    made `bench --help` crash once)."""
    parser = build_parser(only=command)
    texts = dict(_help_texts(parser))
    mine = {k: v for k, v in texts.items() if k[:1] == (command,)}
    assert mine, f"{command} is not registered"
    for path, text in mine.items():
        assert "usage: voiceport" in text, path


def test_cli_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_cli_unknown_parity_component_is_clear_error(capsys):
    assert main(["parity", "nosuch", "--report", "/tmp/x"]) == 2
    assert "unknown component" in capsys.readouterr().err


def test_impl_imports_without_torch():
    """Every impl module imports with torch made unimportable (impl's run time is MLX + NumPy)."""
    mods = [m.name for m in pkgutil.walk_packages(impl.__path__, "impl.")]
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "import importlib; "
            f"[importlib.import_module(m) for m in {mods!r}]; print('ok', len({mods!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stderr[-2000:]


def test_readme_first_commands_are_vp_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    cmds = [line.strip() for line in readme.split("```")[1].strip().splitlines() if line.strip()]
    assert cmds[0].startswith("./vp parity") and cmds[1] == "./vp test"
    assert "./vp test" in (ROOT / ".ci" / "run").read_text()
