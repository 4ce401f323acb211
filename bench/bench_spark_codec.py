"""Spark-TTS BiCodec: tokenize and detokenize of 1 s, 10 s (and 60 s) of speech, impl (MLX) vs the official
sparktts code (reference/spark.py: spark-tts-lib 0.2.1 + transformers' Wav2Vec2Model, torch, eval, float32), the
same seeded real-size checkpoints (impl.seeded.spark: BiCodec 156 M parameters, wav2vec2-large-xlsr-53 315 M), in
the same run.

Both sides do the same work on the same 16 kHz audio (the in-repo LibriVox speech, tiled to length, volume
normalised as sparktts' load_audio does; file reading and resampling are not timed):
- tokenize = wav2vec2 features (hidden states 11, 14, 16 averaged) + `BiCodec.tokenize` (encoder + VQ -> semantic
  ids; the 6 s reference clip -> mel -> speaker encoder -> FSQ -> 32 global ids);
- detokenize = `BiCodec.detokenize` of impl's ids (the reference's, when it runs, are checked equal).
The reference is the package as shipped: its weight norm is a torch parametrization, recomputed at each forward
(the official hook-style tree folds it once; both give bit-identical outputs, reference/spark.py).

Times: median of --rounds calls after one warm-up call (which also pays impl's first-call layouts), the two sides'
rounds alternating (impl, ref, ref, impl, ...) so that a shared machine's load falls on both. Memory:
- impl: MLX's peak memory of the call (`mx.get_peak_memory()` after `mx.reset_peak_memory()`: the buffers MLX
  holds, the loaded weights included; on a GPU, device memory), and the part above what was held before the call
  (`mx.get_active_memory()`: the weights, 0.6 GB BiCodec + 0.8 GB wav2vec2 layers 0-15);
- both: process RSS growth of the call (peak resident set sampled every 2 ms from /proc/self/statm, minus the RSS
  before the call): torch's CPU tensors are malloc'ed and invisible to tracemalloc, so RSS is what both share.
  Before the call freed memory goes back to the system (MLX's `clear_cache`, glibc's `malloc_trim(0)`), else the
  allocators' kept memory would hide the call's; memory still kept makes it a lower bound. Linux only (else -).
`--impl-only` never imports torch (a machine with mlx-cuda and no torch); `--out FILE.json` stores the rows.
GEMM fraction (impl on the CPU): tokenize's matrix-product FLOPs counted from the layer shapes (`tokenize_flops`,
per stage) / seconds, over the fp32 GEMM peak `bench.roofline.matmul_flops` measures at the start and end of the
run (the larger); a loaded host lowers the peak and the rate alike.

    ./vp python -m bench.bench_spark_codec [--seconds 1 10 60] [--rounds 3] [--impl-only | --ref-device cuda]
                                           [--phase tokenize|detokenize] [--blas-threads N] [--out FILE.json]
    ./vp python -m bench.bench_spark_codec --stages --seconds 10 [--rounds 3]   # impl vs official, stage by stage

`--ref-device cuda` runs the official side on a CUDA GPU (models and inputs there, `torch.cuda.synchronize()` inside
each timed call, `torch.cuda.max_memory_allocated()` as its peak); a machine without CUDA torch: one line, exit 2.

Under `voiceport bench` the pytest cases bench_spark_codec_{tokenize,detokenize} run 1 s and 10 s (quick: 1 s).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

try:
    import pytest
except ImportError:  # a torch-free GPU machine may lack the test tools; the command line needs none
    pytest = None

from bench.timing import times
from impl.accel import blas

ROOT = Path(__file__).resolve().parents[1]
SPEECH = sorted((ROOT / "fixtures" / "data" / "librivox").glob("*.wav"))  # 16 kHz mono, 15.4 s together
QUICK = os.environ.get("VOICEPORT_BENCH_QUICK") == "1"
SECONDS = [1] if QUICK else [1, 10]
SR = 16000


# ---------------------------------------------------------------------------------------------------- memory

def _rss() -> Optional[int]:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class RssPeak:
    """`with RssPeak() as m: ...` -> m.growth: peak RSS during the block minus RSS before it (bytes; None where
    /proc is absent), sampled every `period` s by a thread."""

    def __init__(self, period: float = 0.002):
        self.period, self.growth = period, None
        self._stop = threading.Event()

    def __enter__(self):
        self.before = self.peak = _rss()
        if self.before is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.period)

    def __exit__(self, *exc):
        if self.before is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss())
            self.growth = self.peak - self.before


# ---------------------------------------------------------------------------------------------------- inputs

def speech(seconds: float) -> np.ndarray:
    """`seconds` of the LibriVox clips (tiled), volume-normalised as sparktts' load_audio does: float64 (L,)."""
    import soundfile as sf

    from impl.spark.audio import audio_volume_normalize

    a = np.concatenate([sf.read(str(p), dtype="float64", always_2d=True)[0][:, 0] for p in SPEECH])
    n = int(round(seconds * SR))
    return audio_volume_normalize(np.tile(a, 1 + n // len(a))[:n])


# ---------------------------------------------------------------------------------------------------- FLOPs

def _products(module, rows: int, skip=()) -> int:
    """2 x rows x weight size for each Linear/Conv1d-like leaf of `module` (a weight of shape (out, [K,] in) applied
    to `rows` frames, stride 1, same length out): the FLOPs of its matrix products. Leaves whose path starts with
    one of `skip` are left out."""
    total = 0
    for name, m in module.named_modules():
        w = m.get("weight")  # the module's own weight (a container has none; a norm's is 1-D)
        if w is None or w.ndim < 2 or name.startswith(tuple(skip)):
            continue
        total += 2 * rows * w.size
    return total


def tokenize_flops(w2v, model, n_samples: int) -> Dict[str, int]:
    """FLOPs (2 per multiply-add) of the matrix products and convolutions that tokenize needs for the ids of a clip
    of `n_samples` at 16 kHz, per stage, counted from impl's layer shapes and the clip's frame counts:
    - wav2vec2 `conv front` (each strided conv: 2 x frames out x C_out x K x C_in), `pos conv` (grouped: 2 x frames x
      C_out x K x C_in/groups), `layers` 0-15 (q, k, v, out projections and the feed-forward: 2 x frames x weight
      size; attention: 2 x 2 x frames^2 x hidden for q k^T and p v) with the feature projection;
    - `encoder+VQ`: the ConvNeXt encoder's convs and linears over the frames, the VQ's in_project and its distances
      to the 8192 codes;
    - `speaker`: the mel filterbank product, ECAPA-TDNN's convs over the 6 s clip's mel frames (its SE linears on
      one row), the Perceiver (context projection, cross attention of the 32 latents over latents + frames,
      GEGLU feed-forward) and the FSQ's project_in.
    Not counted: elementwise work, norms, softmax, the mel's FFT, and what the ids never read (both sides compute
    the same for the ids; the official side also runs wav2vec2 layers 16-23 and the x-vector head, not counted)."""
    from impl.spark import audio

    out = {}
    L, conv = n_samples, 0
    for layer in w2v.feature_extractor.conv_layers:
        C_out, K, C_in = layer.conv.weight.shape
        L = (L - K) // layer.conv.stride + 1
        conv += 2 * L * C_out * K * C_in
    T = L
    out["w2v conv front"] = conv + _products(w2v.feature_projection, T)
    pc = w2v.encoder.pos_conv_embed.conv
    C_out, K, Cg = pc.weight.shape
    out["w2v pos conv"] = 2 * (T + 2 * pc.padding - K + 1) * C_out * K * Cg
    D = w2v.config["hidden_size"]
    out["w2v layers"] = sum(_products(layer, T) + 2 * 2 * T * T * D for layer in w2v.encoder.layers)
    q = model.quantizer
    out["encoder+VQ"] = _products(model.encoder, T) + _products(q.in_project, T) + 2 * T * q.codebook_size * \
        q.codebook_dim
    mel = model.mel_transformer
    Tm = len(audio.ref_clip(np.zeros(n_samples))) // mel.hop_length + 1  # center=True: L // hop + 1 frames
    spk = model.speaker_encoder
    perc, n_lat = spk.perceiver_sampler, spk.token_num
    ecapa = _products(spk.speaker_encoder, Tm, skip=("pool", "linear", "layer2.se_res2block.3",
                                                     "layer3.se_res2block.3", "layer4.se_res2block.3"))
    se = sum(_products(getattr(spk.speaker_encoder, f"layer{i}").se_res2block[3], 1) for i in (2, 3, 4))
    attn = sum(_products(a.to_q, n_lat) + _products(a.to_kv, n_lat + Tm) + _products(a.to_out, n_lat)
               + 2 * 2 * n_lat * (n_lat + Tm) * a.heads * a.dim_head + _products(ff[0], n_lat)
               + _products(ff[2], n_lat) for a, ff in perc.layers)
    out["speaker"] = 2 * Tm * mel._fb.size + ecapa + se + _products(perc.proj_context, Tm) + attn + \
        _products(spk.quantizer.project_in, n_lat)
    return out


def gemm_peak() -> Dict[str, float]:
    """The machine's fp32 GEMM peak now (bench.roofline.matmul_flops: best of 5 n x n products, n = 1024, numpy's
    OpenBLAS and MLX's): GFLOP/s, the larger of the two as `peak`."""
    from bench import roofline

    r = roofline.matmul_flops(1024)
    return {**r, "peak_GFLOPs": max(r["numpy_GFLOPs"], r["mlx_GFLOPs"])}


# ---------------------------------------------------------------------------------------------------- sides

def impl_side() -> Dict:
    import mlx.core as mx

    from impl import spark
    from impl.seeded.spark import seeded_bicodec, seeded_w2v
    from impl.spark import audio, wav2vec2

    t = time.perf_counter()
    model, w2v = spark.load(seeded_bicodec("bicodec", 0)), wav2vec2.load(seeded_w2v("xlsr53", 0))
    load_s = time.perf_counter() - t

    def tokenize(wav: np.ndarray):
        feat = wav2vec2.features(w2v, wav)
        clip = mx.array(audio.ref_clip(wav).astype(np.float32))[None]
        sem, glob = model.tokenize(feat, clip)
        mx.eval(sem, glob)
        return np.array(sem), np.array(glob)

    def detokenize(sem: np.ndarray, glob: np.ndarray):
        y = model.detokenize(mx.array(sem), mx.array(glob))
        mx.eval(y)
        return y

    return {"tokenize": tokenize, "detokenize": detokenize, "load_s": load_s,
            "flops": lambda n_samples: tokenize_flops(w2v, model, n_samples)}


def ref_side(device: str = "cpu", tf32: bool = True) -> Dict:
    """The official side on `device`: on "cpu" through reference/spark.py's numpy verbs; on "cuda" the same
    official calls (`BiCodecTokenizer.extract_wav2vec2_features`, which moves its input to the model's device,
    `BiCodec.tokenize`/`detokenize`) with the models and the inputs on the GPU, `torch.cuda.synchronize()` before
    returning, the ids/audio copied back to numpy (inside the timed call, as impl's are). `tf32` False turns off
    torch's TF32 for CUDA convolutions (on by default: `torch.backends.cudnn.allow_tf32`) and matrix products, so the
    official side computes in full fp32 as impl does."""
    from impl.seeded.spark import seeded_bicodec, seeded_w2v
    from reference import spark as ref

    t = time.perf_counter()
    model = ref.load(seeded_bicodec("bicodec", 0))
    processor, w2v = ref.load_wav2vec2(seeded_w2v("xlsr53", 0))
    if device != "cpu":
        import torch

        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        model, w2v = model.to(device), w2v.to(device)
        _sync(device)
    load_s = time.perf_counter() - t

    if device == "cpu":
        def tokenize(wav: np.ndarray):
            feat = ref.wav2vec2_features(processor, w2v, wav)
            return ref.tokenize(model, feat, ref.ref_clip(wav)[None].astype(np.float32))

        return {"tokenize": tokenize, "detokenize": lambda sem, glob: ref.detokenize(model, sem, glob),
                "load_s": load_s, "device": device}

    import torch
    from types import SimpleNamespace

    from spark_tts_lib.models.audio_tokenizer import BiCodecTokenizer

    holder = SimpleNamespace(processor=processor, feature_extractor=w2v)

    def tokenize(wav: np.ndarray):
        with torch.no_grad():
            feat = BiCodecTokenizer.extract_wav2vec2_features(holder, wav)  # (1, T, 1024) on the device
            clip = torch.from_numpy(ref.ref_clip(wav)[None].astype(np.float32)).to(device)
            sem, glob = model.tokenize({"feat": feat, "ref_wav": clip})
            out = sem.cpu().numpy().astype(np.int32), glob.cpu().numpy().astype(np.int32)
        _sync(device)
        return out

    def detokenize(sem: np.ndarray, glob: np.ndarray):
        with torch.no_grad():
            wav = model.detokenize(torch.from_numpy(np.asarray(sem).astype(np.int64)).to(device),
                                   torch.from_numpy(np.asarray(glob).astype(np.int64)).to(device))
            out = wav[:, 0].cpu().numpy()
        _sync(device)
        return out

    return {"tokenize": tokenize, "detokenize": detokenize, "load_s": load_s, "device": device}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _release() -> None:
    """Hand freed memory back to the system: MLX's buffer cache, then glibc's free lists."""
    import ctypes
    import gc

    import mlx.core as mx

    gc.collect()
    mx.clear_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _memory(fn: Callable[[], object], mlx_peak: bool, cuda_peak: bool) -> Dict:
    """RSS growth (and MLX's peak, or torch's CUDA peak) of one call of fn, after handing freed memory back."""
    _release()
    if mlx_peak:
        import mlx.core as mx

        mx.reset_peak_memory()
        held = mx.get_active_memory()
    if cuda_peak:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        cuda_held = torch.cuda.memory_allocated()
    with RssPeak() as m:
        fn()
    row = {"rss_growth_mb": None if m.growth is None else m.growth / 2**20}
    if mlx_peak:
        row["mlx_peak_mb"] = mx.get_peak_memory() / 2**20
        row["mlx_above_held_mb"] = row["mlx_peak_mb"] - held / 2**20
    if cuda_peak:
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["cuda_above_held_mb"] = row["cuda_peak_mb"] - cuda_held / 2**20
    return row


def measure(impl_fn: Callable[[], object], ref_fn: Optional[Callable[[], object]], rounds: int,
            ref_device: str = "cpu") -> Tuple[Dict, Optional[Dict]]:
    """Median seconds of `rounds` calls per side after one warm-up call each, the sides' rounds alternating (impl,
    ref, then ref, impl, ...) so that a load change on a shared machine falls on both; then the memory of one
    more call per side."""
    fns = {"impl": impl_fn} if ref_fn is None else {"impl": impl_fn, "ref": ref_fn}
    runs = {k: times(f, n=0, warmup=1) for k, f in fns.items()}  # warm-ups
    for r in range(rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            runs[k] += times(fns[k], n=1, warmup=0)
    out = {k: {"s": float(np.median(v)), "runs_s": v} for k, v in runs.items()}
    out["impl"].update(_memory(impl_fn, mlx_peak=True, cuda_peak=False))
    if ref_fn is not None:
        out["ref"].update(_memory(ref_fn, mlx_peak=False, cuda_peak=ref_device.startswith("cuda")))
    return out["impl"], out.get("ref")


# ---------------------------------------------------------------------------------------------------- machine

def machine(impl_only: bool, ref_device: str = "cpu") -> Dict:
    import mlx.core as mx

    from impl import ops

    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "mlx": mx.__version__, "mlx_device": str(mx.default_device()), "conv_path": ops.path(),
            "blas": blas.blas_info()["blas"], "load_average": os.getloadavg()[0]}
    threads = blas.openblas_threads()
    info["blas_threads"] = None if threads is None else threads[0]()
    if not impl_only:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), ref_device=ref_device)
        if ref_device.startswith("cuda"):
            info.update(ref_device_name=torch.cuda.get_device_name(torch.device(ref_device)),
                        torch_cuda=torch.version.cuda)
    return info


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def run(seconds: List[float], rounds: int, impl_only: bool, ref_device: str = "cpu", ref_tf32: bool = True,
        phases: Tuple[str, ...] = ("tokenize", "detokenize")) -> Dict:
    impl = impl_side()
    ref = None if impl_only else ref_side(ref_device, ref_tf32)
    cuda = ref is not None and ref_device.startswith("cuda")
    out = {"machine": machine(impl_only, ref_device), "rounds": rounds, "impl_load_s": impl["load_s"],
           "reference_load_s": None if ref is None else ref["load_s"], "rows": []}
    m = out["machine"]
    if cuda:
        m["ref_tf32"], m["mlx_enable_tf32"] = ref_tf32, os.environ.get("MLX_ENABLE_TF32")
    peaks = [gemm_peak()] if "cpu" in m["mlx_device"] else []  # the fraction of it is stated for impl on the CPU
    where = "CPU" if not cuda else (f"{ref_device} ({m['ref_device_name']}, CUDA {m['torch_cuda']}, TF32 "
                                    f"{'on' if ref_tf32 else 'off'})")
    print(f"BiCodec + wav2vec2-large-xlsr-53, seeded real size; impl MLX {m['mlx']} on {m['mlx_device']} (conv path "
          f"{m['conv_path']}, BLAS {m['blas']})" + ("" if impl_only else f" vs official sparktts on torch "
                                                   f"{m['torch']} {where}, {m['torch_threads']} CPU threads")
          + f"; median of {rounds}, sides alternating; load: impl {impl['load_s']:.1f} s"
          + ("" if ref is None else f", reference {ref['load_s']:.1f} s"))
    print(f"{'audio':>6} {'phase':<10} {'impl s':>8} {'ref s':>8} {'ref/impl':>8} {'x realtime':>10} "
          f"{'MLX peak MB':>11} {'(above held)':>12} {'impl RSS+ MB':>12} {'ref RSS+ MB':>11} "
          + (f"{'ref CUDA peak MB':>16} {'(above held)':>12} " if cuda else "") + f"{'ids':>6} {'max|dy|':>8}")
    for sec in seconds:
        wav = speech(sec)
        sem, glob = impl["tokenize"](wav)
        same, dy = None, None
        if ref is not None:
            r_sem, r_glob = ref["tokenize"](wav)
            same = bool(np.array_equal(sem, r_sem) and np.array_equal(glob, r_glob))
            if "detokenize" in phases:
                dy = float(np.abs(np.array(impl["detokenize"](sem, glob)) - ref["detokenize"](sem, glob)).max())
        for phase, args in (("tokenize", (wav,)), ("detokenize", (sem, glob))):
            if phase not in phases:
                continue
            i, r = measure(lambda: impl[phase](*args), None if ref is None else lambda: ref[phase](*args), rounds,
                           ref_device)
            row = {"seconds": sec, "phase": phase, "frames": int(sem.shape[1]), "impl": i, "reference": r,
                   "reference_device": None if ref is None else ref_device,
                   "ratio": None if r is None else r["s"] / i["s"], "realtime_x": sec / i["s"],
                   "load_average": os.getloadavg()[0]}
            if phase == "tokenize":
                row["ids_equal"] = same
                flops = impl["flops"](len(wav))
                row["gemm_gflop"] = {k: v / 1e9 for k, v in flops.items()}
                row["gemm_gflop_total"] = sum(flops.values()) / 1e9
                row["impl_gflops"] = row["gemm_gflop_total"] / i["s"]
                row["reference_gflops"] = None if r is None else row["gemm_gflop_total"] / r["s"]
            else:
                row["max_abs_audio_diff"] = dy
            out["rows"].append(row)
            ids = "-" if phase != "tokenize" or same is None else ("equal" if same else "DIFF")
            print(f"{sec:>5g}s {phase:<10} {i['s']:>8.3f} {_fmt(r and r['s'], '8.3f'):>8} "
                  f"{_fmt(row['ratio'], '7.2f')}x {row['realtime_x']:>9.1f}x {i['mlx_peak_mb']:>11.0f} "
                  f"{i['mlx_above_held_mb']:>12.0f} "
                  f"{_fmt(i['rss_growth_mb'], '.0f'):>12} {_fmt(r and r['rss_growth_mb'], '.0f'):>11} "
                  + (f"{r['cuda_peak_mb']:>16.0f} {r['cuda_above_held_mb']:>12.0f} " if cuda else "")
                  + f"{ids:>6} {_fmt(dy if phase == 'detokenize' else None, '.2g'):>8}", flush=True)
    if peaks:
        peaks.append(gemm_peak())
        peak = max(p["peak_GFLOPs"] for p in peaks)
        out["gemm_peak"] = {"runs": peaks, "peak_GFLOPs": peak, "n": 1024}
        each = " / ".join(format(p["peak_GFLOPs"], ".0f") for p in peaks)
        print(f"fp32 GEMM peak measured in this run (bench.roofline.matmul_flops, 1024^3, best of 5, at start and "
              f"end): {each} GFLOP/s -> {peak:.0f}")
        for row in out["rows"]:
            if row["phase"] != "tokenize":
                continue
            row["impl_gemm_fraction"] = row["impl_gflops"] / peak
            row["reference_gemm_fraction"] = None if row["reference_gflops"] is None else \
                row["reference_gflops"] / peak
            g = row["gemm_gflop"]
            print(f"{row['seconds']:>5g}s tokenize: {row['gemm_gflop_total']:.1f} GFLOP of matrix products "
                  f"({', '.join(f'{k} {v:.1f}' for k, v in g.items())}; bench_spark_codec.tokenize_flops) -> impl "
                  f"{row['impl_gflops']:.0f} GFLOP/s = {row['impl_gemm_fraction']:.0%} of the peak"
                  + ("" if row["reference_gflops"] is None else
                     f"; official {row['reference_gflops']:.0f} GFLOP/s = {row['reference_gemm_fraction']:.0%} "
                     f"(same count; it also runs 8 wav2vec2 layers the ids never read)"))
    out["torch_imported"] = "torch" in sys.modules
    out["machine"]["load_average_end"] = os.getloadavg()[0]
    print(f"load average {m['load_average']:.2f} -> {out['machine']['load_average_end']:.2f} (a shared machine "
          f"slows both sides)" + (f"; torch imported: {out['torch_imported']}" if impl_only else ""))
    return out


# ---------------------------------------------------------------------------------------------------- stages

def _pair(impl_fn: Callable[[], object], ref_fn: Callable[[], object], rounds: int) -> Tuple[float, float]:
    """Median seconds of impl_fn and ref_fn over `rounds` alternating calls (impl, ref, then ref, impl, ...), after
    one warm-up call each."""
    impl_fn(), ref_fn()
    t = {0: [], 1: []}
    for r in range(rounds):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            (impl_fn, ref_fn)[k]()
            t[k].append(time.perf_counter() - t0)
    return float(np.median(t[0])), float(np.median(t[1]))


def stages(seconds: float, rounds: int) -> List[Dict]:
    """Tokenize of `seconds` of speech stage by stage, impl vs the official modules on the same inputs (impl's
    output of the stage before, as numpy), each pair alternating in this process (`_pair`): the wav2vec2 conv front,
    feature projection, positional conv, layer 0's parts (layer norm, attention, feed-forward: x 16 in a call), the
    16 layers the ids read (+ the 8 more the official side runs), the whole features; BiCodec's encoder + VQ, mel,
    speaker path (ECAPA -> perceiver -> FSQ) and its tokenize. Each impl call is evaluated inside the timing; torch
    under no_grad."""
    import mlx.core as mx
    import torch

    from impl import spark
    from impl.seeded.spark import seeded_bicodec, seeded_w2v
    from impl.spark import audio, wav2vec2
    from reference import spark as ref

    w2v, model = wav2vec2.load(seeded_w2v("xlsr53", 0)), spark.load(seeded_bicodec("bicodec", 0))
    processor, tw = ref.load_wav2vec2(seeded_w2v("xlsr53", 0))
    tm = ref.load(seeded_bicodec("bicodec", 0))
    wav = speech(seconds)
    x = wav2vec2.normalize(wav)

    def mlx(f):
        return lambda: mx.eval(f())

    def th(f):
        def g():
            with torch.no_grad():
                f()
        return g

    def t(a: mx.array):
        return torch.from_numpy(np.array(a))

    rows = []

    def row(name: str, impl_fn, ref_fn, note: str = ""):
        i, r = _pair(impl_fn, ref_fn, rounds)
        rows.append({"stage": name, "impl_s": i, "ref_s": r, "ratio": r / i, "note": note})
        print(f"{name:<28} {i * 1e3:9.1f} {r * 1e3:9.1f} {r / i:8.2f}x  {note}", flush=True)

    print(f"stages of tokenize, {seconds:g} s, median of {rounds} alternating; load {os.getloadavg()[0]:.2f}")
    print(f"{'stage':<28} {'impl ms':>9} {'ref ms':>9} {'ref/impl':>9}")
    L0, T0 = w2v.encoder.layers[0], tw.encoder.layers[0]
    xm = mx.array(x)[None, :, None]
    row("w2v conv front", mlx(lambda: w2v.feature_extractor(xm)),
        th(lambda: tw.feature_extractor(torch.from_numpy(x)[None])))
    fe = w2v.feature_extractor(xm)
    row("w2v feature projection", mlx(lambda: w2v.feature_projection(fe)[0]), th(lambda: tw.feature_projection(t(fe))))
    h = w2v.feature_projection(fe)[0]
    row("w2v pos conv", mlx(lambda: w2v.encoder.pos_conv_embed(h)), th(lambda: tw.encoder.pos_conv_embed(t(h))))
    row("w2v layer 0 layer norm", mlx(lambda: L0.layer_norm(h)), th(lambda: T0.layer_norm(t(h))),
        "x 32 a call")
    n = L0.layer_norm(h)
    row("w2v layer 0 attention", mlx(lambda: L0.attention(n)), th(lambda: T0.attention(t(n))),
        "x 16 a call")
    row("w2v layer 0 feed-forward", mlx(lambda: L0.feed_forward(n)), th(lambda: T0.feed_forward(t(n))),
        "x 16 a call")
    row("w2v layer 0", mlx(lambda: L0(h)), th(lambda: T0(t(h))), "x 16 a call")

    def chain(layers, x0, torch_side: bool):
        y = x0
        for layer in layers:
            y = layer(y)[0] if torch_side else layer(y)
        return y

    row("w2v layers 0-15", mlx(lambda: chain(w2v.encoder.layers, h, False)),
        th(lambda: chain(tw.encoder.layers[:16], t(h), True)))
    h16 = chain(w2v.encoder.layers, h, False)
    i = times(th(lambda: chain(tw.encoder.layers[16:], t(h16), True)), n=rounds)
    print(f"{'  official layers 16-23':<28} {'':>9} {np.median(i) * 1e3:9.1f}", flush=True)
    row("w2v features (whole)", lambda: wav2vec2.features(w2v, wav), lambda: ref.wav2vec2_features(processor, tw, wav))
    feat = wav2vec2.features(w2v, wav)
    clip = audio.ref_clip(wav).astype(np.float32)[None]
    cm = mx.array(clip)
    row("BiCodec encoder + VQ", mlx(lambda: model.quantizer.tokenize(model.encoder(feat))),
        th(lambda: tm.quantizer.tokenize(tm.encoder(t(feat).transpose(1, 2)))))
    row("BiCodec mel", mlx(lambda: model.mel(cm)), th(lambda: tm.mel_transformer(torch.from_numpy(clip))))
    mel = model.mel(cm)
    row("BiCodec speaker tokenize", mlx(lambda: model.speaker_encoder.tokenize(mel)),
        th(lambda: tm.speaker_encoder.tokenize(t(mel))))  # upstream transposes the (N, T, mels) input itself
    row("BiCodec tokenize (whole)", mlx(lambda: model.tokenize(feat, cm)),
        th(lambda: tm.tokenize({"feat": t(feat), "ref_wav": torch.from_numpy(clip)})))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return rows


# ---------------------------------------------------------------------------------------------------- pytest

if pytest is not None:
    @pytest.fixture(scope="module")
    def sides():
        return {"impl": impl_side(), "ref": ref_side(), "inputs": {}}

    def _inputs(sides: Dict, seconds: float):
        if seconds not in sides["inputs"]:
            wav = speech(seconds)
            sides["inputs"][seconds] = (wav, *sides["impl"]["tokenize"](wav))
        return sides["inputs"][seconds]

    def _case(benchmark, sides, phase: str, seconds: float):
        wav, sem, glob = _inputs(sides, seconds)
        args = (wav,) if phase == "tokenize" else (sem, glob)
        rounds = 3 if seconds <= 10 else 1
        ref_s = float(np.median(times(lambda: sides["ref"][phase](*args), n=rounds)))
        benchmark.pedantic(lambda: sides["impl"][phase](*args), rounds=rounds, warmup_rounds=1)
        impl_s = benchmark.stats.stats.median
        benchmark.extra_info.update(ratio=ref_s / impl_s, reference_s=ref_s, impl_s=impl_s, seconds=seconds,
                                    realtime_x=seconds / impl_s, what=f"BiCodec {phase}, {seconds:g} s")

    @pytest.mark.parametrize("seconds", SECONDS, ids=[f"{s}s" for s in SECONDS])
    def bench_spark_codec_tokenize(benchmark, sides, seconds):
        _case(benchmark, sides, "tokenize", seconds)

    @pytest.mark.parametrize("seconds", SECONDS, ids=[f"{s}s" for s in SECONDS])
    def bench_spark_codec_detokenize(benchmark, sides, seconds):
        _case(benchmark, sides, "detokenize", seconds)


# ---------------------------------------------------------------------------------------------------- main

def _cuda_problem(device: str, impl_only: bool) -> Optional[str]:
    """Why the official side cannot run on `device` ("cuda" or "cuda:N"), or None."""
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        return "expected cpu, cuda or cuda:N"
    if impl_only:
        return "has no reference side to run with --impl-only"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    index = int(device[5:] or 0) if device.startswith("cuda:") else 0
    if index >= torch.cuda.device_count():
        return f"torch sees {torch.cuda.device_count()} CUDA device(s)"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_spark_codec", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[1, 10], help="clip lengths (default 1 10; 60 is slow)")
    p.add_argument("--rounds", type=int, default=3, help="timed calls per side and phase (median), after a warm-up")
    p.add_argument("--impl-only", action="store_true", help="time impl alone; torch is never imported")
    p.add_argument("--ref-device", default="cpu", metavar="DEVICE",
                   help="torch device of the official side: cpu (default) or cuda[:N] (models and inputs moved "
                        "there, synchronised inside the timed call, its CUDA peak reported)")
    p.add_argument("--ref-no-tf32", action="store_true",
                   help="with --ref-device cuda: full fp32 on the official side (torch runs CUDA convolutions in TF32 "
                        "by default: faster, ~1e-3 from fp32); MLX_ENABLE_TF32=0 in the environment does the same for "
                        "impl's fp32 matrix products on a GPU (MLX's default allows TF32 there)")
    p.add_argument("--phase", choices=("tokenize", "detokenize", "both"), default="both",
                   help="time only this phase (default both)")
    p.add_argument("--blas-threads", type=int, metavar="N",
                   help="run MLX's matrix products on N OpenBLAS threads for the whole process (default: OpenBLAS's "
                        "own count, one per core); nothing where MLX's BLAS is not impl.accel.blas' OpenBLAS")
    p.add_argument("--out", metavar="FILE.json", help="also store the rows as JSON")
    p.add_argument("--stages", action="store_true",
                   help="instead: tokenize stage by stage (wav2vec2 conv front, projection, positional conv, layer 0's "
                        "parts, layers 0-15, BiCodec encoder + VQ, mel, speaker path), impl vs the official module "
                        "on the same input, alternating, median of --rounds; one --seconds value")
    args = p.parse_args(argv)
    bad = [s for s in args.seconds if not 0.025 <= s <= 60]
    if args.blas_threads is not None and args.blas_threads < 1:
        print(f"bench_spark_codec: --blas-threads must be >= 1 (got {args.blas_threads})", file=sys.stderr)
        return 2
    if bad or args.rounds < 1:
        print(f"bench_spark_codec: --seconds must lie in [0.025, 60] and --rounds >= 1 (got {bad or args.rounds})",
              file=sys.stderr)
        return 2
    if args.out and (not args.out.endswith(".json") or not Path(args.out).resolve().parent.is_dir()):
        print(f"bench_spark_codec: --out {args.out}: expected a .json file in an existing folder", file=sys.stderr)
        return 2
    if args.ref_device != "cpu":
        problem = _cuda_problem(args.ref_device, args.impl_only)
        if problem:
            print(f"bench_spark_codec: --ref-device {args.ref_device}: {problem}", file=sys.stderr)
            return 2
    blas.enable_fast_blas()
    if args.blas_threads is not None and blas.openblas_threads() is not None:
        blas.openblas_threads()[1](args.blas_threads)
    if args.stages:
        if len(args.seconds) != 1 or args.impl_only or args.ref_device != "cpu":
            print("bench_spark_codec: --stages takes one --seconds value and runs both sides on the CPU",
                  file=sys.stderr)
            return 2
        rows = stages(args.seconds[0], args.rounds)
        if args.out:
            Path(args.out).write_text(json.dumps({"seconds": args.seconds[0], "rounds": args.rounds,
                                                  "stages": rows}, indent=1) + "\n")
            print(f"-> {args.out}")
        return 0
    phases = ("tokenize", "detokenize") if args.phase == "both" else (args.phase,)
    out = run(args.seconds, args.rounds, args.impl_only, args.ref_device, not args.ref_no_tf32, phases)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
