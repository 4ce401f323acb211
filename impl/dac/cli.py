"""`voiceport dac`: encode audio to codes, decode codes to audio, write seeded checkpoints, convert .pth.

encode/decode run outetts' DAC path (`impl.dac.interface`): audio of any rate and channel count is downmixed
(channel mean) and resampled to the model rate (torchaudio's windowed sinc), loudness-normalised to -18 LUFS,
encoded in 5 s windows; codes decode in 2048-code chunks with 15 ms fades. Codes are saved as .npy (int32,
(n_codebooks, T)). Outputs are written atomically: an error never leaves a partial file.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_NOTE = ("Default checkpoint: the embedded seeded DAC 24 kHz speech model (random weights at the real "
                "architecture: codes are deterministic, audio is noise). Pass --checkpoint for the official "
                "weights (.pth as descript-audio-codec saves it, or .safetensors).")


def configure(p: argparse.ArgumentParser) -> None:
    p.description = "DAC codec in MLX. " + DEFAULT_NOTE
    sub = p.add_subparsers(dest="dac_command", metavar="ACTION", required=True)
    e = sub.add_parser("encode", help="audio file -> codes .npy (int32, (n_codebooks, T))")
    e.add_argument("audio", help="wav/flac/ogg, any sample rate and channel count (downmixed, resampled)")
    e.add_argument("-o", "--out", required=True, help="output .npy")
    d = sub.add_parser("decode", help="codes .npy -> audio file at the model rate")
    d.add_argument("codes", help=".npy of int codes, (n_codebooks, T) or (1, n_codebooks, T)")
    d.add_argument("-o", "--out", required=True, help="output .wav/.flac/.ogg")
    for q in (e, d):
        q.add_argument("--checkpoint", default=None, help="DAC checkpoint (.pth or .safetensors)")
    s = sub.add_parser("seeded", help="write the seeded checkpoint of an official architecture (safetensors)")
    s.add_argument("-o", "--out", required=True, help="output .safetensors")
    s.add_argument("--config", default="24khz_speech", help="24khz_speech (default), 24khz, 44khz or 16khz")
    s.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("convert", help="official .pth -> .safetensors (needs torch; the result loads without it)")
    c.add_argument("pth")
    c.add_argument("out")


def _codec(checkpoint):
    from impl.dac import load_codec

    if checkpoint is None:
        print(f"voiceport dac: {DEFAULT_NOTE}", file=sys.stderr)
    return load_codec(checkpoint)


def _check_out(path: str, suffixes) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"-o {path}: expected a {'/'.join(suffixes)} file")
    if not out.parent.resolve().is_dir():
        raise ValueError(f"-o {path}: folder {out.parent} does not exist")
    return out


def _save_npy(codes, out: Path) -> None:
    import numpy as np

    from impl._io import atomic_path

    with atomic_path(out) as tmp:
        np.save(tmp, codes)


def run(args) -> int:
    import numpy as np

    if args.dac_command == "encode":
        out = _check_out(args.out, (".npy",))
        if not Path(args.audio).exists():
            raise FileNotFoundError(f"{args.audio}: no such audio file")
        codec = _codec(args.checkpoint)
        t0 = time.perf_counter()
        audio = codec.load_audio(args.audio)
        codes = codec.encode(audio)
        dt = time.perf_counter() - t0
        _save_npy(codes, out)
        secs = len(audio) / codec.sr
        print(f"{args.audio}: {secs:.2f} s -> codes {list(codes.shape)} in {dt:.2f} s "
              f"(RTF {dt / max(secs, 1e-9):.3f}) -> {out}", file=sys.stderr)
    elif args.dac_command == "decode":
        out = _check_out(args.out, (".wav", ".flac", ".ogg"))
        if not Path(args.codes).exists():
            raise FileNotFoundError(f"{args.codes}: no such codes file")
        try:
            codes = np.load(args.codes, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{args.codes}: not a numpy .npy array ({e})") from None
        codec = _codec(args.checkpoint)
        t0 = time.perf_counter()
        audio = codec.decode(codes)
        dt = time.perf_counter() - t0
        codec.save_wav(audio, out)
        secs = len(audio) / codec.sr
        print(f"codes {list(codes.shape)} -> {secs:.2f} s of audio in {dt:.2f} s "
              f"(RTF {dt / max(secs, 1e-9):.3f}) -> {out}", file=sys.stderr)
    elif args.dac_command == "seeded":
        from impl.seeded.dac import write_seeded_safetensors

        out = _check_out(args.out, (".safetensors",))
        write_seeded_safetensors(out, args.config, args.seed)
        print(f"seeded DAC {args.config} (seed {args.seed}) -> {out}", file=sys.stderr)
    elif args.dac_command == "convert":
        out = _check_out(args.out, (".safetensors",))
        convert(args.pth, out)
        print(f"{args.pth} -> {out}", file=sys.stderr)
    return 0


def convert(pth, out) -> Path:
    """Official .pth -> safetensors with the same keys and kwargs metadata; checked by loading it strictly."""
    import json

    from safetensors.numpy import save_file

    from impl import dac
    from impl._io import atomic_path

    kwargs, weights = dac.read_checkpoint(pth)
    dac.from_state_dict(kwargs, weights, str(pth))  # strict: raises CheckpointError naming every bad key
    with atomic_path(out) as tmp:
        save_file(weights, tmp, metadata={"kwargs": json.dumps(kwargs, sort_keys=True)})
    return Path(out)
