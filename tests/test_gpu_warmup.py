"""impl.accel.cuda.KernelWarmup: the builders run (on this machine's device), and without CUDA nothing is started."""
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from impl import ops
from impl.accel import cuda


@pytest.mark.parametrize("model", cuda.MODELS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("quantize", [None, "q8", "q4"])
def test_builders_evaluate(dtype, quantize, model):
    """Each builder is valid code that evaluates (on a CUDA machine it compiles one kernel)."""
    for name, build in cuda._kernel_builders(dtype, quantize, model).items():
        out = build()
        mx.eval(out)
        assert out.size > 0, name


def test_builders_use_the_kernels_dtypes():
    """The inputs carry the dtypes the real path uses (a different dtype would warm a different kernel)."""
    b = cuda._kernel_builders("bfloat16", "q8")
    assert b["embedding"]().dtype == mx.bfloat16
    assert b["swiglu"]().dtype == mx.bfloat16
    assert b["sampler_take"]().dtype == mx.float32 and b["sampler_take_ids"]().dtype == mx.uint32
    assert b["sampler_put_mask"]().dtype == mx.bool_
    assert b["dac_codebook"]().dtype == mx.float32
    assert b["qmm"]().dtype == mx.bfloat16
    x, a = mx.ones((1, 4, 3)), mx.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(np.array(ops.snake(x, a)), np.array(x + (1 / (a + 1e-9)) * mx.sin(a * x) ** 2),
                               rtol=1e-6)  # the builder calls the real Snake


def test_spark_builders_take_the_real_paths():
    """Spark's builders: the BiCodec's mel (its frames gather), the real GELU, ReLU, the VQ's uint32 rows; the set
    is the OuteTTS one plus those (the LM and DAC-style decoder kernels are shared)."""
    b = cuda._kernel_builders("bfloat16", None, "spark")
    assert set(cuda._kernel_builders("bfloat16", None)) < set(b)
    assert b["spark_mel_frames"]().shape == (1, 1 + 128 // 16, 8)
    assert b["spark_vq_rows"]().dtype == mx.float32 and b["spark_gelu"]().dtype == mx.float32
    from impl.spark import vocos

    np.testing.assert_allclose(np.array(vocos.gelu(mx.ones((1, 4, 3)))), np.array(b["spark_gelu"]()))
    assert b["spark_relu"]().dtype == mx.float32
    with pytest.raises(ValueError, match="model 'dac'"):
        cuda.KernelWarmup("bfloat16", model="dac")


def test_spark_load_lm_warms_sparks_kernels(monkeypatch, tmp_path):
    """impl.spark.generate.load_lm starts (or joins) the warm-up of Spark's set when asked (warmup=True; a library
    call starts no child process by default), the OuteTTS CLI's starter its own."""
    from impl import qwen2, runtime
    from impl.spark import generate as SG

    seen = []
    monkeypatch.setattr(cuda.KernelWarmup, "start", lambda self: seen.append(self.model) or self)
    monkeypatch.setattr(cuda.KernelWarmup, "wait", lambda self: None)
    monkeypatch.setattr(qwen2, "load", lambda *a, **k: None)
    monkeypatch.setattr(runtime, "apply_variant", lambda lm, variant="auto": variant)
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    SG.load_lm(tmp_path, "float32", None)
    assert seen == []
    SG.load_lm(tmp_path, "float32", None, warmup=True)
    runtime.start_kernel_warmup(tmp_path, "float32", None)
    assert seen == ["spark", "outetts"]


def test_child_entry_point_runs():
    """`python -m impl.accel.cuda NAME DTYPE QUANTIZE`, as KernelWarmup starts it, exits 0."""
    for argv in (["sampler_put_mask", "bfloat16", "none"], ["spark_relu", "bfloat16", "none", "spark"]):
        r = subprocess.run([sys.executable, "-m", "impl.accel.cuda", *argv], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_no_cuda_starts_nothing(monkeypatch):
    if hasattr(mx, "cuda") and mx.cuda.is_available():
        pytest.skip("a CUDA machine")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "/nonexistent-never-created")  # set by a user: still nothing
    w = cuda.KernelWarmup("bfloat16").start()
    assert w.procs == [] and w.wait() == 0


def test_switched_off(monkeypatch):
    monkeypatch.setenv("VOICEPORT_KERNEL_WARMUP", "0")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "/nonexistent-never-created")
    w = cuda.KernelWarmup("bfloat16").start()
    assert w.procs == [] and w.marker is None


def test_second_start_joins_the_first(monkeypatch, tmp_path):
    """The CLI starts the warm-up before the codec loads and `generate.load` starts it again: one set of children."""
    monkeypatch.setattr(cuda, "_cuda", lambda mx: True)
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cuda, "_STARTED", {})
    first = cuda.KernelWarmup("float32").start()
    second = cuda.KernelWarmup("float32").start()
    assert first.procs and second.procs is first.procs
    assert len(first.procs) == len(cuda._kernel_builders("float32", None))
    assert second.wait() == len(first.procs)  # every child exits 0 (here on the CPU)
    assert first.marker.exists() and cuda.KernelWarmup("float32").start().procs == []  # later: skipped


def test_spark_depthwise_conv_fused_equals_the_loop():
    """impl.spark.vocos.DepthwiseConv1d on the native path (a GPU: one compiled kernel) vs the gemm path's K shifted
    products: the same sums in the same order; a fused multiply-add may round each step once instead of twice, so
    the bound is the summation bound (K + 1) u sum_k |x w| (u = 2^-24), not bit equality."""
    from impl.spark.vocos import DepthwiseConv1d

    rng = np.random.default_rng(0)
    m = DepthwiseConv1d(16, 7, padding=3)
    m.weight = mx.array(rng.standard_normal((16, 7, 1)).astype(np.float32))
    m.bias = mx.array(rng.standard_normal(16).astype(np.float32))
    x = mx.array(rng.standard_normal((2, 40, 16)).astype(np.float32))
    loop = np.array(m(x))
    with ops.use_path("native"):
        fused = np.array(m(x))
    xp = np.pad(np.array(x, np.float64), [(0, 0), (3, 3), (0, 0)])
    w = np.array(m.weight, np.float64)[:, :, 0].T
    mag = np.abs(np.array(m.bias, np.float64)) + sum(np.abs(xp[:, k:k + 40] * w[k]) for k in range(7))
    exact = np.array(m.bias, np.float64) + sum(xp[:, k:k + 40] * w[k] for k in range(7))
    bound = 8 * 2.0 ** -24 * mag
    assert np.all(np.abs(fused - loop) <= 2 * bound) and np.all(np.abs(loop - exact) <= bound)
    # the bound is tight: one tap's term is typically ~10^5 times it (a dropped or shifted tap would fail)
    assert np.median(np.abs(xp[:, 6:6 + 40] * w[6]) / (2 * bound)) > 1e4
