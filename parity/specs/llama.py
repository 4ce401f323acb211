"""Parity spec: impl.llama (MLX) vs transformers LlamaForCausalLM, layer by layer, on a seeded HF checkpoint.

Both trees share HF's module names, so every pair maps a path to itself: embeddings, each decoder layer's
input_layernorm / self_attn / post_attention_layernorm / mlp / the whole layer, the final norm. Outputs: the
logits of one full forward (fp32 noise floor) and the teacher-forced logits through impl's KV cache (prefill of
the first half, then one token per step) as KL against the fp64 reference.

`variant` names the `impl.accel` variant of the loaded model that is compared ("plain": the checkpoint's own
modules; "fused", "cpu": `impl.accel.apply`). The reference side, and so the fixture, is the same for every
variant; a pair whose impl module a variant does not have is named in the section (parity.harness.run_spec).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.spec import FLOOR_WHY, KL_WHY, Pair, Spec, Tol

def _configs() -> Dict[str, Dict[str, Any]]:
    """"small": the real architecture scaled down, same structure (GQA 2:1, llama3 rope, tied embeddings).
    Its initializer_range is 0.2 (HF init's std) instead of 0.02: at 0.02 a tiny random Llama's greedy decoding
    collapses onto one repeated token, which would make the token-exact tests uninformative."""
    from impl.llama import OUTETTS_1B_CONFIG

    small = dict(OUTETTS_1B_CONFIG, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=1000,
                 initializer_range=0.2)
    return {"small": small, "1b": dict(OUTETTS_1B_CONFIG)}


def config_dict(config: str) -> Dict[str, Any]:
    configs = _configs()
    if config not in configs:
        raise ValueError(f"unknown llama config {config!r}; known: {sorted(configs)}")
    return configs[config]


def checkpoint(config: str = "small", seed: int = 0, dtype: str = "float32"):
    """Seeded HF checkpoint folder for a named config (generated once into the cache dir)."""
    from impl.seeded.llama import seeded_checkpoint

    return seeded_checkpoint(config_dict(config), seed, dtype)


def _check_context(x, kwargs, args) -> None:
    """The captured reference context must be what impl computes itself: causal mask, rope at positions 0..L-1."""
    import mlx.core as mx

    from impl.llama import rope_inv_freq

    L = x.shape[1]
    mask = kwargs.get("attention_mask")
    if mask is not None:
        blocked = np.array(mx.array(mask).astype(mx.float32))[..., :L, :L] < -1e30
        if not np.array_equal(blocked[0, 0], np.triu(np.ones((L, L), bool), k=1)):
            raise AssertionError("reference attention_mask is not the plain causal mask impl uses")
    pe = kwargs.get("position_embeddings")
    if pe is not None:
        cos = np.array(mx.array(pe[0]))[0]  # (L, head_dim)
        inv = rope_inv_freq(args)
        ang = np.arange(L, dtype=np.float32)[:, None] * inv[None, :]
        want = np.cos(np.concatenate([ang, ang], axis=-1).astype(np.float64))
        err = float(np.max(np.abs(cos - want)))
        if err > 1e-5:
            raise AssertionError(f"reference rope cos differs from impl's llama3 frequencies by {err:.3g}")


def _isolator(model_args):
    """Pair.isolate for attention / decoder layers: run the impl layer on the reference layer's captured
    hidden_states (positional for HF's decoder layer, a keyword for its self_attn call); the mask and rope are
    impl's own (causal, positions 0..L-1), checked equal to the captured ones first."""
    def isolate(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        _check_context(x, kwargs, model_args)
        return module(x, "causal", None)

    return isolate


def build(load, path, variant: str):
    """`load(path)` made the `variant` (impl.accel.apply; "plain" applies nothing)."""
    model = load(path)
    if variant != "plain":
        from impl import accel

        accel.apply(model, variant)
    return model


def spec(config: str = "small", seq_len: int = 32, seed: int = 0, variant: str = "plain") -> Spec:
    """Llama parity at a named config ("small" | "1b") of the `variant` model; `seed` seeds the weights, run_spec's
    seed the token ids."""
    import mlx.core as mx

    from impl import llama
    from reference import llama as ref

    cfg = config_dict(config)
    isolate = _isolator(llama.ModelArgs.from_dict(cfg))
    n_layers = cfg["num_hidden_layers"]
    batch = 2 if config == "small" else 1
    path = checkpoint(config, seed)

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(s)
        return {"ids": rng.integers(0, cfg["vocab_size"], (batch, seq_len)).astype(np.int64)}

    def run_ref(model, inputs):
        logits = ref.forward(model, inputs["ids"])
        return {"logits": logits, "logits_tf": logits}

    def run_impl(model, inputs):
        ids = mx.array(inputs["ids"].astype(np.int32))
        logits = model(ids)
        mx.eval(logits)
        # Teacher forcing through the KV cache: prefill half, then the rest one token per step.
        cache = llama.make_cache(model)
        half = seq_len // 2
        steps = [model(ids[:, :half], cache)]
        for t in range(half, seq_len):
            steps.append(model(ids[:, t:t + 1], cache))
            mx.eval(steps[-1])
        return {"logits": logits, "logits_tf": mx.concatenate(steps, axis=1)}

    layer = "model.layers.{i}"
    over = range(n_layers)
    pairs = [
        Pair("model.embed_tokens", "model.embed_tokens", layout="same"),
        Pair(layer + ".input_layernorm", layer + ".input_layernorm", over=over, layout="same"),
        Pair(layer + ".self_attn", layer + ".self_attn", over=over, layout="same", isolate=isolate),
        Pair(layer + ".post_attention_layernorm", layer + ".post_attention_layernorm", over=over, layout="same"),
        Pair(layer + ".mlp", layer + ".mlp", over=over, layout="same"),
        Pair(layer, layer, over=over, layout="same", isolate=isolate),
        Pair("model.norm", "model.norm", layout="same"),
    ]
    return Spec(
        name=f"llama-{config}",
        build_impl=lambda: build(llama.load, path, variant),
        build_ref=lambda dtype: ref.load(path, dtype),
        make_inputs=make_inputs,
        run_impl=run_impl,
        run_ref=run_ref,
        pairs=pairs,
        outputs={"logits": Tol.floor(why=FLOOR_WHY), "logits_tf": Tol.kl(10, why=KL_WHY)},
        description=f"OuteTTS LM backbone (Llama, {config} config, seeded weights {seed}, {variant} variant), "
                    f"seq {seq_len}, batch {batch}; logits_tf = teacher-forced through impl's KV cache",
    )
