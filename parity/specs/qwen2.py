"""Parity spec: impl.qwen2 (MLX) vs transformers Qwen2ForCausalLM, layer by layer, on a seeded HF checkpoint.

Both trees share HF's module names, so every pair maps a path to itself: embeddings, each decoder layer's
input_layernorm / q,k,v,o projections / self_attn / post_attention_layernorm / mlp / the whole layer, the final
norm. Outputs: the logits of one full forward (fp32 noise floor), the teacher-forced logits through impl's KV
cache (prefill of the first half, then one token per step) as KL against the fp64 reference, and 64 greedy ids
from the first row's first 12 ids (impl's decode loop vs transformers `generate(do_sample=False)`, exact against
the fp32 reference). `variant`: the `impl.accel` variant compared, as in parity.specs.llama (the fused variants
have no q/k/v projections of their own: the section names those pairs as untapped).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.spec import FLOOR_WHY, KL_WHY, Pair, Spec, Tol

GREEDY_STEPS = 64
GREEDY_PROMPT = 12


def _configs() -> Dict[str, Dict[str, Any]]:
    """"small": Spark-TTS-0.5B's structure scaled down (q/k/v biases, GQA 4:1, rope theta 1e6, eps 1e-6, tied
    embeddings); initializer_range 0.2 instead of 0.02, as parity.specs.llama's small config (at 0.02 a tiny random
    LM's greedy decode collapses onto one token, which would make the token-exact checks uninformative). Its
    vocabulary (256) keeps the fixtures' logits small; widths are multiples of 64, q8/q4's group size."""
    from impl.qwen2 import SPARK_TTS_0_5B_CONFIG

    small = dict(SPARK_TTS_0_5B_CONFIG, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=2, vocab_size=256, initializer_range=0.2)
    return {"small": small, "0.5b": dict(SPARK_TTS_0_5B_CONFIG)}


def config_dict(config: str) -> Dict[str, Any]:
    configs = _configs()
    if config not in configs:
        raise ValueError(f"unknown qwen2 config {config!r}; known: {sorted(configs)}")
    return configs[config]


def checkpoint(config: str = "small", seed: int = 0, dtype: str = "float32"):
    """Seeded HF Qwen2 checkpoint folder for a named config (generated once into the cache dir)."""
    from impl.seeded.qwen2 import seeded_qwen2

    return seeded_qwen2(config_dict(config), seed, dtype)


def spec(config: str = "small", seq_len: int = 32, seed: int = 0, variant: str = "plain") -> Spec:
    """Qwen2 parity at a named config ("small" | "0.5b") of the `variant` model; `seed` seeds the weights,
    run_spec's seed the ids."""
    import mlx.core as mx

    from impl import llama, qwen2
    from impl.outetts.generate import generate_greedy
    from parity.specs.llama import _isolator, build
    from reference import qwen2 as ref

    cfg = config_dict(config)
    isolate = _isolator(qwen2.model_args(cfg))  # impl's causal mask and rope, checked equal to the captured ones
    n_layers = cfg["num_hidden_layers"]
    batch = 1  # batches > 1 are parity/test_qwen2.py's (chunks, half precision); one row keeps the fixture small
    path = checkpoint(config, seed)

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(s)
        return {"ids": rng.integers(0, cfg["vocab_size"], (batch, seq_len)).astype(np.int64)}

    def run_ref(model, inputs):
        logits = ref.forward(model, inputs["ids"])  # first: the layer captures are this forward's
        greedy = ref.generate_greedy(model, inputs["ids"][0, :GREEDY_PROMPT], GREEDY_STEPS)
        return {"logits": logits, "logits_tf": logits, "greedy": np.asarray(greedy, np.int64)}

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
        greedy = generate_greedy(model, inputs["ids"][0, :GREEDY_PROMPT].tolist(), GREEDY_STEPS)
        return {"logits": logits, "logits_tf": mx.concatenate(steps, axis=1),
                "greedy": np.asarray(greedy, np.int64)}

    layer = "model.layers.{i}"
    over = range(n_layers)
    pairs = [Pair("model.embed_tokens", "model.embed_tokens", layout="same"),
             Pair(layer + ".input_layernorm", layer + ".input_layernorm", over=over, layout="same")]
    pairs += [Pair(f"{layer}.self_attn.{p}_proj", f"{layer}.self_attn.{p}_proj", over=over, layout="same")
              for p in "qkvo"]
    pairs += [
        Pair(layer + ".self_attn", layer + ".self_attn", over=over, layout="same", isolate=isolate),
        Pair(layer + ".post_attention_layernorm", layer + ".post_attention_layernorm", over=over, layout="same"),
        Pair(layer + ".mlp", layer + ".mlp", over=over, layout="same"),
        Pair(layer, layer, over=over, layout="same", isolate=isolate),
        Pair("model.norm", "model.norm", layout="same"),
    ]
    return Spec(
        name=f"qwen2-{config}",
        build_impl=lambda: build(qwen2.load, path, variant),
        build_ref=lambda dtype: ref.load(path, dtype),
        make_inputs=make_inputs,
        run_impl=run_impl,
        run_ref=run_ref,
        pairs=pairs,
        outputs={"logits": Tol.floor(why=FLOOR_WHY), "logits_tf": Tol.kl(10, why=KL_WHY), "greedy": Tol.exact()},
        description=f"Spark-TTS LM (Qwen2, {config} config, seeded weights {seed}, {variant} variant), seq {seq_len}, "
                    f"batch {batch}; "
                    f"logits_tf = teacher-forced through impl's KV cache; greedy = {GREEDY_STEPS} argmax ids after "
                    f"{GREEDY_PROMPT} prompt ids, impl's decode loop vs transformers generate",
    )
