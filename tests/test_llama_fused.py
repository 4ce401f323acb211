"""`impl.llama.fuse_projections` (the GPU load path) computes what the checkpoint's own modules compute.

Impl-vs-impl checks (no parity weight: the parity suite compares the unfused modules against transformers):
- the layers, exactly, on integer-valued weights and inputs: every projection's dot products are then exact in
  float32 whatever the BLAS's summation order (|terms| <= 4, at most 2 x 128 of them: far below 2^24), so any
  difference would come from the fused layers' own structure (split points, head order, rope on q|k at once);
- a stacked projection on real-valued data within the float32 dot-product bound: two summation orders of
  sum_i x_i w_i each lie within gamma_n sum_i |x_i w_i| of the exact value (Higham, Accuracy and Stability of
  Numerical Algorithms, (3.5); gamma_n = n u / (1 - n u), u = 2^-24), so they differ by at most twice that.
"""
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from impl import llama
from impl.seeded.llama import write_seeded_checkpoint

CONFIG = dict(llama.OUTETTS_1B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
              num_attention_heads=8, num_key_value_heads=2, head_dim=16, vocab_size=1000)
ARGS = llama.ModelArgs.from_dict(CONFIG)


def _integer_weights(module: nn.Module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, w in __import__("mlx.utils").utils.tree_flatten(module.parameters()):
        module.update(__import__("mlx.utils").utils.tree_unflatten(
            [(name, mx.array(rng.integers(-2, 3, w.shape).astype(np.float32)))]))


def test_llama_fused_attention_equals_attention_exactly():
    attn = llama.Attention(ARGS)
    _integer_weights(attn, 0)
    fused = llama.FusedAttention(attn)
    x = mx.array(np.random.default_rng(1).integers(-2, 3, (1, 12, ARGS.hidden_size)).astype(np.float32))
    ca, cb = llama.KVCache(), llama.KVCache()
    assert np.array_equal(np.array(attn(x, "causal", ca)), np.array(fused(x, "causal", cb)))  # prefill
    step = x[:, -1:] * 2
    assert np.array_equal(np.array(attn(step, None, ca)), np.array(fused(step, None, cb)))  # a cached decode step
    assert np.array_equal(np.array(ca.keys), np.array(cb.keys)) and np.array_equal(np.array(ca.values),
                                                                                   np.array(cb.values))


def test_llama_fused_mlp_equals_mlp_exactly():
    mlp = llama.MLP(ARGS)
    _integer_weights(mlp, 2)
    x = mx.array(np.random.default_rng(3).integers(-2, 3, (1, 5, ARGS.hidden_size)).astype(np.float32))
    assert np.array_equal(np.array(mlp(x)), np.array(llama.FusedMLP(mlp)(x)))


def test_llama_fused_projection_within_dot_product_bound():
    mlp = llama.MLP(ARGS)
    rng = np.random.default_rng(4)
    x = mx.array(rng.standard_normal((1, 7, ARGS.hidden_size)).astype(np.float32))
    fused = llama.FusedMLP(mlp)
    got = np.array(fused.gate_up_proj(x))
    sep = np.concatenate([np.array(mlp.gate_proj(x)), np.array(mlp.up_proj(x))], -1)
    n, u = ARGS.hidden_size, 2.0 ** -24
    gamma = n * u / (1 - n * u)
    W = np.array(fused.gate_up_proj.weight)
    bound = 2 * gamma * (np.abs(np.array(x)) @ np.abs(W).T)
    assert np.all(np.abs(got - sep) <= bound)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_seeded_checkpoint(tmp_path_factory.mktemp("fused") / "lm", CONFIG, 0)


@pytest.mark.parametrize("quantize", [None, "q8", "q4"])
def test_llama_fused_load_replaces_the_separate_matrices(ckpt, quantize):
    model = llama.fuse_projections(llama.load(ckpt, quantize=quantize, fuse=True))  # a second fuse: no-op
    names = {k for k, _ in __import__("mlx.utils").utils.tree_flatten(model.parameters())}
    modules = {n.split(".")[-2] for n in names}
    assert {"qkv_proj", "gate_up_proj"} <= modules
    assert not modules & {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}
    assert isinstance(model.layers[0].self_attn, llama.FusedAttention)
    assert not isinstance(llama.load(ckpt, quantize=quantize, fuse=False).layers[0].self_attn,
                          llama.FusedAttention)
    H, KV, hd = CONFIG["num_attention_heads"], CONFIG["num_key_value_heads"], CONFIG["head_dim"]
    rows = (H + 2 * KV) * hd
    w = model.layers[0].self_attn.qkv_proj.weight
    assert w.shape[0] == rows
    out = model(mx.array([[1, 2, 3]], dtype=mx.int32))
    assert out.shape == (1, 3, CONFIG["vocab_size"]) and bool(mx.all(mx.isfinite(out)))
