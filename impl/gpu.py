"""GPU set-up for MLX on CUDA: `use_kernel_cache()` keeps MLX's run-time compiled kernels across processes.

Nothing here runs on import: the CLI calls `use_kernel_cache()` before the first GPU operation; a library user
calls it the same way, or leaves MLX's default.

Why: mlx-cuda compiles some kernels at run time with NVRTC (gathers, scatters, `mx.compile`d fusions: 2-3 s
each, measured on an H200 with mlx-cuda 0.32.4) and stores the result in `$MLX_PTX_CACHE_DIR`, by default
`<tmp>/mlx/<version>/ptx`: a reboot or a cleaned /tmp makes the next run pay every compilation again. Here the
default becomes `$VOICEPORT_CACHE/mlx-kernels/<mlx version>` (default ~/.cache/voiceport/...), so a machine
compiles each kernel once. MLX reads the variable at its first compilation; setting it later has no effect.
Metal (Apple Silicon) ships precompiled kernels and keeps its own cache: nothing to do there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from impl._cache import cache_root

ENV = "MLX_PTX_CACHE_DIR"


def use_kernel_cache(path: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """Point MLX's CUDA kernel cache at `path` (None: $VOICEPORT_CACHE/mlx-kernels/<mlx version>), unless the
    user set MLX_PTX_CACHE_DIR. Returns the folder in effect, or None where nothing was set (no CUDA, or the
    folder cannot be created: MLX then keeps its default). Idempotent; never raises."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    try:
        import mlx.core as mx

        if not (hasattr(mx, "cuda") and mx.cuda.is_available()):
            return None
        folder = Path(path) if path is not None else cache_root() / "mlx-kernels" / mx.__version__
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, AttributeError, RuntimeError):
        return None
    os.environ[ENV] = str(folder)
    return folder
