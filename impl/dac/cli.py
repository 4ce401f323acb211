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
SHORT_NOTE = "using the embedded seeded DAC 24 kHz checkpoint (random weights; --checkpoint for real ones)"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
OUT_POLICY = "; written atomically, a symbolic link is followed (its target replaced), a read-only file refused"


class DacInputError(ValueError):
    """A bad option value (seed, config name, input path)."""


def configure(p: argparse.ArgumentParser) -> None:
    p.description = "DAC codec in MLX. " + DEFAULT_NOTE
    sub = p.add_subparsers(dest="dac_command", metavar="ACTION", required=True)
    e = sub.add_parser("encode", help="audio file -> codes .npy (int32, (n_codebooks, T))",
                       description="Encode audio to DAC codes as outetts does: downmix to mono, resample to the "
                                   "model rate, normalise to -18 LUFS, encode in 5 s windows; codes saved as .npy "
                                   "(int32, (n_codebooks, T), 75 frames/s at 24 kHz).")
    e.add_argument("audio", metavar="AUDIO",
                   help="wav/flac/ogg, any sample rate and channel count (downmixed, resampled)")
    e.add_argument("-o", "--out", required=True, metavar="CODES.npy", help="output codes (.npy)" + OUT_POLICY)
    d = sub.add_parser("decode", help="codes .npy -> audio file at the model rate",
                       description="Decode DAC codes to audio at the model rate, in 2048-code chunks with 15 ms "
                                   "fades (outetts' DacInterface).")
    d.add_argument("codes", metavar="CODES", help=".npy of int codes, (n_codebooks, T) or (1, n_codebooks, T), "
                                                  "as `dac encode` writes them")
    d.add_argument("-o", "--out", required=True, metavar="AUDIO", help="output audio (.wav, .flac or .ogg)"
                   + OUT_POLICY)
    d.add_argument("--quiet", action="store_true", help="no progress on stderr (shown for codes over one chunk, "
                                                        "2048 codes = 27 s)")
    for q in (e, d):
        q.add_argument("--checkpoint", default=None, metavar="PATH", help="DAC checkpoint (.pth or .safetensors); default: the "
                                                          "embedded seeded 24 kHz speech checkpoint")
    s = sub.add_parser("seeded", help="write the seeded checkpoint of an official architecture (safetensors)",
                       description="Write a checkpoint with seeded random weights at an official DAC architecture "
                                   "(safetensors, the official key layout): the same bytes for the same seed.")
    s.add_argument("-o", "--out", required=True, metavar="FILE", help="output checkpoint (.safetensors)")
    s.add_argument("--config", default="24khz_speech", metavar="NAME",
                   help="official architecture: 24khz_speech (default, OuteTTS 1.0's codec), 24khz, 44khz or 16khz")
    s.add_argument("--seed", type=int, default=0, metavar="N", help="weights' seed, >= 0 (default 0)")
    c = sub.add_parser("convert", help="official .pth -> .safetensors (needs torch; the result loads without it)",
                       description="Convert an official descript-audio-codec .pth checkpoint to .safetensors "
                                   "(same keys, kwargs in the metadata), checked by loading it strictly.")
    c.add_argument("pth", metavar="PTH", help="official DAC checkpoint to read (.pth as descript-audio-codec saves "
                                              "it: state_dict + metadata.kwargs)")
    c.add_argument("out", metavar="OUT", help="checkpoint to write (.safetensors); loads with --checkpoint")


def _codec(checkpoint):
    from impl.dac import load_codec

    if checkpoint is None:
        print(f"voiceport dac: {SHORT_NOTE}", file=sys.stderr)
    return load_codec(checkpoint)


def _save_npy(codes, out: Path) -> None:
    import numpy as np

    from impl._io import atomic_path

    with atomic_path(out) as tmp:
        np.save(tmp, codes)


def audio_bytes(samples: int, out: Path) -> int:
    """An upper bound of the file `save_wav` writes for `samples` mono samples: float32 WAV 4 bytes a sample, FLAC
    (PCM_16) at most 2 plus frame headers, Ogg Vorbis far less; 4 kB of headers."""
    per = {".wav": 4.0, ".flac": 2.1, ".ogg": 0.5}.get(out.suffix.lower(), 4.0)
    return int(samples * per) + 4096


class DecodeProgress:
    """`dac decode` progress on stderr when the codes take more than one chunk: a line with the totals (codes,
    seconds of audio, chunks), then a bar over the codes (tqdm when installed, else one line per chunk)."""

    def __init__(self, n_codes: int, chunk: int, seconds: float, quiet: bool = False):
        self.total, self.done, self.bar = n_codes, 0, None
        self.chunks = -(-n_codes // chunk)
        self.on = not quiet and self.chunks > 1
        if self.on:
            print(f"decoding {n_codes:,} codes ({seconds:.1f} s of audio) in {self.chunks} chunks of {chunk}",
                  file=sys.stderr, flush=True)
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=n_codes, unit="code", desc="decoding", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, done: int, total: int) -> None:
        if not self.on:
            return
        if self.bar is not None:
            self.bar.update(done - self.done)
        else:
            print(f"decoding: {done:,}/{total:,} codes", file=sys.stderr, flush=True)
        self.done = done

    def __enter__(self) -> "DecodeProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args) -> int:
    from impl import audio as A
    from impl._io import check_output, check_seed
    from impl.dac.interface import load_codes

    if args.dac_command == "encode":
        out = check_output(args.out, "-o", (".npy",), "codes")
        if not Path(args.audio).exists():
            raise FileNotFoundError(f"{args.audio}: no such audio file")
        x, sr = A.load_audio(args.audio)  # every input error before the codec loads
        codec = _codec(args.checkpoint)
        t0 = time.perf_counter()
        try:
            audio = codec.convert_audio(x, sr)
        except A.AudioError as e:  # a rate that cannot be resampled: name the file
            raise A.AudioError(f"{args.audio}: {e}") from None
        codes = codec.encode(audio)
        dt = time.perf_counter() - t0
        _save_npy(codes, out)
        secs = len(audio) / codec.sr
        print(f"{args.audio}: {secs:.2f} s -> codes {list(codes.shape)} in {dt:.2f} s "
              f"(RTF {dt / max(secs, 1e-9):.3f}) -> {out}", file=sys.stderr)
    elif args.dac_command == "decode":
        out = check_output(args.out, "-o", AUDIO_SUFFIXES, "audio")
        raw = load_codes(args.codes)
        codec = _codec(args.checkpoint)
        codes = codec.check_codes(raw, where=args.codes)
        samples = codec.samples(codes.shape[-1])
        check_output(args.out, "-o", AUDIO_SUFFIXES, "audio", size=audio_bytes(samples, out))  # space, before work
        t0 = time.perf_counter()
        with DecodeProgress(codes.shape[-1], codec.chunk_length, samples / codec.sr, args.quiet) as bar:
            audio = codec.decode(codes, progress=bar.update)
        dt = time.perf_counter() - t0
        codec.save_wav(audio, out)
        secs = len(audio) / codec.sr
        print(f"codes {list(codes.shape)} -> {secs:.2f} s of audio in {dt:.2f} s "
              f"(RTF {dt / max(secs, 1e-9):.3f}) -> {out}", file=sys.stderr)
    elif args.dac_command == "seeded":
        from impl.dac.model import CONFIGS
        from impl.seeded.dac import write_seeded_safetensors

        out = check_output(args.out, "-o", (".safetensors",), "checkpoint")
        if args.config not in CONFIGS:
            raise DacInputError(f"--config {args.config}: unknown DAC config; known: {', '.join(sorted(CONFIGS))}")
        check_seed(args.seed, error=DacInputError)
        write_seeded_safetensors(out, args.config, args.seed)
        print(f"seeded DAC {args.config} (seed {args.seed}) -> {out}", file=sys.stderr)
    elif args.dac_command == "convert":
        out = check_output(args.out, "output", (".safetensors",), "checkpoint")
        if Path(args.pth).is_dir():
            raise DacInputError(f"{args.pth}: is a directory, not a .pth checkpoint")
        if not Path(args.pth).exists():
            raise FileNotFoundError(f"{args.pth}: no such checkpoint")
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
