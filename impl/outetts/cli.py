"""`voiceport tts`: text + speaker profile -> speech, OuteTTS 1.0 (v3 interface) in MLX; `--model spark`:
Spark-TTS (impl/spark/tts.py).

    voiceport tts --text "Hello there." --speaker speaker.json --out out.wav [--model DIR] [--codec PATH]
                  [--seed N] [--max-new-tokens N] [--greedy] [--stream]
    voiceport tts --model spark --text "Hello there." --prompt-audio ref.wav [--prompt-text TEXT] --out out.wav
    voiceport tts --model spark --text "Hello there." --gender female [--pitch P] [--speed S] --out out.wav

Prints tokens/s and RTF (compute seconds / audio seconds; 150 code tokens make one second of audio).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

DEFAULTS_NOTE = ("Without --model/--codec the embedded seeded checkpoints are used: the real architectures "
                 "(OuteTTS 1.0 1B LM, DAC 24 kHz) with RANDOM weights, generated once into $VOICEPORT_CACHE "
                 "(several GB, minutes). The pipeline is the real one; the audio is noise. A random LM rarely "
                 "emits <|im_end|>: the default --max-new-tokens cap bounds each chunk.")
CAP_HELP = ("cap on new tokens per text chunk (default: the chunk's expected length doubled: 2 x the speaker "
            "profile's audio tokens per character x the chunk's characters + 64; outetts itself runs to "
            "<|im_end|> or --max-length)")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class TTSInputError(ValueError):
    """Bad command-line input (numbers, model folder)."""


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Text + OuteTTS v3 speaker profile -> speech (OuteTTS 1.0 in MLX). " + DEFAULTS_NOTE)
    p.add_argument("--text", required=True, help="text to speak (long texts are split into chunks, as outetts)")
    p.add_argument("--speaker", metavar="FILE", help="OuteTTS v3 speaker profile (.json); required for OuteTTS")
    p.add_argument("--out", required=True, metavar="FILE", help="output audio (.wav, .flac or .ogg; 24 kHz)")
    p.add_argument("--model", metavar="MODEL", default=None,
                   help="outetts (default: the embedded seeded 1B checkpoint, random weights), an OuteTTS HF model "
                        "folder (config.json, safetensors, tokenizer.json), spark (the embedded seeded "
                        "Spark-TTS-0.5B, random weights) or a Spark-TTS folder (LLM/, BiCodec/, "
                        "wav2vec2-large-xlsr-53/, config.yaml)")
    p.add_argument("--codec", metavar="PATH", default=None,
                   help="DAC 24 kHz checkpoint; default: embedded seeded checkpoint (random weights)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed, >= 0 (default 0)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N", help=CAP_HELP)
    p.add_argument("--max-length", type=int, default=8192, metavar="N",
                   help="prompt + generated tokens per chunk, as outetts' max_length (default 8192)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="sampling temperature (default: outetts 0.4, Spark-TTS 0.8)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (after the repetition penalty)")
    p.add_argument("--quantize", default=None, choices=["q8", "q4"],
                   help="quantize the LM's weights to 8 or 4 bits (groups of 64) after loading: less memory; "
                        "speed depends on the backend (see the README's GPU table)")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="LM compute dtype (default: float32 on CPU, where MLX's bf16/fp16 matmuls are far "
                        "slower than fp32 through BLAS; the checkpoint's dtype on a GPU)")
    p.add_argument("--stream", action="store_true",
                   help="decode each text chunk as soon as it is generated (output written at the end)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s = p.add_argument_group("Spark-TTS (--model spark or a Spark-TTS folder)")
    s.add_argument("--prompt-audio", metavar="FILE", default=None,
                   help="voice cloning: audio of the voice (wav/flac/ogg, any rate; 25 ms to 60 s, not silent)")
    s.add_argument("--prompt-text", metavar="TEXT", default=None,
                   help="transcript of --prompt-audio (upstream joins it to --text with no separator)")
    s.add_argument("--gender", default=None, metavar="G",
                   help="voice creation instead of cloning: female or male")
    s.add_argument("--pitch", default=None, metavar="LEVEL",
                   help="created voice's pitch: very_low, low, moderate (default), high, very_high")
    s.add_argument("--speed", default=None, metavar="LEVEL",
                   help="created voice's speed: very_low, low, moderate (default), high, very_high")


def _load_codec(path: Optional[str]):
    """`impl.dac.load_codec` (the embedded seeded DAC when path is None); tests replace this with a fake codec."""
    from impl.dac import load_codec

    return load_codec(path)


def _check_numbers(args) -> None:
    import math

    if args.seed < 0:
        raise TTSInputError(f"--seed {args.seed}: the seed must be >= 0")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise TTSInputError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")
    if args.max_length < 2:
        raise TTSInputError(f"--max-length {args.max_length}: must be >= 2")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise TTSInputError(f"--temperature {args.temperature}: must be a finite number >= 0")


SPARK_ONLY = ("prompt_audio", "prompt_text", "gender", "pitch", "speed")


def run(args) -> int:
    from impl.spark import tts as spark_tts

    if args.model == "spark" or (args.model not in (None, "outetts") and spark_tts.is_spark_folder(args.model)):
        return spark_tts.run(args)
    args.model = None if args.model == "outetts" else args.model
    given = [f"--{k.replace('_', '-')}" for k in SPARK_ONLY if getattr(args, k) is not None]
    if given:
        raise TTSInputError(f"{', '.join(given)}: Spark-TTS options; add --model spark (or a Spark-TTS folder)")
    if args.speaker is None:
        raise TTSInputError("the following arguments are required: --speaker (voiceport tts --help)")
    if args.temperature is None:
        args.temperature = 0.4  # outetts' SamplerConfig default
    return _run_outetts(args)


def _run_outetts(args) -> int:
    from impl._io import check_output
    from impl.audio import save_audio
    from impl.outetts import generate as G
    from impl.outetts.sampler import SamplerConfig
    from impl.outetts.text import chunk_text, TextError
    from impl.seeded import default_model
    from impl.speaker.profile import load_speaker

    # Every input error before any loading.
    out = check_output(args.out, "--out", AUDIO_SUFFIXES, "audio")
    speaker = load_speaker(args.speaker)
    if not chunk_text(args.text):
        raise TextError("--text is empty: nothing to speak")
    _check_numbers(args)
    if args.model is not None and not Path(args.model).is_dir():
        raise FileNotFoundError(f"--model {args.model}: no such model folder (config.json, safetensors, "
                                "tokenizer.json)")
    sampler = SamplerConfig(temperature=0.0 if args.greedy else args.temperature)
    config = G.GenerationConfig(sampler=sampler, max_length=args.max_length,
                                max_new_tokens=G.AUTO if args.max_new_tokens is None else args.max_new_tokens,
                                seed=args.seed)

    t_load = time.perf_counter()
    # mlx-cuda's first run: its kernels compile in child processes while the codec and the LM load (G.load joins)
    G.start_kernel_warmup(args.model, args.dtype or G.default_dtype(), args.quantize)
    codec = _load_codec(args.codec)  # seconds, before the 1B LM (minutes the first time): its errors come first
    if args.model is None:
        print("using the embedded seeded OuteTTS 1.0 1B checkpoint (random weights: the audio is noise)",
              file=sys.stderr)
    model_dir = default_model() if args.model is None else Path(args.model)
    tts = G.load(model_dir, codec=codec, dtype=args.dtype or G.default_dtype(), quantize=args.quantize)
    try:
        plans = tts.plan(args.text, speaker, config)  # prompt errors (profile too long) before generating
    except G.GenerationError as e:
        raise G.GenerationError(f"--max-length {args.max_length}: {e}") from None
    load_s = time.perf_counter() - t_load

    progress = _Progress(args.quiet, plans)
    caught = warnings.catch_warnings(record=True)  # library warnings become one "note:" line each, at the end
    notes = caught.__enter__()
    warnings.simplefilter("always")
    t0 = time.perf_counter()
    totals = _Totals()
    pieces: List[np.ndarray] = []
    tokens: List[int] = []
    for r in tts.generate_chunks(args.text, speaker, config, on_token=progress.token, on_chunk=progress.chunk,
                                 plans=plans):
        progress.done(r)
        totals.add(r, tts.stop_ids)
        tokens += r.tokens
        if args.stream:
            codes = G.extract_codes(r.tokens, tts.tokenizer)
            if codes.shape[1]:
                pieces.append(tts.decode(codes))
    progress.close()
    if args.stream:
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    else:
        codes = G.extract_codes(tokens, tts.tokenizer)
        audio = tts.decode(codes) if codes.shape[1] else np.zeros(0, np.float32)
    compute_s = time.perf_counter() - t0
    caught.__exit__(None, None, None)
    for msg in dict.fromkeys(str(w.message) for w in notes):
        print(f"voiceport tts: note: {msg}", file=sys.stderr)
    if audio.size == 0:
        raise G.no_codes_error(totals.tokens)
    save_audio(audio, out, G.SAMPLE_RATE)
    audio_s = audio.size / G.SAMPLE_RATE
    print(f"wrote {out} ({audio_s:.2f} s of audio, {G.SAMPLE_RATE} Hz)")
    totals.summary(plans, load_s, compute_s, audio_s, "<|im_end|>", G.TOKENS_PER_SECOND)
    return 0


class _Totals:
    """Sums over the chunks' results and the summary lines `voiceport tts` prints (OuteTTS and Spark-TTS)."""

    def __init__(self):
        self.tokens = self.prompt = self.chunks = self.capped = 0
        self.gen_s = self.prefill_s = 0.0

    def add(self, r: Any, stop_ids: Any) -> None:
        """One ChunkResult; a chunk is capped when it used its whole budget without a stop id."""
        self.tokens += len(r.tokens)
        self.prompt += r.prompt_len
        self.chunks += 1
        self.capped += bool(r.tokens) and len(r.tokens) >= r.budget and r.tokens[-1] not in stop_ids
        self.gen_s += r.seconds
        self.prefill_s += r.prefill_seconds

    def summary(self, plans: List[Any], load_s: float, compute_s: float, audio_s: float, stop: str,
                tokens_per_second: float) -> None:
        """The tokens / stopped / RTF lines (stdout); `stop` names what ends a chunk early."""
        decode_s = self.gen_s - self.prefill_s
        n_decode = self.tokens - self.chunks  # each chunk's first token is its prefill's
        rate = self.tokens / max(self.gen_s, 1e-9)
        print(f"tokens: {self.tokens} in {self.gen_s:.2f} s = {rate:.1f} tokens/s "
              f"(audio needs {tokens_per_second} tokens/s for real time); "
              f"prefill {self.prompt} prompt tokens in {self.prefill_s:.2f} s, decode "
              f"{n_decode / max(decode_s, 1e-9):.1f} tokens/s; load {load_s:.1f} s")
        print(f"stopped: {self.chunks - self.capped} of {self.chunks} chunk(s) at {stop}, {self.capped} at the cap "
              f"({_caps(plans)})")
        print(f"RTF: {compute_s / audio_s:.3f} (compute {compute_s:.2f} s / audio {audio_s:.2f} s)")


def _caps(plans: List[Any]) -> str:
    """The caps and their rule, in words: "257 new tokens: auto: 2 x 8.8 tokens/char (the profile's) x 11 chars
    + 64"; several chunks: "212..398 new tokens: auto: 2 x 8.8 tokens/char (the profile's) x each chunk's chars
    + 64"."""
    import re

    if len(plans) == 1:
        return f"{plans[0].budget} new tokens: {plans[0].rule}"
    budgets = sorted(p.budget for p in plans)
    rules = sorted({re.sub(r" x \d+ chars", " x each chunk's chars", p.rule) for p in plans})
    return f"{budgets[0]}..{budgets[-1]} new tokens: {'; '.join(rules)}"


class _Progress:
    """stderr progress: a "prefill N tokens" line before each chunk's prefill, then one bar over all chunks with
    the caps' sum as total (shrunk by what a chunk leaves unused when it stops early) and an ETA."""

    def __init__(self, quiet: bool, plans: List[Any]):
        self.quiet, self.plans, self.bar = quiet, plans, None
        if not quiet:
            auto = any(p.rule.startswith("auto") for p in plans)
            print(f"{len(plans)} chunk(s), cap {_caps(plans)}" + ("; --max-new-tokens to change" if auto else ""),
                  file=sys.stderr, flush=True)

    def chunk(self, index: int, n_chunks: int, plan: Any) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        self.desc = f"chunk {index + 1}/{n_chunks}" if n_chunks > 1 else "generating"
        tqdm.write(f"{self.desc}: prefill {len(plan.prompt)} prompt tokens ...", file=sys.stderr)
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} (prefill)")

    def token(self, _tok: int) -> None:
        if self.quiet:
            return
        if self.bar is None:  # from the first token on: the prefill does not pollute the rate
            from tqdm import tqdm

            self.bar = tqdm(total=sum(p.budget for p in self.plans), unit="tok", desc=self.desc, file=sys.stderr,
                            dynamic_ncols=True)
        elif self.bar.desc != self.desc:
            self.bar.set_description_str(self.desc)
        self.bar.update(1)

    def done(self, result: Any) -> None:
        if self.bar is not None and result.budget is not None:
            self.bar.total -= result.budget - len(result.tokens)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
