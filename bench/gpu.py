"""One measured run on a CUDA machine: impl on mlx-cuda vs the official packages on torch CUDA, same weights.

    python -m bench.gpu --out DIR [--seconds 10 60] [--skip-lm] [--skip-dac] [--skip-tts]

Cases (each side timed in the same process, median of repeats, device synchronised):
- DAC 24 kHz speech (OuteTTS's codec): encode and decode of N seconds of audio, impl (MLX) vs official `dac`.
- OuteTTS LM at the real 1B architecture, bf16: prefill pp512 and decode tg128, impl vs transformers
  (impl loads with q|k|v and gate|up fused on a GPU; the unfused model is timed too).
- End to end, `voiceport tts` itself (a subprocess: the official sampler, a ~1.5k-token profile prompt, DAC decode
  included) for bf16 / q8 / q4: the first process on an empty kernel cache, then a second process (steady state);
  tokens/s, prefill, RTF = compute seconds / (generated code frames / 75); and q8/q4's KL divergence and greedy
  agreement vs bf16 on teacher-forced positions. Baseline in the same run: transformers `generate` with
  outetts' HF-backend sampler settings on the same weights and prompt.
Writes DIR/gpu.json with machine info and versions. Weights are seeded random at the real sizes.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from bench.timing import median_time


def _dev() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test of this script only


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def machine() -> Dict:
    import mlx.core as mx
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "mlx": mx.__version__,
            "mlx_device": str(mx.default_device()), "torch_cuda": torch.cuda.is_available()}
    try:
        info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def bench_dac(seconds: List[float], tmp: Path) -> List[Dict]:
    import mlx.core as mx
    import torch

    import impl.dac as idac
    from impl.seeded.dac import write_seeded_safetensors
    from reference import dac as rdac

    st, pth = tmp / "dac.safetensors", tmp / "dac.pth"
    write_seeded_safetensors(st, "24khz_speech", 0)
    rdac.write_seeded_checkpoint(pth, "24khz_speech", 0)
    model = idac.load(st)
    import dac as official

    ref = official.DAC.load(str(pth)).eval().to(_dev())
    rows = []
    for s in seconds:
        n = int(s * model.sample_rate)
        audio = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32) * 0.1
        xa = mx.array(audio)
        xt = torch.from_numpy(audio)[:, None].to(_dev())
        codes = model.encode(xa)
        mx.eval(codes)

        def ref_enc():
            with torch.no_grad():
                ref.encode(ref.preprocess(xt, model.sample_rate))
            _sync()

        def impl_enc():
            mx.eval(model.encode(xa))

        ct = torch.from_numpy(np.array(codes).astype(np.int64)).to(_dev())

        def ref_dec():
            with torch.no_grad():
                z = ref.quantizer.from_codes(ct)[0]
                ref.decode(z)
            _sync()

        def impl_dec():
            mx.eval(model.decode(codes))

        for what, fi, fr in (("encode", impl_enc, ref_enc), ("decode", impl_dec, ref_dec)):
            ti, tr = median_time(fi, warmup=2), median_time(fr, warmup=2)
            rows.append({"case": f"dac_{what}_{s:g}s", "impl_s": ti, "reference_s": tr, "speedup": tr / ti,
                         "impl_rtf": ti / s, "reference_rtf": tr / s})
            print(rows[-1], flush=True)
    return rows


def bench_lm(tmp: Path, prefill: int = 512, decode: int = 128, small: bool = False) -> List[Dict]:
    import mlx.core as mx
    import torch
    from transformers import LlamaForCausalLM

    from impl import accel, llama
    from impl.seeded.llama import write_seeded_checkpoint

    path = tmp / "lm"
    config = dict(llama.OUTETTS_1B_CONFIG)
    if small:  # smoke test of this script on a CPU
        config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16)
    write_seeded_checkpoint(path, config, 0, dtype="bfloat16")
    model = llama.load(path)
    accel.apply(model)  # the device's variant (impl.accel: fused projections on a GPU)
    unfused = llama.load(path)
    try:
        ref = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    except TypeError:  # transformers 4.x
        ref = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    ref = ref.eval().to(_dev())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 128000, (1, prefill))
    prompt = rng.integers(0, 128000, (1, 16))

    def impl_pre():
        cache = llama.make_cache(model)
        mx.eval(model(mx.array(ids.astype(np.int32)), cache, logits_to_keep=1))

    xt = torch.from_numpy(ids).to(_dev())

    def ref_pre():
        with torch.no_grad():
            ref(input_ids=xt, use_cache=True, logits_to_keep=1)
        _sync()

    def impl_dec(model=model):
        cache = llama.make_cache(model)
        y = mx.argmax(model(mx.array(prompt.astype(np.int32)), cache, logits_to_keep=1)[:, -1], axis=-1)
        mx.eval(y)
        t = time.perf_counter()
        for _ in range(decode):
            y = mx.argmax(model(y[:, None], cache)[:, -1], axis=-1)
            mx.async_eval(y)
        mx.eval(y)
        impl_dec.s = time.perf_counter() - t

    pt = torch.from_numpy(prompt).to(_dev())

    def ref_dec():
        with torch.no_grad():
            out = ref(input_ids=pt, use_cache=True, logits_to_keep=1)
            past, y = out.past_key_values, out.logits[:, -1].argmax(-1)
            _sync()
            t = time.perf_counter()
            for _ in range(decode):
                out = ref(input_ids=y[:, None], past_key_values=past, use_cache=True)
                past, y = out.past_key_values, out.logits[:, -1].argmax(-1)
            _sync()
            ref_dec.s = time.perf_counter() - t

    ti, tr = median_time(impl_pre, warmup=2), median_time(ref_pre, warmup=2)
    rows = [{"case": f"lm_1b_bf16_prefill_pp{prefill}", "impl_s": ti, "reference_s": tr, "speedup": tr / ti,
             "impl_tok_s": prefill / ti, "reference_tok_s": prefill / tr}]
    print(rows[-1], flush=True)
    ds_i, ds_r = [], []
    for _ in range(3):
        impl_dec()
        ds_i.append(impl_dec.s)
        ref_dec()
        ds_r.append(ref_dec.s)
    ti, tr = float(np.median(ds_i[1:])), float(np.median(ds_r[1:]))
    rows.append({"case": f"lm_1b_bf16_decode_tg{decode}", "impl_s": ti, "reference_s": tr, "speedup": tr / ti,
                 "impl_tok_s": decode / ti, "reference_tok_s": decode / tr,
                 "impl_rtf_at_150_tok_per_audio_s": (ti / decode) * 150})
    print(rows[-1], flush=True)
    ds_u = []
    for _ in range(3):
        impl_dec(unfused)
        ds_u.append(impl_dec.s)
    tu = float(np.median(ds_u[1:]))
    rows.append({"case": f"lm_1b_bf16_decode_tg{decode}_unfused", "impl_s": tu, "impl_tok_s": decode / tu,
                 "fused_speedup": tu / ti})
    print(rows[-1], flush=True)
    return rows


TTS_TEXT = ("The old lighthouse keeper climbed the spiral stairs every evening, lit the great lamp, and watched "
            "the ships pass safely by.")  # 120 characters


def _tts_line(stdout: str) -> Dict:
    """The numbers `voiceport tts` prints (tokens, prefill, decode, load, RTF)."""
    import re

    out: Dict = {}
    m = re.search(r"tokens: (\d+) in ([\d.]+) s = ([\d.]+) tokens/s.*?prefill (\d+) prompt tokens in ([\d.]+) s, "
                  r"decode ([\d.]+) tokens/s; load ([\d.]+) s", stdout, re.S)
    if m:
        out.update(tokens=int(m[1]), gen_s=float(m[2]), tok_s=float(m[3]), prompt_tokens=int(m[4]),
                   prefill_s=float(m[5]), decode_tok_s=float(m[6]), load_s=float(m[7]))
    m = re.search(r"RTF: ([\d.]+) \(compute ([\d.]+) s / audio ([\d.]+) s\)", stdout)
    if m:
        out.update(rtf=float(m[1]), compute_s=float(m[2]), audio_s=float(m[3]))
    return out


def bench_tts(tmp: Path, new_tokens: int = 600, small: bool = False) -> List[Dict]:
    import os
    import sys

    import mlx.core as mx

    from impl import accel, llama
    from impl.outetts import generate as G
    from impl.seeded import default_codec, default_model
    from impl.seeded.speaker import synthetic_speaker

    env = dict(os.environ)
    env.setdefault("VOICEPORT_CACHE", str(tmp / "vpcache"))  # the seeded model + codec, shared by the processes
    os.environ["VOICEPORT_CACHE"] = env["VOICEPORT_CACHE"]
    t = time.perf_counter()
    model_dir, codec_path = default_model(), default_codec()  # generated once, outside the timings
    extra: List[str] = []
    if small:  # smoke test of this script on a CPU: a tiny LM in the same folder format
        from impl.seeded.outetts import default_model_dir

        model_dir = default_model_dir(dict(llama.OUTETTS_1B_CONFIG, hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           head_dim=16))
        extra = ["--model", str(model_dir)]
    print({"case": "tts_seeded_artefacts", "s": time.perf_counter() - t}, flush=True)
    words = " ".join(["voices", "carry", "meaning", "across", "quiet", "rooms"] * 5)  # ~1.5k prompt tokens
    speaker = synthetic_speaker(0, text=words, frames_per_word=(10, 22))
    spk = tmp / "speaker.json"
    spk.write_text(json.dumps(speaker))
    rows: List[Dict] = []
    for quant in (None, "q8", "q4"):
        env_q = dict(env, MLX_PTX_CACHE_DIR=str(tmp / f"ptx-{quant or 'bf16'}"))  # empty: a machine's first run
        for run in ("first_process", "second_process"):
            cmd = [sys.executable, "-m", "impl.cli", "tts", "--text", TTS_TEXT, "--speaker", str(spk), "--out",
                   str(tmp / "o.wav"), "--dtype", "bfloat16", "--max-new-tokens", str(new_tokens), "--seed", "0",
                   "--quiet"] + extra + (["--quantize", quant] if quant else [])
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env_q, capture_output=True, text=True)
            row = {"case": f"tts_{quant or 'bf16'}_{run}", "process_wall_s": time.perf_counter() - t,
                   "rc": r.returncode, **_tts_line(r.stdout)}
            if r.returncode:
                row["stderr"] = r.stderr[-1500:]
            if "audio_s" in row:
                row["frames"] = round(row["audio_s"] * 75)
            rows.append(row)
            print(row, flush=True)
    # q8 / q4 against bf16: KL divergence and argmax agreement over teacher-forced positions of the real prompt
    tts = G.load(model_dir, dtype="bfloat16")
    prompt = tts.plan(TTS_TEXT, speaker, G.GenerationConfig())[0].prompt
    ids = mx.array(np.asarray(prompt, np.int32)[None])

    def logp(m):
        x = m(ids, llama.make_cache(m)).astype(mx.float32)
        return x - mx.logsumexp(x, axis=-1, keepdims=True)

    ref = logp(tts.lm)
    mx.eval(ref)
    for quant in ("q8", "q4"):
        m = llama.load(model_dir, dtype="bfloat16", quantize=quant)
        accel.apply(m)
        lp = logp(m)
        kl = mx.sum(mx.exp(ref) * (ref - lp), axis=-1)
        agree = mx.mean((mx.argmax(ref, -1) == mx.argmax(lp, -1)).astype(mx.float32))
        rows.append({"case": f"tts_{quant}_vs_bf16", "positions": len(prompt), "kl_mean": kl.mean().item(),
                     "kl_max": kl.max().item(), "argmax_agreement": agree.item()})
        print(rows[-1], flush=True)
        del m
    del tts
    rows.append(_hf_generate(model_dir, prompt, new_tokens))
    print(rows[-1], flush=True)
    return rows


def _hf_generate(model_dir: Path, prompt: List[int], new_tokens: int) -> Dict:
    """transformers `generate` with outetts' HF-backend sampler (temperature 0.4, top-k 40, top-p 0.9, min-p 0.05,
    repetition penalty 1.1 -- transformers' own processor over the whole sequence, where outetts patches it to a
    64-token window), bf16, same weights and prompt; min_new_tokens = max_new_tokens so both sides make as many."""
    import torch
    from transformers import LlamaForCausalLM

    try:
        ref = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    except TypeError:
        ref = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16)
    ref = ref.eval().to(_dev())
    x = torch.tensor([prompt], device=_dev())
    kw = dict(do_sample=True, temperature=0.4, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.1,
              attention_mask=torch.ones_like(x), pad_token_id=ref.config.eos_token_id)
    with torch.no_grad():
        ref.generate(x, max_new_tokens=8, min_new_tokens=8, **kw)
        _sync()
        t = time.perf_counter()
        ref.generate(x, max_new_tokens=1, min_new_tokens=1, **kw)
        _sync()
        t_pre = time.perf_counter() - t
        t = time.perf_counter()
        out = ref.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        _sync()
        s = time.perf_counter() - t
    n = out.shape[1] - len(prompt)
    return {"case": "tts_transformers_generate_bf16", "prompt_tokens": len(prompt), "tokens": n, "gen_s": s,
            "tok_s": n / s, "prefill_s": t_pre, "decode_tok_s": (n - 1) / max(s - t_pre, 1e-9)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    p.add_argument("--skip-lm", action="store_true")
    p.add_argument("--skip-dac", action="store_true")
    p.add_argument("--skip-tts", action="store_true")
    p.add_argument("--tts-tokens", type=int, default=600, help="new tokens per end-to-end run (--max-new-tokens)")
    p.add_argument("--lm-small", action="store_true", help="tiny LM widths (smoke test of this script)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "rows": [], "errors": {}}
    print(result["machine"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, skip, fn in (("dac", args.skip_dac, lambda: bench_dac(args.seconds, Path(tmp))),
                               ("lm", args.skip_lm, lambda: bench_lm(Path(tmp), small=args.lm_small)),
                               ("tts", args.skip_tts, lambda: bench_tts(Path(tmp), args.tts_tokens, args.lm_small))):
            if skip:
                continue
            try:
                result["rows"] += fn()
            except Exception as e:  # noqa: BLE001 -- one part failing must not lose the other's numbers
                result["errors"][name] = f"{type(e).__name__}: {e}"
                print(f"{name} failed: {result['errors'][name]}", flush=True)
            (out / "gpu.json").write_text(json.dumps(result, indent=1))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
