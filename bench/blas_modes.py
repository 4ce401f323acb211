"""The fast-BLAS binding's effect (impl.accel.blas.enable_fast_blas), one fresh process per mode: MLX's bundled BLAS
("0"), the renamed OpenBLAS ("rename"), OpenBLAS + the gemv forwarder ("auto").

    ./vp python -m bench.blas_modes

Per mode: a 1024^3 fp32 matmul (GFLOP/s) and a decode step's 1x2048 @ 2048x8192 product (GB/s of weight read),
best of n calls after a warm-up. Each mode needs its own process: the binding happens before mlx.core is loaded.
"""
from __future__ import annotations

import subprocess
import sys

_CHILD = r"""
import sys, time
from impl.accel import blas
info = blas.enable_fast_blas(sys.argv[1])
import mlx.core as mx, numpy as np

def best(f, n):
    f()
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    return min(t)

rng = np.random.default_rng(0)
a = mx.array(rng.standard_normal((1024, 1024), dtype=np.float32))
w = mx.array(rng.standard_normal((2048, 8192), dtype=np.float32))
x = mx.array(rng.standard_normal((1, 2048), dtype=np.float32))
mm, gv = best(lambda: mx.eval(a @ a), 5), best(lambda: mx.eval(x @ w), 20)
print(f"{sys.argv[1]:<7} {info['blas']:<14} {mm * 1e3:9.1f} {2 * 1024 ** 3 / mm / 1e9:8.1f} "
      f"{gv * 1e3:9.2f} {w.nbytes / gv / 1e9:7.1f}")
"""


def main() -> int:
    print(f"{'mode':<7} {'blas':<14} {'mm ms':>9} {'GFLOP/s':>8} {'gemv ms':>9} {'GB/s':>7}")
    for mode in ("0", "rename", "auto"):
        r = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True)
        if r.returncode:
            print(f"{mode:<7} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            return 1
        print(r.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
