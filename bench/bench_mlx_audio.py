"""impl vs mlx-audio 0.6.2 (the MLX port a user would pick instead), one run, the same seeded checkpoints, inputs and
settings: DAC 24 kHz encode / decode of 1 s and 10 s of speech, and Qwen2 (Spark-TTS LM) greedy decode.

    ./vp setup-port mlx-audio && ./vp python -m bench.bench_mlx_audio [--quick] [--seconds 1 10] [--decode 64]

DAC: encode = audio (1, L) -> codes (impl `DAC.encode`; mlx-audio `DAC.encode` on (1, 1, L)); decode = those codes ->
audio (impl `DAC.decode`; mlx-audio `quantizer.from_codes` + `DAC.decode`, what its DacInterface.decode runs per
chunk). Qwen2: the new-token rate of each side's own greedy loop after a 16-token prompt (impl: its shipped variant,
`impl.accel.apply`; mlx-audio: `lm.generate.generate_step`). Median of 3 after a warm-up; ratio = mlx-audio time /
impl time (> 1: impl faster). mlx-audio is loaded through parity/ports/mlx_audio.py (its own loaders).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench.timing import median_time


def dac_cases(seconds, n: int = 3):
    import mlx.core as mx

    from impl import dac
    from parity.ports import mlx_audio as port
    from parity.specs.dac import checkpoints, speech

    st, _ = checkpoints("24khz_speech", 0)
    ours, theirs = dac.load(st), port.load_dac({"config": "24khz_speech", "seed": 0})
    rows = []
    for s in seconds:
        audio = speech(24000, int(s * 24000))[None]
        codes = ours.encode(mx.array(audio))
        mx.eval(codes)
        x = mx.array(audio)

        def enc_ours():
            mx.eval(ours.encode(x))

        def enc_theirs():
            mx.eval(theirs.encode(x[:, None, :])[1])

        def dec_ours():
            mx.eval(ours.decode(codes))

        def dec_theirs():
            mx.eval(theirs.decode(theirs.quantizer.from_codes(codes)[0]))

        for phase, a, b in (("encode", enc_ours, enc_theirs), ("decode", dec_ours, dec_theirs)):
            ti, tt = median_time(a, n=n), median_time(b, n=n)
            rows.append((f"dac {phase} {s:g} s", ti, tt))
    return rows


def qwen2_case(quick: bool, steps: int):
    import mlx.core as mx

    from impl import accel, qwen2
    from impl.outetts.generate import generate_greedy
    from parity.ports import mlx_audio as port
    from parity.specs.qwen2 import checkpoint, config_dict

    config = "small" if quick else "0.5b"
    ours = qwen2.load(checkpoint(config, 0))
    variant = accel.apply(ours)
    theirs = port.load_spark_lm({"config": config, "seed": 0}).model
    prompt = np.random.default_rng(0).integers(0, config_dict(config)["vocab_size"], 16).tolist()

    def ours_run():
        generate_greedy(ours, prompt, steps)

    def theirs_run():
        port.greedy_ids(theirs, prompt, steps)

    ti, tt = median_time(ours_run, n=3), median_time(theirs_run, n=3)
    return [(f"qwen2 {config} greedy {steps} tok ({variant})", ti, tt)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_mlx_audio", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="Qwen2 small config instead of the real 0.5B")
    p.add_argument("--seconds", type=float, nargs="*", default=[1, 10])
    p.add_argument("--decode", type=int, default=64)
    p.add_argument("--skip-dac", action="store_true")
    p.add_argument("--skip-lm", action="store_true")
    a = p.parse_args(argv)
    import mlx.core as mx

    from impl.accel import blas
    from parity.ports import activate

    activate("mlx-audio", "mlx_audio")
    t0 = time.perf_counter()
    rows = ([] if a.skip_dac else dac_cases(a.seconds)) + ([] if a.skip_lm else qwen2_case(a.quick, a.decode))
    print(f"impl vs mlx-audio 0.6.2, fp32, MLX {mx.__version__} on {mx.default_device()}, "
          f"BLAS: {blas.blas_info()['blas']} ({time.perf_counter() - t0:.0f} s)")
    print(f"{'case':<34} {'impl s':>9} {'mlx-audio s':>12} {'ratio':>7}")
    for name, ti, tt in rows:
        print(f"{name:<34} {ti:>9.4f} {tt:>12.4f} {tt / ti:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
