"""Test-session setup: `impl` first, so MLX binds the fast BLAS on Linux before anything imports mlx."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import impl  # noqa: E402,F401
