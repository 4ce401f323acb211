"""impl.llama vs transformers LlamaForCausalLM on seeded HF checkpoints (small config here; the real 1B: slow)."""
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl import accel, llama
from impl.outetts.generate import generate_greedy
from impl.seeded.llama import param_shapes, write_seeded_checkpoint
from parity.harness import kl_divergence, run_spec
from parity.specs import llama as llama_spec
from reference import llama as ref

SMALL = llama_spec.config_dict("small")


@pytest.fixture(scope="module")
def small_path():
    return llama_spec.checkpoint("small", seed=0)


@pytest.fixture(scope="module")
def refs(small_path):
    """fp64 and fp32 transformers twins of the small checkpoint."""
    return {"float64": ref.load(small_path, "float64"), "float32": ref.load(small_path, "float32")}


@pytest.fixture(scope="module")
def impl_model(small_path):
    return llama.load(small_path)


@pytest.fixture(scope="module", params=accel.shipped_variants())
def variant_model(small_path, request):
    """Each variant that runs on this machine (impl.accel: plain, fused, and the device's own)."""
    model = llama.load(small_path)
    assert accel.apply(model, request.param) == request.param
    return model


def _ids(seed, shape, vocab=SMALL["vocab_size"]):
    return np.random.default_rng(seed).integers(0, vocab, shape)


def _floor(refs, ids):
    """fp32 noise floor of the reference logits on `ids`: max|ref32 - ref64|, and the fp64 logits."""
    r64 = ref.forward(refs["float64"], ids)
    return float(np.max(np.abs(ref.forward(refs["float32"], ids) - r64))), r64


# ----------------------------------------------------------------------------------------------- per layer

def test_llama_small_layers_parity():
    report = run_spec(llama_spec.spec("small", seq_len=32), seed=0)
    assert report.ok, report.summary()
    n = SMALL["num_hidden_layers"]
    assert report.compared == 1 + 5 * n + 1 + 2, report.summary()
    layers = [r for r in report.rows if r.kind == "layer"]
    assert all(r.iso_ok for r in layers if r.name != "model.embed_tokens"), report.summary()
    assert all(r.floor > 0 for r in layers if "layers.0.input" not in r.name and "embed" not in r.name)


def test_llama_small_parity_names_a_rope_bug():
    """The spec can fail: default (unscaled) rope in layer 1 only is named as the first divergence."""
    s = llama_spec.spec("small", seq_len=32)
    args = dataclasses.replace(llama.ModelArgs.from_dict(SMALL), rope_scaling=None)

    def build_buggy():
        model = s.build_impl()
        model.model.layers[1].self_attn._freqs = mx.array(1.0 / llama.rope_inv_freq(args))
        return model

    report = run_spec(dataclasses.replace(s, build_impl=build_buggy), seed=0, isolated=False)
    assert not report.ok
    assert report.first_divergence == "model.layers.1.self_attn", report.summary()


# Bound for llama3 rope (transformers' _compute_llama3_parameters): both sides run the same float32 formula and
# differ only in pow and in rounding order (torch divides by a tensor as reciprocal-then-multiply). Per side, with
# 1 ulp <= eps relative, u = eps / 2, P = that side's float32 pow error in ulp:
#   inv = 1 / theta^x                         P eps + u
#   q = old / (2 pi / inv)                    P eps + 6 u = (P + 3) eps     (2 pi's rounding, <= 2 ops, <= 2 ops)
#   r = inv ((1 - s) / f + s), s = (q - low) / (high - low), in the medium band (low <= q <= high):
#     the subtraction q - low turns q's relative error into ds = q (P + 3) eps / (high - low), which moves r by
#     dr / r = (f - 1) ds / (1 + s (f - 1)); with q = low + s (high - low) that peaks at s = 0 or 1:
#     A (P + 3) eps, A = (f - 1) max(low, high / f) / (high - low);
#     inv's own error, five roundings and s's two (2 u s, scaled the same way, <= 2 u): (P + 4) eps.
#   Outside the band r is inv or inv / f, within (P + 2) eps; the band edges are continuous (s = 0: inv / f,
#   s = 1: inv), so a q rounded across an edge differently on the two sides is covered by the same ds.
# Two sides: (A (P_np + P_torch + 6) + P_np + P_torch + 8) eps; numpy's float32 pow is within 4 ulp (its AVX-512
# SVML kernels, numpy PR 19478; glibc's powf elsewhere, < 1 ulp), torch's within 1 ulp (Sleef u10): (11 A + 13) eps.
# (Exact equality is not possible from numpy: which pow kernel runs depends on the CPU on both sides.) Measured:
# worst 5.2 eps on AVX2, 28 eps on AVX-512 (theta 1e4, head_dim 128, f 32, low 2, high 4: bound 354 eps).
ROPE_GRID = list(itertools.product([10000.0, 500000.0], [16, 64, 128], [8.0, 32.0], [1.0, 2.0], [4.0, 8.0],
                                   [2048, 8192]))  # theta, head_dim, factor, low, high, original: every combination


def test_llama_rope_inv_freq_equals_transformers_llama3():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    eps = float(np.finfo(np.float32).eps)
    in_band = 0
    for theta, head_dim, factor, low, high, original in ROPE_GRID:
        scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                   "original_max_position_embeddings": original}
        cfg = dict(SMALL, rope_theta=theta, head_dim=head_dim, num_attention_heads=4, hidden_size=4 * head_dim,
                   rope_scaling=scaling)
        want, scaling_factor = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(**cfg), "cpu")
        want = want.numpy().astype(np.float64)
        got = llama.rope_inv_freq(llama.ModelArgs.from_dict(cfg))
        assert scaling_factor == 1.0 and got.dtype == np.float32 and got.shape == want.shape
        A = (factor - 1) * max(low, high / factor) / (high - low)
        bound = (11 * A + 13) * eps
        rel = float(np.max(np.abs(got - want) / want))
        assert rel <= bound, (f"theta={theta} head_dim={head_dim} factor={factor} low={low} high={high} "
                              f"original={original}: max rel {rel / eps:.1f} eps > bound {bound / eps:.0f} eps")
        q = original / (2 * np.pi) / theta ** (np.arange(0, head_dim, 2) / head_dim)  # old / wavelen, unscaled
        in_band += int(np.count_nonzero((q >= low) & (q <= high)))
    assert in_band > 0, "no inverse frequency in the smooth band: the bound's worst case was never exercised"


# ----------------------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("prompt_seed", [0, 1])
def test_llama_greedy_64_tokens_identical(variant_model, refs, prompt_seed):
    prompt = _ids(100 + prompt_seed, (12,)).tolist()
    got = generate_greedy(variant_model, prompt, 64)
    want = ref.generate_greedy(refs["float32"], prompt, 64)
    assert len(set(want)) > 16, f"degenerate reference decode, the comparison would be weak: {want}"
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert got == want, f"first differing step {first}: impl {got[first:first + 5]} ref {want[first:first + 5]}"


def test_llama_teacher_forced_kl_through_cache(variant_model, refs):
    """300 tokens (crosses the cache's 256-slot growth): prefill 100, then 200 steps; KL vs fp64 reference."""
    ids = _ids(7, (1, 300))
    cache = llama.make_cache(variant_model)
    outs = [variant_model(mx.array(ids[:, :100].astype(np.int32)), cache)]
    for t in range(100, 300):
        outs.append(variant_model(mx.array(ids[:, t:t + 1].astype(np.int32)), cache))
        mx.eval(outs[-1])
    got = np.array(mx.concatenate(outs, axis=1))
    floor, r64 = _floor(refs, ids)
    kl = kl_divergence(r64, got)
    # KL is quadratic in a small logit error, so the logits' k = 10 x floor rule is k^2 = 100 x the KL floor
    # (the report's KL contract: 10^2 x KL(fp64 ref || fp32 ref))
    kl_floor = kl_divergence(r64, ref.forward(refs["float32"], ids))
    assert kl <= 100 * kl_floor, f"teacher-forced KL {kl:.3g} > 100 x the fp32 KL floor {kl_floor:.3g}"
    err = float(np.max(np.abs(got - r64)))
    assert err <= 10 * floor, f"max|d| {err:.3g} > 10 x fp32 floor {floor:.3g}"
    assert cache[0].offset == 300 and cache[0].keys.shape[2] == 512


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.integers(1, 40), min_size=1, max_size=6), batch=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_llama_cache_chunks_equal_full_forward(impl_model, refs, chunks, batch, seed):
    """Any split into prefill/decode chunks (multi-token chunks after an offset: causal mask aligned to the last
    key) gives the full forward's logits, within 10 x the reference's fp32 floor."""
    L = sum(chunks)
    ids = _ids(seed, (batch, L))
    full = np.array(impl_model(mx.array(ids.astype(np.int32))))
    cache = llama.make_cache(impl_model)
    outs, t = [], 0
    for c in chunks:
        outs.append(impl_model(mx.array(ids[:, t:t + c].astype(np.int32)), cache))
        mx.eval(outs[-1])
        t += c
    got = np.array(mx.concatenate(outs, axis=1))
    floor, r64 = _floor(refs, ids)
    assert float(np.max(np.abs(full - r64))) <= 10 * floor
    err = float(np.max(np.abs(got - full)))
    assert err <= 10 * floor, f"chunks {chunks}: cached vs full max|d| {err:.3g} > 10 x floor {floor:.3g}"


def test_llama_logits_to_keep_is_the_last_positions(impl_model, refs):
    ids = _ids(9, (2, 20))
    full = np.array(impl_model(mx.array(ids.astype(np.int32))))
    last = np.array(impl_model(mx.array(ids.astype(np.int32)), logits_to_keep=3))
    assert last.shape == (2, 3, SMALL["vocab_size"])
    floor, _ = _floor(refs, ids)  # the BLAS may block 3 rows differently from 20: fp32 rounding, no more
    assert float(np.max(np.abs(last - full[:, -3:]))) <= 10 * floor


# ----------------------------------------------------------------------------------------------- precision

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_llama_half_precision_matches_transformers_half(small_path, refs, dtype):
    """Tolerance: transformers' own error in the same dtype (vs fp64) is the floor; impl may be at most 2x it,
    in max|d| and in KL."""
    ids = _ids(3, (2, 64))
    r64 = ref.forward(refs["float64"], ids)
    half = ref.forward(ref.load(small_path, dtype), ids)
    model = llama.load(small_path, dtype=dtype)
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == getattr(mx, dtype)
    got = np.array(model(mx.array(ids.astype(np.int32))).astype(mx.float32))
    err, floor = float(np.max(np.abs(got - r64))), float(np.max(np.abs(half - r64)))
    kl, kl_floor = kl_divergence(r64, got), kl_divergence(r64, half)
    assert err <= 2 * floor, f"{dtype}: max|d| {err:.3g} > 2 x transformers-{dtype} error {floor:.3g}"
    assert kl <= 2 * kl_floor, f"{dtype}: KL {kl:.3g} > 2 x transformers-{dtype} KL {kl_floor:.3g}"


def test_llama_quantized_q8_q4(small_path, impl_model, refs):
    """q8/q4 (group 64): logits equal an fp32 model holding the dequantized weights (the quantized kernels are
    right), and the KL to full precision is bounded by the floor of the scheme itself: an fp32 model whose same
    weights are rounded by an independent numpy quantizer (`_np_quantize`: affine, per group of 64, round to
    nearest) has KL `floor_q`; MLX's quantization may be at most 2 x that (the fp16/bf16 rule above)."""
    from mlx.utils import tree_flatten

    ids = _ids(5, (2, 64))
    x = mx.array(ids.astype(np.int32))
    full = np.array(impl_model(x))
    floor, _ = _floor(refs, ids)
    kls = {}
    full_params = dict(tree_flatten(impl_model.parameters()))
    for q in ("q8", "q4"):
        model = llama.load(small_path, quantize=q)
        got = np.array(model(x))
        # The same model with each quantized weight dequantized back to fp32.
        deq = llama.Model(model.args)
        params = dict(tree_flatten(model.parameters()))
        weights = []
        for k, v in params.items():
            if k.endswith(".scales") or k.endswith(".biases"):
                continue
            if k[:-len(".weight")] + ".scales" in params:
                base = k[:-len(".weight")]
                v = mx.dequantize(v, params[base + ".scales"], params[base + ".biases"], group_size=64,
                                  bits=int(q[1:]))
            weights.append((k, v))
        deq.load_weights(weights, strict=True)
        err = float(np.max(np.abs(got - np.array(deq(x)))))
        assert err <= 10 * floor, f"{q}: quantized vs dequantized-fp32 max|d| {err:.3g} > 10 x floor {floor:.3g}"
        kls[q] = kl_divergence(full, got)
        rounded = llama.Model(model.args)
        rounded.load_weights([(k, mx.array(_np_quantize(np.array(v), int(q[1:]))) if k[:-len(".weight")] + ".scales"
                               in params else v) for k, v in full_params.items()], strict=True)
        floor_q = kl_divergence(full, np.array(rounded(x)))
        assert kls[q] <= 2 * floor_q, f"{q}: KL to full precision {kls[q]:.3g} > 2 x the numpy quantizer's {floor_q:.3g}"
        print(f"llama small KL vs fp32: {q} {kls[q]:.3g} (numpy round-to-nearest {floor_q:.3g})")
    assert kls["q8"] * 20 < kls["q4"], kls


def _np_quantize(w: np.ndarray, bits: int, group: int = 64) -> np.ndarray:
    """Affine group quantization, round to nearest, dequantized (float32): per group of `group` along the last
    axis, scale (max - min) / (2^bits - 1), offset min."""
    g = w.astype(np.float64).reshape(-1, group)
    lo, hi = g.min(1, keepdims=True), g.max(1, keepdims=True)
    scale = np.maximum(hi - lo, 1e-12) / (2 ** bits - 1)
    return (np.round((g - lo) / scale) * scale + lo).reshape(w.shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------- loading

def _copy_ckpt(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_llama_load_names_every_bad_key(small_path, tmp_path):
    from safetensors.numpy import load_file, save_file

    path = _copy_ckpt(small_path, tmp_path / "bad")
    w = load_file(str(path / "model.safetensors"))
    del w["model.layers.1.mlp.up_proj.weight"]
    w["model.layers.9.mlp.extra.weight"] = np.zeros((2, 2), np.float32)
    w["model.layers.0.self_attn.k_proj.weight"] = np.zeros((16, 64), np.float32)
    save_file(w, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError) as e:
        llama.load(path)
    msg = str(e.value)
    assert "1 missing: model.layers.1.mlp.up_proj.weight" in msg
    assert "1 unexpected: model.layers.9.mlp.extra.weight" in msg
    assert "model.layers.0.self_attn.k_proj.weight: checkpoint [16, 64] != model [32, 64]" in msg


def test_llama_load_vocab_mismatch_is_clear(small_path, tmp_path):
    path = _copy_ckpt(small_path, tmp_path / "vocab")
    cfg = json.loads((path / "config.json").read_text())
    cfg["vocab_size"] = 1024
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config vocab_size 1024 != model.embed_tokens.weight rows 1000"):
        llama.load(path)


def test_llama_sharded_checkpoint_loads_same_weights(small_path, impl_model, tmp_path):
    sharded = write_seeded_checkpoint(tmp_path / "sharded", SMALL, seed=0, max_shard_bytes=60_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and not (sharded / "model.safetensors").exists()
    model = llama.load(sharded)
    ids = mx.array(_ids(0, (1, 16)).astype(np.int32))
    assert np.array_equal(np.array(model(ids)), np.array(impl_model(ids)))
    # transformers reads the same sharded folder: a valid HF checkpoint
    assert np.array_equal(ref.forward(ref.load(sharded, "float32"), np.array(ids)),
                          ref.forward(ref.load(small_path, "float32"), np.array(ids)))
    # a real index's total_size counts bytes: the 1B fp32 checkpoint's is 4,993,589,248 (past int32)
    big = dict(index, metadata={"total_size": 4_993_589_248})
    (sharded / "model.safetensors.index.json").write_text(json.dumps(big))
    assert np.array_equal(np.array(llama.load(sharded)(ids)), np.array(impl_model(ids)))
    os.remove(sharded / shards[1])
    with pytest.raises(FileNotFoundError, match=shards[1]):
        llama.load(sharded)


def test_llama_variant_logits_within_floor(variant_model, refs):
    """Every shipped variant (impl.accel) computes the checkpoint's function: a full forward within 10 x the fp32
    noise floor of the fp64 reference (the report's logits contract), batch 2, prefill path."""
    ids = _ids(5, (2, 33))
    floor, r64 = _floor(refs, ids)
    got = np.array(variant_model(mx.array(ids.astype(np.int32))))
    assert np.max(np.abs(got - r64)) <= 10 * floor, f"{variant_model.variant}: {np.max(np.abs(got - r64)):.3g}"


def test_llama_untied_head_and_bad_options(tmp_path):
    cfg = dict(SMALL, tie_word_embeddings=False, num_hidden_layers=1)
    path = write_seeded_checkpoint(tmp_path / "untied", cfg, seed=1)
    model = llama.load(path)
    ids = _ids(0, (1, 8))
    want = ref.forward(ref.load(path, "float64"), ids)
    got = np.array(model(mx.array(ids.astype(np.int32))))
    floor = float(np.max(np.abs(ref.forward(ref.load(path, "float32"), ids) - want)))  # fp32 noise floor
    err = float(np.max(np.abs(got - want)))
    assert err <= 10 * max(floor, 2.0 ** -24 * float(np.max(np.abs(want)))), (err, floor)  # the harness' verdict
    with pytest.raises(ValueError, match="dtype"):
        llama.load(path, dtype="float8")
    with pytest.raises(ValueError, match="quantize"):
        llama.load(path, quantize="q3")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        llama.load(tmp_path)
    os.remove(path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors or model.safetensors.index.json"):
        llama.load(path)


# ----------------------------------------------------------------------------------------------- checkpoints

def test_llama_seeded_checkpoint_deterministic_and_hf_init(tmp_path):
    from safetensors.numpy import load_file

    a = write_seeded_checkpoint(tmp_path / "a", SMALL, seed=3)
    b = write_seeded_checkpoint(tmp_path / "b", SMALL, seed=3)
    c = write_seeded_checkpoint(tmp_path / "c", SMALL, seed=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    wa, wc = load_file(str(a / "model.safetensors")), load_file(str(c / "model.safetensors"))
    assert not np.array_equal(wa["model.embed_tokens.weight"], wc["model.embed_tokens.weight"])
    assert "lm_head.weight" not in wa  # tied, as save_pretrained writes it
    np.testing.assert_array_equal(wa["model.layers.0.input_layernorm.weight"], 1.0)
    std = float(np.std(wa["model.embed_tokens.weight"]))
    assert abs(std - SMALL["initializer_range"]) < 0.01 * SMALL["initializer_range"]
    bf = write_seeded_checkpoint(tmp_path / "bf", SMALL, seed=3, dtype="bfloat16")
    assert json.loads((bf / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert llama.load(bf).model.norm.weight.dtype == mx.bfloat16


def test_llama_impl_is_torch_free():
    code = "import sys, impl.llama; assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_llama_outetts_1b_config_is_the_real_architecture():
    a = llama.ModelArgs.from_dict(dict(llama.OUTETTS_1B_CONFIG, unknown_key=1))
    assert (a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads, a.head_dim,
            a.intermediate_size, a.vocab_size, a.rms_norm_eps, a.tie_word_embeddings) == \
        (2048, 16, 32, 8, 64, 8192, 134400, 1e-5, True)
    assert a.rope_theta == 500000.0 and a.rope_scaling["factor"] == 32.0
    n = sum(int(np.prod(s)) for s in param_shapes(llama.OUTETTS_1B_CONFIG).values())
    assert n == 1_235_814_400 + (134400 - 128256) * 2048  # Llama 3.2 1B (128,256 vocab) + the added rows


# ----------------------------------------------------------------------------------------------- real 1B

@pytest.mark.slow
def test_llama_1b_layers_parity():
    report = run_spec(llama_spec.spec("1b", seq_len=32), seed=0)
    assert report.ok, report.summary()


@pytest.mark.slow
def test_llama_1b_greedy_64_tokens_identical():
    path = llama_spec.checkpoint("1b", seed=0)
    prompt = _ids(100, (12,), vocab=llama.OUTETTS_1B_CONFIG["vocab_size"]).tolist()
    got = generate_greedy(llama.load(path), prompt, 64)
    want = ref.generate_greedy(ref.load(path, "float32"), prompt, 64)
    assert got == want
