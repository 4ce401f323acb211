"""Benchmarks: impl vs the official packages in the same run. Importing `bench` binds the fast BLAS on Linux CPU
(impl.cpu.enable_fast_blas) before any bench module imports mlx, as the CLI and the test session do."""
from impl import cpu

cpu.enable_fast_blas()
