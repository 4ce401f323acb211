"""voiceport: MLX port of the OuteTTS 1.0 stack (DAC 24 kHz codec, OuteTTS v3 LM, speaker profiles).

Importing `impl` has no side effects. On Linux CPU, call `impl.accel.blas.enable_fast_blas()` before the first
`import mlx.core` to give MLX's matmul OpenBLAS (the CLI, benches and test session do); `impl.accel.blas.blas_info()`
tells which BLAS is active.
"""
__version__ = "0.1.0"
