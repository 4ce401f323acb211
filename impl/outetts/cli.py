"""`voiceport tts`: text -> speech with OuteTTS 1.0 (24 kHz; text + speaker profile) or, with `--model spark`,
Spark-TTS (16 kHz; a voice cloned from prompt audio or created from attributes: impl/spark/tts.py), in MLX.

    voiceport tts --text "Hello there." --speaker speaker.json --out out.wav [--model DIR] [--codec PATH]
                  [--seed N] [--max-new-tokens N] [--greedy] [--stream]
    voiceport tts --model spark --text "Hello there." --prompt-audio ref.wav [--prompt-text TEXT] --out out.wav
    voiceport tts --model spark --text-file story.txt --gender female [--pitch P] [--speed S] --out out.wav

The library does the work (`impl.outetts.generate.load` / `impl.spark.generate.load`, `impl.runtime`); this module
maps flags to the API's settings, refuses the options the chosen model does not use, words the API's errors in
flags, and prints progress, an up-front warning for long runs, tokens/s and RTF.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np

DEFAULTS_NOTE = ("Without --model/--codec the embedded seeded checkpoints are used: the real architectures "
                 "(OuteTTS 1.0 1B LM, DAC 24 kHz) with RANDOM weights, generated once into $VOICEPORT_CACHE "
                 "(several GB, minutes). The pipeline is the real one; the audio is noise. A random LM rarely "
                 "emits <|im_end|>: the default --max-new-tokens cap bounds each chunk.")
CAP_HELP = ("cap on new tokens per text chunk (default: the chunk's expected length doubled: OuteTTS 2 x the "
            "speaker profile's audio tokens per character x the chunk's characters + 64; Spark-TTS 2 x the "
            "expected semantic ids + 64, at most 3000; the Python API's max_new_tokens='auto' is the same rule)")
VARIANT_HELP = ("the LM variant to run (impl.accel.apply): auto (default: the device's own: cpu on the CPU, fused "
                "on a GPU), plain (the model as written: what the layer parity taps), fused (q|k|v and gate|up "
                "projections fused: what Metal and CUDA run), cpu (the Linux CPU layout + compiled decode step)")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MAX_TEXT_BYTES = 1_000_000  # --text-file: ~150,000 words, days of audio


class TTSInputError(ValueError):
    """Bad command-line input (numbers, model folder, options the model does not use)."""


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Text -> speech in MLX: OuteTTS 1.0 (default; text + OuteTTS v3 speaker profile, 24 kHz) or "
                     "Spark-TTS (--model spark or a Spark-TTS folder; voice cloning or creation, 16 kHz). "
                     + DEFAULTS_NOTE)
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="text to speak (long texts are split into chunks, as outetts)")
    text.add_argument("--text-file", metavar="FILE",
                      help="read the text to speak from a UTF-8 file (at most 1 MB) instead of --text")
    p.add_argument("--speaker", metavar="FILE", help="OuteTTS v3 speaker profile (.json); required for OuteTTS")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output audio (.wav, .flac or .ogg): 24 kHz for OuteTTS, 16 kHz for Spark-TTS")
    p.add_argument("--model", metavar="MODEL", default=None,
                   help="outetts (default: the embedded seeded 1B checkpoint, random weights), an OuteTTS HF model "
                        "folder (config.json, safetensors, tokenizer.json), spark (the embedded seeded "
                        "Spark-TTS-0.5B, random weights) or a Spark-TTS folder (LLM/, BiCodec/, "
                        "wav2vec2-large-xlsr-53/, config.yaml)")
    p.add_argument("--codec", metavar="PATH", default=None,
                   help="OuteTTS only: DAC 24 kHz checkpoint; default: embedded seeded checkpoint (random weights)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed, 0 to 2**64-1 (default 0)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N", help=CAP_HELP)
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="OuteTTS only: prompt + generated tokens per chunk, as outetts' max_length (default 8192)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="sampling temperature, >= 0, 0 = greedy (default: outetts 0.4, Spark-TTS 0.8)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (OuteTTS: after the repetition penalty)")
    p.add_argument("--quantize", default=None, choices=["q8", "q4"],
                   help="quantize the LM's weights to 8 or 4 bits (groups of 64) after loading: less memory; "
                        "speed depends on the backend (docs/performance.md)")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="LM compute dtype (default: float32 on CPU, where MLX's bf16/fp16 matmuls are far "
                        "slower than fp32 through BLAS; the checkpoint's dtype on a GPU)")
    from impl import accel

    p.add_argument("--variant", default="auto", choices=["auto", *accel.VARIANTS], help=VARIANT_HELP)
    p.add_argument("--stream", action="store_true",
                   help="OuteTTS only: decode each text chunk as soon as it is generated (output written at the "
                        "end); Spark-TTS always does")
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

    from impl._io import check_seed

    check_seed(args.seed, error=TTSInputError)
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise TTSInputError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")
    if args.max_length is not None and args.max_length < 2:
        raise TTSInputError(f"--max-length {args.max_length}: must be >= 2")
    t = args.temperature
    if t is not None and (not math.isfinite(t) or t < 0):
        raise TTSInputError(f"--temperature {t}: must be a finite number >= 0 (0 = greedy)")


def read_text(args) -> str:
    """--text, or the UTF-8 text of --text-file (one line naming the file when it cannot be read)."""
    if args.text_file is None:
        return args.text
    from impl._io import read_bytes

    try:
        data = read_bytes(args.text_file, "--text-file text", MAX_TEXT_BYTES, TTSInputError)
    except (FileNotFoundError, IsADirectoryError) as e:
        what = "is a directory" if isinstance(e, IsADirectoryError) else "no such file"
        raise TTSInputError(f"--text-file {args.text_file}: {what}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TTSInputError(f"--text-file {args.text_file}: not UTF-8 text (byte {e.start})") from None


SPARK_ONLY = ("prompt_audio", "prompt_text", "gender", "pitch", "speed")
OUTETTS_ONLY = {"speaker": "an OuteTTS speaker profile; Spark-TTS takes --prompt-audio (cloning) or --gender "
                           "(creation)",
                "codec": "OuteTTS' DAC; Spark-TTS' BiCodec is in the model folder",
                "max_length": "OuteTTS-only (outetts' prompt + new tokens limit); Spark-TTS caps new tokens only "
                              "(--max-new-tokens)",
                "stream": "OuteTTS-only: Spark-TTS always decodes each chunk as soon as it is generated"}


def given(args, names) -> List[str]:
    """The options among `names` that the command line set (a flag's False / None is not set)."""
    return [f"--{k.replace('_', '-')}" for k in names if getattr(args, k) not in (None, False)]


def _meant_spark(args) -> bool:
    """--model DIR means Spark-TTS: the Spark-TTS-0.5B layout, or a folder that looks meant as one (a Spark part
    there, "spark" in its name, or Spark-only options for a folder without OuteTTS' config.json); a mistyped or
    incomplete Spark folder then gets Spark's own folder check (what is missing), not OuteTTS' messages."""
    from impl.spark import tts as spark_tts

    root = Path(args.model)
    if spark_tts.is_spark_folder(args.model) or "spark" in root.name.lower():
        return True
    if any((root / part).exists() for part in ("LLM", "BiCodec", "wav2vec2-large-xlsr-53")):
        return True
    return bool(given(args, SPARK_ONLY)) and not (root / "config.json").is_file()


def run(args) -> int:
    from impl.runtime import cli_terms
    from impl.spark import tts as spark_tts

    args.text = read_text(args)
    if args.model not in (None, "outetts", "spark") and not Path(args.model).is_dir():
        raise TTSInputError(f"--model {args.model}: " + ("is a file; " if Path(args.model).exists() else
                                                         "no such folder; ")
                            + "give an OuteTTS folder (config.json, safetensors, tokenizer.json), a Spark-TTS "
                              "folder (LLM/, BiCodec/, wav2vec2-large-xlsr-53/), or outetts / spark (the embedded "
                              "seeded ones)")
    spark = args.model == "spark" or (args.model not in (None, "outetts") and _meant_spark(args))
    try:
        if spark:
            for k, why in OUTETTS_ONLY.items():
                if getattr(args, k) not in (None, False):
                    raise TTSInputError(f"--{k.replace('_', '-')} is {why}")
            return spark_tts.run(args)
        args.model = None if args.model == "outetts" else args.model
        spark_given = given(args, SPARK_ONLY)
        if spark_given:
            raise TTSInputError(f"{', '.join(spark_given)}: Spark-TTS options; add --model spark (or a Spark-TTS "
                                "folder)")
        if args.speaker is None:
            raise TTSInputError("the following arguments are required: --speaker (voiceport tts --help)")
        return _run_outetts(args)
    except TTSInputError:
        raise
    except ValueError as e:  # the library's errors name its parameters: say them as flags
        msg = cli_terms(str(e))
        if msg == str(e):
            raise
        raise TTSInputError(msg) from None


def _run_outetts(args) -> int:
    import unicodedata

    from impl._io import check_output
    from impl.audio import save_audio
    from impl.outetts import generate as G
    from impl.outetts.text import TextError, chunk_text
    from impl.runtime import Progress, Totals, decode_rate, eta_warning, report_notes, start_kernel_warmup
    from impl.seeded import default_model
    from impl.speaker.profile import load_speaker

    # Every input error before any loading.
    out = check_output(args.out, "--out", AUDIO_SUFFIXES, "audio")
    speaker = load_speaker(args.speaker)
    if not chunk_text(args.text):
        raise TextError(f"--{'text-file' if args.text_file else 'text'} is empty: nothing to speak")
    if not any(unicodedata.category(c)[0] in "LNPS" for c in args.text):  # letters, digits, punctuation, symbols
        raise TextError(f"--{'text-file' if args.text_file else 'text'} holds only invisible characters (spaces, "
                        "zero-width or control characters): nothing to speak")
    _check_numbers(args)
    if args.model is not None and not Path(args.model).is_dir():
        raise FileNotFoundError(f"--model {args.model}: no such model folder (config.json, safetensors, "
                                "tokenizer.json)")
    config = G.GenerationConfig(temperature=args.temperature, greedy=args.greedy, seed=args.seed,
                                max_new_tokens=G.AUTO if args.max_new_tokens is None else args.max_new_tokens,
                                outetts=G.OuteTTSOptions(max_length=args.max_length or 8192))

    t_load = time.perf_counter()
    dtype = args.dtype or G.default_dtype()
    # mlx-cuda's first run: its kernels compile in child processes while the codec and the LM load
    warmup = start_kernel_warmup(args.model, dtype, args.quantize)
    codec = _load_codec(args.codec)  # seconds, before the 1B LM (minutes the first time): its errors come first
    if args.model is None:
        print("using the embedded seeded OuteTTS 1.0 1B checkpoint (random weights: the audio is noise)",
              file=sys.stderr)
    model_dir = default_model() if args.model is None else Path(args.model)
    tts = G.load(model_dir, codec=codec, dtype=dtype, quantize=args.quantize, variant=args.variant)
    warmup.wait()
    try:
        plans = tts.plan(args.text, speaker, config)  # prompt errors (profile too long) before generating
    except G.GenerationError as e:
        raise G.GenerationError(f"--max-length {config.outetts.max_length}: {e}") from None
    load_s = time.perf_counter() - t_load
    line = eta_warning(plans, decode_rate(G.DECODE_RATE), "voiceport tts")
    if line:
        print(line, file=sys.stderr, flush=True)

    progress = Progress(args.quiet, plans)
    caught = warnings.catch_warnings(record=True)  # library warnings become one "note:" line each, at the end
    notes = caught.__enter__()
    warnings.simplefilter("always")
    t0 = time.perf_counter()
    totals = Totals()
    pieces: List[np.ndarray] = []
    tokens: List[int] = []
    try:
        for r in tts.generate_chunks(args.text, speaker, config, on_token=progress.token, on_chunk=progress.chunk,
                                     plans=plans):
            progress.done(r)
            totals.add(r, tts.stop_ids)
            tokens += r.tokens
            if args.stream:
                codes = G.extract_codes(r.tokens, tts.tokenizer)
                if codes.shape[1]:
                    pieces.append(tts.decode(codes))
        if args.stream:
            audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        else:
            codes = G.extract_codes(tokens, tts.tokenizer)
            audio = tts.decode(codes) if codes.shape[1] else np.zeros(0, np.float32)
    finally:
        progress.close()
        caught.__exit__(None, None, None)
    compute_s = time.perf_counter() - t0
    report_notes(notes)
    if audio.size == 0:
        raise G.no_codes_error(totals.tokens)
    save_audio(audio, out, G.SAMPLE_RATE)
    audio_s = audio.size / G.SAMPLE_RATE
    print(f"wrote {out} ({audio_s:.2f} s of audio, {G.SAMPLE_RATE} Hz; LM variant {tts.variant})")
    totals.summary(plans, load_s, compute_s, audio_s, "<|im_end|>", G.TOKENS_PER_SECOND)
    return 0
