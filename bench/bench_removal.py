"""What the one-proven-path redesign (issue 27) costs the CPU decode: the shipped step of an older commit (e.g.
c5e9450: stacked layout + compiled step + the NumPy host step on raw BLAS pointers) against this tree's shipped
"cpu" variant (impl.accel), alternated in one process on the same seeded checkpoint.

    git worktree add /tmp/old c5e9450
    ./vp python -m bench.bench_removal --old-tree /tmp/old --model qwen2 --rounds 8 [--out FILE.json]

The old tree's `impl` is copied under the name `impl_old` (imports rewritten) into a temporary folder, so both live
in one process; its `enable_fast_blas` binds the BLAS (the same library this tree's would bind). Per round each
model decodes --tokens greedy tokens after a --prefill-token prompt; ms/token min and median over rounds (the min
is the least disturbed by other jobs on a shared host).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List


def _import_old(tree: Path, tmp: Path):
    """The old tree's impl as `impl_old` (a copy with its imports renamed); its fast BLAS enabled."""
    dst = tmp / "impl_old"
    shutil.copytree(tree / "impl", dst)
    for f in dst.rglob("*.py"):
        text = f.read_text()
        text = re.sub(r"\bfrom impl\b", "from impl_old", text)
        text = re.sub(r"\bimport impl\b", "import impl_old", text)
        text = re.sub(r"\bimpl\.(?=[a-z_]+\b)", "impl_old.", text)
        f.write_text(text)
    sys.path.insert(0, str(tmp))
    import importlib

    old_cpu = importlib.import_module("impl_old.cpu")
    old_cpu.enable_fast_blas()
    return importlib.import_module("impl_old.llama"), importlib.import_module("impl_old.qwen2"), old_cpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_removal", description=__doc__.split("\n\n")[0])
    p.add_argument("--old-tree", required=True, type=Path, help="a checkout of the older commit (git worktree)")
    p.add_argument("--model", choices=["qwen2", "llama"], default="qwen2",
                   help="qwen2: Spark's 0.5B LM; llama: OuteTTS' 1B LM (seeded, fp32)")
    p.add_argument("--rounds", type=int, default=6, help="alternated rounds after one warm-up round")
    p.add_argument("--tokens", type=int, default=16, help="greedy tokens decoded per round")
    p.add_argument("--prefill", type=int, default=64, help="prompt tokens before the decode")
    p.add_argument("--out", type=Path, help="write the result row as JSON here")
    a = p.parse_args(argv)
    if not (a.old_tree / "impl" / "llama.py").is_file():
        p.error(f"--old-tree {a.old_tree}: no impl/llama.py there")
    with tempfile.TemporaryDirectory() as tmp:
        old_llama, old_qwen2, old_cpu = _import_old(a.old_tree, Path(tmp))
        import mlx.core as mx
        import numpy as np

        from impl import accel, llama, qwen2
        from parity.specs import llama as llama_spec
        from parity.specs import qwen2 as qwen2_spec

        if a.model == "qwen2":
            path = qwen2_spec.checkpoint("0.5b", seed=0)
            old, new = old_qwen2.load(path), qwen2.load(path)
        else:
            path = llama_spec.checkpoint("1b", seed=0)
            old, new = old_llama.load(path), llama.load(path)
        accel.apply(new, "cpu")
        ids = mx.array(np.random.default_rng(0).integers(0, new.args.vocab_size, (1, a.prefill)).astype(np.int32))

        def run(model, make_cache) -> float:
            cache = make_cache(model)
            y = mx.argmax(model(ids, cache)[:, -1], -1)
            mx.eval(y)
            t = time.perf_counter()
            for _ in range(a.tokens):
                y = mx.argmax(model(y[:, None], cache)[:, -1], -1)
                mx.eval(y)
            return (time.perf_counter() - t) / a.tokens * 1e3

        old_name = "old shipped step" + (" (host step)" if getattr(old.model, "host_step", None) else "")
        res: Dict[str, List[float]] = {old_name: [], "new cpu variant": []}
        for r in range(a.rounds + 1):
            for name, model, make_cache in ((old_name, old, old_llama.make_cache), ("new cpu variant", new,
                                                                                      llama.make_cache)):
                dt = run(model, make_cache)
                if r:
                    res[name].append(dt)
                print(f"round {r} {name}: {dt:.1f} ms/token", file=sys.stderr, flush=True)
        row = {"case": f"{a.model} decode", "tokens": a.tokens, "prefill": a.prefill, "rounds": a.rounds,
               "blas": old_cpu.blas_info()["blas"], "load_average": list(os.getloadavg()),
               **{f"{k} min_ms": min(v) for k, v in res.items()},
               **{f"{k} median_ms": float(np.median(v)) for k, v in res.items()}}
        row["new / old (min)"] = row["new cpu variant min_ms"] / row[f"{old_name} min_ms"]
    print(json.dumps(row))
    if a.out:
        a.out.write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
