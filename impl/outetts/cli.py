"""`voiceport tts`: text + speaker profile -> speech, OuteTTS 1.0 (v3 interface) in MLX.

    voiceport tts --text "Hello there." --speaker speaker.json --out out.wav [--model DIR] [--codec PATH]
                  [--seed N] [--max-new-tokens N] [--greedy] [--stream]

Prints tokens/s and RTF (compute seconds / audio seconds; 150 code tokens make one second of audio).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

DEFAULTS_NOTE = ("Without --model/--codec the embedded seeded checkpoints are used: the real architectures "
                 "(OuteTTS 1.0 1B LM, DAC 24 kHz) with RANDOM weights, generated once into $VOICEPORT_CACHE "
                 "(several GB, minutes). The pipeline is the real one; the audio is noise. A random LM rarely "
                 "emits <|im_end|>: pass --max-new-tokens to bound the run.")


class TTSInputError(ValueError):
    """Bad command-line input (output path, numbers)."""


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Text + OuteTTS v3 speaker profile -> speech (OuteTTS 1.0 in MLX). " + DEFAULTS_NOTE)
    p.add_argument("--text", required=True, help="text to speak (long texts are split into chunks, as outetts)")
    p.add_argument("--speaker", required=True, metavar="FILE", help="OuteTTS v3 speaker profile (.json)")
    p.add_argument("--out", required=True, metavar="FILE", help="output audio (.wav, .flac or .ogg; 24 kHz)")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="HF model folder (config.json, safetensors, tokenizer.json); default: embedded seeded "
                        "1B checkpoint (random weights)")
    p.add_argument("--codec", metavar="PATH", default=None,
                   help="DAC 24 kHz checkpoint; default: embedded seeded checkpoint (random weights)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on new tokens per text chunk (default: until <|im_end|> or max length)")
    p.add_argument("--max-length", type=int, default=8192,
                   help="prompt + generated tokens per chunk, as outetts' max_length (default 8192)")
    p.add_argument("--temperature", type=float, default=0.4, help="sampling temperature (outetts: 0.4)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (after the repetition penalty)")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="LM compute dtype (default: float32 on CPU, where MLX's bf16/fp16 matmuls are far "
                        "slower than fp32 through BLAS; the checkpoint's dtype on a GPU)")
    p.add_argument("--stream", action="store_true",
                   help="decode each text chunk as soon as it is generated (output written at the end)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_out(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise TTSInputError(f"--out {path}: unknown audio extension {out.suffix!r} (use .wav, .flac or .ogg)")
    if not out.parent.resolve().is_dir():
        raise TTSInputError(f"--out {path}: folder {out.parent} does not exist")
    return out


def _load_codec(path: Optional[str]):
    """`impl.dac.load_codec` (the embedded seeded DAC when path is None); tests replace this with a fake codec."""
    from impl.dac import load_codec

    return load_codec(path)


def _default_dtype() -> Optional[str]:
    import mlx.core as mx

    return "float32" if mx.default_device() == mx.cpu else None


def run(args) -> int:
    from impl.audio import save_audio
    from impl.outetts import generate as G
    from impl.outetts.prompt import prompt_ids
    from impl.outetts.sampler import SamplerConfig
    from impl.outetts.text import chunk_text, TextError
    from impl.seeded import default_model
    from impl.speaker.profile import load_speaker

    # Every input error before any loading.
    out = _check_out(args.out)
    speaker = load_speaker(args.speaker)
    if not chunk_text(args.text):
        raise TextError("--text is empty: nothing to speak")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise TTSInputError("--max-new-tokens must be >= 1")
    sampler = SamplerConfig(temperature=0.0 if args.greedy else args.temperature)
    config = G.GenerationConfig(sampler=sampler, max_length=args.max_length, max_new_tokens=args.max_new_tokens,
                                seed=args.seed)

    t_load = time.perf_counter()
    if args.model is None:
        print("using the embedded seeded OuteTTS 1.0 1B checkpoint (random weights: the audio is noise)",
              file=sys.stderr)
    model_dir = default_model() if args.model is None else Path(args.model)
    codec = _load_codec(args.codec)
    tts = G.load(model_dir, codec=codec, dtype=args.dtype or _default_dtype())
    for chunk in chunk_text(args.text):  # prompt errors (profile too long) before generating
        n = len(prompt_ids(tts.tokenizer, chunk, speaker))
        if n >= config.max_length:
            raise G.GenerationError(f"the prompt has {n} tokens, --max-length is {config.max_length}")
    load_s = time.perf_counter() - t_load

    bar = _progress(args.quiet)
    t0 = time.perf_counter()
    n_tokens = n_prompt = n_chunks = 0
    pieces: List[np.ndarray] = []
    tokens: List[int] = []
    gen_s = prefill_s = 0.0
    for r in tts.generate_chunks(args.text, speaker, config, on_token=bar.update1):
        n_tokens += len(r.tokens)
        n_prompt += r.prompt_len
        n_chunks += 1
        gen_s += r.seconds
        prefill_s += r.prefill_seconds
        tokens += r.tokens
        if args.stream:
            codes = G.extract_codes(r.tokens, tts.tokenizer)
            if codes.shape[1]:
                pieces.append(tts.decode(codes))
    bar.close()
    if args.stream:
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    else:
        codes = G.extract_codes(tokens, tts.tokenizer)
        audio = tts.decode(codes) if codes.shape[1] else np.zeros(0, np.float32)
    compute_s = time.perf_counter() - t0
    if audio.size == 0:
        raise G.GenerationError(f"the model produced no audio codes in {n_tokens} tokens: nothing written "
                                "(random weights? try more --max-new-tokens)")
    save_audio(audio, out, G.SAMPLE_RATE)
    audio_s = audio.size / G.SAMPLE_RATE
    print(f"wrote {out} ({audio_s:.2f} s of audio, {G.SAMPLE_RATE} Hz)")
    decode_s, n_decode = gen_s - prefill_s, n_tokens - n_chunks  # each chunk's first token is its prefill's
    print(f"tokens: {n_tokens} in {gen_s:.2f} s = {n_tokens / max(gen_s, 1e-9):.1f} tokens/s "
          f"(audio needs {G.TOKENS_PER_SECOND} tokens/s for real time); "
          f"prefill {n_prompt} prompt tokens in {prefill_s:.2f} s, decode {n_decode / max(decode_s, 1e-9):.1f} "
          f"tokens/s; load {load_s:.1f} s")
    print(f"RTF: {compute_s / audio_s:.3f} (compute {compute_s:.2f} s / audio {audio_s:.2f} s)")
    return 0


class _Bar:
    def __init__(self, bar: Any):
        self.bar = bar

    def update1(self, _tok: int) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(quiet: bool) -> _Bar:
    if quiet:
        return _Bar(None)
    from tqdm import tqdm

    return _Bar(tqdm(unit="tok", desc="generating", file=sys.stderr, dynamic_ncols=True))
