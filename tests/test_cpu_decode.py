"""`impl.cpu_decode`: the CPU's one-token decode step (NumPy + the bound OpenBLAS's sgemv) computes what MLX's path
computes, within the fp32 floor.

Floor: both paths are float32 evaluations of the same operations (same products on the same matrices, norms,
rope, softmax, SwiGLU), differing in summation order and in exp/cos/sin's last bits. The exact result is stood in
for by MLX's own path in float64 (same weights, plain layers); MLX's float32 path's largest deviation from it is
the fp32 floor of this computation, and the host step must stay within 10x that floor (the parity suite's rule
for propagated errors). Teacher-forced (the same ids into every path), so one path's argmax cannot steer another.
The parity suite runs this step against transformers (parity/test_llama.py, parity/test_qwen2.py: greedy tokens,
teacher-forced KL).
"""
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from impl import cpu, cpu_decode, llama, ops
from impl.seeded.llama import write_seeded_checkpoint

# Llama (llama3 rope, no biases) and a Qwen2-shaped config (q/k/v biases, plain rope): both of impl.llama's users
LLAMA = dict(llama.OUTETTS_1B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, head_dim=16, vocab_size=1000)
QWEN2_LIKE = dict(LLAMA, attention_bias=True, rope_scaling=None, rope_theta=1e6, rms_norm_eps=1e-6)
FORWARDER = cpu.blas_info()["blas"] == "openblas+gemv"
needs_forwarder = pytest.mark.skipif(not FORWARDER, reason="the host step needs the sgemv forwarder (Linux, cc)")


@pytest.fixture(scope="module", params=["llama", "qwen2-like"])
def ckpt(request, tmp_path_factory):
    config = LLAMA if request.param == "llama" else QWEN2_LIKE
    return write_seeded_checkpoint(tmp_path_factory.mktemp("host") / request.param, config, 0)


def _float64(model):
    """A plain copy of `model` in float64 (no CPU layout, compiled step or host step)."""
    plain = llama.Model(model.args)
    plain.load_weights([(k, mx.array(np.array(v), mx.float64)) for k, v in tree_flatten(model.parameters())],
                       strict=True)
    return plain


def _forced(model, prompt, ids):
    """Logits (n, vocab) of each one-token call with `ids` (teacher-forced) after `prompt`, and the caches."""
    cache = llama.make_cache(model)
    model(mx.array(prompt), cache)
    out = [np.array(model(mx.array([[int(t)]]), cache)[0, -1], np.float64) for t in ids]
    return np.stack(out), cache


@needs_forwarder
def test_cpu_decode_step_within_the_fp32_floor(ckpt):
    model = llama.load(ckpt)
    assert model.model.host_step is not None  # the CPU load path attaches it with the forwarder bound
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, 1000, (1, 250)).astype(np.int32)
    ids = rng.integers(0, 1000, 12)  # 250 + 12 crosses the cache's 256-slot block: host_slot grows it
    got, got_cache = _forced(model, prompt, ids)
    host, model.model.host_step = model.model.host_step, None
    mlx32, mlx_cache = _forced(model, prompt, ids)
    model.model.host_step = host
    exact, exact_cache = _forced(_float64(model), prompt, ids)
    floor = np.abs(mlx32 - exact).max()
    assert 0 < floor < 1e-4 * np.abs(exact).max()  # a float32 floor, not an exact match nor a wrong model
    assert np.abs(got - exact).max() <= 10 * floor, (np.abs(got - exact).max(), floor)
    for g, m, e in zip(got_cache, mlx_cache, exact_cache):
        assert g.offset == m.offset == 262
        for name in ("keys", "values"):
            a, b, x = (np.array(getattr(c, name)[..., :262, :], np.float64) for c in (g, m, e))
            assert np.abs(a - x).max() <= 10 * max(np.abs(b - x).max(), np.finfo(np.float32).eps * np.abs(x).max())


@needs_forwarder
def test_cpu_decode_is_the_path_one_token_takes(ckpt, monkeypatch):
    """One token of one sequence with a cache takes the host step; a prefill, or two sequences, MLX's path."""
    model = llama.load(ckpt)
    calls = []
    step = model.model.host_step
    monkeypatch.setattr(model.model, "host_step",
                        lambda ids, cache, logits: calls.append(ids.shape) or step(ids, cache, logits))
    cache = llama.make_cache(model)
    model(mx.array([[1, 2, 3]]), cache)
    assert calls == []
    model(mx.array([[4]]), cache)
    assert calls == [(1, 1)]
    two = llama.make_cache(model)
    model(mx.array([[1, 2], [3, 4]]), two)
    model(mx.array([[5], [6]]), two)
    assert calls == [(1, 1)]


@needs_forwarder
@pytest.mark.parametrize("name", ["mlp.down_proj", "mlp.gate_proj", "self_attn.k_proj", "input_layernorm"])
def test_cpu_decode_sees_replaced_weights(ckpt, name):
    """A parameter replaced after loading is the one the host step reads (a stacked one is re-stacked first)."""
    model = llama.load(ckpt)
    rng = np.random.default_rng(1)
    prompt, ids = rng.integers(0, 1000, (1, 5)).astype(np.int32), rng.integers(0, 1000, 3)
    before, _ = _forced(model, prompt, ids)
    parent, _, attr = name.partition(".")
    mod = getattr(model.layers[1], parent)
    mod = mod[attr] if attr else mod
    mod.weight = mod.weight * 2
    got, _ = _forced(model, prompt, ids)
    host, model.model.host_step = model.model.host_step, None
    want, _ = _forced(model, prompt, ids)
    model.model.host_step = host
    exact, _ = _forced(_float64(model), prompt, ids)
    assert np.abs(got - before).max() > 1e3 * np.abs(want - exact).max()  # the change is seen, far above the floor
    assert np.abs(got - exact).max() <= 10 * np.abs(want - exact).max()


@pytest.mark.parametrize("options", [dict(quantize="q8"), dict(dtype="bfloat16"), dict(fuse=True)])
def test_cpu_decode_only_where_it_is_exact_to_its_contract(ckpt, options):
    """Quantized, bf16 or fused models keep MLX's step (the host step reads float32 stacked matrices only)."""
    assert llama.load(ckpt, **options).model.host_step is None


def test_cpu_decode_norm_and_swiglu_match_float64():
    """The vector helpers: few roundings each (RMSNorm: a dot of n terms, then 4 operations; SwiGLU: 4), so the
    float32 results lie within gamma_{n+5} (resp. gamma_6) of the float64 ones, relatively (gamma_k = k u / (1 - k u),
    u = eps / 2, exp's own error 1 ulp counted in)."""
    rng = np.random.default_rng(0)
    u = np.finfo(np.float32).eps / 2
    x, w = (rng.standard_normal(896).astype(np.float32) for _ in range(2))
    got = cpu_decode.rms_norm(x, w, 1e-6).astype(np.float64)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = x64 / np.sqrt(np.mean(x64 * x64) + 1e-6) * w64
    k = 896 + 5
    assert np.all(np.abs(got - want) <= k * u / (1 - k * u) * np.abs(want) + np.finfo(np.float32).tiny)
    g, up = (rng.standard_normal(4864).astype(np.float32) * 4 for _ in range(2))
    got = ops.swiglu_numpy(g, up).astype(np.float64)
    g64 = g.astype(np.float64)
    want = g64 / (1 + np.exp(-g64)) * up.astype(np.float64)
    assert np.all(np.abs(got - want) <= 6 * u / (1 - 6 * u) * np.abs(want) + np.finfo(np.float32).tiny)
