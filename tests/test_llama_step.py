"""`impl.llama.compile_step` (the CPU load path): a compiled decode step computes what the plain layers compute
(with the host step of impl.cpu_decode off: it takes one sequence's tokens first; tests/test_cpu_decode.py).

Impl-vs-impl, exact: the compiled step runs the same products on the same operands in the same order, and MLX's
fused elementwise kernels evaluate the same float32 operations, so logits and KV caches must be bit-identical to
the plain path's over many steps (the parity suite compares the plain path against transformers, and its greedy
tests run the compiled one).
"""
import mlx.core as mx
import numpy as np
import pytest

from impl import llama
from impl.seeded.llama import write_seeded_checkpoint

# Llama (llama3 rope, no biases) and a Qwen2-shaped config (q/k/v biases, plain rope): both of impl.llama's users
LLAMA = dict(llama.OUTETTS_1B_CONFIG, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, head_dim=16, vocab_size=1000)
QWEN2_LIKE = dict(LLAMA, attention_bias=True, rope_scaling=None, rope_theta=1e6, rms_norm_eps=1e-6)


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


def _mlx_step(model):
    """`model` without the host step (impl.cpu_decode, taken before the compiled one for one sequence)."""
    model.model.host_step = None
    return model


@pytest.fixture(scope="module", params=["llama", "qwen2-like"])
def ckpt(request, tmp_path_factory):
    config = LLAMA if request.param == "llama" else QWEN2_LIKE
    return write_seeded_checkpoint(tmp_path_factory.mktemp("step") / request.param, config, 0)


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("quantize", [None, "q8"])
def test_llama_step_compiled_equals_plain_exactly(ckpt, fuse, quantize):
    model = _mlx_step(llama.load(ckpt, quantize=quantize, fuse=fuse))
    assert model.model.compiled_step  # the CPU load path compiles the step
    prompt = np.random.default_rng(0).integers(0, 1000, (2, 7)).astype(np.int32)
    got, got_cache = _decode(model, prompt, 40)
    model.model.compiled_step = False
    want, want_cache = _decode(model, prompt, 40)
    assert np.array_equal(got, want), f"max|d| {np.abs(got - want).max()}"
    for (gk, gv), (wk, wv) in zip(got_cache, want_cache):
        assert np.array_equal(gk, wk) and np.array_equal(gv, wv)


def test_llama_step_is_the_path_a_decode_call_takes(ckpt, monkeypatch):
    model = _mlx_step(llama.load(ckpt))
    cache = llama.make_cache(model)
    model(mx.array([[1, 2, 3]]), cache)  # prefill: the plain layers

    def refuse(*_):
        raise RuntimeError("compiled step called")

    monkeypatch.setattr(model.layers[0], "compiled_qkv", refuse)
    with pytest.raises(RuntimeError, match="compiled step called"):
        model(mx.array([[4]]), cache)


@pytest.mark.parametrize("name", ["mlp.down_proj", "mlp.gate_proj", "self_attn.k_proj"])
def test_llama_step_sees_replaced_weights(ckpt, name):
    """The compiled functions take the layer as `inputs`: a weight replaced after compiling is the one used, a
    stacked one (k_proj in q|k|v, gate_proj in gate|up: `stack_projections`) included."""
    model = _mlx_step(llama.load(ckpt))
    prompt = np.array([[5, 6, 7]], dtype=np.int32)
    before, _ = _decode(model, prompt, 3)
    parent, attr = name.split(".")
    lin = getattr(model.layers[1], parent)[attr]
    lin.weight = lin.weight * 2
    got, _ = _decode(model, prompt, 3)
    model.model.compiled_step = False
    want, _ = _decode(model, prompt, 3)
    assert not np.array_equal(before, got) and np.array_equal(got, want)


def test_llama_step_stacked_projections_keep_the_checkpoint_tensors(ckpt):
    """The CPU layout stacks q|k|v and gate|up (with the sgemv forwarder bound): the parameters keep their names
    and values (views of the stacked matrix), and one-row calls use the stacked products."""
    from mlx.utils import tree_flatten

    from impl.accel import blas

    model = _mlx_step(llama.load(ckpt))
    plain = llama.Model(model.args)
    plain.load_weights([(k, mx.array(np.array(v))) for k, v in tree_flatten(model.parameters())], strict=True)
    attn, mlp = model.layers[0].self_attn, model.layers[0].mlp
    stacked = blas.blas_info()["blas"] == "openblas+gemv"
    assert ("_qkv_weight" in attn and "_gate_up_t" in mlp) == stacked
    if stacked:
        assert np.array_equal(np.array(attn._qkv_weight), np.concatenate(
            [np.array(plain.layers[0].self_attn[n].weight) for n in ("q_proj", "k_proj", "v_proj")]))
        assert np.array_equal(np.array(mlp._gate_up_t).T, np.concatenate(
            [np.array(plain.layers[0].mlp[n].weight) for n in ("gate_proj", "up_proj")]))


def test_llama_step_decode_never_restacks(ckpt, monkeypatch):
    """Tracing the compiled step re-wraps the layer's arrays: that must not read as a replaced weight (a re-stack
    copies every stacked matrix)."""
    model = _mlx_step(llama.load(ckpt))

    def refuse(*_):
        raise RuntimeError("re-stacked")

    monkeypatch.setattr(llama, "_stack_attention", refuse)
    monkeypatch.setattr(llama, "_stack_mlp", refuse)
    _decode(model, np.array([[5, 6, 7]], dtype=np.int32), 5)
