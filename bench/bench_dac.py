"""DAC 24 kHz speech codec: encode and decode of 1 s and 10 s of speech (60 s in the full run), impl (MLX) vs the
official descript-audio-codec 1.0.0 DAC (torch, eval, CPU), same seeded real-size checkpoint, same run.

Both sides do the same work: encode is audio (1, L) -> codes (1, 2, T) (`DAC.encode`: encoder and residual
quantizer); decode is codes -> audio (`quantizer.from_codes` then `DAC.decode`), both on the reference's codes.
The input is real speech (parity.specs.dac's committed clip, wrapped around for long requests). impl's convs and
Snake go through impl.ops, whose path (gemm on CPU, native on a GPU) each case records and prints.

Quick mode (VOICEPORT_BENCH_QUICK=1): 1 s and 10 s. Full mode adds 60 s.

    python -m bench.bench_dac [--seconds 1 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, Dict

import numpy as np
import pytest

from impl.accel import blas
from bench.timing import median_time

QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
CONFIG = "24khz_speech"
SECONDS = [1, 10] if QUICK else [1, 10, 60]


# ---------------------------------------------------------------------------------------------------- impl

def impl_encode(model, audio: np.ndarray) -> Callable[[], None]:
    import mlx.core as mx

    def run():
        mx.eval(model.encode(mx.array(audio)))

    return run


def impl_decode(model, codes: np.ndarray) -> Callable[[], None]:
    import mlx.core as mx

    def run():
        mx.eval(model.decode(mx.array(codes)))

    return run


# ---------------------------------------------------------------------------------------------------- reference

def ref_encode(model, audio: np.ndarray) -> Callable[[], None]:
    from reference import dac as ref

    return lambda: ref.encode(model, audio)


def ref_decode(model, codes: np.ndarray) -> Callable[[], None]:
    from reference import dac as ref

    return lambda: ref.decode(model, codes)


# ---------------------------------------------------------------------------------------------------- setup

def setup() -> Dict:
    """impl and the official DAC on the same seeded checkpoint (cached by parity.specs.dac)."""
    from impl import dac
    from parity.specs import dac as spec
    from reference import dac as ref

    st_path, pth = spec.checkpoints(CONFIG, seed=0)
    return {"impl": dac.load(st_path), "ref": ref.load(pth, "float32"), "sr": 24000}


def inputs(env: Dict, seconds: float) -> Dict:
    """`seconds` of speech and the reference's codes for it (cached in env)."""
    from parity.specs import dac as spec
    from reference import dac as ref

    key = ("inputs", seconds)
    if key not in env:
        audio = spec.make_signal("speech", env["sr"], int(seconds * env["sr"]), seed=0)[None]
        env[key] = {"audio": audio, "codes": ref.encode(env["ref"], audio)}
    return env[key]


@pytest.fixture(scope="module")
def env():
    return setup()


def _tag(seconds: float) -> str:
    import torch

    from impl import ops

    return (f"{CONFIG} fp32, {seconds:g} s, conv path={ops.path()}, blas={blas.blas_info()['blas']}, "
            f"torch threads={torch.get_num_threads()}")


def _case(benchmark, ref_run, impl_run, seconds, rounds):
    from impl import ops

    ref_s = median_time(ref_run, n=rounds)
    benchmark.pedantic(impl_run, rounds=rounds, warmup_rounds=1)
    impl_s = benchmark.stats.stats.median
    benchmark.extra_info.update(ratio=ref_s / impl_s, reference_s=ref_s, impl_s=impl_s, seconds=seconds,
                                realtime_x=seconds / impl_s, conv_path=ops.path(), what=_tag(seconds))
    print(f"\n[bench_dac] {_tag(seconds)}: impl {impl_s:.3f} s, reference {ref_s:.3f} s, ratio {ref_s / impl_s:.2f}x")


@pytest.mark.parametrize("seconds", SECONDS, ids=[f"{s}s" for s in SECONDS])
def bench_dac_encode(benchmark, env, seconds):
    x = inputs(env, seconds)
    _case(benchmark, ref_encode(env["ref"], x["audio"]), impl_encode(env["impl"], x["audio"]), seconds,
          rounds=3 if seconds <= 10 else 1)


@pytest.mark.parametrize("seconds", SECONDS, ids=[f"{s}s" for s in SECONDS])
def bench_dac_decode(benchmark, env, seconds):
    x = inputs(env, seconds)
    _case(benchmark, ref_decode(env["ref"], x["codes"]), impl_decode(env["impl"], x["codes"]), seconds,
          rounds=3 if seconds <= 10 else 1)


# ---------------------------------------------------------------------------------------------------- table

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_dac", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[1, 10])
    p.add_argument("--rounds", type=int, default=3, help="timed runs per side (median), after one warm-up")
    args = p.parse_args(argv)
    import mlx.core as mx
    import torch

    from impl import ops

    e = setup()
    print(f"DAC {CONFIG} impl (MLX {mx.__version__}, conv path {ops.path()}, BLAS {blas.blas_info()['blas']}) vs "
          f"descript-audio-codec 1.0.0 (torch {torch.__version__}, CPU, {torch.get_num_threads()} threads), "
          f"median of {args.rounds}")
    print(f"{'audio':>7} {'phase':<7} {'torch s':>9} {'impl s':>9} {'torch/impl':>11} {'codes':>6} {'max|dy|':>9}")
    for seconds in args.seconds:
        x = inputs(e, seconds)
        codes = np.array(e["impl"].encode(mx.array(x["audio"])))
        same = bool(np.array_equal(codes, x["codes"]))
        for phase, rf, im in (("encode", ref_encode(e["ref"], x["audio"]), impl_encode(e["impl"], x["audio"])),
                              ("decode", ref_decode(e["ref"], x["codes"]), impl_decode(e["impl"], x["codes"]))):
            r_s, i_s = median_time(rf, args.rounds), median_time(im, args.rounds)
            extra = ""
            if phase == "decode":
                from reference import dac as ref

                dy = np.abs(np.array(e["impl"].decode(mx.array(x["codes"]))) - ref.decode(e["ref"], x["codes"])).max()
                extra = f"{'':>6} {dy:>9.2g}"
            else:
                extra = f"{'equal' if same else 'DIFF':>6}"
            print(f"{seconds:>6g}s {phase:<7} {r_s:>9.3f} {i_s:>9.3f} {r_s / i_s:>10.2f}x {extra}")
    print(f"load average: {os.getloadavg()[0]:.2f} (a busy machine slows both sides, torch's two threads the most)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
