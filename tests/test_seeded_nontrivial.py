"""Checks that can see what they claim: the seeded checkpoints the tests use have no constant parameter (an
all-zero bias, an all-one norm weight, any tensor of one value), so that a bias dropped or a norm weight unused
changes an output the tests compare. HF init (impl.seeded.llama's default) writes zero biases and unit norms:
tests take `nontrivial=True`; the default checkpoints (fixtures/ depend on them) stay as they are."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest

# Buffers that are constant by construction in the official layout, with why they cannot hide a bug.
CONSTANT_OK = {
    "quantizer.cluster_size": "BiCodec's VQ usage counter (training only; no computation reads it)",
    "num_batches_tracked": "BatchNorm's step counter (eval mode never reads it)",
}


def constant_tensors(weights: Dict[str, np.ndarray]) -> List[str]:
    """Names of floating tensors holding one value only (all zeros, all ones, any constant), minus CONSTANT_OK."""
    bad = []
    for name, w in weights.items():
        a = np.asarray(w)
        if a.dtype.kind != "f" or a.size < 2 or any(name.endswith(k) for k in CONSTANT_OK):
            continue
        if np.all(a == a.reshape(-1)[0]):
            bad.append(f"{name} (all {a.reshape(-1)[0]!r})")
    return bad


def read_folder(folder: Path) -> Dict[str, np.ndarray]:
    """Every tensor of every safetensors / .pth file in `folder` (recursively), by file-qualified name."""
    import mlx.core as mx

    out: Dict[str, np.ndarray] = {}
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.safetensors"))
    for f in files:
        for k, v in mx.load(str(f)).items():
            out[f"{f.name}:{k}"] = np.array(v.astype(mx.float32)) if mx.issubdtype(v.dtype, mx.floating) else \
                np.array(v)
    assert out, f"no tensors in {folder}"
    return out


def _tiny_outetts(d: Path) -> Path:
    from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir

    return write_model_dir(d / "outetts", TINY_LM_CONFIG, seed=0, nontrivial=True)


def _qwen2_like_llama(d: Path) -> Path:
    """tests/test_accel_lm.py's Qwen2-shaped llama checkpoint (q/k/v biases)."""
    from impl import llama
    from impl.seeded.llama import write_seeded_checkpoint

    cfg = dict(llama.OUTETTS_1B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
               num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=512, attention_bias=True,
               rope_scaling=None, rope_theta=1e6, rms_norm_eps=1e-6)
    return write_seeded_checkpoint(d / "qwen2-like", cfg, 0, nontrivial=True)


def _qwen2(d: Path) -> Path:
    from impl.seeded.qwen2 import write_qwen2
    from parity.specs.qwen2 import config_dict

    return write_qwen2(d / "qwen2", config_dict("small"), seed=0)


def _spark(d: Path) -> Path:
    from impl.seeded.spark import seeded_spark

    return Path(seeded_spark())


def _dac(d: Path) -> Path:
    from impl.seeded.dac import write_seeded_safetensors
    from parity.doubles import TINY

    write_seeded_safetensors(d / "dac.safetensors", TINY, seed=0)
    return d / "dac.safetensors"


# The seeded checkpoints the fast tests write: (name, writer) -- add a row when a test writes another kind.
TEST_CHECKPOINTS: Dict[str, Callable[[Path], Path]] = {
    "outetts tiny (parity/test_outetts_generate.py)": _tiny_outetts,
    "Qwen2-shaped llama (tests/test_accel_lm.py)": _qwen2_like_llama,
    "qwen2 small (parity/test_qwen2.py)": _qwen2,
    "Spark-TTS tiny folder (LLM, BiCodec, wav2vec2)": _spark,
    "DAC tiny (parity/doubles.TINY)": _dac,
}


@pytest.mark.parametrize("name", list(TEST_CHECKPOINTS))
def test_seeded_test_checkpoints_have_no_constant_parameter(name, tmp_path):
    bad = constant_tensors(read_folder(TEST_CHECKPOINTS[name](tmp_path)))
    assert not bad, f"{name}: constant tensors (a bug there would be invisible): {bad[:8]}"


def test_seeded_default_llama_is_hf_init_and_the_option_is_not():
    """The option's reason and its scope: the default writer keeps HF init (unit norms; fixtures depend on it),
    nontrivial=True leaves no constant tensor, and both draw the same linear weights."""
    from impl.seeded.llama import seeded_tensor

    assert np.all(seeded_tensor("model.norm.weight", (8,), 0, 0.02) == 1.0)
    assert np.all(seeded_tensor("model.layers.0.self_attn.q_proj.bias", (8,), 0, 0.02) == 0.0)
    for name in ("model.norm.weight", "model.layers.0.self_attn.q_proj.bias"):
        assert len(np.unique(seeded_tensor(name, (8,), 0, 0.02, nontrivial=True))) == 8
    w = "model.layers.0.mlp.up_proj.weight"
    np.testing.assert_array_equal(seeded_tensor(w, (4, 4), 0, 0.02), seeded_tensor(w, (4, 4), 0, 0.02, True))


def test_seeded_test_files_ask_for_nontrivial_llama_weights():
    """Every fast test that writes a llama checkpoint of its own (write_seeded_checkpoint / write_model_dir) for a
    parity or equivalence check asks for nontrivial weights; the files below write one for other reasons."""
    import re

    root = Path(__file__).resolve().parents[1]
    exempt = {
        "parity/test_llama.py": "sharding, untied head, determinism and dtype of the writer itself",
        "tests/test_cli.py": "CLI behaviour (exit codes, messages), no numerics",
        "tests/test_bad_inputs.py": "refusals, no numerics",
        "tests/test_tts_api.py": "API shape, no numerics",
        "tests/test_settings_reach.py": "where settings go, not the LM's numerics",
        "tests/test_seeded_nontrivial.py": "this file",
        "tests/test_workflows.py": "workflows end to end, no numerics",
    }
    bad = []
    for f in sorted(list((root / "parity").glob("test_*.py")) + list((root / "tests").glob("test_*.py"))):
        rel = str(f.relative_to(root))
        if rel in exempt:
            continue
        text = f.read_text()
        writers = "write_model_dir" + ("|write_seeded_checkpoint" if "impl.seeded.llama import" in text else "")
        for m in re.finditer(rf"({writers})\((.*?)\)\n", text, re.S):
            if "nontrivial=True" not in m.group(2):
                bad.append(f"{rel}: {m.group(0).strip()[:90]}")
    assert not bad, f"llama checkpoints with HF-init norms/biases in numeric tests: {bad}"
