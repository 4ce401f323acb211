"""The mutation self-test's own checks (parity/mutate.py): the catalogue applies to impl/ as it is now, its
machinery (apply/restore, pytest and report parsing) works, and, in the slow job, one bug end to end."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from parity import dev_cli, mutate

ROOT = Path(__file__).resolve().parents[1]


def test_mutate_every_mutation_applies_exactly_once():
    assert mutate.check_catalogue(ROOT) == []
    assert len(mutate.CATALOGUE) >= 20


def test_mutate_catalogue_entries_are_complete():
    for m in mutate.CATALOGUE:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", m.name, re.I), m.name
        assert m.what and m.tests, m.name
        old, new = m.old.split("\n"), m.new.split("\n")
        assert len(old) == len(new) and sum(a != b for a, b in zip(old, new)) == 1, f"{m.name}: a one-line bug"
        for target in m.tests:  # the first tests to run exist: file, and the named test in it
            file, _, func = target.partition("::")
            assert (ROOT / file).is_file(), f"{m.name}: {file}"
            if func:
                assert re.search(rf"^def {re.escape(func)}\(", (ROOT / file).read_text(), re.M), \
                    f"{m.name}: {target}"
    inert = [m for m in mutate.CATALOGUE if m.inert]
    assert all(len(m.inert) > 40 for m in inert)  # a reason, not a label
    assert len(inert) < len(mutate.CATALOGUE) // 4


def test_mutate_apply_restore_and_rot_detection(tmp_path):
    m = mutate.CATALOGUE[0]
    (tmp_path / m.file).parent.mkdir(parents=True)
    original = (ROOT / m.file).read_text()
    (tmp_path / m.file).write_text(original)
    saved = mutate.apply(tmp_path, m)
    assert saved == original
    mutated = (tmp_path / m.file).read_text()
    assert m.new in mutated and mutated.count(m.old) == 0
    assert len(mutated.splitlines()) == len(original.splitlines())
    mutate.restore(tmp_path, m, saved)
    assert (tmp_path / m.file).read_text() == original
    (tmp_path / m.file).write_text(original.replace(m.old, "pass"))  # the old text is gone: a loud error
    with pytest.raises(mutate.MutationError, match="found 0 times"):
        mutate.apply(tmp_path, m)
    assert mutate.check_catalogue(tmp_path, [m]) and "found 0 times" in mutate.check_catalogue(tmp_path, [m])[0]
    (tmp_path / m.file).write_text(original + "\n# " + m.old + "\n")  # twice: ambiguous, also an error
    with pytest.raises(mutate.MutationError, match="found 2 times"):
        mutate.apply(tmp_path, m)


def test_mutate_parses_pytest_and_report_json(tmp_path):
    out = ("....F\n=== short test summary info ===\n"
           "FAILED parity/test_dac.py::test_dac_decode_output_length_matches_official[3] - assert 951 == 952\n"
           "!!!!! stopping after 1 failures !!!!!\n")
    assert mutate.first_failure(out) == "parity/test_dac.py::test_dac_decode_output_length_matches_official[3]"
    assert mutate.first_failure("ERROR parity/test_x.py - ImportError\n") == "parity/test_x.py"
    assert mutate.first_failure("5 passed in 1.0s\n") is None
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"passed": False, "sections": [{"name": "dac layers", "passed": True},
                                                             {"name": "DAC.decode", "passed": False}]}))
    assert mutate.failed_sections(new) == (False, ["DAC.decode"])
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"ok": False, "not_run": {}, "components": [
        {"spec": "dac-24khz_speech", "rows": [{"ok": True}]}, {"spec": "llama-small", "rows": [{"ok": False}]}]}))
    assert mutate.failed_sections(old) == (False, ["llama-small"])


def test_mutate_cli_check_and_list(capsys):
    assert dev_cli.main(["parity", "mutate", "--check"]) == 0
    assert "mutations apply" in capsys.readouterr().out
    assert dev_cli.main(["parity", "mutate", "--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(mutate.CATALOGUE)
    assert dev_cli.main(["parity", "mutate", "no-such-bug"]) == 2
    assert "unknown mutation" in capsys.readouterr().err


@pytest.mark.slow
def test_mutate_end_to_end_one_bug_caught_by_test_and_report(tmp_path, capsys):
    """A live bug run as `./vp parity mutate` runs it: a copy of HEAD, its tests, its report section."""
    before = (ROOT / "impl" / "llama.py").read_text()
    rc = mutate.main(["attention-scale-hidden", "--no-fallback", "--out", str(tmp_path)])
    assert (ROOT / "impl" / "llama.py").read_text() == before  # the clone is never touched
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["name"] for r in res] == ["attention-scale-hidden"]
    assert res[0]["tests"]["caught"].startswith("parity/test_llama.py::"), res[0]
    assert res[0]["report"]["caught"], res[0]
    assert res[0]["verdict"] == "caught by both" and rc == 0
    assert "attention-scale-hidden" in (tmp_path / "table.md").read_text()


def test_mutate_readme_states_the_catalogue_size():
    """The README's sentence on the catalogue names its current size (issue 28: the size, and that it is a floor)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"The catalogue \((\d+) one-line porting bugs", text)
    assert m and int(m.group(1)) == len(mutate.CATALOGUE), "README: the catalogue's size is stale"
    assert "a floor, not a proof" in text
