"""fixtures/sensitivity.json states what every report section can see: each layer section (parity/cli.py
COMPONENTS) and each contract section (CONTRACTS) has an entry; a contract section's classes are exactly
parity.sensitivity.CONTRACT_KNOBS's, finite where the class is on the section's path and "inf" with the reason
where it is not; the knobs state impl's current values and their patches perturb and restore them; the report
renders the statement as a note of each contract section."""
from __future__ import annotations

import math

import pytest

from parity import cli
from parity import sensitivity as S

DATA = S.load()


def _num(v):
    return float(v) if isinstance(v, str) else v


def test_sensitivity_covers_every_report_section():
    layers, contracts = DATA.get("components", {}), DATA.get("contracts", {})
    missing = [n for n in cli.DEFAULT if n not in (layers if n in cli.COMPONENTS else contracts)]
    assert not missing, f"no sensitivity statement for {missing}: ./vp python -m parity.sensitivity {' '.join(missing)}"
    assert set(S.CONTRACT_KNOBS) == set(cli.CONTRACTS), "every contract section has its parameter classes"


@pytest.mark.parametrize("name", sorted(cli.COMPONENTS))
def test_sensitivity_layer_statement_is_numbers(name):
    s = DATA["components"][name]["smallest_relative_perturbation_detected"]
    assert set(s) == set(S.CLASSES)
    vals = [_num(v) for v in s.values() if v is not None]
    assert all(isinstance(v, float) and v > 0 for v in vals), s
    assert any(math.isfinite(v) for v in vals), f"{name}: the section sees none of its classes"


@pytest.mark.parametrize("name", sorted(S.CONTRACT_KNOBS))
def test_sensitivity_contract_statement_matches_its_classes(name):
    entry = DATA["contracts"][name]
    knobs = {k.name: k for k in S.CONTRACT_KNOBS[name]}
    assert list(entry["classes"]) == list(knobs), "re-run parity.sensitivity: the classes changed"
    for cls, e in entry["classes"].items():
        k, d = knobs[cls], _num(e["detected"])
        if k.how == "loaded" and d is None:
            continue  # a weight class the checkpoint has none of (e.g. the DAC's attention scale)
        assert isinstance(d, (int, float)) and d > 0, (cls, e)
        if k.off_path is None:
            assert math.isfinite(d), f"{name}: {cls} is on the path, yet no perturbation fails the section: {e}"
        else:
            assert d == math.inf and e["off_path"] == k.off_path, \
                f"{name}: {cls} stated off the path ({k.off_path}) but measured {e}"


@pytest.mark.parametrize("name", sorted(S.CONTRACT_KNOBS))
def test_sensitivity_knobs_state_impl_values_and_restore_them(name):
    for k in S.CONTRACT_KNOBS[name]:
        if k.how not in ("constant", "default", "dict"):
            continue
        assert k.current() == k.nominal, f"{name}: {k.name} is {k.current()!r} in impl, the statement says {k.nominal}"
        with k.patch(1 if k.integer else 0.5):
            assert k.current() != k.nominal, f"{name}: {k.name}'s patch does not reach {k.target}"
        assert k.current() == k.nominal, f"{name}: {k.name}'s patch was not undone"


def test_sensitivity_instances_patch_reaches_every_instance():
    from impl.outetts.sampler import SamplerConfig

    k = next(k for k in S.CONTRACT_KNOBS["sampler"] if k.name == "top_p")
    with k.patch(0.1):
        assert SamplerConfig(top_p=0.5).top_p == pytest.approx(0.55) and SamplerConfig().top_p == pytest.approx(0.99)
    assert SamplerConfig().top_p == 0.9 and "__init__" in SamplerConfig.__dict__


def test_sensitivity_contract_note_in_report(tmp_path):
    from parity.contracts import Case, section
    from parity.report import write_report

    secs = [section(e["section"], "x", [Case("c", 0.0, 1.0, True)], "why", "m") for e in DATA["contracts"].values()]
    write_report(secs, tmp_path)
    for s, e in zip(secs, DATA["contracts"].values()):
        notes = [n for n in s.notes if n.startswith("sensitivity")]
        assert len(notes) == 1 and all(c in notes[0] for c in e["classes"]), (s.name, s.notes)
