"""impl attaches a fast BLAS to MLX on Linux; results equal numpy's."""
import subprocess
import sys

import numpy as np
import pytest

import impl


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS swap is Linux-only by design")
def test_blas_openblas_attached_on_linux():
    info = impl.blas_info()
    assert info["blas"] == "openblas", info


def test_blas_matmul_matches_numpy():
    import mlx.core as mx

    rng = np.random.default_rng(0)
    a = rng.standard_normal((67, 129)).astype(np.float32)
    b = rng.standard_normal((129, 33)).astype(np.float32)
    got = np.array(mx.array(a) @ mx.array(b))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(got - ref)) < 1e-4


def test_blas_mlx_imported_first_is_reported():
    code = "import mlx.core, warnings; warnings.simplefilter('ignore'); import impl; print(impl.blas_info()['reason'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = "already bound" if sys.platform.startswith("linux") else "MLX's own backend"
    assert expected in out
