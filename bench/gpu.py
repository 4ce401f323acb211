"""One measured run on a CUDA machine: impl on mlx-cuda vs the official packages on torch CUDA, same weights.

    python -m bench.gpu --out DIR [--seconds 10 60] [--skip-lm] [--skip-dac]

Cases (each side timed in the same process, median of repeats, device synchronised):
- DAC 24 kHz speech (OuteTTS's codec): encode and decode of N seconds of audio, impl (MLX) vs official `dac`.
- OuteTTS LM at the real 1B architecture, bf16: prefill pp512 and decode tg128, impl vs transformers.
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

    from impl import llama
    from impl.seeded.llama import write_seeded_checkpoint

    path = tmp / "lm"
    config = dict(llama.OUTETTS_1B_CONFIG)
    if small:  # smoke test of this script on a CPU
        config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16)
    write_seeded_checkpoint(path, config, 0, dtype="bfloat16")
    model = llama.load(path)
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

    def impl_dec():
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
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    p.add_argument("--skip-lm", action="store_true")
    p.add_argument("--skip-dac", action="store_true")
    p.add_argument("--lm-small", action="store_true", help="tiny LM widths (smoke test of this script)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "rows": [], "errors": {}}
    print(result["machine"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, skip, fn in (("dac", args.skip_dac, lambda: bench_dac(args.seconds, Path(tmp))),
                               ("lm", args.skip_lm, lambda: bench_lm(Path(tmp), small=args.lm_small))):
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
