"""Test-session setup: offline hub, the fast BLAS bound before anything imports mlx, hypothesis profiles.

Profiles: `dev` (default: random examples, as a developer explores) and `ci` (derandomized: the same examples on
every run, selected by .ci/run with `--hypothesis-profile=ci`).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from hypothesis import settings  # noqa: E402

from impl.accel import blas  # noqa: E402

blas.enable_fast_blas()  # Linux CPU: before the first `import mlx.core` (impl/cpu.py)

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("dev")
