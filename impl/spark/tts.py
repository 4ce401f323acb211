"""`voiceport tts --model spark`: text -> speech with Spark-TTS in MLX, cloning a voice or creating one.

    voiceport tts --model spark --text "Hello there." --prompt-audio ref.wav [--prompt-text "..."] --out out.wav
    voiceport tts --model spark --text "Hello there." --gender female [--pitch high] [--speed low] --out out.wav

`--model spark` is the embedded seeded Spark-TTS-0.5B folder (random weights); `--model DIR` a Spark-TTS folder
(LLM/, BiCodec/, wav2vec2-large-xlsr-53/, config.yaml). Options shared with the OuteTTS path (impl/outetts/cli.py):
--text/--text-file, --seed, --max-new-tokens, --temperature, --greedy, --quantize, --dtype, --variant, --quiet; the
same progress, warning, tokens/s and RTF lines (impl.runtime; 50 semantic ids make one second of 16 kHz audio). Each
chunk is decoded as soon as it is generated, in its own voice (so --stream, OuteTTS', is refused here, as are
--max-length, --speaker and --codec). Every input is checked before any model
loads: an error is one line, exit 2, nothing written.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import List

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
NOTE = ("using the embedded seeded Spark-TTS-0.5B folder (random weights: the audio is noise; the first run writes "
        "it, minutes)")


def is_spark_folder(path: str) -> bool:
    """A folder in the Spark-TTS-0.5B layout (what `--model DIR` then means)."""
    return (Path(path) / "LLM").is_dir() and (Path(path) / "BiCodec").is_dir()


def _check_args(args) -> None:
    """Option combinations and values, before anything is read (ValueError: one line naming the option). The
    OuteTTS-only options (--speaker, --codec, --max-length, --stream) are refused by impl/outetts/cli.py."""
    from impl._io import check_seed
    from impl.spark.generate import GenerationError
    from impl.spark.prompt import check_control

    clone, create = args.prompt_audio is not None, args.gender is not None
    if clone and create:
        raise GenerationError("--prompt-audio and --gender: give one (cloning a voice, or creating one)")
    if not clone and not create:
        raise GenerationError("--model spark needs --prompt-audio FILE (cloning) or --gender female|male (creation)")
    if args.prompt_text is not None and not clone:
        raise GenerationError("--prompt-text is the transcript of --prompt-audio, which is missing")
    if not create and (args.pitch is not None or args.speed is not None):  # "" is given, not absent
        raise GenerationError("--pitch/--speed shape a created voice: give --gender too (cloning copies the voice)")
    if create:
        check_control(args.gender, _level(args.pitch), _level(args.speed))
    check_seed(args.seed, error=GenerationError)
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= 3000:
        raise GenerationError(f"--max-new-tokens {args.max_new_tokens}: must be 1..3000 (Spark-TTS' own cap)")
    t = args.temperature
    if t is not None and not (t == t and 0 <= t < float("inf")):
        raise GenerationError(f"--temperature {t}: must be a finite number >= 0 (0 = greedy, as --greedy)")


def run(args) -> int:
    from impl._io import check_output
    from impl.audio import save_audio
    from impl.runtime import Progress, Totals, decode_rate, eta_warning, report_notes, start_kernel_warmup
    from impl.spark import audio as spark_audio
    from impl.spark import generate as G

    out = check_output(args.out, "--out", AUDIO_SUFFIXES, "audio")
    _check_args(args)
    try:
        chunks = G.split_text(args.text)
    except G.GenerationError:
        raise G.GenerationError(f"--{'text-file' if args.text_file else 'text'} is empty: nothing to speak") from None
    if args.prompt_audio is not None:
        spark_audio.load_audio(args.prompt_audio)  # unreadable, silent, too short, > 60 s: one line naming it
    folder = None if args.model == "spark" else Path(args.model)
    if folder is not None:
        G.check_folder(folder, need_w2v=args.prompt_audio is not None)  # layout, tokenizer, vocabulary
    config = G.GenerationConfig(temperature=args.temperature, greedy=args.greedy, seed=args.seed,
                                max_new_tokens=G.AUTO if args.max_new_tokens is None else args.max_new_tokens)

    from impl import spark
    from impl.spark import wav2vec2

    t_load = time.perf_counter()
    if folder is None:
        from impl.seeded.spark import default_spark_dir

        print(f"voiceport tts: {NOTE}", file=sys.stderr)
        folder = default_spark_dir()
    root, tok = G.check_folder(folder, need_w2v=args.prompt_audio is not None)
    dtype = args.dtype or G.default_dtype()
    # mlx-cuda's first run: the LM's kernels compile in child processes while the codec loads
    warmup = start_kernel_warmup(root / G.LLM, dtype, args.quantize, model="spark")
    cfg = G.audio_config(root / G.CONFIG)
    codec = spark.load(root / G.BICODEC)
    if args.prompt_audio is not None:  # the voice first, wav2vec2 freed before the LLM loads: a lower peak
        voice = G.voice_from_audio(codec, wav2vec2.load(root / G.W2V), args.prompt_audio, args.prompt_text, cfg)
    else:
        voice = G.Voice(gender=args.gender, pitch=_level(args.pitch), speed=_level(args.speed))
    lm, make_cache, variant = G.load_lm(root / G.LLM, dtype, args.quantize, args.variant)
    warmup.wait()
    gen = G.generation_settings(root / G.LLM)
    tts = G.SparkTTS(lm, tok, codec=codec, make_cache=make_cache, stop_ids=gen.stop_ids, audio_config=cfg,
                     generation=gen, variant=variant)
    plans = tts.plan(args.text, voice, config)
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
    try:
        for r, spoke in tts.generate_chunks(args.text, voice, config, on_token=progress.token,
                                            on_chunk=progress.chunk, plans=plans):
            progress.done(r)
            totals.add(r, tts.stop_ids)
            pieces.append(tts.decode(*tts.parse(r.tokens, spoke)))  # each chunk decoded as it ends, in its voice
    finally:
        progress.close()
        caught.__exit__(None, None, None)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    compute_s = time.perf_counter() - t0
    report_notes(notes)
    if audio.size == 0:
        raise G.no_semantic_error(totals.tokens)
    save_audio(audio, out, G.SAMPLE_RATE)
    audio_s = audio.size / G.SAMPLE_RATE
    print(f"wrote {out} ({audio_s:.2f} s of audio, {G.SAMPLE_RATE} Hz; {len(chunks)} chunk(s); LM variant {variant})")
    totals.summary(plans, load_s, compute_s, audio_s, "an EOS id", G.TOKENS_PER_SECOND)
    return 0


def _level(value: "str | None") -> str:
    """--pitch / --speed: "moderate" when not given; a given value (an empty one included) is checked as given."""
    return "moderate" if value is None else value
