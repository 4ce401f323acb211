"""`voiceport profile`: create and inspect OuteTTS v3 speaker profiles.

    voiceport profile create AUDIO [--text TEXT | --words WORDS.json | --whisper-model DIR] [--codec PATH]
                             [--trim] -o speaker.json
    voiceport profile show speaker.json

Input errors (unreadable audio, over 20 s, silence, empty or mismatching transcript) exit 2 with one line on
stderr and write nothing; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULTS_NOTE = ("Without --codec the embedded seeded DAC 24 kHz checkpoint is used (the real architecture with "
                 "RANDOM weights, generated once into $VOICEPORT_CACHE): words, timings and features are real, the "
                 "codes are those of random weights.")


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="speaker profile from a recording (<= 20 s of one speaker)",
                       description="Speaker profile from a recording. Word times come from forced alignment of "
                                   "--text (pocketsphinx, English), from --words, or from ASR (--whisper-model). "
                                   + DEFAULTS_NOTE)
    c.add_argument("audio", metavar="AUDIO", help="wav/flac/ogg, any sample rate and channel count (downmixed to "
                                                  "mono, resampled to 24 kHz)")
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="profile to write (.json appended if missing)")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--text", default=None, help="what is said (forced alignment; English; numbers spelled out)")
    how.add_argument("--words", default=None, metavar="WORDS.json",
                     help="word times: [{word, start, end}, ...] in seconds (or whisper's result JSON)")
    c.add_argument("--profile-text", default=None, metavar="TEXT",
                   help="with --words: the profile's transcript (default: the words joined)")
    how.add_argument("--whisper-model", default=None, metavar="DIR",
                     help="ASR with word timestamps (mlx_whisper) from a local model folder")
    c.add_argument("--codec", default=None, metavar="PATH",
                   help="DAC 24 kHz checkpoint (.pth or .safetensors); default: embedded seeded checkpoint")
    c.add_argument("--trim", action="store_true", help="keep the first 20 s of a longer clip (outetts' limit) "
                                                       "instead of refusing it")
    c.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s = sub.add_parser("show", help="summary of a profile", description="Validate a v3 profile and summarise it.")
    s.add_argument("profile", metavar="FILE", help="speaker profile (.json) as `profile create` or outetts writes it")


def _aligner(args):
    from impl.speaker.align import ForcedAligner, GivenWords, WhisperAligner

    if args.text is not None:
        return ForcedAligner()
    if args.words is not None:
        return GivenWords(args.words)
    return WhisperAligner(args.whisper_model)


def _check_out(path: str) -> str:
    from impl._io import check_output

    out = path if path.endswith(".json") else path + ".json"  # as outetts' save_speaker
    check_output(out, "-o", (".json",), "profile")
    return out


def create(args) -> int:
    from impl.audio import AudioError
    from impl.dac import load_codec
    from impl.speaker.profile import ProfileError, create_profile, save_profile

    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[profile {time.perf_counter() - t0:5.1f} s] {msg}", file=sys.stderr, flush=True)

    # Every input error before any loading.
    out = _check_out(args.out)
    if os.path.isdir(args.audio):
        raise AudioError(f"{args.audio}: is a directory, not an audio file")
    if not os.path.isfile(args.audio):
        raise FileNotFoundError(f"{args.audio}: no such audio file")
    if args.text is not None and not args.text.strip():
        raise ProfileError("--text is empty: give the words spoken (or --words / --whisper-model)")
    if args.profile_text is not None and args.words is None:
        raise ProfileError("--profile-text goes with --words")
    aligner = _aligner(args)
    if args.codec is None and not args.quiet:
        progress("using the embedded seeded DAC checkpoint (random weights)")
    codec = load_codec(args.codec)
    progress("codec loaded")
    text = args.text if args.text is not None else args.profile_text
    profile = create_profile(args.audio, codec, aligner, text=text, trim=args.trim, progress=progress)
    path = save_profile(profile, out)
    n = sum(len(w["c1"]) for w in profile["words"])
    progress(f"done in {time.perf_counter() - t0:.1f} s")
    print(f"wrote {path}: {len(profile['words'])} words, {n} frames ({n / 75:.2f} s of codes)")
    return 0


def show(args) -> int:
    from impl.speaker.profile import load_speaker

    p = load_speaker(args.profile)
    n = sum(len(w["c1"]) for w in p["words"])
    print(f"{args.profile}: interface v{p['interface_version']}, {len(p['words'])} words, {n} frames "
          f"({n / 75:.2f} s), global features {p.get('global_features', {})}")
    print(f"text: {p['text']}")
    for w in p["words"]:
        print(f"  {w['word']:<20} {w['duration']:5.2f} s  {len(w['c1']):3d} frames  {w.get('features', {})}")
    return 0


def run(args) -> int:
    return create(args) if args.action == "create" else show(args)
