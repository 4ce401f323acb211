"""impl.qwen2's config and impl.seeded.qwen2's checkpoints, torch-free (the parity against transformers is
parity/test_qwen2.py)."""
import json
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from mlx.utils import tree_flatten, tree_unflatten

from impl import accel, llama, qwen2
from impl.accel import lm
from impl.seeded.qwen2 import param_shapes, seeded_tensor, write_qwen2

TINY = dict(qwen2.SPARK_TTS_0_5B_CONFIG, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=50, initializer_range=0.2)


def test_qwen2_spark_config_is_the_real_architecture():
    a = qwen2.model_args(dict(qwen2.SPARK_TTS_0_5B_CONFIG, unknown_key=1))
    assert (a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads, a.head_dim,
            a.intermediate_size, a.vocab_size, a.rms_norm_eps, a.rope_theta, a.rope_scaling,
            a.tie_word_embeddings, a.max_position_embeddings) == \
        (896, 24, 14, 2, 64, 4864, 166000, 1e-6, 1e6, None, True, 32768)
    assert (a.attention_bias, a.o_proj_bias, a.mlp_bias, a.bos_token_id, a.eos_token_id) == \
        (True, False, False, 151643, 151645)
    n = sum(int(np.prod(s)) for s in param_shapes(qwen2.SPARK_TTS_0_5B_CONFIG).values())
    assert n == 494_032_768 + (166000 - 151936) * 896  # Qwen2.5-0.5B (151,936 vocab, tied) + the added rows


@pytest.mark.parametrize("change,message", [
    ({"use_sliding_window": True}, "use_sliding_window true is not supported"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_scaling .* is not supported"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
    ({"num_attention_heads": 4, "num_key_value_heads": 3}, "not a multiple of num_key_value_heads 3"),
])
def test_qwen2_args_refuse_unsupported(change, message):
    with pytest.raises(ValueError, match=message):
        qwen2.model_args(dict(TINY, **change))


def test_qwen2_seeded_checkpoint_is_deterministic_and_streamed_right(tmp_path):
    """Byte-identical for a seed, different for another; the streamed file reads back (safetensors' own reader)
    as seeded_tensor's values under the HF names; biases and norm weights are not HF's zeros/ones, so a dropped
    bias or an unused norm weight shows in parity."""
    from safetensors.numpy import load_file

    a = write_qwen2(tmp_path / "a", TINY, seed=3)
    b = write_qwen2(tmp_path / "b", TINY, seed=3)
    c = write_qwen2(tmp_path / "c", TINY, seed=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    w = load_file(str(a / "model.safetensors"))
    assert {k: v.shape for k, v in w.items()} == param_shapes(TINY) and "lm_head.weight" not in w
    for k, v in w.items():
        assert v.dtype == np.float32 and np.array_equal(v, seeded_tensor(k, v.shape, 3, 0.2)), k
    assert np.std(w["model.layers.0.self_attn.k_proj.bias"]) > 0.1
    assert 0.1 < np.std(w["model.norm.weight"]) and abs(np.mean(w["model.norm.weight"]) - 1) < 0.2
    cfg = json.loads((a / "config.json").read_text())
    assert cfg == dict(TINY, torch_dtype="float32")


@pytest.mark.parametrize("dtype", ["float16", "bf16"])
def test_qwen2_seeded_half_checkpoint_holds_the_rounded_values(tmp_path, dtype):
    path = write_qwen2(tmp_path / dtype, TINY, seed=0, dtype=dtype)
    mdt = mx.float16 if dtype == "float16" else mx.bfloat16
    w = mx.load(str(path / "model.safetensors"))
    for k, v in w.items():
        assert v.dtype == mdt and np.array_equal(np.array(v.astype(mx.float32)), np.array(
            mx.array(seeded_tensor(k, v.shape, 0, 0.2)).astype(mdt).astype(mx.float32))), k
    model = qwen2.load(path)
    assert model.model.layers[1].self_attn.v_proj.bias.dtype == mdt
    with pytest.raises(ValueError, match="dtype 'int8' not one of"):
        write_qwen2(tmp_path / "x", TINY, dtype="int8")


def test_qwen2_load_interface_is_the_llama_models(tmp_path):
    """The generation loop's interface: model(ids, cache, logits_to_keep) -> logits, make_cache(model); a cached
    decode equals the full forward within gamma_n = n eps of an n = hidden_size dot product (the head's), relative
    to the largest logit, x 10 as the harness's k (both are fp32 sums of the same terms, blocked differently)."""
    model = qwen2.load(write_qwen2(tmp_path / "m", TINY, seed=0))
    ids = mx.array(np.random.default_rng(0).integers(0, 50, (1, 9)).astype(np.int32))
    full = model(ids)
    cache = qwen2.make_cache(model)
    pre = model(ids[:, :8], cache, logits_to_keep=1)
    step = model(ids[:, 8:], cache)
    assert pre.shape == (1, 1, 50) and step.shape == (1, 1, 50) and len(cache) == 2 and cache[0].offset == 9
    bound = 10 * TINY["hidden_size"] * float(np.finfo(np.float32).eps) * float(mx.max(mx.abs(full)))
    assert float(mx.max(mx.abs(pre[0, 0] - full[0, 7]))) <= bound
    assert float(mx.max(mx.abs(step[0, 0] - full[0, 8]))) <= bound


def test_qwen2_fused_attention_with_biases_equals_attention_exactly():
    """The fused variant (impl.accel.lm.fuse) stacks the q|k|v biases with their weights, o_proj keeps
    none. On integer-valued weights, biases and inputs every projection is exact in fp32 whatever the summation
    order (as tests/test_accel_lm.py), so fused == unfused exactly, prefill and a cached step."""
    args = qwen2.model_args(TINY)
    attn = llama.Attention(args)
    rng = np.random.default_rng(0)
    attn.update(tree_unflatten([(k, mx.array(rng.integers(-2, 3, v.shape).astype(np.float32)))
                                for k, v in tree_flatten(attn.parameters())]))
    fused = lm.FusedAttention(attn)
    assert "bias" in fused.qkv_proj and "bias" not in fused.o_proj
    x = mx.array(rng.integers(-2, 3, (1, 6, TINY["hidden_size"])).astype(np.float32))
    ca, cb = llama.KVCache(), llama.KVCache()
    assert np.array_equal(np.array(attn(x, "causal", ca)), np.array(fused(x, "causal", cb)))
    step = x[:, -1:] * 2
    assert np.array_equal(np.array(attn(step, None, ca)), np.array(fused(step, None, cb)))


@pytest.mark.parametrize("variant", list(accel.VARIANTS))
def test_qwen2_variants_q8_load_and_match_plain(tmp_path, variant):
    """Every variant of the q8 and fp32 model computes the plain model's logits within the fp32 dot-product
    bound used above (q8: the same packed rows, stacked, so the same bound)."""
    path = write_qwen2(tmp_path / "m", TINY, seed=0)
    ids = mx.array([[1, 2, 3]], dtype=mx.int32)
    for quantize in (None, "q8"):
        plain = qwen2.load(path, quantize=quantize)(ids)
        model = qwen2.load(path, quantize=quantize)
        accel.apply(model, variant)
        assert isinstance(model.layers[1].self_attn, lm.FusedAttention) == (variant != "plain")
        out = model(ids)
        bound = 10 * TINY["hidden_size"] * float(np.finfo(np.float32).eps) * float(mx.max(mx.abs(plain)))
        assert out.shape == (1, 3, TINY["vocab_size"]) and float(mx.max(mx.abs(out - plain))) <= bound


def test_qwen2_impl_is_torch_free():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import impl.qwen2, impl.seeded.qwen2\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])")
    subprocess.run([sys.executable, "-c", code], check=True)
