"""The package surface: CLI help, layering (impl/cli.py knows no dev tree), missing extras, torch-free impl, the
README's commands, pyproject vs requirements/base.txt."""
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import impl
import pytest

from impl import cli
from parity import dev_cli

ROOT = Path(__file__).resolve().parents[1]
SHIPPING = ["dac", "tts", "profile", "spark", "info"]
DEV = ["parity", "fixtures", "bench"]


def _commands(parser):
    import argparse
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices


def test_cli_voiceport_help_lists_exactly_the_shipping_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: voiceport" in out and "seeded random" in out
    assert list(_commands(cli.build_parser(only=""))) == SHIPPING
    listed = re.findall(r"^ {4}(\w+) ", out, re.M)
    assert listed == SHIPPING, out


def test_cli_help_names_both_models_and_their_sample_rates(capsys):
    """`voiceport --help` and `voiceport tts --help` name OuteTTS and Spark-TTS, and `--out` both sample rates."""
    import argparse

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    assert "OuteTTS" in top and "Spark-TTS" in top
    tts = _commands(cli.build_parser(only="tts"))["tts"]
    out = [a for a in tts._actions if a.dest == "out"][0].help
    assert "24 kHz for OuteTTS" in out and "16 kHz for Spark-TTS" in out
    assert "OuteTTS" in tts.description and "Spark-TTS" in tts.description
    assert {"--text-file", "--variant"} <= set(tts._option_string_actions)
    assert isinstance(tts, argparse.ArgumentParser)


def test_cli_vp_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        dev_cli.main(["--help"])
    assert e.value.code == 0
    listed = re.findall(r"^ {4}(\w+) ", capsys.readouterr().out, re.M)
    assert sorted(listed) == sorted(SHIPPING + DEV)


def test_cli_impl_imports_neither_parity_nor_bench():
    """Layers point down: impl.cli, with every shipping command configured, imports no dev-tree package."""
    code = ("import sys; import impl.cli as c; c.build_parser(only=None); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'parity', 'bench', 'reference', 'torch'}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]", res.stdout


def _help_texts(parser, prog=()):
    """(command path, formatted help) for a parser and every sub-command under it, depth first."""
    import argparse
    yield prog, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_texts(sub, prog + (name,))


@pytest.mark.parametrize("command", sorted(dev_cli.COMMANDS))
def test_every_command_help_renders(command):
    """`voiceport CMD [SUB] --help` / `./vp CMD [SUB] --help` formats for every command and sub-command (a stray %
    in a help string made `bench --help` crash once)."""
    parser, prog = (cli.build_parser(only=command), "voiceport") if command in cli.COMMANDS else \
        (dev_cli.build_parser(only=command), "vp")
    texts = dict(_help_texts(parser))
    mine = {k: v for k, v in texts.items() if k[:1] == (command,)}
    assert mine, f"{command} is not registered"
    for path, text in mine.items():
        assert f"usage: {prog} " in text, path


def _arguments(parser, prog=()):
    """(command path, action) for every argument of a parser and its sub-commands (help and sub-command actions
    left out)."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _arguments(sub, prog + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield prog, action


UNDOCUMENTED: set = set()  # (command, action, option) that may lack help: none


@pytest.mark.parametrize("command", sorted(dev_cli.COMMANDS))
def test_cli_help_explains_every_argument(command, capsys):
    """`CMD [ACTION] --help` exits 0 and prints every option and positional of that command with its help text."""
    parser = dev_cli.build_parser(only=command)
    args = [(path, a) for path, a in _arguments(parser) if path[:1] == (command,)]
    assert args, command
    for path, action in args:
        name = (action.option_strings or [action.metavar or action.dest])[0]
        if path + (name,) in UNDOCUMENTED:
            continue
        assert action.help and len(action.help) > 8, f"{' '.join(path)} {name}: no help"
        with pytest.raises(SystemExit) as e:
            dev_cli.main([*path, "--help"])
        assert e.value.code == 0
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
        assert name in out and " ".join(action.help.split()).replace("%%", "%")[:40] in out, (path, name, out)


def test_cli_undocumented_arguments_are_still_undocumented():
    """UNDOCUMENTED shrinks: an entry whose argument gained a help text fails here, to be removed."""
    parser = dev_cli.build_parser(only=None)
    for path, action in _arguments(parser):
        name = (action.option_strings or [action.metavar or action.dest])[0]
        if path + (name,) in UNDOCUMENTED:
            assert not action.help, f"{path + (name,)} has a help text now: remove it from UNDOCUMENTED"


@pytest.mark.parametrize("main,argv,line", [
    (cli.main, ["tts", "--seed", "x"], "voiceport tts: error: argument --seed: invalid int value: 'x' "
                                       "(voiceport tts --help)"),
    (cli.main, ["dac", "encode", "a.wav"], "voiceport dac encode: error: the following arguments are required: "
                                           "-o/--out (voiceport dac encode --help)"),
    (dev_cli.main, ["parity", "--seed"], "vp parity: error: argument --seed: expected one argument (vp parity --help)"),
    (dev_cli.main, ["fixtures", "verify", "--sha"], "vp fixtures verify: error: unrecognized arguments: --sha "
                                                   "(vp fixtures verify --help)"),
    (dev_cli.main, ["bench", "--quick", "1"], "vp bench: error: unrecognized arguments: 1 (vp bench --help)"),
    (dev_cli.main, ["fixtures"], "vp fixtures: error: the following arguments are required: ACTION: one of "
                                 "generate, verify (vp fixtures --help)"),
])
def test_cli_usage_error_is_one_line(main, argv, line, capsys):
    """argparse errors of the shipping and the development commands: one line naming the command and action, exit
    2, no usage block (the catalogue in test_bad_inputs.py has one per command and kind)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [line] and out == ""


def test_cli_no_command_is_usage_error(capsys):
    assert cli.main([]) == 2
    assert dev_cli.main([]) == 2


def test_cli_unknown_parity_component_is_clear_error(tmp_path, capsys):
    assert dev_cli.main(["parity", "nosuch", "--report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("vp parity: error: unknown component")


def _voiceport(args, hide, cwd):
    """The installed entry point (`sys.exit(impl.cli.main())`) with the module `hide` unimportable."""
    code = (f"import sys; sys.modules[{hide!r}] = None; sys.argv = ['voiceport'] + {args!r}; "
            "from impl.cli import main; sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def tts_inputs(tmp_path_factory):
    """A tiny seeded OuteTTS model folder, a tiny DAC, a synthetic speaker profile: (folder, argv before --text)."""
    from parity.doubles import write_tiny_outetts

    d = write_tiny_outetts(tmp_path_factory.mktemp("tts"))
    return d, ["tts", "--speaker", "speaker.json", "--model", "model", "--codec", "dac.safetensors", "--quiet",
               "--out", "out.wav"]


@pytest.mark.parametrize("hide,text,extra,what", [
    ("ftfy", "Hello there.", "tts", "text normalisation needs ftfy"),
    ("MeCab", "こんにちは。", "ja", "Japanese/Chinese text needs MeCab"),
])
def test_cli_missing_extra_is_one_line_naming_it(tts_inputs, hide, text, extra, what):
    folder, argv = tts_inputs
    res = _voiceport(argv + ["--text", text], hide, folder)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"voiceport tts: error: {what}"), res.stderr
    assert lines[0].endswith(f'pip install "voiceport[{extra}]"'), lines
    assert not (folder / "out.wav").exists()


def test_cli_missing_profile_extra_is_one_line_naming_it(librivox, tmp_path):
    from impl.seeded.dac import write_seeded_safetensors
    from parity.doubles import TINY

    write_seeded_safetensors(tmp_path / "dac.safetensors", TINY, seed=0)
    clip = librivox["0880"]
    res = _voiceport(["profile", "create", clip.wav, "--text", clip.text, "--codec", "dac.safetensors", "--quiet",
                      "-o", "s.json"], "pocketsphinx", tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines() == [
        'voiceport profile: error: forced alignment (--text) needs pocketsphinx: pip install "voiceport[profile]"']
    assert not (tmp_path / "s.json").exists()


def test_impl_imports_without_torch():
    """Every impl module imports with torch made unimportable (impl's run time is MLX + NumPy)."""
    mods = [m.name for m in pkgutil.walk_packages(impl.__path__, "impl.")]
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "import importlib; "
            f"[importlib.import_module(m) for m in {mods!r}]; print('ok', len({mods!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stderr[-2000:]


def _requirements(lines):
    """{name: 'specifier; marker'} with spaces and quote style normalised."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            req = re.sub(r"\s+", "", line).replace('"', "'")
            out[re.split(r"[=<>;\[]", req)[0] + ("[cpu]" if "[cpu]" in req else "")] = req
    return out


def test_pyproject_deps_and_extras_match_requirements_base():
    """requirements/base.txt (what ./vp installs) = pyproject's dependencies + the tts, profile, ja extras."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    shipped = project["dependencies"] + extras["tts"] + extras["profile"] + extras["ja"] + extras["spark"]
    assert _requirements(shipped) == _requirements((ROOT / "requirements" / "base.txt").read_text().splitlines())
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert packages["include"] == ["impl", "impl.*"]


def test_readme_first_commands_are_vp_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    cmds = [line.strip() for line in readme.split("```")[1].strip().splitlines() if line.strip()]
    assert cmds[0].startswith("./vp parity") and cmds[1] == "./vp test"
    assert "./vp test" in (ROOT / ".ci" / "run").read_text()


def test_cli_tts_codec_errors_before_the_lm_loads(tts_inputs, monkeypatch, capsys):
    """A bad --codec is refused before the LM folder is touched (the embedded 1B LM takes minutes to write once)."""
    from impl.outetts import generate as G
    from impl import seeded

    def no_lm(*a, **k):
        raise AssertionError("the LM was loaded before the codec error")

    monkeypatch.setattr(G, "load", no_lm)
    monkeypatch.setattr(seeded, "default_model", no_lm)
    folder, argv = tts_inputs
    monkeypatch.chdir(folder)
    argv = [a if a != "dac.safetensors" else "nope.safetensors" for a in argv]
    assert cli.main([a for a in argv if a != "model" and a != "--model"] + ["--text", "Hi."]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and "nope.safetensors" in err, err
