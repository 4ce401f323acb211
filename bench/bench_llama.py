"""OuteTTS LM backbone: prefill (pp512) and decode (tg128) tokens/s, impl (MLX) vs transformers, same weights.

Quick mode (VOICEPORT_BENCH_QUICK=1): the small test config. Full mode: the real 1B architecture (seeded fp32
checkpoint, 5 GB; the two models together need ~10 GB of memory).

Both sides do the same work: prefill is one forward of the prompt into an empty KV cache that projects only the
last position to the vocabulary (`logits_to_keep=1` in both); decode is `n` greedy steps, one token each,
through each side's own KV cache, after a 16-token prompt. Decode is memory-bound: its roofline is
(bytes of weights read per token) / (read bandwidth measured here), and the suite records the fraction reached.

    python -m bench.bench_llama [--quick] [--dtype float32|bfloat16|float16] [--quantize q8|q4]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable, Dict, Optional

import numpy as np
import pytest

from impl.accel import blas
from bench.timing import best_time, median_time

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
PREFILL = 512
DECODE = 128
PROMPT = 16



def _shipped(model):
    """The model as the library runs it on this device (impl.accel's default variant)."""
    from impl import accel

    accel.apply(model)
    return model

def weight_bytes_per_token(model) -> int:
    """Bytes a decode step reads: every parameter once (the tied embedding once, as the head's matrix)."""
    from mlx.utils import tree_flatten

    return int(sum(v.nbytes for _, v in tree_flatten(model.parameters())))


def read_bandwidth() -> float:
    """GB/s, measured now (bench.roofline: sum of a 512 MB fp32 array)."""
    from bench.roofline import memory_bandwidth

    return memory_bandwidth(512)["read_GBps"]


# ---------------------------------------------------------------------------------------------------- impl

def impl_prefill(model, ids: np.ndarray) -> Callable[[], None]:
    import mlx.core as mx

    from impl import llama

    x = mx.array(ids.astype(np.int32))

    def run():
        cache = llama.make_cache(model)
        mx.eval(model(x, cache, logits_to_keep=1))

    return run


def impl_decode(model, prompt: np.ndarray, n: int) -> Callable[[], None]:
    import mlx.core as mx

    from impl import llama

    def run():
        cache = llama.make_cache(model)
        y = mx.argmax(model(mx.array(prompt.astype(np.int32)), cache, logits_to_keep=1)[:, -1], axis=-1)
        mx.eval(y)
        t = time.perf_counter()
        for _ in range(n):
            y = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
            mx.async_eval(y)
        mx.eval(y)
        run.decode_s = time.perf_counter() - t

    return run


def impl_decode_parts(model, prompt: np.ndarray, n: int = 5) -> Dict[str, float]:
    """Seconds of a decode step's parts, each alone at decode shape (best of n): "layers" = the decoder layers and
    final norm (`model.model`, one token, the cache at the prompt's length); "head" = the vocabulary product."""
    import mlx.core as mx

    from impl import llama

    cache = llama.make_cache(model)
    mx.eval(model(mx.array(prompt.astype(np.int32)), cache, logits_to_keep=1))
    y = mx.array(prompt[:, -1:].astype(np.int32))
    h = mx.random.normal((1, 1, model.args.hidden_size)).astype(model.model.norm.weight.dtype)

    def layers():
        for c in cache:
            c.offset = prompt.shape[1]  # each call writes the same slot
        mx.eval(model.model(y, cache))

    head = model.model.embed_tokens.as_linear if model.args.tie_word_embeddings else model.lm_head
    return {"layers": best_time(layers, n=n), "head": best_time(lambda: mx.eval(head(h)), n=n)}


def load_note() -> str:
    """The host's load averages: decode timings on a shared CPU move with them."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------------------------------------------- reference

def ref_prefill(model, ids: np.ndarray) -> Callable[[], None]:
    import torch

    x = torch.from_numpy(ids.astype(np.int64))

    def run():
        with torch.no_grad():
            model(input_ids=x, use_cache=True, logits_to_keep=1)

    return run


def ref_decode(model, prompt: np.ndarray, n: int) -> Callable[[], None]:
    import torch

    x = torch.from_numpy(prompt.astype(np.int64))

    def run():
        with torch.no_grad():
            out = model(input_ids=x, use_cache=True, logits_to_keep=1)
            past, y = out.past_key_values, out.logits[:, -1].argmax(-1)
            t = time.perf_counter()
            for _ in range(n):
                out = model(input_ids=y[:, None], past_key_values=past, use_cache=True)
                past, y = out.past_key_values, out.logits[:, -1].argmax(-1)
            run.decode_s = time.perf_counter() - t

    return run


# ---------------------------------------------------------------------------------------------------- setup

def setup(quick: bool, dtype: str = "float32", quantize: Optional[str] = None) -> Dict:
    """The seeded checkpoint, impl and transformers models on it, and the bench's inputs."""
    from impl import llama
    from parity.specs import llama as spec
    from reference import llama as ref

    config = "small" if quick else "1b"
    path = spec.checkpoint(config, seed=0)
    vocab = spec.config_dict(config)["vocab_size"]
    rng = np.random.default_rng(0)
    return {
        "config": config, "path": path,
        "impl": _shipped(llama.load(path, dtype=None if dtype == "float32" else dtype, quantize=quantize)),
        "ref": ref.load(path, dtype),
        "prefill_ids": rng.integers(0, vocab, (1, PREFILL)),
        "prompt": rng.integers(0, vocab, (1, PROMPT)),
    }


@pytest.fixture(scope="module")
def env():
    return setup(QUICK)


def _tag(env) -> str:
    return f"{env['config']} fp32, blas={blas.blas_info()['blas']}"


def prefill_case(benchmark, env, tag: str) -> None:
    """pp{PREFILL} of env's impl vs reference LM (setup()'s dict), recorded in the benchmark's extra_info."""
    ref_s = median_time(ref_prefill(env["ref"], env["prefill_ids"]), n=3)
    benchmark.pedantic(impl_prefill(env["impl"], env["prefill_ids"]), rounds=3, warmup_rounds=1)
    impl_s = benchmark.stats.stats.median
    benchmark.extra_info.update(
        ratio=ref_s / impl_s, impl_tok_s=PREFILL / impl_s, ref_tok_s=PREFILL / ref_s, reference_s=ref_s,
        impl_s=impl_s, tokens=PREFILL, what=f"pp{PREFILL}, {tag}")


def bench_llama_prefill(benchmark, env):
    prefill_case(benchmark, env, _tag(env))


def bench_llama_decode(benchmark, env):
    decode_case(benchmark, env, _tag(env))


def decode_case(benchmark, env, tag: str) -> None:
    """tg{DECODE} of env's impl vs reference LM with the bandwidth roofline, recorded in extra_info."""
    ref_run = ref_decode(env["ref"], env["prompt"], DECODE)
    ref_run()
    ref_s = ref_run.decode_s
    impl_run = impl_decode(env["impl"], env["prompt"], DECODE)
    times = []

    def timed():
        impl_run()
        times.append(impl_run.decode_s)

    benchmark.pedantic(timed, rounds=2, warmup_rounds=1)
    impl_s = float(np.median(times[-2:]))
    bw = read_bandwidth()
    per_tok = weight_bytes_per_token(env["impl"])
    roofline = bw * 1e9 / per_tok
    benchmark.extra_info.update(
        ratio=ref_s / impl_s, impl_tok_s=DECODE / impl_s, ref_tok_s=DECODE / ref_s, reference_s=ref_s,
        impl_s=impl_s, roofline_tok_s=roofline, roofline_fraction=DECODE / impl_s / roofline,
        weight_bytes_per_token=per_tok, read_GBps=bw, what=f"tg{DECODE}, {tag}")


# ---------------------------------------------------------------------------------------------------- table

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_llama", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small config instead of the real 1B")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--quantize", default=None, choices=["q8", "q4"], help="impl only (transformers stays fp)")
    p.add_argument("--decode", type=int, default=DECODE)
    p.add_argument("--prefill", type=int, default=PREFILL)
    args = p.parse_args(argv)
    e = setup(args.quick, args.dtype, args.quantize)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, int(e["prefill_ids"].max()) + 1, (1, args.prefill))
    pre_i = median_time(impl_prefill(e["impl"], ids), n=3)
    pre_r = median_time(ref_prefill(e["ref"], ids), n=3)
    di, dr = impl_decode(e["impl"], e["prompt"], args.decode), ref_decode(e["ref"], e["prompt"], args.decode)
    di(), dr()  # warm-up
    di(), dr()
    bw = read_bandwidth()
    per_tok = weight_bytes_per_token(e["impl"])
    roof = bw * 1e9 / per_tok
    q = f" {args.quantize}" if args.quantize else ""
    print(f"llama {e['config']} impl {args.dtype}{q} vs transformers {args.dtype} (eager, CPU, "
          f"{__import__('torch').get_num_threads()} threads); MLX BLAS: {blas.blas_info()['blas']}")
    print(f"{'phase':<10} {'impl tok/s':>11} {'transformers':>13} {'impl/ref':>9}")
    print(f"{'pp' + str(args.prefill):<10} {args.prefill / pre_i:>11.1f} {args.prefill / pre_r:>13.1f} "
          f"{pre_r / pre_i:>8.2f}x")
    ti, tr = args.decode / di.decode_s, args.decode / dr.decode_s
    print(f"{'tg' + str(args.decode):<10} {ti:>11.2f} {tr:>13.2f} {ti / tr:>8.2f}x")
    print(f"decode roofline: {per_tok / 1e9:.3f} GB weights/token / {bw:.1f} GB/s read = {roof:.2f} tok/s; "
          f"impl reaches {ti / roof:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
