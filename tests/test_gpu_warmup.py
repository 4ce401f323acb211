"""impl.gpu.KernelWarmup: the builders run (on this machine's device), and without CUDA nothing is started."""
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from impl import gpu, ops


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("quantize", [None, "q8", "q4"])
def test_builders_evaluate(dtype, quantize):
    """Each builder is valid code that evaluates (on a CUDA machine it compiles one kernel)."""
    for name, build in gpu._kernel_builders(dtype, quantize).items():
        out = build()
        mx.eval(out)
        assert out.size > 0, name


def test_builders_use_the_kernels_dtypes():
    """The inputs carry the dtypes the real path uses (a different dtype would warm a different kernel)."""
    b = gpu._kernel_builders("bfloat16", "q8")
    assert b["embedding"]().dtype == mx.bfloat16
    assert b["swiglu"]().dtype == mx.bfloat16
    assert b["sampler_take"]().dtype == mx.float32 and b["sampler_take_ids"]().dtype == mx.uint32
    assert b["sampler_put_mask"]().dtype == mx.bool_
    assert b["dac_codebook"]().dtype == mx.float32
    assert b["qmm"]().dtype == mx.bfloat16
    x, a = mx.ones((1, 4, 3)), mx.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(np.array(ops.snake(x, a)), np.array(x + (1 / (a + 1e-9)) * mx.sin(a * x) ** 2),
                               rtol=1e-6)  # the builder calls the real Snake


def test_child_entry_point_runs():
    """`python -m impl.gpu NAME DTYPE QUANTIZE`, as KernelWarmup starts it, exits 0."""
    r = subprocess.run([sys.executable, "-m", "impl.gpu", "sampler_put_mask", "bfloat16", "none"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_no_cuda_starts_nothing(monkeypatch):
    if hasattr(mx, "cuda") and mx.cuda.is_available():
        pytest.skip("a CUDA machine")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "/nonexistent-never-created")  # set by a user: still nothing
    w = gpu.KernelWarmup("bfloat16").start()
    assert w.procs == [] and w.wait() == 0


def test_switched_off(monkeypatch):
    monkeypatch.setenv("VOICEPORT_KERNEL_WARMUP", "0")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "/nonexistent-never-created")
    w = gpu.KernelWarmup("bfloat16").start()
    assert w.procs == [] and w.marker is None


def test_second_start_joins_the_first(monkeypatch, tmp_path):
    """The CLI starts the warm-up before the codec loads and `generate.load` starts it again: one set of children."""
    monkeypatch.setattr(gpu, "_cuda", lambda mx: True)
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(gpu, "_STARTED", {})
    first = gpu.KernelWarmup("float32").start()
    second = gpu.KernelWarmup("float32").start()
    assert first.procs and second.procs is first.procs
    assert len(first.procs) == len(gpu._kernel_builders("float32", None))
    assert second.wait() == len(first.procs)  # every child exits 0 (here on the CPU)
    assert first.marker.exists() and gpu.KernelWarmup("float32").start().procs == []  # later: skipped
