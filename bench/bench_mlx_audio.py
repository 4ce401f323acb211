"""impl vs mlx-audio 0.6.2 (the MLX port a user would pick instead), one run, the same seeded checkpoints, inputs and
settings, each case's two sides alternating (impl, mlx-audio, then mlx-audio, impl, ...) so that a shared host's
load falls on both; median of --rounds after one warm-up call each; ratio = mlx-audio time / impl time (> 1: impl
faster). mlx-audio is loaded through parity/ports/mlx_audio.py (its own loaders and sanitizers).

    ./vp setup-port mlx-audio && ./vp python -m bench.bench_mlx_audio [--cases dac outetts spark qwen2] [--quick]
        [--seconds 1 10] [--rounds 3] [--out FILE.json]
    PYTHONPATH=/tmp/site:. VOICEPORT_BLAS=0 python -m bench.bench_mlx_audio --out FILE.json   # a GPU machine with
        mlx-audio importable (then no port folder is needed)

Cases:
- dac: DAC 24 kHz encode = audio (1, L) -> codes (impl `DAC.encode`; mlx-audio `DAC.encode` on (1, 1, L)); decode =
  those codes -> audio (impl `DAC.decode`; mlx-audio `quantizer.from_codes` + `DAC.decode`, what its
  DacInterface.decode runs per chunk); --seconds of speech each.
- outetts: the OuteTTS 1.0 LM (Llama 1B, "small" with --quick) in each side's own generation loop and sampler at
  OuteTTS's settings (temperature 0.4, top-k 40, top-p 0.9, min-p 0.05, repetition penalty 1.1 over 64 ids), the
  same prompt ids: impl `TTS.generate_ids` (impl.outetts.generate.load: `impl.accel.apply`'s shipped variant, the
  seeded `Sampler`, `impl.runtime.decode_loop`); mlx-audio the loop of its outetts `Model.generate`
  (`lm.generate.stream_generate` with `make_sampler(0.4, 0.9, min_p=0.05, top_k=40)` and
  `make_logits_processors(None, 1.1, 64)`, the ids appended per token). The prompt: the v3 completion prompt of
  TEXT with mlx-audio's default speaker profile cut to its first words so that it holds at most --prompt-tokens
  ids (a ~3 s voice reference at the default 600; the whole profile is ~1,800). Rows: prefill (call to first
  token) and decode (first token to last: tokens/s); both run exactly the new tokens asked (no stop id: random
  weights may draw `<|im_end|>` at any step; mlx-audio's tokenizer is passed with no EOS ids).
- spark: Spark-TTS BiCodec at the real size (+ wav2vec2-large-xlsr-53), tokenize = wav2vec2 features + semantic +
  global ids of --seconds of speech (impl `wav2vec2.features` + `BiCodec.tokenize`, as impl.spark.generate
  voice_from_audio; mlx-audio `BiCodecTokenizer.tokenize(mx.array(wav))`, as its spark Model.process_prompt, on a
  staged Spark folder: audio_tokenizer_config.yaml + the BiCodec and the seeded official wav2vec2 folder, loaded by
  its own `BiCodec.load_from_checkpoint`, `Wav2Vec2FeatureExtractor` and `Wav2Vec2Model.from_pretrained`);
  detokenize = impl's ids -> audio (impl `BiCodec.detokenize`; mlx-audio `BiCodecTokenizer.detokenize`). mlx-audio's
  BiCodec and wav2vec2 get `eval()` first: as shipped its tokenize raises (docs/ports.md, "Spark global, as
  loaded") and its wav2vec2's dropout is on (random features and semantic ids). With
  --quick: mlx-audio's tiny-dec256 BiCodec config and the tiny wav2vec2.
- qwen2: Spark's Qwen2 0.5B (--quick: small) greedy decode after a 16-token prompt (impl `generate_greedy` on its
  shipped variant; mlx-audio `lm.generate.generate_step`, default argmax sampler).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.timing import times

CASES = ("dac", "outetts", "spark", "qwen2")
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find its friends."
# mlx-audio's outetts Model.generate defaults (tts/models/outetts/outetts.py): temperature 0.4, top_p 0.9, min_p
# 0.05, top_k 40, repetition_penalty 1.1 over repetition_context_size 64 -- outetts' SamplerConfig defaults, which
# impl's GenerationConfig() gives (impl.outetts.sampler.SamplerConfig).
OUTETTS_SAMPLER = {"temperature": 0.4, "top_p": 0.9, "min_p": 0.05, "top_k": 40, "repetition_penalty": 1.1,
                   "repetition_context_size": 64}

Row = Dict[str, object]


def alternating(a: Callable[[], object], b: Callable[[], object], rounds: int, warmup: int = 1,
                budget_s: Optional[float] = None) -> Tuple[List[object], List[object]]:
    """The results of up to `rounds` calls of a and of b after `warmup` calls each, the order alternating by round
    (a b, b a, a b, ...). budget_s: fewer rounds (at least one) where the warm-up pair says that `rounds` pairs
    would take longer (mlx-audio's CPU convolutions take minutes on 10 s of audio)."""
    t = time.perf_counter()
    for _ in range(warmup):
        a()
        b()
    pair = (time.perf_counter() - t) / max(warmup, 1)
    if budget_s is not None and warmup:
        rounds = max(1, min(rounds, int(budget_s // max(pair, 1e-9))))
    ra: List[object] = []
    rb: List[object] = []
    for r in range(rounds):
        for f, out in (((a, ra), (b, rb)) if r % 2 == 0 else ((b, rb), (a, ra))):
            out.append(f())
    return ra, rb


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    return lambda: times(fn, n=1, warmup=0)[0]


def row(case: str, impl_s: Sequence[float], mlx_audio_s: Sequence[float], **extra) -> Row:
    """One record row: medians (s), the ratio mlx-audio / impl, every run's seconds."""
    ti, tt = float(np.median(impl_s)), float(np.median(mlx_audio_s))
    out: Row = {"case": case, "impl_s": round(ti, 4), "mlx_audio_s": round(tt, 4),
                "mlx_audio / impl": round(tt / ti, 2)}
    out.update(extra)
    out["runs_s"] = {"impl": [round(float(x), 4) for x in impl_s],
                     "mlx_audio": [round(float(x), 4) for x in mlx_audio_s]}
    return out


# --------------------------------------------------------------------------------------------------------- DAC

def dac_cases(seconds: Sequence[float], rounds: int, budget: Optional[float] = None) -> List[Row]:
    import mlx.core as mx

    from impl import dac
    from parity.ports import mlx_audio as port
    from parity.specs.dac import checkpoints, speech

    st, _ = checkpoints("24khz_speech", 0)
    ours, theirs = dac.load(st), port.load_dac({"config": "24khz_speech", "seed": 0})
    rows = []
    for s in seconds:
        audio = speech(24000, int(s * 24000))[None]
        codes = ours.encode(mx.array(audio))
        mx.eval(codes)
        x = mx.array(audio)

        def enc_ours():
            mx.eval(ours.encode(x))

        def enc_theirs():
            mx.eval(theirs.encode(x[:, None, :])[1])

        def dec_ours():
            mx.eval(ours.decode(codes))

        def dec_theirs():
            mx.eval(theirs.decode(theirs.quantizer.from_codes(codes)[0]))

        for phase, a, b in (("encode", enc_ours, enc_theirs), ("decode", dec_ours, dec_theirs)):
            ti, tt = alternating(timed(a), timed(b), rounds, budget_s=budget)
            rows.append(row(f"dac {phase} {s:g} s", ti, tt))
    return rows


# ----------------------------------------------------------------------------------------------------- OuteTTS

class _NoStop:
    """mlx-audio's tokenizer with no EOS id (`stream_generate` reads `eos_token_ids`), everything else its own:
    random weights may draw `<|im_end|>` at any step, and both loops must run the same number of tokens."""

    eos_token_ids = ()

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def outetts_prompt(tokenizer, speaker: Dict, max_tokens: int) -> Tuple[List[int], int]:
    """impl's v3 completion prompt ids of TEXT with `speaker` cut to its first words so that the prompt holds at
    most `max_tokens` ids (at least one word); returns (ids, words kept)."""
    from impl.outetts.prompt import prompt_ids

    best = None
    for k in range(1, len(speaker["words"]) + 1):
        words = speaker["words"][:k]
        ids = prompt_ids(tokenizer, TEXT, dict(speaker, words=words, text=" ".join(w["word"].strip() for w in words)))
        if best is not None and len(ids) > max_tokens:
            break
        best = (list(ids), k)
    return best


def outetts_case(quick: bool, new_tokens: int, prompt_tokens: int, rounds: int, budget: Optional[float] = None
                 ) -> List[Row]:
    import mlx.core as mx
    from mlx_audio.lm.generate import stream_generate
    from mlx_audio.lm.sample_utils import make_logits_processors, make_sampler
    from mlx_audio.tts.models import outetts as m_outetts

    from impl import llama
    from impl.outetts.generate import GenerationConfig, sampler_config
    from impl.outetts.sampler import Sampler
    from impl.outetts.tokenizer import Tokenizer
    from impl.runtime import apply_variant, decode_loop, default_dtype
    from parity.ports import mlx_audio as port

    config = "small" if quick else "1b"
    theirs = port.load_outetts_lm({"config": config, "seed": 0})
    folder = Path(theirs.config.tokenizer_name)  # the staged HF folder: weights, config.json, v3 tokenizer
    # impl as impl.outetts.generate.load builds its TTS (dtype "auto", variant "auto": impl.accel.apply), and
    # TTS.generate_ids' call of the one decode loop
    lm = llama.load(folder, dtype=default_dtype())
    variant = apply_variant(lm, "auto")
    tokenizer = Tokenizer(folder)
    speaker = json.loads((Path(m_outetts.__file__).parent / "default_speaker.json").read_text())
    prompt, words = outetts_prompt(tokenizer, speaker, prompt_tokens)
    V = lm.args.vocab_size
    prompt = [t % V for t in prompt]  # --quick: the small LM's 1,000 ids (the real vocabulary holds them all)
    sc = sampler_config(GenerationConfig())
    ours_settings = {"temperature": sc.temperature, "top_p": sc.top_p, "min_p": sc.min_p, "top_k": sc.top_k,
                     "repetition_penalty": sc.repetition_penalty, "repetition_context_size": sc.repetition_range}
    assert ours_settings == OUTETTS_SAMPLER, (ours_settings, OUTETTS_SAMPLER)
    L = len(prompt)
    seed = [0]
    no_stop = _NoStop(theirs.tokenizer)

    def ours():
        seed[0] += 1
        first: List[float] = []
        t0 = time.perf_counter()
        ids = decode_loop(lm, llama.make_cache(lm), prompt, Sampler(sc, seed[0]), new_tokens, (),
                          lambda _t: first or first.append(time.perf_counter()))
        return t0, first[0], time.perf_counter(), len(ids)

    def theirs_run():  # the body of mlx-audio's outetts Model.generate, less tqdm and the codec
        s = OUTETTS_SAMPLER
        seed[0] += 1
        mx.random.seed(seed[0])
        t0 = time.perf_counter()
        sampler = make_sampler(s["temperature"], s["top_p"], min_p=s["min_p"], top_k=s["top_k"])
        processors = make_logits_processors(None, s["repetition_penalty"], s["repetition_context_size"])
        input_ids = mx.array(prompt, dtype=mx.int32)[None]
        first = None
        for response in stream_generate(theirs.model, tokenizer=no_stop, prompt=input_ids.squeeze(0),
                                        max_tokens=new_tokens, sampler=sampler, logits_processors=processors):
            next_token = mx.array([response.token])
            input_ids = mx.concatenate([input_ids, next_token[None, :]], axis=1)
            first = first or time.perf_counter()
        n = len(input_ids[:, L:].tolist()[0])
        return t0, first, time.perf_counter(), n

    ri, rt = alternating(ours, theirs_run, rounds, budget_s=budget)
    pre_i, pre_t = [f - t0 for t0, f, _, _ in ri], [f - t0 for t0, f, _, _ in rt]
    dec_i, dec_t = [t1 - f for _, f, t1, _ in ri], [t1 - f for _, f, t1, _ in rt]
    n_i, n_t = [n for *_, n in ri], [n for *_, n in rt]
    assert set(n_i) == set(n_t) == {new_tokens}, (n_i, n_t)  # the decode times compare the same token counts
    rate = lambda secs, ns: round(float(np.median([(n - 1) / s for s, n in zip(secs, ns)])), 2)  # noqa: E731
    base = f"outetts {config} ({variant})"
    return [row(f"{base} prefill {L} tok", pre_i, pre_t, prompt_tokens=L, speaker_words=words),
            row(f"{base} decode {new_tokens} tok, sampled", dec_i, dec_t, impl_tok_s=rate(dec_i, n_i),
                mlx_audio_tok_s=rate(dec_t, n_t), tokens={"impl": n_i, "mlx_audio": n_t})]


# ------------------------------------------------------------------------------------------------------- Spark

def spark_folder(quick: bool) -> Path:
    """A Spark-TTS folder as mlx-audio's BiCodecTokenizer reads it (audio_tokenizer_config.yaml: the official
    config.yaml under the name mlx-community's conversions give it; BiCodec/: the adapter's staged seeded BiCodec;
    wav2vec2-large-xlsr-53/: the seeded official HF folder, as impl reads it), links, cached."""
    import hashlib

    from impl._io import atomic_dir
    from impl.seeded import cache_dir
    from impl.seeded.spark import TOP_CONFIG, seeded_w2v
    from parity.ports import mlx_audio as port

    bicodec = port.bicodec_folder(port.SPARK_QUICK if quick else "bicodec")
    w2v = seeded_w2v("tiny" if quick else "xlsr53")
    key = hashlib.sha256(f"{bicodec.resolve()} {w2v.resolve()} {TOP_CONFIG}".encode()).hexdigest()[:12]
    dest = cache_dir("ports") / f"mlx-audio-{port.VERSION}-spark-{key}"
    if not (dest / "audio_tokenizer_config.yaml").exists():
        with atomic_dir(dest) as tmp:
            (Path(tmp) / "BiCodec").symlink_to(bicodec.resolve())
            (Path(tmp) / "wav2vec2-large-xlsr-53").symlink_to(w2v.resolve())
            (Path(tmp) / "audio_tokenizer_config.yaml").write_text(TOP_CONFIG)
    return dest


def spark_cases(quick: bool, seconds: Sequence[float], rounds: int, budget: Optional[float] = None) -> List[Row]:
    import warnings

    import mlx.core as mx
    from mlx_audio.tts.models.spark.audio_tokenizer import BiCodecTokenizer

    from bench.bench_spark_codec import speech
    from impl import spark
    from impl.seeded.spark import seeded_bicodec, seeded_w2v
    from impl.spark import audio, wav2vec2
    from parity.ports import mlx_audio as port

    folder = spark_folder(quick)
    ours = spark.load(seeded_bicodec(port.SPARK_QUICK if quick else "bicodec"))
    w2v = wav2vec2.load(seeded_w2v("tiny" if quick else "xlsr53"))
    with warnings.catch_warnings():  # Wav2Vec2Model.from_pretrained's DeprecationWarning (it is what it calls)
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = BiCodecTokenizer(folder)
    # As shipped both models stay in MLX's training mode (plain attributes the Spark model's eval() never reaches):
    # tokenize raises in the speaker encoder's BatchNorm (docs/ports.md, "Spark global, as loaded") and wav2vec2's
    # dropout (hidden 0.1) randomises the features, hence the semantic ids. The fix, on both:
    theirs.model.eval()
    theirs.feature_extractor.eval()
    label = "tiny-dec256" if quick else "real size"
    rows = []
    for s in seconds:
        wav = speech(s)  # float64, volume-normalised as sparktts' load_audio

        def tok_ours():
            feat = wav2vec2.features(w2v, wav)
            clip = mx.array(audio.ref_clip(wav).astype(np.float32))[None]
            sem, glob = ours.tokenize(feat, clip)
            mx.eval(sem, glob)
            return sem, glob

        x = mx.array(wav.astype(np.float32))

        def tok_theirs():
            glob, sem = theirs.tokenize(x)
            mx.eval(glob, sem)
            return sem, glob

        sem, glob = tok_ours()
        sem_t, glob_t = tok_theirs()
        same = {"semantic": bool(np.array_equal(np.array(sem).reshape(-1), np.array(sem_t).reshape(-1))),
                "global": bool(np.array_equal(np.array(glob).reshape(-1), np.array(glob_t).reshape(-1)))}
        sem_i, glob_i = mx.array(np.array(sem).astype(np.int32)), mx.array(np.array(glob).astype(np.int32))

        def detok_ours():
            mx.eval(ours.detokenize(sem_i, glob_i))

        def detok_theirs():  # BiCodecTokenizer.detokenize(global (1, 32), semantic (1, T))
            mx.eval(theirs.detokenize(glob_i.reshape(1, -1), sem_i))

        ti, tt = alternating(timed(tok_ours), timed(tok_theirs), rounds, budget_s=budget)
        rows.append(row(f"spark tokenize {s:g} s ({label})", ti, tt, ids_equal=same))
        ti, tt = alternating(timed(detok_ours), timed(detok_theirs), rounds, budget_s=budget)
        rows.append(row(f"spark detokenize {s:g} s ({label})", ti, tt))
    return rows


# ------------------------------------------------------------------------------------------------------- Qwen2

def qwen2_case(quick: bool, steps: int, rounds: int, budget: Optional[float] = None) -> List[Row]:
    from impl import accel, qwen2
    from impl.outetts.generate import generate_greedy
    from parity.ports import mlx_audio as port
    from parity.specs.qwen2 import checkpoint, config_dict

    config = "small" if quick else "0.5b"
    ours = qwen2.load(checkpoint(config, 0))
    variant = accel.apply(ours)
    theirs = port.load_spark_lm({"config": config, "seed": 0}).model
    prompt = np.random.default_rng(0).integers(0, config_dict(config)["vocab_size"], 16).tolist()
    ti, tt = alternating(timed(lambda: generate_greedy(ours, prompt, steps)),
                         timed(lambda: port.greedy_ids(theirs, prompt, steps)), rounds, budget_s=budget)
    rate = lambda secs: round(steps / float(np.median(secs)), 2)  # noqa: E731
    return [row(f"qwen2 {config} greedy {steps} tok ({variant})", ti, tt, impl_tok_s=rate(ti),
                mlx_audio_tok_s=rate(tt))]


# ----------------------------------------------------------------------------------------------------- the run

def machine() -> str:
    import mlx.core as mx

    from impl.accel import blas

    info = mx.device_info() if hasattr(mx, "device_info") else {}
    tf32 = (f" weights, MLX_ENABLE_TF32={os.environ.get('MLX_ENABLE_TF32')} (None: mlx-cuda's default, TF32 "
            "products on both sides)")
    name = info.get("device_name") or platform.processor() or platform.machine()
    return (f"{name}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, MLX {mx.__version__} on {mx.default_device()}, "
            f"BLAS {blas.blas_info()['blas']}, fp32" + ("" if mx.default_device() == mx.cpu else tf32))


def git_sha() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def record(rows: List[Row], argv: Sequence[str], load: Tuple[float, float], wall_s: float, version: str) -> Dict:
    """The stored record (bench/cpu_runs, bench/gpu_runs): provenance, then the rows."""
    return {"what": "impl vs mlx-audio (the MLX port a user would pick instead), same seeded checkpoints, inputs "
                    "and settings, one run, the sides alternating; ratio mlx_audio / impl (> 1: impl faster)",
            "machine": machine(), "date": time.strftime("%Y-%m-%d", time.gmtime()), "git_sha": git_sha(),
            "command": "python -m bench.bench_mlx_audio " + " ".join(argv),
            "mlx_audio": version, "load_average_before_after": [round(x, 2) for x in load],
            "wall_s": round(wall_s, 1), "rows": rows}


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.bench_mlx_audio", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--quick", action="store_true", help="small LM configs, the tiny-dec256 BiCodec and tiny wav2vec2")
    p.add_argument("--seconds", type=float, nargs="+", default=[1, 10], help="audio lengths for dac and spark")
    p.add_argument("--rounds", type=int, default=3, help="timed calls per side after one warm-up call each")
    p.add_argument("--decode", type=int, default=64, help="qwen2: greedy tokens")
    p.add_argument("--lm-tokens", type=int, default=None,
                   help="outetts: new tokens (default 64 on the CPU, 256 on a GPU)")
    p.add_argument("--prompt-tokens", type=int, default=600, help="outetts: the prompt's most ids")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds a case's timed rounds may take: fewer rounds (at least one) where its warm-up pair "
                        "says they would take longer")
    p.add_argument("--out", help="write the record (JSON) here")
    a = p.parse_args(argv)
    import mlx.core as mx

    from parity.ports import activate

    activate("mlx-audio", "mlx_audio")
    lm_tokens = a.lm_tokens or (64 if mx.default_device() == mx.cpu else 256)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    print(machine(), flush=True)
    rows: List[Row] = []
    for case in a.cases:
        if case == "dac":
            new = dac_cases(a.seconds, a.rounds, a.budget)
        elif case == "outetts":
            new = outetts_case(a.quick, lm_tokens, a.prompt_tokens, a.rounds, a.budget)
        elif case == "spark":
            new = spark_cases(a.quick, a.seconds, a.rounds, a.budget)
        else:
            new = qwen2_case(a.quick, a.decode, a.rounds, a.budget)
        for r in new:
            print(f"{r['case']:<44} impl {r['impl_s']:>9.4f} s  mlx-audio {r['mlx_audio_s']:>9.4f} s  "
                  f"{r['mlx_audio / impl']:>6.2f}x" + "".join(f"  {k} {r[k]}" for k in ("impl_tok_s", "mlx_audio_tok_s",
                                                                                         "ids_equal") if k in r),
                  flush=True)
        rows += new
    wall = time.perf_counter() - t0
    print(f"({wall:.0f} s, load average {load0:.2f} -> {os.getloadavg()[0]:.2f})")
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        from mlx_audio.version import __version__ as version
        out.write_text(json.dumps(record(rows, argv, (load0, os.getloadavg()[0]), wall, version), indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
