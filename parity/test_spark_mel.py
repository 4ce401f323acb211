"""impl.spark.mel vs torchaudio's MelSpectrogram as the official BiCodec builds it (`BiCodec.init_mel_transformer`
of spark-tts-lib 0.2.1 = sparktts 2f1ea90, called on a bare holder: the official arguments, nothing restated):
16 kHz, n_fft 1024, win 640, hop 320, f_min 10, f_max None, 128 mels, power 1, slaney norm and scale; torchaudio's
defaults center=True, pad_mode "reflect", periodic Hann window.

Tolerance (parity.spec FLOOR_WHY): max|impl - ta64| <= 10 x floor, floor = max|ta32 - ta64| over the same output,
where ta32 is the official fp32 transform and ta64 the same transform built and run in float64 (its window and
filterbank computed in float64, the fp32 one computes them in float32), and the floor never below fp32's
resolution of the output's largest value (parity.harness.compare). Silence is exact (both give zeros). Measured
2026-11-28: impl within 0.03-0.12 x the floor (its filterbank is computed in float64, the fp32 one's in float32).
Drawn: lengths shorter than n_fft (513..1023: reflect padding needs more than n_fft / 2 samples), any length up
to 2 s (mostly not multiples of 320), and long ones (up to 10 s: the 6 s reference clip is 96,000 samples); signals
speech / noise / sweep at silence, tiny (1e-6), full-scale (peak 1) and clipped (x3 clipped to [-1, 1]) levels.
Also here: the CPU path's GELU (impl.spark.vocos.gelu, a rational erf) against torch's, by the same rule.
"""
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from impl.seeded.spark import CONFIGS
from impl.spark.mel import MelSpectrogram
from parity.harness import compare
from parity.spec import FLOOR_WHY, Tol
from parity.specs import spark as spark_spec

MEL = CONFIGS["bicodec"]["audio_tokenizer"]["mel_params"]  # Spark-TTS-0.5B's BiCodec/config.yaml values
TOL = Tol.floor(k=10, why=FLOOR_WHY)
LEVELS = ("silence", "tiny", "full", "clipped")
SETTINGS = dict(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])


def official(dtype: torch.dtype):
    """torchaudio MelSpectrogram through the official `init_mel_transformer`, built and run in `dtype`."""
    from spark_tts_lib.models.bicodec import BiCodec

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the window and filterbank are computed in the default dtype
    try:
        holder = SimpleNamespace()
        BiCodec.init_mel_transformer(holder, MEL)
    finally:
        torch.set_default_dtype(old)
    return holder.mel_transformer.to(dtype).eval()


@pytest.fixture(scope="module")
def mels():
    return {"impl": MelSpectrogram(**MEL), "float32": official(torch.float32), "float64": official(torch.float64)}


def signal(kind: str, level: str, n: int, seed: int) -> np.ndarray:
    x = spark_spec.make_signal(kind, n, seed).astype(np.float64)
    peak = np.max(np.abs(x))
    x = x / peak if peak > 0 else x
    x = {"silence": 0.0 * x, "tiny": 1e-6 * x, "full": x, "clipped": np.clip(3.0 * x, -1.0, 1.0)}[level]
    return x.astype(np.float32)[None]


def run(mels, wav: np.ndarray):
    got = np.array(mels["impl"](mx.array(wav)))
    with torch.no_grad():
        r32 = mels["float32"](torch.from_numpy(wav)).transpose(1, 2).numpy()
        r64 = mels["float64"](torch.from_numpy(wav.astype(np.float64))).transpose(1, 2).numpy()
    return got, r32, r64


def check(mels, wav: np.ndarray):
    got, r32, r64 = run(mels, wav)
    assert got.shape == r64.shape == (1, 1 + wav.shape[1] // MEL["hop_length"], MEL["num_mels"])
    res = compare(got, r64, r32, TOL)
    assert res["ok"], (f"mel of {wav.shape[1]} samples: max|impl - ta64| {res['max_abs']:.3g} > limit "
                       f"{res['limit']:.3g} (floor {res['floor']:.3g})")
    return res


LENGTHS = st.one_of(st.integers(MEL["n_fft"] // 2 + 1, MEL["n_fft"] - 1),  # shorter than n_fft
                    st.integers(MEL["n_fft"], 32000),                          # up to 2 s, any length
                    st.integers(96000, 160000))                                # the 6 s clip .. 10 s


@settings(**SETTINGS)
@given(n=LENGTHS, seed=st.integers(0, 2 ** 16), kind=st.sampled_from(("speech", "noise", "sweep")),
       level=st.sampled_from(LEVELS))
def test_mel_matches_torchaudio_within_the_fp32_floor(mels, n, seed, kind, level):
    res = check(mels, signal(kind, level, n, seed))
    if level == "silence":
        assert res["max_abs"] == 0.0


@pytest.mark.parametrize("n", [513, 640, 1023, 1024, 16000, 16001, 96000])
@pytest.mark.parametrize("level", LEVELS)
def test_mel_edge_lengths_and_levels(mels, n, level):
    check(mels, signal("speech", level, n, n))


@pytest.mark.parametrize("n", [1, 100, 511, 512])
def test_too_short_for_reflect_padding_refused_like_torchaudio(mels, n):
    wav = signal("noise", "full", n, 0)
    with pytest.raises(ValueError, match="too short for reflect padding"):
        mels["impl"](mx.array(wav))
    with pytest.raises(RuntimeError):
        mels["float32"](torch.from_numpy(wav))


def test_a_symmetric_window_is_outside_the_tolerance(mels):
    """The tolerance can fail: the same mel with a symmetric Hann window (np.hanning, a plausible port slip) is
    far outside 10 x floor on full-scale speech."""
    broken = MelSpectrogram(**MEL)
    broken.set_window(np.hanning(MEL["win_length"]))
    wav = signal("speech", "full", 16000, 0)
    _, r32, r64 = run(mels, wav)
    res = compare(np.array(broken(mx.array(wav))), r64, r32, TOL)
    assert not res["ok"] and res["max_abs"] > 100 * res["floor"], res


# ------------------------------------------------------------------------------------------ GELU (CPU path)
# impl.spark.vocos.gelu, the rational-erf GELU every ConvNeXt block and wav2vec2 layer runs on the CPU, beside the
# mel as the other front-end numeric the BiCodec paths share: vs torch's GELU (fp32, and fp64 as the truth) and
# MLX's nn.gelu (the native path), same 10 x floor rule, the floor taken per element: torch's own fp32 error there,
# or the error any fp32 evaluation through erf carries, whichever is larger. gelu(x) = x/2 (1 + erf(x / sqrt 2)):
# erf's fp32 value is rounded (|erf| <= 1: an absolute error up to eps/2), which the product scales by |x|/2, and the
# result is rounded once more (half its spacing) -> floor_i >= eps |x_i| / 4 + spacing(y_i) / 2. A floor measured on
# a few draws alone can be luckier than that (n = 1, x = -2.805: torch's fp32 error 7.6e-9, a quarter of eps |x| / 4;
# impl 9.1e-8, MLX's own nn.gelu 1.6e-7 — both 0.3-0.6 of eps |x|).

@settings(**SETTINGS)
@given(n=st.integers(1, 5000), scale=st.sampled_from([1e-6, 0.1, 1.0, 3.0, 30.0]), seed=st.integers(0, 2 ** 16))
@example(n=1, scale=3.0, seed=12061)  # the single element where torch's fp32 error is luckier than the floor
def test_spark_gelu_cpu_path_within_the_fp32_floor(n, scale, seed):
    from impl import ops
    from impl.spark.vocos import gelu

    x = (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    with ops.use_path("gemm"):
        got = np.array(gelu(mx.array(x)))
    with ops.use_path("native"):
        native = np.array(gelu(mx.array(x)))
    r32 = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    r64 = torch.nn.functional.gelu(torch.from_numpy(x.astype(np.float64))).numpy()
    x64, eps = x.astype(np.float64), float(np.finfo(np.float32).eps)
    floor = np.maximum(np.abs(r32 - r64), eps * np.abs(x64) / 4 + np.abs(np.spacing(r64.astype(np.float32))) / 2)
    for name, y in (("gemm", got), ("native", native)):
        d = np.abs(y.astype(np.float64) - r64)
        i = int(np.argmax(d / (10 * floor)))
        assert np.all(np.isfinite(y)) and np.all(d <= 10 * floor), (
            f"gelu {name}: x {x[i]:.6g}: |d| {d[i]:.3g} > 10 x floor {floor[i]:.3g}")
