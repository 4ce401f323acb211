"""The families an independent mutation audit found escaping (bench/cpu_runs/mutate-audit-2026-12-06.json), as
fast tests over `parity/specs/settings.py`'s tables (the report's "public settings" section runs the same cases):

- a ported default that no test leaves at its default (tests pass the value explicitly: a wrong default passes
  them all): every row of DEFAULTS equal to the official signature's, and every defaulted parameter of an entry
  point in DEFAULTS either a row or named in NOT_PORTED with why;
- a public argument never given a non-default value (DAC.encode's n_quantizers dropped on the way passes every
  codes test, which use all codebooks): the official call with the same value, and every parameter of the
  codec's public entry points named in ARGUMENTS (compared where, or why not; known gaps marked GAP);
- the settings table covers every public generation setting (the table the report drives through the API and
  the CLI; tests/test_settings_reach.py drives its own copy as fast tests).
"""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from parity.specs import settings as S


@pytest.mark.parametrize("row", S.DEFAULTS, ids=[r[0].replace(" ", "-") for r in S.DEFAULTS])
def test_audit_ported_default_equals_upstream(row):
    name, impl_path, p, up_path, up_p = row
    got = S._plain(S.default_of(S.resolve(impl_path), p))
    want = S._plain(S.default_of(S.resolve(up_path), up_p))
    assert got == want and isinstance(got, bool) == isinstance(want, bool), \
        f"{impl_path} {p}={got!r}, upstream {up_path} {up_p}={want!r}"


def _defaulted(obj) -> set:
    if dataclasses.is_dataclass(obj) and isinstance(obj, type):
        return {f.name for f in dataclasses.fields(obj)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    return {n for n, q in inspect.signature(obj).parameters.items() if q.default is not inspect.Parameter.empty}


def test_audit_every_defaulted_parameter_of_a_listed_entry_point_has_a_row():
    """A default added to (or renamed in) an entry point of DEFAULTS cannot go unchecked: a row or a reason."""
    rows = {}
    for _, impl_path, p, _, _ in S.DEFAULTS:
        rows.setdefault(impl_path, set()).add(p)
    missing = {path: sorted(_defaulted(S.resolve(path)) - ps - set(S.NOT_PORTED.get(path, {})))
               for path, ps in rows.items()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"defaulted parameters with no DEFAULTS row and no NOT_PORTED reason: {missing}"
    stale = {path: sorted(set(why) - _defaulted(S.resolve(path))) for path, why in S.NOT_PORTED.items()}
    assert not {k: v for k, v in stale.items() if v}, f"NOT_PORTED names parameters that no longer exist: {stale}"


def test_audit_dac_arguments_equal_official():
    """Every n_quantizers of the tiny seeded DAC: codes (B, n, T) equal to dac.DAC.encode(..., n_quantizers=n); codes
    of every codebook count decoded within the fp32 floor of the official decode."""
    rec = S.record_arguments()
    codes = [v for k, v in rec.items() if k.startswith("n_quantizers")]
    assert len(codes) >= 2 and {v.shape[1] for v in codes} == set(range(1, len(codes) + 1))
    for case in S.arguments_cases(rec):
        assert case.ok, f"{case.name}: {case.detail}"


def test_audit_every_public_codec_argument_has_a_row():
    """A parameter added to a public codec entry point cannot go uncompared silently: a row in ARGUMENTS (a case,
    the test that compares it, or why none is needed; known gaps say GAP)."""
    for path, rows in S.ARGUMENTS.items():
        params = set(inspect.signature(S.resolve(path)).parameters) - {"self"}
        assert params == set(rows), f"{path}: parameters {sorted(params)} vs ARGUMENTS rows {sorted(rows)}"
    cases = {c.name for c in S.arguments_cases(S.record_arguments())}
    for path, rows in S.ARGUMENTS.items():
        for p, why in rows.items():
            if "case: " in why:
                name = why.split("case: ", 1)[1]
                assert any(c.startswith(name) for c in cases), f"{path} {p}: no case {name!r}"


def test_audit_a_dropped_argument_fails_the_arguments_case(monkeypatch):
    """The case can fail: an encode that ignores n_quantizers gives all codebooks for n = 1."""
    from impl.dac.model import DAC

    rec = S.record_arguments()
    real = DAC.encode
    monkeypatch.setattr(DAC, "encode", lambda self, audio, n_quantizers=None: real(self, audio))
    assert not all(c.ok for c in S.arguments_cases(rec))


def test_audit_settings_table_covers_every_public_setting():
    """Every GenerationConfig / OuteTTSOptions field, `load` keyword, Voice attribute and `voiceport tts` option
    has a row in the report's settings table (or a reason in NOT_SETTINGS); every flag-bearing option has argv."""
    rows = {s.name for s in S.settings_table()}
    names, flags = S.public_setting_names()
    missing = sorted(n for n in names | flags if n not in rows and n not in S.NOT_SETTINGS)
    assert not missing, f"settings without a row in parity/specs/settings.py: {missing}"
    with_argv = {s.name for s in S.settings_table() if s.cli}
    assert not sorted(n for n in flags if n not in S.NOT_SETTINGS and n not in with_argv)


def test_audit_ported_defaults_case_can_fail():
    """A recorded upstream default that differs from impl's fails its case (and only that one)."""
    up = S.record_defaults()
    up["DacInterface chunk_length"] = 1024
    bad = [c.name for c in S.defaults_cases(up) if not c.ok]
    assert bad == ["default DacInterface chunk_length"]
