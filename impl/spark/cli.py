"""`voiceport spark`: Spark-TTS' BiCodec audio tokenizer and decoder (audio -> global + semantic ids -> audio).

tokenize runs sparktts `BiCodecTokenizer.tokenize` (models/audio_tokenizer.py): load_audio (16 kHz with soxr VHQ,
first channel, volume normalisation), the reference clip (first 6 s rounded down to the 320-sample latent hop, tiled
when shorter) -> mel -> 32 global ids; the whole clip -> wav2vec2-large-xlsr-53 features -> semantic ids (50/s).
detokenize runs `BiCodec.detokenize` -> 16 kHz audio. Ids are saved as JSON:

    {"sample_rate": 16000, "global": [32 ints in [0, 4096)], "semantic": [T ints in [0, 8192)]}

(`global` is flat: fsq_num_quantizers x token_num ids, upstream's (1, 1, 32) global tokens). Outputs are written
atomically; every input is checked before any model loads: an error never leaves a partial file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

BICODEC, W2V = "BiCodec", "wav2vec2-large-xlsr-53"
DEFAULT_NOTE = ("Default checkpoint: the embedded seeded Spark-TTS-0.5B codec (BiCodec + wav2vec2-large-xlsr-53 with "
                "random weights at the real architecture: ids are deterministic, audio is noise). Pass --checkpoint "
                "for the official Spark-TTS-0.5B folder.")
SHORT_NOTE = "using the embedded seeded BiCodec + wav2vec2-large-xlsr-53 (random weights; --checkpoint for real ones)"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
TOKEN_KEYS = {"sample_rate", "global", "semantic"}
MAX_FRAMES = 3000  # 60 s at 50 ids/s: the tokenize limit (and Spark-TTS' own max_new_tokens)


class SparkInputError(ValueError):
    """A bad input: checkpoint folder, tokens file."""


def configure(p: argparse.ArgumentParser) -> None:
    p.description = "Spark-TTS BiCodec audio tokenizer and decoder in MLX. " + DEFAULT_NOTE
    sub = p.add_subparsers(dest="spark_command", metavar="ACTION", required=True)
    t = sub.add_parser("tokenize", help="audio file -> global + semantic ids (tokens.json)",
                       description="Tokenize audio as Spark-TTS' BiCodecTokenizer does: read the first channel, "
                                   "resample to 16 kHz (soxr, VHQ), normalise the volume; 32 global ids (speaker) "
                                   "from the first 6 s (tiled when shorter), semantic ids at 50/s from the whole "
                                   "clip (wav2vec2-large-xlsr-53 features). Saved as JSON {sample_rate, global, "
                                   "semantic}.")
    t.add_argument("audio", metavar="AUDIO", help="wav/flac/ogg, any sample rate (resampled to 16 kHz), the first "
                                                  "channel is used; 25 ms to 60 s, not all zeros")
    t.add_argument("-o", "--out", required=True, metavar="TOKENS.json", help="output ids (.json)")
    d = sub.add_parser("detokenize", help="tokens.json -> 16 kHz audio",
                       description="Decode global + semantic ids to 16 kHz audio (BiCodec.detokenize): 320 samples "
                                   "per semantic id, written as 32-bit float wav (or flac/ogg).")
    d.add_argument("tokens", metavar="TOKENS.json", help="ids as `spark tokenize` writes them: {\"global\": [32 ids "
                                                         "< 4096], \"semantic\": [1..3000 ids < 8192]} (sample_rate "
                                                         "optional, 16000)")
    d.add_argument("-o", "--out", required=True, metavar="AUDIO", help="output audio (.wav, .flac or .ogg), 16 kHz")
    for q in (t, d):
        q.add_argument("--checkpoint", default=None, metavar="DIR",
                       help=f"Spark-TTS model folder (the official Spark-TTS-0.5B layout: {BICODEC}/ with config.yaml "
                            f"+ model.safetensors, {W2V}/ (tokenize only), config.yaml optional); default: the "
                            "embedded seeded folders")


# ------------------------------------------------------------------------------------------------- inputs

def folders(checkpoint: Optional[str], need_w2v: bool) -> Tuple[Path, Optional[Path], Dict[str, Any]]:
    """(BiCodec folder, wav2vec2 folder or None, audio config) of a Spark-TTS folder, or the seeded defaults."""
    if checkpoint is None:
        from impl.seeded.spark import seeded_bicodec, seeded_w2v

        print(f"voiceport spark: {SHORT_NOTE}", file=sys.stderr)
        return seeded_bicodec("bicodec", 0), seeded_w2v("xlsr53", 0) if need_w2v else None, _default_audio_config()
    root = Path(checkpoint)
    if not root.is_dir():
        raise SparkInputError(f"--checkpoint {checkpoint}: not a folder (a Spark-TTS folder holds {BICODEC}/ and "
                              f"{W2V}/)")
    want = [BICODEC] + ([W2V] if need_w2v else [])
    missing = [n for n in want if not (root / n).is_dir()]
    if missing:
        raise SparkInputError(f"--checkpoint {checkpoint}: no {' or '.join(m + '/' for m in missing)} folder "
                              f"(the Spark-TTS-0.5B layout: {BICODEC}/, {W2V}/, config.yaml)")
    return root / BICODEC, root / W2V if need_w2v else None, _audio_config(root / "config.yaml")


def _default_audio_config() -> Dict[str, Any]:
    from impl.spark.generate import AUDIO_CONFIG  # Spark-TTS-0.5B's config.yaml values

    return dict(AUDIO_CONFIG)


def _audio_config(path: Path) -> Dict[str, Any]:
    """`impl.spark.generate.audio_config` (the config.yaml keys BiCodecTokenizer reads), its errors as this
    command's."""
    from impl.spark.generate import GenerationError, audio_config

    try:
        return audio_config(path)
    except GenerationError as e:
        raise SparkInputError(str(e)) from None


def _id_space(bicodec: Optional[Path]) -> Dict[str, Any]:
    """Codebook sizes and the global ids' count from BiCodec/config.yaml (the seeded default's config when None),
    before any weight is read."""
    from impl.seeded.spark import resolve_config
    from impl.spark.config import bicodec_config, read_yaml

    c = resolve_config("bicodec")["audio_tokenizer"] if bicodec is None else \
        bicodec_config(read_yaml(bicodec / "config.yaml"), str(bicodec / "config.yaml"))
    s = c["speaker_encoder"]
    return {"semantic": int(c["quantizer"]["codebook_size"]), "global": int(np.prod(s["fsq_levels"])),
            "global_shape": (int(s["fsq_num_quantizers"]), int(s["token_num"]))}


def read_tokens(path: str, space: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    """tokens.json -> (semantic (1, T), global (1, q, token_num)) int32; SparkInputError naming the file."""
    from impl._io import INT32, MAX_JSON_BYTES, check_input, loads, read_bytes

    p = Path(path)
    check_input(p, "tokens", SparkInputError)  # a FIFO or device refused before opening
    if not p.is_file():
        raise SparkInputError(f"{path}: {'is a directory' if p.is_dir() else 'no such tokens file'}")
    try:
        data = loads(read_bytes(p, "tokens file", MAX_JSON_BYTES, ValueError), "", ValueError, ints=INT32)
    except (OSError, ValueError) as e:
        raise SparkInputError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise SparkInputError(f"{path}: expected a JSON object with keys global, semantic; got {type(data).__name__}")
    missing, extra = {"global", "semantic"} - set(data), set(data) - TOKEN_KEYS
    if missing or extra:
        raise SparkInputError(f"{path}: " + "; ".join(
            ([f"missing key(s) {', '.join(sorted(missing))}"] if missing else []) +
            ([f"unknown key(s) {', '.join(sorted(extra))} (known: {', '.join(sorted(TOKEN_KEYS))})"] if extra else [])))
    if "sample_rate" in data and data["sample_rate"] != 16000:
        raise SparkInputError(f"{path}: sample_rate {data['sample_rate']!r}: BiCodec ids are for 16000 Hz audio")
    q, n = space["global_shape"]
    out = {}
    for key, count in (("global", q * n), ("semantic", None)):
        v = data[key]
        if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            raise SparkInputError(f"{path}: {key!r} must be a flat list of integers")
        if count is not None and len(v) != count:
            raise SparkInputError(f"{path}: {len(v)} global ids; this BiCodec takes exactly {count}")
        if count is None and not 1 <= len(v) <= MAX_FRAMES:
            raise SparkInputError(f"{path}: {len(v)} semantic ids; expected 1 to {MAX_FRAMES} (60 s at 50/s)")
        a = np.asarray(v, dtype=np.int64)
        bad = np.flatnonzero((a < 0) | (a >= space[key]))
        if bad.size:
            raise SparkInputError(f"{path}: {bad.size} {key} id(s) out of range [0, {space[key]}): first {a[bad[0]]} "
                                  f"at index {bad[0]}")
        out[key] = a.astype(np.int32)
    return out["semantic"][None], out["global"].reshape(1, q, n)


# ------------------------------------------------------------------------------------------------- run

def _step(i: int, n: int, what: str) -> None:
    """A progress line, once every input has been read and checked (an input error is then the only line)."""
    print(f"[{i}/{n}] {what}", file=sys.stderr, flush=True)


def tokenize(args) -> Path:
    import mlx.core as mx

    from impl import spark
    from impl._io import atomic_path, check_output
    from impl.spark import audio, wav2vec2

    out = check_output(args.out, "-o", (".json",), "tokens")
    given = folders(args.checkpoint, need_w2v=True) if args.checkpoint is not None else None
    cfg = given[2] if given else _default_audio_config()
    t0 = time.perf_counter()
    wav = audio.load_audio(args.audio, cfg["sample_rate"], volume_normalize=cfg["volume_normalize"])
    clip = audio.ref_clip(wav, cfg["sample_rate"], cfg["ref_segment_duration"], cfg["latent_hop_length"])
    bicodec_dir, w2v_dir, _ = given or folders(None, need_w2v=True)  # the seeded folders: written on first use
    _step(1, 3, f"loading {w2v_dir} and {bicodec_dir}")
    w2v = wav2vec2.load(w2v_dir)
    model = spark.load(bicodec_dir)
    _step(2, 3, f"wav2vec2 features of {len(wav) / 16000:.2f} s ({len(wav)} samples at 16 kHz)")
    feat = wav2vec2.features(w2v, wav)
    mx.eval(feat)
    _step(3, 3, f"BiCodec tokenize: {feat.shape[1]} semantic frames, {len(clip) / 16000:g} s reference clip")
    sem, glob = model.tokenize(feat, mx.array(clip.astype(np.float32))[None])
    sem, glob = np.array(sem), np.array(glob)
    doc = {"sample_rate": 16000, "global": glob.reshape(-1).tolist(), "semantic": sem.reshape(-1).tolist()}
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(doc) + "\n")
    dt = time.perf_counter() - t0
    print(f"{args.audio}: {len(wav) / 16000:.2f} s -> {glob.size} global + {sem.size} semantic ids in {dt:.2f} s "
          f"-> {out}", file=sys.stderr)
    return out


def detokenize(args) -> Path:
    import mlx.core as mx

    from impl import audio as A
    from impl import spark
    from impl._io import check_output

    out = check_output(args.out, "-o", AUDIO_SUFFIXES, "audio")
    given = folders(args.checkpoint, need_w2v=False) if args.checkpoint is not None else None
    t0 = time.perf_counter()
    semantic, global_ids = read_tokens(args.tokens, _id_space(given[0] if given else None))
    bicodec_dir = given[0] if given else folders(None, need_w2v=False)[0]
    _step(1, 2, f"loading {bicodec_dir}")
    model = spark.load(bicodec_dir)
    _step(2, 2, f"BiCodec detokenize: {semantic.shape[1]} semantic frames -> "
                f"{semantic.shape[1] * model.hop_length / 16000:.2f} s")
    wav = np.array(model.detokenize(mx.array(semantic), mx.array(global_ids)))[0]
    A.save_audio(wav, out, 16000)
    dt = time.perf_counter() - t0
    print(f"{args.tokens}: {semantic.shape[1]} semantic ids -> {len(wav) / 16000:.2f} s of 16 kHz audio in "
          f"{dt:.2f} s -> {out}", file=sys.stderr)
    return out


def run(args) -> int:
    from impl.spark.config import ConfigError

    try:
        (tokenize if args.spark_command == "tokenize" else detokenize)(args)
    except ConfigError as e:  # a config.yaml the reader refuses: already names the file
        raise SparkInputError(str(e)) from None
    return 0
