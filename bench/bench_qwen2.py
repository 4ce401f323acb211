"""Spark-TTS LM (Qwen2 0.5B): prefill (pp512) and decode (tg128) tokens/s, impl (MLX) vs transformers, same weights.

Quick mode (VOICEPORT_BENCH_QUICK=1 / --quick): the small test config. Full mode: the real 0.5B architecture (seeded
fp32 checkpoint, 2.0 GB). The same work on both sides as bench.bench_llama (whose timing helpers this uses):
prefill = one forward of the prompt into an empty KV cache projecting only the last position (`logits_to_keep=1`);
decode = n greedy steps through each side's own KV cache after a 16-token prompt. Decode is memory-bound: its
roofline is (bytes of weights read per token) / (read bandwidth measured now), and the fraction reached is printed.

    python -m bench.bench_qwen2 [--quick] [--dtype float32|bfloat16|float16] [--quantize q8|q4] [--impl-only]

`--impl-only` times impl alone and imports neither torch nor transformers (e.g. mlx-cuda on a GPU machine; there
the bandwidth is measured with MLX on the default device).
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, Optional

import numpy as np
import pytest

from bench.bench_llama import (DECODE, PREFILL, PROMPT, decode_case, impl_decode, impl_decode_parts, impl_prefill,
                               load_note, prefill_case, read_bandwidth, ref_decode, ref_prefill,
                               weight_bytes_per_token)
from bench.timing import best_time, median_time
from impl.accel import blas

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"



def _shipped(model):
    """The model as the library runs it on this device (impl.accel's default variant)."""
    from impl import accel

    accel.apply(model)
    return model

def setup(quick: bool, dtype: str = "float32", quantize: Optional[str] = None, impl_only: bool = False) -> Dict:
    """The seeded checkpoint, impl (and unless impl_only, transformers) models on it, and the bench's inputs."""
    from impl import qwen2
    from parity.specs import qwen2 as spec

    config = "small" if quick else "0.5b"
    path = spec.checkpoint(config, seed=0)
    vocab = spec.config_dict(config)["vocab_size"]
    rng = np.random.default_rng(0)
    env = {"config": config, "path": path, "vocab": vocab,
           "impl": _shipped(qwen2.load(path, dtype=None if dtype == "float32" else dtype, quantize=quantize)),
           "prefill_ids": rng.integers(0, vocab, (1, PREFILL)), "prompt": rng.integers(0, vocab, (1, PROMPT))}
    if not impl_only:
        from reference import qwen2 as ref

        env["ref"] = ref.load(path, dtype)
    return env


def device_bandwidth() -> float:
    """Read GB/s of the MLX default device: on the CPU bench.roofline's measure (the project's limit), elsewhere
    the best of a 1 GiB fp32 sum on that device."""
    import mlx.core as mx

    if mx.default_device() == mx.cpu:
        return read_bandwidth()
    a = mx.ones((1 << 28,), dtype=mx.float32)
    mx.eval(a)
    return a.nbytes / best_time(lambda: mx.eval(mx.sum(a)), n=10, warmup=3) / 1e9


@pytest.fixture(scope="module")
def env():
    return setup(QUICK)


def _tag(env) -> str:
    return f"qwen2 {env['config']} fp32, blas={blas.blas_info()['blas']}"


def bench_qwen2_prefill(benchmark, env):
    prefill_case(benchmark, env, _tag(env))


def bench_qwen2_decode(benchmark, env):
    decode_case(benchmark, env, _tag(env))


# ---------------------------------------------------------------------------------------------------- table

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_qwen2", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small config instead of the real 0.5B")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--quantize", default=None, choices=["q8", "q4"], help="impl only (transformers stays fp)")
    p.add_argument("--decode", type=int, default=DECODE)
    p.add_argument("--prefill", type=int, default=PREFILL)
    p.add_argument("--impl-only", action="store_true", help="time impl alone; no torch / transformers import")
    args = p.parse_args(argv)
    import mlx.core as mx

    e = setup(args.quick, args.dtype, args.quantize, impl_only=args.impl_only)
    ids = np.random.default_rng(0).integers(0, e["vocab"], (1, args.prefill))
    pre_i = median_time(impl_prefill(e["impl"], ids), n=3)
    di = impl_decode(e["impl"], e["prompt"], args.decode)
    di(), di()  # warm-up, then the timed run
    ti = args.decode / di.decode_s
    parts = impl_decode_parts(e["impl"], e["prompt"])  # right after the decode, before the reference loads cores
    bw = device_bandwidth()
    q = f" {args.quantize}" if args.quantize else ""
    where = f"MLX {mx.default_device()}, BLAS: {blas.blas_info()['blas']}"
    if args.impl_only:
        print(f"qwen2 {e['config']} impl {args.dtype}{q} ({where}); transformers not run (--impl-only)")
        print(f"{'phase':<10} {'impl tok/s':>11}")
        print(f"{'pp' + str(args.prefill):<10} {args.prefill / pre_i:>11.1f}")
        print(f"{'tg' + str(args.decode):<10} {ti:>11.2f}")
    else:
        import torch

        pre_r = median_time(ref_prefill(e["ref"], ids), n=3)
        dr = ref_decode(e["ref"], e["prompt"], args.decode)
        dr()
        tr = args.decode / dr.decode_s
        print(f"qwen2 {e['config']} impl {args.dtype}{q} vs transformers {args.dtype} (eager, CPU, "
              f"{torch.get_num_threads()} threads); {where}")
        print(f"{'phase':<10} {'impl tok/s':>11} {'transformers':>13} {'impl/ref':>9}")
        print(f"{'pp' + str(args.prefill):<10} {args.prefill / pre_i:>11.1f} {args.prefill / pre_r:>13.1f} "
              f"{pre_r / pre_i:>8.2f}x")
        print(f"{'tg' + str(args.decode):<10} {ti:>11.2f} {tr:>13.2f} {ti / tr:>8.2f}x")
    per_tok = weight_bytes_per_token(e["impl"])
    roof = bw * 1e9 / per_tok
    print(f"decode roofline: {per_tok / 1e9:.3f} GB weights/token / {bw:.1f} GB/s read = {roof:.2f} tok/s "
          f"({1e3 / roof:.1f} ms/token)")
    ms = {k: v * 1e3 for k, v in parts.items()}
    print(f"impl decode {1e3 / ti:.1f} ms/token: layers {ms['layers']:.1f} ms + head {ms['head']:.1f} ms (each "
          f"alone, best of 5) + the rest {1e3 / ti - ms['layers'] - ms['head']:.1f} ms (sampling, step overlap)")
    print(f"impl reaches {ti / roof:.0%} of the decode roofline (issue 19's target: >= 85 %); {load_note()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
