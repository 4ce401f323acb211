"""impl.accel's LM variants compute what the plain model (the checkpoint's own modules) computes.

Impl-vs-impl checks (the parity suite compares every shipped variant against transformers: parity/test_llama.py,
parity/test_qwen2.py, and the report's per-variant sections):
- the fused layers exactly, on integer-valued weights and inputs: every projection's dot products are then exact in
  float32 whatever the BLAS's summation order (|terms| <= 4, at most 2 x 128 of them: far below 2^24), so any
  difference would come from the fused layers' own structure (split points, head order, rope on q|k at once);
- a stacked projection on real-valued data within the float32 dot-product bound: two summation orders of
  sum_i x_i w_i each lie within gamma_n sum_i |x_i w_i| of the exact value (Higham, Accuracy and Stability of
  Numerical Algorithms, (3.5); gamma_n = n u / (1 - n u), u = 2^-24), so they differ by at most twice that;
- the compiled step exactly: it runs the same products on the same operands in the same order, and MLX's fused
  elementwise kernels evaluate the same float32 operations, so logits and caches are bit-identical to the
  uncompiled layers' over many steps.
"""
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from impl import accel, llama
from impl.accel import lm
from impl.seeded.llama import write_seeded_checkpoint

# Llama (llama3 rope, no biases) and a Qwen2-shaped config (q/k/v biases, plain rope): both of impl.llama's users
LLAMA = dict(llama.OUTETTS_1B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, head_dim=16, vocab_size=1000)
QWEN2_LIKE = dict(LLAMA, attention_bias=True, rope_scaling=None, rope_theta=1e6, rms_norm_eps=1e-6)
ARGS = llama.ModelArgs.from_dict(QWEN2_LIKE)


def _integer_weights(module: nn.Module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    module.update(tree_unflatten([(name, mx.array(rng.integers(-2, 3, w.shape).astype(np.float32)))
                                  for name, w in tree_flatten(module.parameters())]))


def _ints(seed, shape):
    return mx.array(np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float32))


def test_accel_fused_attention_equals_attention_exactly():
    attn = llama.Attention(ARGS)
    _integer_weights(attn, 0)
    fused = lm.FusedAttention(attn)
    assert "bias" in fused.qkv_proj and fused.qkv_proj.weight.shape[0] == (8 + 2 * 2) * 16
    x = _ints(1, (1, 12, ARGS.hidden_size))
    ca, cb = llama.KVCache(), llama.KVCache()
    assert np.array_equal(np.array(attn(x, "causal", ca)), np.array(fused(x, "causal", cb)))  # prefill
    step = x[:, -1:] * 2
    assert np.array_equal(np.array(attn(step, None, ca)), np.array(fused(step, None, cb)))  # a cached decode step
    assert np.array_equal(np.array(ca.keys), np.array(cb.keys)) and np.array_equal(np.array(ca.values),
                                                                                   np.array(cb.values))


def test_accel_fused_mlp_equals_mlp_exactly():
    mlp = llama.MLP(ARGS)
    _integer_weights(mlp, 2)
    x = _ints(3, (1, 5, ARGS.hidden_size))
    assert np.array_equal(np.array(mlp(x)), np.array(lm.FusedMLP(mlp)(x)))


def test_accel_fused_projection_within_dot_product_bound():
    mlp = llama.MLP(ARGS)
    x = mx.array(np.random.default_rng(4).standard_normal((1, 7, ARGS.hidden_size)).astype(np.float32))
    fused = lm.FusedMLP(mlp)
    got = np.array(fused.gate_up_proj(x))
    sep = np.concatenate([np.array(mlp.gate_proj(x)), np.array(mlp.up_proj(x))], -1)
    n, u = ARGS.hidden_size, 2.0 ** -24
    gamma = n * u / (1 - n * u)
    bound = 2 * gamma * (np.abs(np.array(x)) @ np.abs(np.array(fused.gate_up_proj.weight)).T)
    assert np.all(np.abs(got - sep) <= bound)


@pytest.mark.parametrize("bits", [8, 4])
def test_accel_fused_quantized_projection_equals_parts_exactly(bits):
    """Quantized rows are quantized per output row (scales and biases per row group): stacking the packed rows
    is exact, so the fused quantized product equals the separate ones up to the product's summation order; on
    integer inputs and a power-of-two grid both are exact."""
    parts = [nn.Linear(128, n, bias=True) for n in (64, 32, 32)]
    for i, p in enumerate(parts):
        _integer_weights(p, 10 + i)
    q = [nn.QuantizedLinear.from_linear(p, group_size=64, bits=bits) for p in parts]
    fused = lm._concat_projections(q)
    x = _ints(5, (1, 3, 128))
    want = np.concatenate([np.array(p(x)) for p in q], -1)
    got = np.array(fused(x))
    assert isinstance(fused, nn.QuantizedLinear) and fused.bits == bits and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2 * 128 * 2.0 ** -24 * float(np.abs(want).max()))


def test_accel_fuse_refuses_mixed_projection_types():
    with pytest.raises(TypeError, match="cannot fuse"):
        lm._concat_projections([nn.Linear(4, 4), nn.QuantizedLinear(64, 4, group_size=64, bits=8)])


# ----------------------------------------------------------------------------------------------- whole models

@pytest.fixture(scope="module", params=["llama", "qwen2-like"])
def ckpt(request, tmp_path_factory):
    config = LLAMA if request.param == "llama" else QWEN2_LIKE
    return write_seeded_checkpoint(tmp_path_factory.mktemp("accel") / request.param, config, 0, nontrivial=True)


def _decode(model, prompt, n):
    """Logits (n, B, V) and the final KV caches of n greedy steps after `prompt` (B, L)."""
    cache = llama.make_cache(model)
    y = mx.argmax(model(mx.array(prompt), cache)[:, -1], axis=-1)
    out = []
    for _ in range(n):
        logits = model(y[:, None], cache)[:, -1]
        y = mx.argmax(logits, axis=-1)
        out.append(np.array(logits))
    return np.stack(out), [(np.array(c.keys), np.array(c.values)) for c in cache]


@pytest.mark.parametrize("quantize", [None, "q8"])
def test_accel_compiled_step_equals_uncompiled_exactly(ckpt, quantize):
    """The "cpu" variant's compiled step vs the same fused, re-laid model without it, 40 greedy steps, batch 2."""
    model = llama.load(ckpt, quantize=quantize)
    assert accel.apply(model, "cpu") == "cpu" and model.variant == "cpu"
    assert all(isinstance(layer, lm.CompiledStepLayer) for layer in model.layers)
    prompt = np.random.default_rng(0).integers(0, 1000, (2, 7)).astype(np.int32)
    got, got_cache = _decode(model, prompt, 40)
    for layer in model.layers:  # the same layers, called as plain DecoderLayers
        layer.__class__ = llama.DecoderLayer
    want, want_cache = _decode(model, prompt, 40)
    assert np.array_equal(got, want), f"max|d| {np.abs(got - want).max()}"
    for (gk, gv), (wk, wv) in zip(got_cache, want_cache):
        assert np.array_equal(gk, wk) and np.array_equal(gv, wv)


def test_accel_compiled_step_is_the_path_a_decode_call_takes(ckpt, monkeypatch):
    model = llama.load(ckpt)
    accel.apply(model, "cpu")
    cache = llama.make_cache(model)
    model(mx.array([[1, 2, 3]]), cache)  # prefill: the plain layers

    def refuse(*_):
        raise RuntimeError("compiled step called")

    monkeypatch.setattr(model.layers[0], "_qkv", refuse)
    with pytest.raises(RuntimeError, match="compiled step called"):
        model(mx.array([[4]]), cache)


@pytest.mark.parametrize("variant", ["fused", "cpu"])
def test_accel_variant_keeps_values_and_decodes_as_plain(ckpt, variant):
    """The variant's tensors hold the checkpoint's values (stacked, re-laid: same numbers), and 24 greedy tokens
    equal the plain model's."""
    plain = llama.load(ckpt)
    model = llama.load(ckpt)
    accel.apply(model, variant)
    a0, p0 = model.layers[0].self_attn, plain.layers[0].self_attn
    assert np.array_equal(np.array(a0.qkv_proj.weight), np.concatenate(
        [np.array(p0[n].weight) for n in ("q_proj", "k_proj", "v_proj")]))
    m0, q0 = model.layers[0].mlp, plain.layers[0].mlp
    assert np.array_equal(np.array(m0.gate_up_proj.weight), np.concatenate(
        [np.array(q0[n].weight) for n in ("gate_proj", "up_proj")]))
    assert np.array_equal(np.array(model.model.embed_tokens.weight), np.array(plain.model.embed_tokens.weight))
    prompt = np.random.default_rng(1).integers(0, 1000, (1, 9)).astype(np.int32)
    got, _ = _decode(model, prompt, 24)
    want, _ = _decode(plain, prompt, 24)
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


def test_accel_apply_contract(ckpt):
    assert accel.default_variant() in accel.VARIANTS
    assert accel.shipped_variants()[:2] == ["plain", "fused"] and accel.default_variant() in accel.shipped_variants()
    model = llama.load(ckpt)
    assert accel.apply(model, "auto") == accel.default_variant()
    assert accel.apply(model, accel.default_variant()) == accel.default_variant()  # again: nothing to do
    other = "fused" if accel.default_variant() != "fused" else "cpu"
    with pytest.raises(ValueError, match="already the"):
        accel.apply(model, other)
    with pytest.raises(ValueError, match="not one of"):
        accel.apply(llama.load(ckpt), "turbo")
    assert accel.apply(llama.load(ckpt), "plain") == "plain"


def test_accel_is_never_imported_by_a_model_file():
    """Model files are the architecture in plain MLX: none imports the platform wing (checked on the source)."""
    import ast
    from pathlib import Path

    root = Path(llama.__file__).parent
    models = [root / "llama.py", root / "qwen2.py", *(root / "dac").glob("*.py"), *(root / "spark").glob("*.py")]
    models = [p for p in models if p.name not in ("cli.py", "generate.py", "tts.py")]
    for path in models:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module
                     else [])
            assert not any(n.startswith("impl.accel") or n == "impl.accel" for n in names), f"{path}: {names}"


def test_accel_platform_code_stays_in_the_wing():
    """Outside impl/accel/ the library holds no raw-pointer or thread-pool code and changes no process-wide state:
    no ctypes, np.frombuffer views, NumPy writes into MLX buffers (host slots), thread pools, MLX cache or memory
    limits, BLAS thread counts, environment writes or child processes."""
    import re
    from pathlib import Path

    root = Path(llama.__file__).parent
    banned = re.compile(r"\bctypes\b|np\.frombuffer|host_slot|ThreadPool|set_cache_limit|set_memory_limit|"
                        r"blas_threads|openblas|os\.environ\[[^]]*\]\s*=|os\.environ\.(setdefault|update)|putenv|"
                        r"subprocess|Popen")
    found = [f"{p.relative_to(root)}:{i}: {line.strip()}" for p in sorted(root.rglob("*.py"))
             if "accel" not in p.relative_to(root).parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert not found, "\n".join(found)
