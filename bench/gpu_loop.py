"""Where the real generation loop spends its time on a GPU (issue 17's probe), impl only, one process per part.

    python -m bench.gpu_loop --out DIR [--tokens 256] [--prompt 1500] [--small]

Parts (each printed as one JSON row and stored in DIR/gpu_loop.json):
- cold: a fresh process with an empty MLX kernel cache (MLX_PTX_CACHE_DIR) loads the 1B LM (bf16) and prefills a
  `--prompt`-token prompt three times (first, same length again, another length); then a second fresh process on
  the now-filled cache. Also the number of JIT modules written and the span of their write times.
- loop: decode `--tokens` tokens after the prompt with
  `bench` (model + argmax, no host read: bench/gpu.py's tg loop), `greedy` / `official` / `official_compiled`
  (impl.outetts.generate.decode_loop with the greedy sampler / outetts' sampler uncompiled / compiled), and
  `lookahead2` (the official compiled sampler with two steps queued ahead of the host read);
- parts of one step: the sampler alone on (1, V) logits, argpartition / argsort over V, the Python time to build
  one step's graph;
- prefill of the prompt, warm; q8 / q4 decode and their KL divergence vs bf16 over teacher-forced positions.
Weights are seeded random at the real size (1.24 B parameters).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16)



def accel_model(model):
    """The model as the library runs it on this device (impl.accel's default variant: fused on a GPU)."""
    from impl import accel

    accel.apply(model)
    return model

def _config(small: bool) -> Dict:
    from impl import llama

    config = dict(llama.OUTETTS_1B_CONFIG)
    if small:
        config.update(SMALL)
    return config


def _prompt(n: int, vocab: int, seed: int = 0) -> List[int]:
    return np.random.default_rng(seed).integers(0, vocab, n).tolist()


def _emitter(rows: List[Dict]):
    def emit(row: Dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
    return emit


def greedy_tg(model, pids, n: int) -> float:
    """Seconds for n greedy tokens after prefilling `pids` (1, L): model + argmax, no host read (bench/gpu.py's tg)."""
    import mlx.core as mx

    from impl import llama

    cache = llama.make_cache(model)
    y = mx.argmax(model(pids, cache, logits_to_keep=1)[:, -1], -1)
    mx.eval(y)
    t = time.perf_counter()
    for _ in range(n):
        y = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
        mx.async_eval(y)
    mx.eval(y)
    return time.perf_counter() - t


def _log_softmax(logits):
    import mlx.core as mx

    x = logits.astype(mx.float32)
    return x - mx.logsumexp(x, axis=-1, keepdims=True)


def cold(ckpt: str, n_prompt: int) -> Dict:
    """Run in a fresh process: load, then three prefills, timed (the first pays kernel compilation)."""
    t0 = time.perf_counter()
    import mlx.core as mx

    from impl import llama

    model = accel_model(llama.load(ckpt))
    t_load = time.perf_counter() - t0
    out = {"load_s": t_load}
    for name, n in (("prefill_first_s", n_prompt), ("prefill_again_s", n_prompt), ("prefill_other_len_s", n_prompt - 37)):
        ids = mx.array(np.asarray(_prompt(n, model.args.vocab_size), np.int32)[None])
        t = time.perf_counter()
        mx.eval(model(ids, llama.make_cache(model), logits_to_keep=1))
        out[name] = time.perf_counter() - t
    t = time.perf_counter()
    cache = llama.make_cache(model)
    y = mx.argmax(model(ids, cache, logits_to_keep=1)[:, -1], -1)
    for _ in range(8):
        y = mx.argmax(model(y[:, None].astype(mx.int32), cache)[:, -1], -1)
    mx.eval(y)
    out["prefill_plus_8_decode_s"] = time.perf_counter() - t
    return out


def _ptx_stats(d: Path) -> Dict:
    files = sorted(d.glob("*.ptx"), key=lambda f: f.stat().st_mtime)
    if not files:
        return {"jit_modules": 0}
    m = [f.stat().st_mtime for f in files]
    return {"jit_modules": len(files), "jit_span_s": m[-1] - m[0], "jit_bytes": sum(f.stat().st_size for f in files),
            "jit_names": [f.stem[:60] for f in files][:400]}


def part_cold(ckpt: str, n_prompt: int, tmp: Path) -> List[Dict]:
    ptx = tmp / "ptx"
    env = dict(os.environ, MLX_PTX_CACHE_DIR=str(ptx))
    rows = []
    for run in ("first_process", "second_process"):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "bench.gpu_loop", "--cold-child", ckpt, "--prompt", str(n_prompt)],
                           env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        row = {"case": f"cold_{run}", "wall_s": wall, "rc": r.returncode}
        try:
            row.update(json.loads(r.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            row["stderr"] = r.stderr[-2000:]
        stats = _ptx_stats(ptx)
        row.update({k: v for k, v in stats.items() if k != "jit_names"})
        if run == "first_process":
            (tmp / "jit_names.json").write_text(json.dumps(stats.get("jit_names", [])))
            row["jit_names_head"] = stats.get("jit_names", [])[:80]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_loop(ckpt: str, n_prompt: int, n_tok: int, quant: bool) -> List[Dict]:
    import mlx.core as mx

    from impl import llama
    from impl.outetts.generate import decode_loop
    from impl.outetts.sampler import Sampler, SamplerConfig, process_candidates

    rows: List[Dict] = []
    emit = _emitter(rows)
    model = accel_model(llama.load(ckpt))
    V = model.args.vocab_size
    prompt = _prompt(n_prompt, V)
    pids = mx.array(np.asarray(prompt, np.int32)[None])

    def prefill():
        cache = llama.make_cache(model)
        logits = model(pids, cache, logits_to_keep=1)[:, -1]
        mx.eval(logits)
        return cache, logits

    prefill()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        prefill()
        ts.append(time.perf_counter() - t)
    emit({"case": "prefill_warm", "prompt": n_prompt, "s": float(np.median(ts)), "tok_s": n_prompt / float(np.median(ts))})

    def bench_loop():
        return greedy_tg(model, pids, n_tok)

    def real_loop(sampler_factory):
        def run():
            s = sampler_factory()
            t = time.perf_counter()
            out = decode_loop(model, llama.make_cache(model), prompt, s, n_tok)
            return time.perf_counter() - t, len(out)
        return run

    def lookahead2():
        s = Sampler(SamplerConfig(), 0, compiled=True)
        cache = llama.make_cache(model)
        R = 64
        window = pids[:, -R:]
        t = time.perf_counter()
        y = s(model(pids, cache, logits_to_keep=1)[:, -1], window)
        queue = [y]
        mx.async_eval(y)
        out = []
        while len(out) < n_tok:
            while len(queue) < 3 and len(out) + len(queue) < n_tok:
                window = mx.concatenate([window, queue[-1][:, None].astype(mx.int32)], axis=1)[:, -R:]
                nxt = s(model(queue[-1][:, None].astype(mx.int32), cache)[:, -1], window)
                mx.async_eval(nxt)
                queue.append(nxt)
            out.append(int(queue.pop(0).item()))
        return time.perf_counter() - t, len(out)

    def cli_like():  # as `voiceport tts` runs it: warnings recorded, a per-token callback
        import warnings

        seen = []
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            r = real_loop(lambda: Sampler(SamplerConfig(), 0))
            res = r()
        cli_like.notes = len(notes)
        return res

    variants = {
        "bench": lambda: (bench_loop(), n_tok),
        "official_cli_like": cli_like,
        "greedy": real_loop(lambda: Sampler(SamplerConfig(temperature=0.0, repetition_penalty=1.0,
                                                         repetition_range=0), 0, compiled=False)),
        "greedy_penalty_compiled": real_loop(lambda: Sampler(SamplerConfig(temperature=0.0), 0, compiled=True)),
        "official": real_loop(lambda: Sampler(SamplerConfig(), 0, compiled=False)),
        "official_compiled": real_loop(lambda: Sampler(SamplerConfig(), 0, compiled=True)),
        "lookahead2": lookahead2,
    }
    for name, fn in variants.items():
        fn()  # warm-up (compiles)
        res = [fn() for _ in range(3)]
        s = float(np.median([r[0] for r in res]))
        emit({"case": f"loop_{name}", "tokens": res[0][1], "s": s, "tok_s": res[0][1] / s})

    # parts of one step
    rng = np.random.default_rng(1)
    logits = mx.array(rng.standard_normal((1, V)).astype(np.float32)).astype(mx.bfloat16)
    window = mx.array(rng.integers(0, V, (1, 64)).astype(np.int32))

    def timed(name, f, n=200):
        f()
        mx.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            r = f()
            mx.async_eval(r)
        mx.eval(r)
        emit({"case": name, "ms": 1e3 * (time.perf_counter() - t) / n})

    for compiled in (False, True):
        s = Sampler(SamplerConfig(), 0, compiled=compiled)
        timed(f"step_sampler_{'compiled' if compiled else 'plain'}", lambda: s(logits, window))
    lf = logits.astype(mx.float32)
    timed("step_argpartition_V", lambda: mx.argpartition(lf, kth=V - 40, axis=-1))
    timed("step_argsort_V", lambda: mx.argsort(lf, axis=-1))
    timed("step_argmax_V", lambda: mx.argmax(lf, axis=-1))
    timed("step_process_candidates", lambda: process_candidates(logits, window, SamplerConfig())[0])
    cache, _ = prefill()
    y = mx.array([[5]], dtype=mx.int32)
    t = time.perf_counter()
    for _ in range(50):
        g = model(y, cache)  # graph only, never evaluated
    emit({"case": "step_graph_build_python", "ms": 1e3 * (time.perf_counter() - t) / 50})
    del g, cache

    if quant:
        ref = model
        teacher = mx.array(np.asarray(_prompt(512, V, 7), np.int32)[None])
        ref_logp = _log_softmax(ref(teacher, llama.make_cache(ref)))
        mx.eval(ref_logp)
        for q in ("q8", "q4"):
            m = accel_model(llama.load(ckpt, quantize=q))
            lp = _log_softmax(m(teacher, llama.make_cache(m)))
            kl = mx.sum(mx.exp(ref_logp) * (ref_logp - lp), -1)
            agree = mx.mean((mx.argmax(ref_logp, -1) == mx.argmax(lp, -1)).astype(mx.float32))
            model = m
            bench_loop()
            s = float(np.median([bench_loop() for _ in range(3)]))
            r = real_loop(lambda: Sampler(SamplerConfig(), 0, compiled=True))
            r()
            so = float(np.median([r()[0] for _ in range(3)]))
            emit({"case": f"quant_{q}", "kl_mean": kl.mean().item(), "kl_max": kl.max().item(),
                  "argmax_agree": agree.item(), "bench_tok_s": n_tok / s, "official_compiled_tok_s": n_tok / so})
            del m
    return rows


def _static_step(model, S: int, fused: bool):
    """One decode step with fixed shapes (cache of S slots, a mask for the unwritten ones), for mx.compile."""
    import mlx.core as mx

    a0 = model.layers[0].self_attn
    H, KV, hd = a0.n_heads, a0.n_kv_heads, a0.head_dim
    fw = []
    for layer in model.layers:
        a, m = layer.self_attn, layer.mlp
        fw.append((mx.concatenate([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight], 0),
                   mx.concatenate([m.gate_proj.weight, m.up_proj.weight], 0)) if fused else None)
    mx.eval(fw)
    F = model.args.intermediate_size

    def step(y, ks, vs, pos):
        h = model.model.embed_tokens(y)  # (1, 1, D)
        mask = (mx.arange(S) <= pos[0])[None, None, None, :]
        nks, nvs = [], []
        for layer, k_c, v_c, w in zip(model.layers, ks, vs, fw):
            a, m = layer.self_attn, layer.mlp
            x = layer.input_layernorm(h)
            if fused:
                qkv = x @ w[0].T
                q, k, v = qkv[..., :H * hd], qkv[..., H * hd:(H + KV) * hd], qkv[..., (H + KV) * hd:]
            else:
                q, k, v = a.q_proj(x), a.k_proj(x), a.v_proj(x)
            q = q.reshape(1, 1, H, hd).transpose(0, 2, 1, 3)
            k = k.reshape(1, 1, KV, hd).transpose(0, 2, 1, 3)
            v = v.reshape(1, 1, KV, hd).transpose(0, 2, 1, 3)
            q = mx.fast.rope(q, hd, traditional=False, base=None, scale=1.0, offset=pos[0], freqs=a._freqs)
            k = mx.fast.rope(k, hd, traditional=False, base=None, scale=1.0, offset=pos[0], freqs=a._freqs)
            k_c = mx.slice_update(k_c, k, pos, axes=(2,))
            v_c = mx.slice_update(v_c, v, pos, axes=(2,))
            o = mx.fast.scaled_dot_product_attention(q, k_c, v_c, scale=a.scale, mask=mask)
            h = h + a.o_proj(o.transpose(0, 2, 1, 3).reshape(1, 1, -1))
            x = layer.post_attention_layernorm(h)
            if fused:
                gu = x @ w[1].T
                g, u = gu[..., :F], gu[..., F:]
            else:
                g, u = m.gate_proj(x), m.up_proj(x)
            h = h + m.down_proj(g * mx.sigmoid(g) * u)
            nks.append(k_c)
            nvs.append(v_c)
        logits = model.model.embed_tokens.as_linear(model.model.norm(h))
        return mx.argmax(logits[:, -1], -1).astype(mx.int32), nks, nvs
    return step


def part_overhead(ckpt: str, n_prompt: int, n_tok: int) -> List[Dict]:
    """Is the decode step bound by the GPU's bytes or by per-op host/launch cost?"""
    import mlx.core as mx

    from impl import llama

    rows: List[Dict] = []
    emit = _emitter(rows)
    model = accel_model(llama.load(ckpt))
    V = model.args.vocab_size
    pids = mx.array(np.asarray(_prompt(n_prompt, V), np.int32)[None])

    def bench_loop(m, n=n_tok):
        return greedy_tg(m, pids, n) / n

    bench_loop(model)
    emit({"case": "ov_bench_16_layers", "ms_per_tok": 1e3 * np.median([bench_loop(model) for _ in range(3)])})
    full = model.model.layers
    model.model.layers = full[:8]
    bench_loop(model)
    emit({"case": "ov_bench_8_layers", "ms_per_tok": 1e3 * np.median([bench_loop(model) for _ in range(3)])})
    model.model.layers = full

    # the whole chain built lazily first, then one eval: Python graph building out of the GPU's way
    def lazy_chain(n=64):
        cache = llama.make_cache(model)
        y = mx.argmax(model(pids, cache, logits_to_keep=1)[:, -1], -1)
        mx.eval(y)
        t = time.perf_counter()
        for _ in range(n):
            y = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        mx.eval(y)
        return t_build / n, (time.perf_counter() - t) / n

    lazy_chain()
    b, e = lazy_chain()
    emit({"case": "ov_lazy_chain64", "build_ms_per_tok": 1e3 * b, "eval_ms_per_tok": 1e3 * e})

    # matrix-vector products only: the step's bytes with the fewest other ops
    ws = [w for layer in model.layers for w in (layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight,
          layer.self_attn.v_proj.weight, layer.self_attn.o_proj.weight, layer.mlp.gate_proj.weight,
          layer.mlp.up_proj.weight, layer.mlp.down_proj.weight)]
    emb = model.model.embed_tokens.weight
    nbytes = sum(w.nbytes for w in ws) + emb.nbytes

    def gemv_chain(n=n_tok):
        D = model.args.hidden_size
        x = mx.ones((1, D), model.model.norm.weight.dtype)
        mx.eval(x)
        t = time.perf_counter()
        for _ in range(n):
            h = x
            for layer in model.layers:
                a, m = layer.self_attn, layer.mlp
                q = h @ a.q_proj.weight.T
                k, v = h @ a.k_proj.weight.T, h @ a.v_proj.weight.T
                h = h + (q + k.sum() + v.sum()) @ a.o_proj.weight.T
                h = h + ((h @ m.gate_proj.weight.T) * (h @ m.up_proj.weight.T)) @ m.down_proj.weight.T
            x = (h @ emb.T)[:, :D] * 1e-3
            mx.async_eval(x)
        mx.eval(x)
        return (time.perf_counter() - t) / n

    gemv_chain()
    g = float(np.median([gemv_chain() for _ in range(3)]))
    emit({"case": "ov_gemv_chain", "ms_per_tok": 1e3 * g, "GB": nbytes / 1e9, "GB_s": nbytes / g / 1e9})

    # fixed-shape decode step, plain and mx.compile'd, with and without fused q|k|v and gate|up projections
    S = ((n_prompt + n_tok + 255) // 256) * 256
    a0 = model.layers[0].self_attn
    for fused in (False, True):
        for compiled in (False, True):
            fn = _static_step(model, S, fused)
            fn = mx.compile(fn) if compiled else fn

            def run(n=n_tok):
                cache = llama.make_cache(model)
                y = mx.argmax(model(pids, cache, logits_to_keep=1)[:, -1], -1).astype(mx.int32)
                ks = [mx.concatenate([c.keys[..., :n_prompt, :], mx.zeros((1, a0.n_kv_heads, S - n_prompt,
                      a0.head_dim), c.keys.dtype)], 2) for c in cache]
                vs = [mx.concatenate([c.values[..., :n_prompt, :], mx.zeros((1, a0.n_kv_heads, S - n_prompt,
                      a0.head_dim), c.values.dtype)], 2) for c in cache]
                mx.eval(y, ks, vs)
                del cache
                toks = []
                t = time.perf_counter()
                for i in range(n):
                    y, ks, vs = fn(y[:, None], ks, vs, mx.array([n_prompt + i], mx.int32))
                    mx.async_eval(y)
                    toks.append(y)
                mx.eval(y)
                return (time.perf_counter() - t) / n, [int(t.item()) for t in toks[:16]]

            _, toks = run()
            ms = float(np.median([run()[0] for _ in range(3)]))
            ref_cache = llama.make_cache(model)
            yy = mx.argmax(model(pids, ref_cache, logits_to_keep=1)[:, -1], -1)
            ref = []
            for _ in range(16):
                yy = mx.argmax(model(yy[:, None], ref_cache)[:, -1], -1)
                ref.append(int(yy.item()))
            emit({"case": f"ov_static{'_fused' if fused else ''}{'_compiled' if compiled else ''}",
                  "ms_per_tok": 1e3 * ms, "tok_s": 1 / ms, "same_16_greedy": toks == ref})
    return rows


def part_ab(ckpt: str, n_prompt: int, n_tok: int, rounds: int = 6) -> List[Dict]:
    """Fused vs unfused projections, alternated in one process (run-to-run spread of a single pair is ~15 %)."""
    import mlx.core as mx

    from impl import llama
    from impl.outetts.generate import decode_loop
    from impl.outetts.sampler import Sampler, SamplerConfig

    from impl import accel

    models = {"fused": llama.load(ckpt), "unfused": llama.load(ckpt)}
    accel.apply(models["fused"], "fused")
    prompt = _prompt(n_prompt, models["fused"].args.vocab_size)
    pids = mx.array(np.asarray(prompt, np.int32)[None])
    samples: Dict[str, List[float]] = {}
    for r in range(rounds + 1):
        for name, m in models.items():
            bench = greedy_tg(m, pids, n_tok)
            t = time.perf_counter()
            decode_loop(m, llama.make_cache(m), prompt, Sampler(SamplerConfig(), 0), n_tok)
            loop = time.perf_counter() - t
            if r:  # round 0 warms up
                samples.setdefault(f"{name}_bench", []).append(n_tok / bench)
                samples.setdefault(f"{name}_official_loop", []).append(n_tok / loop)
    rows = [{"case": f"ab_{k}", "tok_s_median": float(np.median(v)), "tok_s": [round(x, 1) for x in v]}
            for k, v in samples.items()]
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


ENV_CONFIGS = {  # mlx-cuda reads these once per process (mlx/utils.h, mlx/backend/cuda/device.cpp)
    "default": {},  # H100/H200 (compute capability 9.0): 100 ops and 1000 MB per CUDA graph
    "ops_50": {"MLX_MAX_OPS_PER_BUFFER": "50"},
    "ops_200": {"MLX_MAX_OPS_PER_BUFFER": "200"},
    "ops_254": {"MLX_MAX_OPS_PER_BUFFER": "254"},
    "no_graphs": {"MLX_USE_CUDA_GRAPHS": "0"},
}


def env_child(ckpt: str, n_prompt: int, n_tok: int, count_nodes: bool) -> Dict:
    """In a fresh process (the env settings are read once): the bench and official loops, the per-op dispatch cost."""
    import collections
    import re

    import mlx.core as mx

    from impl import llama
    from impl.outetts.generate import decode_loop
    from impl.outetts.sampler import Sampler, SamplerConfig

    out: Dict = {}
    model = accel_model(llama.load(ckpt))
    prompt = _prompt(n_prompt, model.args.vocab_size)
    pids = mx.array(np.asarray(prompt, np.int32)[None])

    def official():
        t = time.perf_counter()
        decode_loop(model, llama.make_cache(model), prompt, Sampler(SamplerConfig(), 0), n_tok)
        return time.perf_counter() - t

    for name, fn in (("bench", lambda: greedy_tg(model, pids, n_tok)), ("official", official)):
        fn()
        out[f"{name}_tok_s"] = n_tok / float(np.median([fn() for _ in range(3)]))
    # the dispatch floor: a chain of n dependent one-element (and one-row) adds, built first, then evaluated
    for label, shape in (("scalar", (1,)), ("row2048", (2048,))):
        x = mx.zeros(shape, mx.bfloat16)
        mx.eval(x)
        n = 4000
        for _ in range(2):
            y = x
            for _ in range(n):
                y = y + 1
            t = time.perf_counter()
            mx.eval(y)
            dt = time.perf_counter() - t
        out[f"dispatch_{label}_us_per_op"] = 1e6 * dt / n
    if count_nodes:  # one decode step's graph as this device builds it (fast ops are single nodes on a GPU)
        cache = llama.make_cache(model)
        y = mx.argmax(model(pids, cache, logits_to_keep=1)[:, -1], -1)
        mx.eval(y)
        step = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
        with tempfile.TemporaryDirectory() as tmp:
            dot = Path(tmp) / "step.dot"
            mx.export_to_dot(str(dot), step)
            labels = re.findall(r'label ="([^"]+)"', dot.read_text())
        out["step_nodes"] = len(labels)
        out["step_node_kinds"] = dict(collections.Counter(labels).most_common(30))
    return out


def part_env(ckpt: str, n_prompt: int, n_tok: int, rounds: int = 2) -> List[Dict]:
    """The same loops under mlx-cuda's graph settings, each in a fresh process, configurations alternated."""
    rows: List[Dict] = []
    for r in range(rounds):
        for name, env in ENV_CONFIGS.items():
            cmd = [sys.executable, "-m", "bench.gpu_loop", "--env-child", ckpt, "--prompt", str(n_prompt),
                   "--tokens", str(n_tok)] + (["--count-nodes"] if r == 0 and name == "default" else [])
            p = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
            row = {"case": f"env_{name}", "round": r, "env": env, "rc": p.returncode}
            try:
                row.update(json.loads(p.stdout.strip().splitlines()[-1]))
            except (IndexError, ValueError):
                row["stderr"] = p.stderr[-2000:]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def part_jit(tmp: Path, new_tokens: int, small: bool, model: str = "outetts") -> List[Dict]:
    """`voiceport tts` in a fresh process on an empty kernel cache: each run-time kernel it compiles, in order, with
    the seconds since the previous one appeared (NVRTC compiles one at a time: mlx/backend/cuda/jit_module.cpp);
    bf16 without and with impl.accel.cuda.KernelWarmup (the kernels compiled in parallel processes), q8 with it (OuteTTS);
    `model` "spark": the embedded seeded Spark-TTS-0.5B cloning a LibriVox clip, bf16 without and with it."""
    from bench.gpu import TTS_TEXT, _tts_line
    from impl.seeded import default_codec, default_model
    from impl.seeded.outetts import default_model_dir
    from impl.seeded.speaker import synthetic_speaker

    env = dict(os.environ, VOICEPORT_CACHE=str(tmp / "vpcache"))
    os.environ["VOICEPORT_CACHE"] = env["VOICEPORT_CACHE"]
    if model == "outetts":
        model_dir = default_model_dir(_config(True)) if small else default_model()
        default_codec()
    else:
        from impl.seeded.spark import default_spark_dir

        default_spark_dir()  # written once, outside the timings
    words = " ".join(["voices", "carry", "meaning", "across", "quiet", "rooms"] * 5)  # ~1.5k prompt tokens
    spk = tmp / "speaker.json"
    spk.write_text(json.dumps(synthetic_speaker(0, text=words, frames_per_word=(10, 22))))
    rows: List[Dict] = []
    clip = Path(__file__).resolve().parents[1] / "fixtures/data/librivox/sense_and_sensibility_01_austen_64kb-0870"
    runs = [(None, "0"), (None, "1"), ("q8", "1")] if model == "outetts" else [(None, "0"), (None, "1")]
    for quant, warm in runs:
        ptx = tmp / f"ptx-{model}-{quant or 'bf16'}-{warm}"
        cmd = [sys.executable, "-m", "impl.cli", "tts", "--text", TTS_TEXT, "--out", str(tmp / "o.wav"), "--dtype",
               "bfloat16", "--max-new-tokens", str(new_tokens), "--seed", "0"]
        if model == "outetts":
            cmd += ["--speaker", str(spk), "--model", str(model_dir)] + (["--quantize", quant] if quant else [])
        else:  # the embedded seeded Spark-TTS-0.5B, cloning the LibriVox clip with its transcript
            cmd += ["--model", "spark", "--prompt-audio", f"{clip}.wav", "--prompt-text",
                    Path(f"{clip}.txt").read_text().strip()]
        t0 = time.time()
        r = subprocess.run(cmd, env=dict(env, MLX_PTX_CACHE_DIR=str(ptx), VOICEPORT_KERNEL_WARMUP=warm),
                           capture_output=True, text=True)
        files = sorted(ptx.glob("*.ptx"), key=lambda f: f.stat().st_mtime)
        marks = [t0] + [f.stat().st_mtime for f in files]
        kernels = [{"name": f.stem[:90], "after_s": round(marks[i + 1] - marks[i], 2),
                    "at_s": round(marks[i + 1] - t0, 2)} for i, f in enumerate(files)]
        row = {"case": f"jit_{model}_{quant or 'bf16'}_warmup{warm}", "rc": r.returncode,
               "process_wall_s": time.time() - t0,
               **_tts_line(r.stdout), "kernels": kernels, "stderr_tail": r.stderr[-600:]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _timed_mx(fn):
    """(seconds, value) of fn() evaluated on the MLX device, synchronised before and after."""
    import mlx.core as mx

    mx.synchronize()
    t0 = time.perf_counter()
    y = fn()
    mx.eval(y)
    mx.synchronize()
    return time.perf_counter() - t0, y


def part_spark_detok(seconds_list: List[float], rounds: int = 5, small: bool = False) -> List[Dict]:
    """Where BiCodec.detokenize's time goes on this device (each stage evaluated and synchronised on its own), and
    the whole call with the transposed convolutions and/or the kernel-1 convolutions on impl.ops' gemm path instead
    of MLX's own (cuDNN on a GPU); variants alternate within each round; max|dy| of each variant vs the native one."""
    import mlx.core as mx
    import mlx.nn as nn

    from impl import ops, spark
    from impl.dac.layers import WNConv1d, WNConvTranspose1d
    from impl.seeded.spark import seeded_bicodec

    model = spark.load(seeded_bicodec("tiny" if small else "bicodec", 0))

    class OnPath(nn.Module):  # a layer evaluated on a given impl.ops path
        def __init__(self, layer, path: str):
            super().__init__()
            self.layer, self.path = layer, path

        def __call__(self, x):
            with ops.use_path(self.path):
                return self.layer(x)

    def layers(kind):  # (owner list, index) of each layer of `kind` in the decoder blocks and their residual units
        owners = [top.block for top in model.decoder.model if hasattr(top, "block")]
        owners += [sub.block for o in owners for sub in o if hasattr(sub, "block")]
        return [(o, i) for o in owners for i, m in enumerate(o)
                if isinstance(m.layer if isinstance(m, OnPath) else m, kind)]

    def set_path(kind, path):  # kind WNConv1d: the kernel-1 convolutions only
        for owner, i in layers(kind):
            m = owner[i].layer if isinstance(owner[i], OnPath) else owner[i]
            if kind is WNConv1d and m.weight.shape[1] != 1:
                continue
            owner[i] = m if path is None else OnPath(m, path)

    t = _timed_mx

    variants = {"native": (None, None), "tconv_gemm": ("gemm", None), "k1_gemm": (None, "gemm"),
                "both_gemm": ("gemm", "gemm")}
    rows: List[Dict] = []
    rng = np.random.default_rng(0)
    for seconds in seconds_list:
        T = max(1, int(seconds * 50))
        sem = mx.array(rng.integers(0, model.codebook_size, (1, T)).astype(np.int32))
        glob = mx.array(rng.integers(0, model.global_codebook_size, (1,) + model.global_shape).astype(np.int32))
        times: Dict[str, List[float]] = {k: [] for k in variants}
        outs = {}
        for r in range(rounds + 1):  # the first round warms each variant's kernels and layouts
            for name, (tp, kp) in variants.items():
                set_path(WNConvTranspose1d, tp)
                set_path(WNConv1d, kp)
                dt, y = t(lambda: model.detokenize(sem, glob))
                if r:
                    times[name].append(dt)
                outs[name] = np.array(y)
        set_path(WNConvTranspose1d, None)
        set_path(WNConv1d, None)
        stages: Dict[str, List[float]] = {}
        for r in range(rounds + 1):
            dt, z_q = t(lambda: model.quantizer.detokenize(sem))
            acc = [("quantizer", dt)]
            dt, d = t(lambda: model.speaker_encoder.detokenize(glob))
            acc.append(("speaker_detokenize", dt))
            dt, x = t(lambda: model.prenet(z_q, d) + d[:, None, :])
            acc.append(("prenet", dt))
            for i, top in enumerate(model.decoder.model):
                for j, sub in enumerate(getattr(top, "block", [top])):
                    dt, x = t(lambda: sub(x))
                    acc.append((f"decoder.{i}" + (f".{j}" if hasattr(top, "block") else "") + f" {type(sub).__name__}"
                                f" {list(x.shape)}", dt))
            if r:
                for k, v in acc:
                    stages.setdefault(k, []).append(v)
        row = {"case": f"spark_detok_{seconds:g}s", "frames": T,
               "variants_s": {k: float(np.median(v)) for k, v in times.items()},
               "variants_max_abs_dy_vs_native": {k: float(np.abs(v - outs["native"]).max()) for k, v in outs.items()},
               "stages_s": {k: float(np.median(v)) for k, v in stages.items()},
               "stages_sum_s": float(sum(np.median(v) for v in stages.values()))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_spark_detok_ref(seconds_list: List[float], rounds: int = 5, small: bool = False,
                         ref_device: str = "cuda") -> List[Dict]:
    """BiCodec.detokenize, impl vs the official sparktts model on `ref_device` (torch, TF32 at its default), the
    same seeded weights and ids: (1) the same stages on both sides, each evaluated and synchronised on its own;
    (2) one prenet ConvNeXt block's operations, each run 20 times queued (MLX async_eval / torch's stream) then
    synchronised, per call; (3) the whole call as shipped ("native"), with the depthwise convs as one compiled
    chain of shifted products instead of MLX's grouped conv1d ("compiled_shifted_dwconv"), and the whole call under one
    shape-specialised mx.compile ("compiled_all"; its first call on a new length is timed apart:
    "compiled_all_new_length_s"), alternated within each round; max|dy| of each vs the official audio; "build_s":
    the Python time to build the call's graph (no evaluation)."""
    import mlx.core as mx
    import torch

    from impl import ops, spark
    from impl.seeded.spark import seeded_bicodec
    from impl.spark import vocos
    from impl.spark.vocos import gelu
    from reference import spark as ref

    folder = seeded_bicodec("tiny" if small else "bicodec", 0)
    model, official = spark.load(folder), ref.load(folder).to(ref_device)
    cuda = ref_device.startswith("cuda")

    def sync_t():
        if cuda:
            torch.cuda.synchronize()

    t_mx = _timed_mx

    def t_torch(fn):
        sync_t()
        t0 = time.perf_counter()
        with torch.no_grad():
            y = fn()
        sync_t()
        return time.perf_counter() - t0, y

    def core(s, g):
        z_q = model.quantizer.detokenize(s)
        d = model.speaker_encoder.detokenize(g)
        return model.decoder(model.prenet(z_q, d) + d[:, None, :])[:, :, 0]

    compiled_all = mx.compile(core)
    shipped_dw, shifted = vocos.DepthwiseConv1d.__call__, mx.compile(ops._shifted_sum)

    def shifted_dw(self, x):
        xp = mx.pad(x, [(0, 0), (self.padding, self.padding), (0, 0)])
        return shifted(xp, self.weight[:, :, 0].T, self.bias)

    def setting(name: str):  # the depthwise conv of a variant
        vocos.DepthwiseConv1d.__call__ = shifted_dw if name == "compiled_shifted_dwconv" else shipped_dw

    rows: List[Dict] = []
    rng = np.random.default_rng(0)
    for seconds in seconds_list:
        T = max(1, int(seconds * 50))
        sem_np = rng.integers(0, model.codebook_size, (1, T)).astype(np.int32)
        glob_np = rng.integers(0, model.global_codebook_size, (1,) + model.global_shape).astype(np.int32)
        sem, glob = mx.array(sem_np), mx.array(glob_np)
        sem_t = torch.from_numpy(sem_np.astype(np.int64)).to(ref_device)
        glob_t = torch.from_numpy(glob_np.astype(np.int64)).to(ref_device)
        _, y_ref = t_torch(lambda: official.detokenize(sem_t, glob_t))
        y_ref = y_ref[:, 0].cpu().numpy()

        shipped = lambda: model.detokenize(sem, glob)  # noqa: E731
        variants = {"native": shipped, "compiled_shifted_dwconv": shipped,
                    "compiled_all": lambda: compiled_all(sem, glob)}
        times: Dict[str, List[float]] = {k: [] for k in list(variants) + ["official"]}
        dy: Dict[str, object] = {}
        for r in range(rounds + 1):
            for name, fn in variants.items():
                setting(name)
                try:
                    dt, y = t_mx(fn)
                except Exception as e:  # e.g. an op this backend lacks: recorded, the others go on
                    dy[name] = f"{type(e).__name__}: {e}"[:300]
                    continue
                if r:
                    times[name].append(dt)
                dy[name] = float(np.abs(np.array(y) - y_ref).max())
            setting("native")
            dt, _ = t_torch(lambda: official.detokenize(sem_t, glob_t))
            if r:
                times["official"].append(dt)
        builds = []
        for _ in range(5):
            t0 = time.perf_counter()
            y = model.detokenize(sem, glob)
            builds.append(time.perf_counter() - t0)
            mx.eval(y)
        sem1 = mx.array(rng.integers(0, model.codebook_size, (1, T + 1)).astype(np.int32))
        new_length_s, _ = t_mx(lambda: compiled_all(sem1, glob))
        setting("native")

        stages: Dict[str, Dict[str, List[float]]] = {"impl": {}, "official": {}}
        for r in range(rounds + 1):
            acc = []
            dt, z_q = t_mx(lambda: model.quantizer.detokenize(sem))
            acc.append(("impl", "quantizer", dt))
            dt, d = t_mx(lambda: model.speaker_encoder.detokenize(glob))
            acc.append(("impl", "speaker_detokenize", dt))
            dt, x = t_mx(lambda: model.prenet(z_q, d) + d[:, None, :])
            acc.append(("impl", "prenet", dt))
            for i, top in enumerate(model.decoder.model):
                for j, sub in enumerate(getattr(top, "block", [top])):
                    dt, x = t_mx(lambda: sub(x))
                    acc.append(("impl", f"decoder.{i}" + (f".{j}" if hasattr(top, "block") else "")
                                + f" {type(sub).__name__}", dt))
            dt, zt = t_torch(lambda: official.quantizer.detokenize(sem_t))
            acc.append(("official", "quantizer", dt))
            dt, d_ref = t_torch(lambda: official.speaker_encoder.detokenize(glob_t))
            acc.append(("official", "speaker_detokenize", dt))
            dt, xt = t_torch(lambda: official.prenet(zt, d_ref) + d_ref.unsqueeze(-1))
            acc.append(("official", "prenet", dt))
            for i, top in enumerate(official.decoder.model):
                subs = list(top.block) if hasattr(top, "block") else [top]
                for j, sub in enumerate(subs):
                    dt, xt = t_torch(lambda: sub(xt))
                    twin = getattr(model.decoder.model[i], "block", [model.decoder.model[i]])[j]  # impl's name
                    acc.append(("official", f"decoder.{i}" + (f".{j}" if hasattr(top, "block") else "")
                                + f" {type(twin).__name__}", dt))
            if r:
                for side, k, v in acc:
                    stages[side].setdefault(k, []).append(v)
        med = {side: {k: float(np.median(v)) for k, v in st.items()} for side, st in stages.items()}

        # one prenet block's operations (the first of the conditioned backbone), 20 queued calls each
        blk_i, blk_t = model.prenet.vocos_backbone.convnext[0], official.prenet.vocos_backbone.convnext[0]
        xin = mx.random.normal((1, T, blk_i.dwconv.weight.shape[0]))
        cond = d
        h = blk_i.pwconv1(blk_i.norm(blk_i.dwconv(xin), cond))
        mx.eval(h)
        xin_t = torch.from_numpy(np.array(xin)).to(ref_device).transpose(1, 2)
        cond_t = torch.from_numpy(np.array(cond)).to(ref_device)
        with torch.no_grad():
            h_t = blk_t.pwconv1(blk_t.norm(blk_t.dwconv(xin_t).transpose(1, 2), cond_t))
        blk_c = mx.compile(blk_i.__call__)
        ops_i = {"dwconv": lambda: blk_i.dwconv(xin), "norm": lambda: blk_i.norm(xin, cond),
                 "pwconv1": lambda: blk_i.pwconv1(xin), "gelu": lambda: gelu(h), "pwconv2": lambda: blk_i.pwconv2(h),
                 "block": lambda: blk_i(xin, cond), "block_compiled": lambda: blk_c(xin, cond)}
        xin_tl = xin_t.transpose(1, 2).contiguous()
        ops_t = {"dwconv": lambda: blk_t.dwconv(xin_t), "norm": lambda: blk_t.norm(xin_tl, cond_t),
                 "pwconv1": lambda: blk_t.pwconv1(xin_tl), "gelu": lambda: blk_t.act(h_t),
                 "pwconv2": lambda: blk_t.pwconv2(h_t), "block": lambda: blk_t(xin_t, cond_t)}
        per_op: Dict[str, Dict[str, float]] = {"impl": {}, "official": {}}
        for _ in range(2):  # the first pass warms
            for name, fn in ops_i.items():
                mx.synchronize()
                t0 = time.perf_counter()
                for _ in range(20):
                    mx.async_eval(fn())
                mx.synchronize()
                per_op["impl"][name] = (time.perf_counter() - t0) / 20
            for name, fn in ops_t.items():
                sync_t()
                t0 = time.perf_counter()
                with torch.no_grad():
                    for _ in range(20):
                        fn()
                sync_t()
                per_op["official"][name] = (time.perf_counter() - t0) / 20
        row = {"case": f"spark_detok_vs_ref_{seconds:g}s", "frames": T, "ref_device": ref_device,
               "whole_s": {k: float(np.median(v)) for k, v in times.items() if v},
               "ratio_official_over": {k: float(np.median(times["official"]) / np.median(v))
                                       for k, v in times.items() if k != "official" and v},
               "build_s": float(np.median(builds)), "compiled_all_new_length_s": new_length_s,
               "max_abs_dy_vs_official": dy, "stages_s": med,
               "stage_sums_s": {k: float(sum(v.values())) for k, v in med.items()},
               "prenet_block_ops_s": per_op}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_qwen2_step(tokens: int = 128, prompt: int = 512, rounds: int = 3, small: bool = False) -> List[Dict]:
    """The Spark LM (seeded Qwen2 0.5B, bf16) greedy decode on this device: as loaded (a GPU: fused projections,
    each step built op by op) vs each layer's step parts under mx.compile (`impl.accel.lm.compile_step`, part of the CPU
    variant), alternated per round; tokens/s (bench/gpu.py's tg loop: model + argmax, no host read) and the Python
    time to build one step's graph."""
    import mlx.core as mx

    from impl import llama, qwen2
    from impl.accel.lm import compile_step
    from parity.specs import qwen2 as spec

    path = spec.checkpoint("small" if small else "0.5b", seed=0)
    plain = qwen2.load(path, dtype="bfloat16")
    stepped = compile_step(qwen2.load(path, dtype="bfloat16"))
    pids = mx.array(np.asarray(_prompt(prompt, plain.args.vocab_size), np.int32)[None])
    times: Dict[str, List[float]] = {"as_loaded": [], "compile_step": []}
    builds: Dict[str, float] = {}
    for r in range(rounds + 1):
        for name, model in (("as_loaded", plain), ("compile_step", stepped)):
            dt = greedy_tg(model, pids, tokens)
            if r:
                times[name].append(dt)
    for name, model in (("as_loaded", plain), ("compile_step", stepped)):
        cache = llama.make_cache(model)
        y = mx.argmax(model(pids, cache, logits_to_keep=1)[:, -1], -1)
        mx.eval(y)
        b = []
        for _ in range(10):
            t = time.perf_counter()
            z = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
            b.append(time.perf_counter() - t)
            mx.eval(z)
        builds[name] = float(np.median(b))
    row = {"case": "qwen2_step", "tokens": tokens, "prompt": prompt,
           "tok_s": {k: tokens / float(np.median(v)) for k, v in times.items()},
           "build_one_step_s": builds}
    print(json.dumps(row), flush=True)
    return [row]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="folder for gpu_loop.json")
    p.add_argument("--tokens", type=int, default=256, help="tokens decoded per loop run")
    p.add_argument("--prompt", type=int, default=1500, help="prompt length (a speaker profile's prompt is ~1.5k)")
    p.add_argument("--small", action="store_true", help="tiny LM widths (smoke test of this script on a CPU)")
    p.add_argument("--skip-cold", action="store_true", help="skip the fresh-process cold-start part")
    p.add_argument("--skip-quant", action="store_true", help="skip q8/q4")
    p.add_argument("--part", choices=["all", "overhead", "ab", "env", "jit", "spark-detok", "spark-detok-ref", "qwen2-step"], default="all",
                   help="all: cold start, loops, step parts, quantized; overhead: where a decode step's time goes; "
                        "ab: fused vs unfused projections; env: mlx-cuda's CUDA-graph settings (ops per graph, "
                        "graphs off) and the per-op dispatch cost, each in a fresh process; jit: the run-time kernels a "
                        "first `voiceport tts` compiles, in order, timed; spark-detok: BiCodec.detokenize's stages "
                        "and its convolutions on impl.ops' gemm path vs MLX's own (--seconds); spark-detok-ref: the same stages, one prenet "
                        "block's operations and compiled variants, impl vs the official model on --ref-device (needs "
                        "torch and spark-tts-lib); qwen2-step: the Spark LM's bf16 decode as loaded vs "
                        "impl.accel.lm.compile_step (--tokens, --prompt)")
    p.add_argument("--seconds", type=float, nargs="+", default=[10, 60], help="--part spark-detok: audio lengths")
    p.add_argument("--ref-device", default="cuda", help="--part spark-detok-ref: torch device of the official side")
    p.add_argument("--model", choices=["outetts", "spark"], default="outetts",
                   help="--part jit: which `voiceport tts` model (spark: the embedded seeded Spark-TTS-0.5B)")
    p.add_argument("--cold-child", metavar="CKPT", help=argparse.SUPPRESS)
    p.add_argument("--env-child", metavar="CKPT", help=argparse.SUPPRESS)
    p.add_argument("--count-nodes", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.env_child:
        print(json.dumps(env_child(args.env_child, args.prompt, args.tokens, args.count_nodes)), flush=True)
        return 0
    if args.cold_child:
        print(json.dumps(cold(args.cold_child, args.prompt)), flush=True)
        return 0
    if not args.out:
        p.error("--out is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import mlx.core as mx

    from impl.seeded.llama import write_seeded_checkpoint

    result = {"device": str(mx.default_device()), "mlx": mx.__version__, "rows": []}
    if args.part == "qwen2-step":
        result["rows"] += part_qwen2_step(args.tokens, args.prompt, small=args.small)
        (out / "gpu_qwen2_step.json").write_text(json.dumps(result, indent=1))
        return 0
    if args.part == "spark-detok-ref":
        result["rows"] += part_spark_detok_ref(args.seconds, small=args.small, ref_device=args.ref_device)
        (out / "gpu_spark_detok_ref.json").write_text(json.dumps(result, indent=1))
        return 0
    if args.part == "spark-detok":  # no LM checkpoint needed
        result["rows"] += part_spark_detok(args.seconds, small=args.small)
        (out / "gpu_spark_detok.json").write_text(json.dumps(result, indent=1))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        ckpt = str(write_seeded_checkpoint(tmp / "lm", _config(args.small), 0, dtype="bfloat16"))
        print(json.dumps({"case": "write_checkpoint", "s": time.perf_counter() - t}), flush=True)
        if args.part == "ab":
            result["rows"] += part_ab(ckpt, args.prompt, args.tokens)
            (out / "gpu_ab.json").write_text(json.dumps(result, indent=1))
            return 0
        if args.part == "jit":
            result["rows"] += part_jit(tmp, args.tokens, args.small, args.model)
            (out / "gpu_jit.json").write_text(json.dumps(result, indent=1))
            return 0
        if args.part == "env":
            result["rows"] += part_env(ckpt, args.prompt, args.tokens)
            (out / "gpu_env.json").write_text(json.dumps(result, indent=1))
            return 0
        if args.part == "overhead":
            result["rows"] += part_overhead(ckpt, args.prompt, args.tokens)
            (out / "gpu_overhead.json").write_text(json.dumps(result, indent=1))
            return 0
        if not args.skip_cold:
            result["rows"] += part_cold(ckpt, args.prompt, tmp)
            names = tmp / "jit_names.json"
            if names.exists():
                (out / "jit_names.json").write_text(names.read_text())
        (out / "gpu_loop.json").write_text(json.dumps(result, indent=1))
        result["rows"] += part_loop(ckpt, args.prompt, args.tokens, not args.skip_quant)
        (out / "gpu_loop.json").write_text(json.dumps(result, indent=1))
    print("\n".join(f"{r['case']:34s} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in r.items() if k not in ("case", "jit_names_head"))
                    for r in result["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
