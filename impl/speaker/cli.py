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
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="profile to write (.json appended if missing); written atomically, "
                   "a symbolic link is followed (its target replaced), a read-only file refused")
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


STAGES = 5  # read + check, codec, align, encode, features + write
# create_profile's own progress lines that start a stage; its other lines are details under the current stage
STAGE_OF = (("aligning", 3), ("encoding", 4), ("measuring features", 5))


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


def _check_backend(args) -> None:
    """The aligner's optional package, before any loading (align.py raises the same when it first needs it)."""
    from impl.speaker.align import AlignmentError

    try:
        if args.text is not None:
            import pocketsphinx  # noqa: F401
        elif args.words is None:
            import mlx_whisper  # noqa: F401
    except ImportError:
        if args.text is not None:
            raise AlignmentError('forced alignment (--text) needs pocketsphinx: pip install "voiceport[profile]"'
                                 ) from None
        raise AlignmentError("ASR alignment needs mlx_whisper, which is not installed (pip install mlx-whisper); or "
                             "pass --text for forced alignment") from None


def _check_audio(args, aligner) -> str:
    """Read the audio once before the codec loads: unreadable, truncated, over 20 s without --trim, silent, and given
    word times outside it all fail here. Returns the stage-1 summary."""
    import numpy as np

    from impl import audio as A
    from impl.speaker.align import GivenWords, check_words
    from impl.speaker.profile import MAX_SECONDS, ProfileError

    x, sr = A.load_audio(args.audio)
    seconds = x.shape[-1] / sr
    if seconds > MAX_SECONDS and not args.trim:  # create_profile's words, said before the codec loads
        raise ProfileError(f"speaker audio is {seconds:.1f} s; outetts' limit is {MAX_SECONDS:.0f} s (use a shorter "
                           "clip, or --trim to keep its first 20 s)")
    if float(np.max(np.abs(x))) < 1e-4:
        raise ProfileError("the audio is silent (peak below -80 dBFS): no speech to make a profile from")
    kept = min(seconds, MAX_SECONDS)
    if isinstance(aligner, GivenWords):  # 1 ms of slack: the exact check runs on the resampled audio later
        check_words((aligner.until(kept) if seconds > MAX_SECONDS else aligner).words, kept + 1e-3)
    channels = 1 if x.ndim == 1 else x.shape[0]
    how = ("--text" if args.text is not None else f"--words {args.words}" if args.words is not None
           else f"--whisper-model {args.whisper_model}")
    return (f"{os.path.basename(args.audio)}: {seconds:.2f} s, {sr} Hz, {channels} channel(s)"
            + (f" (first {MAX_SECONDS:.0f} s kept)" if seconds > MAX_SECONDS else "") + f"; words from {how}")


def create(args) -> int:
    from impl._io import check_input
    from impl.audio import AudioError
    from impl.dac import load_codec
    from impl.speaker.profile import ProfileError, create_profile, save_profile

    t0 = time.perf_counter()
    stage = [0]

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"[profile {time.perf_counter() - t0:5.1f} s] {msg}", file=sys.stderr, flush=True)

    def progress(msg: str) -> None:
        """create_profile's lines: a stage's start numbered "k/5", the others indented under it."""
        k = next((k for key, k in STAGE_OF if key in msg), None)
        if k is not None and k > stage[0]:
            stage[0] = k
            say(f"{k}/{STAGES} {msg}")
        else:
            say(f"    {msg}")

    # Every input error before any loading: the output, the options, the audio (read once here), the aligner's
    # input and package.
    out = _check_out(args.out)
    check_input(args.audio, "audio", AudioError)  # a FIFO, device or socket: refused before anything opens it
    if os.path.isdir(args.audio):
        raise AudioError(f"{args.audio}: is a directory, not an audio file")
    if not os.path.isfile(args.audio):
        raise FileNotFoundError(f"{args.audio}: no such audio file")
    if args.text is not None and not args.text.strip():
        raise ProfileError("--text is empty: give the words spoken (or --words / --whisper-model)")
    if args.profile_text is not None and args.words is None:
        raise ProfileError("--profile-text goes with --words")
    aligner = _aligner(args)
    _check_backend(args)
    stage[0] = 1
    say(f"1/{STAGES} inputs checked: {_check_audio(args, aligner)}; -o {out}")
    stage[0] = 2
    say(f"2/{STAGES} loading " + ("the embedded seeded DAC 24 kHz checkpoint (random weights; --codec for real ones)"
                                   if args.codec is None else f"the DAC codec {args.codec}"))
    codec = load_codec(args.codec)
    text = args.text if args.text is not None else args.profile_text
    profile = create_profile(args.audio, codec, aligner, text=text, trim=args.trim, progress=progress)
    path = save_profile(profile, out)
    n = sum(len(w["c1"]) for w in profile["words"])
    say(f"done in {time.perf_counter() - t0:.1f} s")
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
