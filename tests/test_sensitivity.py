"""parity/sensitivity.py's machinery: perturbations touch exactly their class, r = 0 changes nothing, the stored
results render as one report note per layer section."""
from __future__ import annotations

import json

import numpy as np

from parity import sensitivity as S


def _tiny_model():
    from impl import spark
    from parity.specs.spark import checkpoint

    return spark.load(checkpoint("tiny", 0))


def test_sensitivity_perturb_touches_only_its_class():
    from mlx.utils import tree_flatten

    base = dict(tree_flatten(_tiny_model().parameters()))
    for cls in ("weights", "biases", "norm_scale"):
        m = _tiny_model()
        n = S.perturb(m, cls, 1e-3)
        assert n > 0, cls
        got = dict(tree_flatten(m.parameters()))
        changed = {k for k in base if not np.array_equal(np.array(base[k]), np.array(got[k]))}
        want = {k for k, v in base.items() if S._select(cls, k, v) and np.any(np.array(v) != 0)}
        assert changed == want, (cls, sorted(changed ^ want)[:5])
    m = _tiny_model()
    S.perturb(m, "weights", 0.0)
    assert all(np.array_equal(np.array(base[k]), np.array(v)) for k, v in tree_flatten(m.parameters()))


def test_sensitivity_note_renders_stored_results(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"components": {"x": {"spec": "spark-x-tiny", "smallest_relative_perturbation_detected": {
        "weights": 1e-6, "biases": None, "norm_scale": float("inf")}}}}))
    line = S.note_for("spark-x-tiny", f)
    assert "weights 1e-06" in line and "biases not present" in line and "norm_scale not seen up to 1e2" in line
    assert S.note_for("other", f) is None
