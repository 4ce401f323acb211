"""impl attaches a fast BLAS to MLX on Linux; results equal numpy's."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impl.accel import blas


LINUX = sys.platform.startswith("linux")


@pytest.mark.skipif(not LINUX, reason="the BLAS swap is Linux-only by design")
def test_blas_openblas_attached_on_linux():
    info = blas.blas_info()
    want = "openblas+gemv" if shutil.which("cc") or shutil.which("gcc") else "openblas"
    assert info["blas"] == want, info


@pytest.mark.skipif(not LINUX, reason="the BLAS swap is Linux-only by design")
def test_blas_rename_only_when_asked():
    code = "from impl.accel import blas; print(blas.enable_fast_blas()['blas'])"
    env = dict(os.environ, VOICEPORT_BLAS="rename")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "openblas"


@pytest.mark.skipif(not LINUX, reason="the BLAS swap is Linux-only by design")
def test_blas_without_a_compiler_falls_back_to_the_renamed_openblas(tmp_path):
    code = "from impl.accel import blas; i = blas.enable_fast_blas(); print(i['blas']); print(i['reason'])"
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"), VOICEPORT_CACHE=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    blas, reason = out.strip().split("\n", 1)
    assert blas == "openblas" and "openblas+gemv unavailable" in reason
    assert [p.name for p in (tmp_path / "blas").iterdir() if "gemv" in p.name] == []  # nothing half-built left


def _operand(rng, rows, cols, transposed, pad):
    """(rows, cols) float32 as MLX stores it: row-major, or the transpose of a row-major array (column-major),
    optionally a column slice of a wider array (leading dimension > cols)."""
    import mlx.core as mx

    a = rng.standard_normal((rows, cols)).astype(np.float32)
    if transposed:
        wide = mx.array(np.concatenate([a.T, np.zeros((pad, rows), np.float32)], axis=0)) if pad else mx.array(a.T)
        return a, wide[:cols].T
    wide = mx.array(np.concatenate([a, np.zeros((rows, pad), np.float32)], axis=1)) if pad else mx.array(a)
    return a, wide[:, :cols]


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(["row", "column"]), st.integers(1, 300), st.integers(1, 300), st.booleans(), st.booleans(),
       st.sampled_from([0, 3]), st.booleans(), st.integers(0, 2 ** 31 - 1))
def test_blas_one_row_and_one_column_products(kind, k, n, ta, tb, pad, add, seed):
    """M = 1 and N = 1 products (sgemv in the forwarder), every layout, with and without an addend (beta != 0),
    against float64: error within gamma_{k+2} * sum|terms| per element."""
    import mlx.core as mx

    rng = np.random.default_rng(seed)
    m, n = (1, n) if kind == "row" else (n, 1)
    a, A = _operand(rng, m, k, ta, pad)
    b, B = _operand(rng, k, n, tb, pad)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = np.array(mx.addmm(mx.array(c), A, B) if add else A @ B)
    want = a.astype(np.float64) @ b + (c if add else 0)
    scale = np.abs(a.astype(np.float64)) @ np.abs(b) + (np.abs(c) if add else 0)
    u = 2.0 ** -24
    gamma = (k + 2) * u / (1 - (k + 2) * u)
    assert got.shape == (m, n)
    assert (np.abs(got - want) <= gamma * scale).all()


def test_blas_matmul_matches_numpy():
    import mlx.core as mx

    rng = np.random.default_rng(0)
    a = rng.standard_normal((67, 129)).astype(np.float32)
    b = rng.standard_normal((129, 33)).astype(np.float32)
    got = np.array(mx.array(a) @ mx.array(b))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(got - ref)) < 1e-4


def test_blas_import_impl_has_no_side_effects(tmp_path):
    """`import impl` (and its CLI module) loads no BLAS, no mlx, no torch, and writes nothing to the cache."""
    code = ("import sys, impl, impl.cli, impl.accel.blas; "
            "print([m for m in sys.modules if ('blas' in m and not m.startswith('impl.')) or m.split('.')[0] in ('torch', 'mlx')]); "
            "print(impl.accel.blas.blas_info()['reason'])")
    env = dict(os.environ, VOICEPORT_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.splitlines() == ["[]", "not attempted"]
    assert list(tmp_path.iterdir()) == []


def test_blas_mlx_imported_first_is_reported():
    code = ("import mlx.core, warnings; warnings.simplefilter('ignore'); from impl.accel import blas; "
            "print(blas.enable_fast_blas()['reason'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = "already bound" if sys.platform.startswith("linux") else "MLX's own backend"
    assert expected in out


@pytest.mark.skipif(blas.blas_info()["blas"] != "openblas+gemv", reason="the gemv forwarder is not attached")
@settings(deadline=None, max_examples=80)
@given(st.sampled_from([(1, None), (None, 1), (1, 1), (None, None)]), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 40), st.booleans(), st.booleans(), st.integers(0, 3), st.sampled_from([0.0, 1.0, -0.5]),
       st.sampled_from([1.0, 0.25]), st.integers(0, 2 ** 31 - 1))
def test_blas_forwarder_equals_sgemm(mn, m, n, k, ta, tb, pad, beta, alpha, seed):
    """The forwarder's cblas_sgemm against OpenBLAS's own on every argument: row-major, either transpose, leading
    dimensions past the matrix, alpha, beta (0 must ignore C's old contents, NaN included)."""
    import ctypes

    m, n = mn[0] or m, mn[1] or n
    lib = ctypes.CDLL(blas.blas_info()["path"])
    rng = np.random.default_rng(seed)
    # stored shapes: A (m, k) or (k, m) if ta; B (k, n) or (n, k) if tb; leading dimension = columns + pad
    a = rng.standard_normal((k, m + pad) if ta else (m, k + pad)).astype(np.float32)
    b = rng.standard_normal((n, k + pad) if tb else (k, n + pad)).astype(np.float32)
    c0 = rng.standard_normal((m, n + pad)).astype(np.float32)
    if beta == 0.0:
        c0[:, :n] = np.nan
    ptr = lambda x: x.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    outs = []
    for fn in (lib.cblas_sgemm, lib.scipy_cblas_sgemm):
        c = c0.copy()
        fn(101, 112 if ta else 111, 112 if tb else 111, m, n, k, ctypes.c_float(alpha), ptr(a), a.shape[1],
           ptr(b), b.shape[1], ctypes.c_float(beta), ptr(c), c.shape[1])
        outs.append(c)
    A = (a[:, :m].T if ta else a[:, :k]).astype(np.float64)
    B = (b[:, :k].T if tb else b[:, :n]).astype(np.float64)
    old = np.nan_to_num(c0[:, :n].astype(np.float64))
    scale = abs(alpha) * np.abs(A) @ np.abs(B) + abs(beta) * np.abs(old)
    u = 2.0 ** -24
    gamma = (k + 2) * u / (1 - (k + 2) * u)
    for c in outs:
        np.testing.assert_array_equal(c[:, n:], c0[:, n:])  # the padding is never written
        assert (np.abs(c[:, :n] - (alpha * A @ B + beta * old)) <= 2 * gamma * scale).all()
    np.testing.assert_allclose(outs[0][:, :n], outs[1][:, :n], rtol=0, atol=(4 * gamma * scale).max() + 1e-30)
