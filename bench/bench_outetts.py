"""End to end, text -> speech: real-time factor of impl (MLX LM + MLX DAC) vs outetts (HF backend + official DAC).

RTF = seconds of compute / seconds of audio. OuteTTS 1.0 speaks ~150 tokens per second of audio (75 DAC frames
of two codes, plus word/feature tokens), so per second of audio a pipeline runs 150 LM steps and one DAC decode of
75 frames:  RTF = 150 x (LM seconds per generated token) + (DAC seconds to decode 75 frames).
Both sides measured in this run on the same weights: outetts' own chunked generation (`InterfaceHF`, its sampler:
temperature 0.4, repetition penalty 1.1 over 64 tokens, top-k 40, top-p 0.9, min-p 0.05) and outetts'
`DacInterface.decode` (2048-code chunks, fades); impl's `TTS.generate_tokens` and `DacInterface.decode`.
Seeded random weights stop at arbitrary points, so the LM cost is taken per generated token.

Quick mode: the tiny LM (tests' config) and the real DAC on 1 s of codes. Full mode: the real 1B LM in fp32
(the CPU's fastest dtype on both sides) and 10 s of codes.
"""
from __future__ import annotations

import os
import time
from typing import Dict

import numpy as np
import pytest

from impl.accel import blas
from bench.timing import best_time

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
TOKENS_PER_AUDIO_S = 150
TEXT = "The quick brown fox jumps over the lazy dog, and then it rests in the warm afternoon sun."


def setup(quick: bool) -> Dict:
    from impl import dac, llama
    from impl.dac.interface import DacInterface
    from impl.outetts import generate as G
    from impl.seeded.outetts import TINY_LM_CONFIG, default_model_dir
    from impl.seeded.speaker import synthetic_speaker
    from parity.specs import dac as dac_spec
    from reference import outetts as R
    from reference.audio import OutettsDac

    lm_config = TINY_LM_CONFIG if quick else dict(llama.OUTETTS_1B_CONFIG)
    model_dir = default_model_dir(lm_config, seed=0, dtype="float32")
    st, pth = dac_spec.checkpoints("24khz_speech", 0)
    seconds = 1 if quick else 10
    return {
        "quick": quick, "seconds": seconds,
        "impl": G.load(model_dir, codec=DacInterface(dac.load(st))),
        "ref": R.GenerationReference(model_dir), "ref_dac": OutettsDac(str(pth)),
        "speaker": synthetic_speaker(0, "Hello there, this is me speaking."),
        "codes": np.random.default_rng(0).integers(0, 1024, (2, 75 * seconds)).astype(np.int32),
        "new_tokens": 32 if quick else 48,
    }


@pytest.fixture(scope="module")
def env():
    return setup(QUICK)


def _prompt_len(env) -> int:
    from impl.outetts.prompt import prompt_ids

    return len(prompt_ids(env["impl"].tokenizer, TEXT, env["speaker"]))


def impl_lm_s_per_token(env) -> float:
    from impl.outetts.generate import GenerationConfig

    cfg = GenerationConfig(temperature=0.4, max_new_tokens=env["new_tokens"], seed=0)
    env["impl"].generate_tokens(TEXT, env["speaker"], GenerationConfig(max_new_tokens=4))  # warm-up
    t = time.perf_counter()
    n = len(env["impl"].generate_tokens(TEXT, env["speaker"], cfg))
    return (time.perf_counter() - t) / n


def ref_lm_s_per_token(env) -> float:
    max_length = _prompt_len(env) + env["new_tokens"]
    env["ref"].generate_tokens(TEXT, env["speaker"], max_length=_prompt_len(env) + 4)  # warm-up
    t = time.perf_counter()
    n = len(env["ref"].generate_tokens(TEXT, env["speaker"], max_length=max_length, temperature=0.4))
    return (time.perf_counter() - t) / n


def bench_outetts_rtf(benchmark, env):
    import torch

    s = env["seconds"]
    ref_tok = ref_lm_s_per_token(env)
    ct = torch.from_numpy(env["codes"].astype(np.int64))[None]
    ref_dac = best_time(lambda: env["ref_dac"].iface.decode(ct), n=2) / s
    import mlx.core as mx

    mx.reset_peak_memory()
    impl_tok = impl_lm_s_per_token(env)
    benchmark.pedantic(lambda: env["impl"].codec.decode(env["codes"]), rounds=2, warmup_rounds=1)
    peak_mb = mx.get_peak_memory() / 1e6  # MLX allocations of generation + decode (weights already loaded)
    impl_dac = benchmark.stats.stats.min / s
    ref_rtf = TOKENS_PER_AUDIO_S * ref_tok + ref_dac
    impl_rtf = TOKENS_PER_AUDIO_S * impl_tok + impl_dac
    benchmark.extra_info.update(
        ratio=ref_rtf / impl_rtf, impl_rtf=impl_rtf, reference_rtf=ref_rtf, impl_s=impl_rtf, reference_s=ref_rtf,
        impl_lm_tok_s=1 / impl_tok, ref_lm_tok_s=1 / ref_tok, impl_dac_s_per_audio_s=impl_dac,
        ref_dac_s_per_audio_s=ref_dac, impl_peak_mlx_MB=peak_mb,
        what=f"{'tiny' if env['quick'] else '1B'} LM fp32 + DAC 24 kHz decode of {s} s, "
             f"blas={blas.blas_info()['blas']}")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.bench_outetts", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    e = setup(a.quick)
    it, rt = impl_lm_s_per_token(e), ref_lm_s_per_token(e)
    print(f"LM tokens/s: impl {1 / it:.1f}  outetts {1 / rt:.1f}")
