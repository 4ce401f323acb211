"""voiceport: MLX port of the OuteTTS 1.0 stack (DAC 24 kHz codec, OuteTTS v3 LM, speaker profiles).

Importing `impl` first gives MLX a fast BLAS on Linux CPU (see impl/_blas.py); `impl.blas_info()` tells which.
"""
from impl import _blas

_blas.install()
blas_info = _blas.info

__version__ = "0.1.0"
