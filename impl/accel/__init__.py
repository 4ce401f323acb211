"""The platform wing: every speed path that exists for one platform, applied by one explicit call.

The model files (`impl.llama`, `impl.qwen2`, `impl.dac`, `impl.spark`) are the architecture in plain MLX, the
same on every device; nothing here runs on import, and nothing here is imported by a model file.

- `apply(model, variant)`: turn a loaded LM (`impl.llama.Model`, also Spark's Qwen2) into a named variant
  (`VARIANTS`), each a documented transformation in `impl.accel.lm` and each verified against the official
  package as its own parity section. The library's loaders (`impl.outetts.generate.load`, `impl.spark.generate.load`)
  take a `variant` argument, "auto" by default: `default_variant()` for the device.
- `impl.accel.blas`: `enable_fast_blas()` gives MLX's CPU matmul OpenBLAS on Linux (a process-wide choice: call it
  before `import mlx.core`; the CLI, benches and test session do).
- `impl.accel.cuda`: `use_kernel_cache()` keeps mlx-cuda's run-time compiled kernels across processes;
  `KernelWarmup` compiles a first run's kernels in child processes (only when a caller starts it).
"""
from __future__ import annotations

from typing import Dict, List

VARIANTS: Dict[str, str] = {
    "plain": "the checkpoint's own modules (impl.llama as loaded)",
    "fused": "q|k|v and gate|up fused into one projection each, rope once on q|k (impl.accel.lm.fuse); "
             "device independent: what Metal and CUDA run",
    "cpu": "fused + gate|up and embedding column-major + compiled decode step (impl.accel.lm: fuse, cpu_layout, "
           "compile_step): what the CPU runs",
}


def default_variant() -> str:
    """The variant the CLI and `variant="auto"` pick on the current default device: "cpu" on the CPU, "fused" on a
    GPU (Metal or CUDA)."""
    import mlx.core as mx

    return "cpu" if mx.default_device() == mx.cpu else "fused"


def shipped_variants() -> List[str]:
    """The variants that run on this machine and must be verified here: "plain", "fused" (the Mac's, device
    independent) and `default_variant()`, in that order, without repeats."""
    out = ["plain", "fused"]
    if default_variant() not in out:
        out.append(default_variant())
    return out


def apply(model, variant: str = "auto") -> str:
    """Make a loaded plain LM (`impl.llama.Model`) the named variant, in place; returns the variant's name.

    Args:
        model: as `impl.llama.load` / `impl.qwen2.load` return it (quantized or not); not yet transformed.
        variant: a key of `VARIANTS`, or "auto" for `default_variant()`.
    Raises:
        ValueError: an unknown variant, or a model already made another variant.
    """
    from impl.accel import lm

    name = default_variant() if variant == "auto" else variant
    if name not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {['auto', *VARIANTS]}")
    done = getattr(model, "variant", "plain")
    if done != "plain":
        if done == name:
            return name
        raise ValueError(f"this model is already the {done!r} variant; load it again to make it {name!r}")
    if name in ("fused", "cpu"):
        lm.fuse(model)
    if name == "cpu":
        lm.cpu_layout(model)
        lm.compile_step(model)
    model.variant = name
    return name
