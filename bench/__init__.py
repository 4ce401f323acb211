"""Benchmarks: impl vs the official packages in the same run. Importing `bench` binds the fast BLAS on Linux CPU
(impl.accel.blas.enable_fast_blas) before any bench module imports mlx, as the CLI and the test session do."""
from impl.accel import blas

blas.enable_fast_blas()
