"""The bad-input catalogue (issue 16): every entry point, through the real CLI entry point `impl.cli.main(argv)`.

Each case builds its inputs in a fresh folder and gives the argv and the fragments the error line must hold (the
file or option named, and the problem). For every case: exit 2, exactly one line on stderr starting
`voiceport <cmd>: error:`, no traceback, and the folder byte-for-byte as before (no output, no temporary file left,
an existing output file with the same bytes and mtime). argparse's own errors (missing argument, unknown option,
bad choice, bad number) are cases too: the same one line, naming the command and action. Tiny checkpoints only (the TINY DAC, the tiny seeded LM):
no case loads the 1B LM or the real DAC.

Then hypothesis: corrupted bytes (cut at a drawn offset, drawn bytes flipped) of every input format -- wav, codes
.npy, safetensors (DAC and LM checkpoints), .pth (`dac convert` and `--checkpoint`), speaker .json -- never a
traceback: exit 0, or exit 2 with one line and nothing written.

Then the families of issue 29, each a generator over every entry point of its kind: JSON shapes (deep, huge
integers, non-finite, not UTF-8, not JSON, any small value), input file types (FIFO, devices, socket, links, names
too long), output paths (read-only, special, links followed, too long), a full disk, environment values, --seed
range, invisible text, mistyped Spark folders, signals mid-write and stale temporaries.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parity.doubles import TINY, CaseFolder, assert_refused, error_line, run_cli


# ------------------------------------------------------------------------------------------------ inputs

@pytest.fixture(scope="module")
def fx(tmp_path_factory, librivox):
    """Shared, read-only inputs: tiny DAC (.safetensors and official .pth), tiny OuteTTS folder, a speaker, a wav,
    valid codes. Cases copy what they corrupt into their own folder."""
    from reference import dac as ref

    from impl.seeded.dac import write_seeded_safetensors
    from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir
    from impl.seeded.speaker import synthetic_speaker

    d = tmp_path_factory.mktemp("fx")
    x, sr = sf.read(librivox["0880"].wav, dtype="int16")  # 3 s, 16 kHz mono PCM_16
    sf.write(d / "clip.wav", x, sr, subtype="PCM_16")
    sf.write(d / "short.wav", x[sr: sr + sr // 5], sr, subtype="PCM_16")  # 0.2 s of speech
    np.save(d / "codes.npy", np.random.default_rng(0).integers(0, 1024, (2, 8)).astype(np.int32))
    (d / "speaker.json").write_text(json.dumps(synthetic_speaker(0, "Hi there.")))
    return Fx(d=d, clip=d / "clip.wav", short=d / "short.wav", codes=d / "codes.npy",
              speaker=d / "speaker.json", dac=write_seeded_safetensors(d / "tiny.safetensors", TINY, 0),
              pth=ref.write_seeded_checkpoint(d / "tiny.pth", TINY, 0),
              model=write_model_dir(d / "model", TINY_LM_CONFIG), text=librivox["0880"].text)


@dataclass(frozen=True)
class Fx:
    d: Path
    clip: Path
    short: Path
    codes: Path
    speaker: Path
    dac: Path
    pth: Path
    model: Path
    text: str


@dataclass
class Ctx(CaseFolder):
    """What a case builder gets: its own empty folder, pytest's monkeypatch (CaseFolder) and the shared inputs."""

    fx: Fx = None

    def unreadable(self, src: Path, name: str) -> str:
        """A copy of `src` this process may not read. As root, chmod 0o000 does not stop a read, so Python's `open`
        raises PermissionError for this path through a monkeypatch (readers that open files through Python)."""
        import builtins

        p = self.file(name, Path(src).read_bytes())
        real = builtins.open

        def guarded(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == os.path.abspath(p):
                raise PermissionError(13, "Permission denied", str(file))
            return real(file, *a, **k)

        self.monkeypatch.setattr(builtins, "open", guarded)
        return p

    def dac_state(self, edit: Callable[[dict], None], name: str = "bad.safetensors") -> str:
        """The tiny DAC as safetensors with `edit` applied to its official state dict."""
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        w = load_file(str(self.fx.dac))
        with safe_open(str(self.fx.dac), "np") as f:
            meta = f.metadata()
        edit(w)
        save_file(w, str(self.d / name), metadata=meta)
        return str(self.d / name)

    def model_copy(self, edit: Callable[[Path], None]) -> str:
        import shutil

        dst = self.d / "model"
        shutil.copytree(self.fx.model, dst)
        edit(dst)
        return str(dst)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Ctx], Tuple[List[str], Optional[str]]]  # -> (argv, output path or None)
    frags: Sequence[str]  # every one must be in the error line
    where: Optional[str] = None  # the line's start before ": error: " (default `voiceport <argv[0]>`); argparse's
    # errors name the action too: "voiceport dac encode"


def _codes(c: Ctx, name: str, arr) -> str:
    np.save(c.d / name, arr)
    return str(c.d / name)


def enc(c: Ctx, audio: str, out: str = "out.npy", ckpt: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    return ["dac", "encode", audio, "-o", out, "--checkpoint", ckpt or str(c.fx.dac)], out


def dec(c: Ctx, codes: str, out: str = "out.wav", ckpt: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    return ["dac", "decode", codes, "-o", out, "--checkpoint", ckpt or str(c.fx.dac)], out


def tts(c: Ctx, *extra: str, text: str = "Hello there.", speaker: Optional[str] = None, out: str = "out.wav",
        model: Optional[str] = None, codec: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    argv = ["tts", "--text", text, "--speaker", speaker or str(c.fx.speaker), "--out", out,
            "--model", model or str(c.fx.model), "--codec", codec or str(c.fx.dac), "--quiet", *extra]
    return argv, out


def create(c: Ctx, *extra: str, audio: Optional[str] = None, out: str = "spk.json", codec: Optional[str] = None):
    out = str(c.d / out) if not os.path.isabs(out) else out
    how = [] if any(e in ("--words", "--text") for e in extra) else ["--text", c.fx.text]
    argv = ["profile", "create", audio or str(c.fx.clip), *how, *extra, "-o", out, "--codec", codec or str(c.fx.dac),
            "--quiet"]
    return argv, out


def _pop(key: str):
    return lambda w: w.pop(key)


def _reshape(key: str, shape):
    return lambda w: w.__setitem__(key, np.zeros(shape, np.float32))


CODEBOOK = "quantizer.quantizers.0.codebook.weight"  # (1024, 8) in TINY
CONV = "encoder.block.0.weight_g"                   # the first conv's weight norm g

CASES: List[Case] = [
    # -------------------------------------------------------------- dac encode: the audio
    Case("encode truncated wav", lambda c: enc(c, c.cut(c.fx.clip, "half.wav")),
         ["half.wav", "truncated", "47840 frames", "2.99 s", "1.49 s"]),
    Case("encode 0-byte wav", lambda c: enc(c, c.file("empty.wav")), ["empty.wav", "empty (0 bytes)"]),
    Case("encode text as wav", lambda c: enc(c, c.file("notes.wav", "hello\n")),
         ["notes.wav", "cannot read audio", "Format not recognised"]),
    Case("encode directory as audio", lambda c: enc(c, c.folder("clips")), ["clips", "is a directory"]),
    Case("encode missing audio", lambda c: enc(c, str(c.d / "nope.wav")), ["nope.wav", "no such audio file"]),
    Case("encode header only wav", lambda c: enc(c, c.cut(c.fx.clip, "head.wav", keep=44 / 95724)),
         ["head.wav"]),
    Case("encode odd sample rate", lambda c: enc(c, _resampled(c, 16001)),
         ["16001 Hz", "resample to a common rate"]),
    # -------------------------------------------------------------- dac encode: the output
    Case("encode out is a directory", lambda c: enc(c, str(c.fx.short), out=c.folder("codes.npy")),
         ["-o", "codes.npy", "is a directory"]),
    Case("encode out read-only folder", lambda c: enc(c, str(c.fx.short), out=c.read_only("ro") + "/x.npy"),
         ["-o", "x.npy", "not writable"]),
    Case("encode out missing folder", lambda c: enc(c, str(c.fx.short), out=str(c.d / "no" / "x.npy")),
         ["-o", "x.npy", "does not exist"]),
    Case("encode out wrong extension", lambda c: enc(c, str(c.fx.short), out="x.wav"),
         ["-o", "x.wav", "unknown codes extension", ".npy"]),
    # -------------------------------------------------------------- dac encode: the checkpoint
    Case("checkpoint truncated safetensors", lambda c: enc(c, str(c.fx.short), ckpt=c.cut(c.fx.dac, "t.safetensors")),
         ["t.safetensors", "not a readable safetensors", "truncated or corrupt"]),
    Case("checkpoint text as .pth", lambda c: enc(c, str(c.fx.short), ckpt=c.file("w.pth", "just some text\n")),
         ["w.pth", "not a PyTorch checkpoint", "neither a zip archive nor a pickle"]),
    Case("checkpoint 0-byte .pth", lambda c: enc(c, str(c.fx.short), ckpt=c.file("z.pth")),
         ["z.pth", "empty (0 bytes)"]),
    Case("checkpoint truncated .pth", lambda c: enc(c, str(c.fx.short), ckpt=c.cut(c.fx.pth, "cut.pth")),
         ["cut.pth", "not a readable PyTorch checkpoint"]),
    Case("checkpoint unreadable .pth", lambda c: enc(c, str(c.fx.short), ckpt=c.unreadable(c.fx.pth, "u.pth")),
         ["u.pth", "cannot read the checkpoint", "Permission denied"]),
    Case("checkpoint mis-shaped tensor",
         lambda c: enc(c, str(c.fx.short), ckpt=c.dac_state(_reshape(CODEBOOK, (1024, 4)))),
         ["bad.safetensors", "1 mis-shaped", CODEBOOK, "checkpoint [1024, 4] != model [1024, 8]"]),
    Case("checkpoint mis-shaped weight_v",
         lambda c: enc(c, str(c.fx.short), ckpt=c.dac_state(_reshape("encoder.block.0.weight_v", (64, 1, 3)))),
         ["bad.safetensors", "encoder.block.0.weight_v: checkpoint [64, 1, 3] != model [8, 1, 7]"]),
    Case("checkpoint missing weight_g", lambda c: enc(c, str(c.fx.short), ckpt=c.dac_state(_pop(CONV))),
         ["bad.safetensors", f"1 missing: {CONV}"]),
    Case("checkpoint unexpected key", lambda c: enc(
        c, str(c.fx.short), ckpt=c.dac_state(lambda w: w.__setitem__("decoder.extra.bias", np.zeros(3, np.float32)))),
        ["bad.safetensors", "1 unexpected: decoder.extra.bias"]),
    Case("checkpoint without kwargs", lambda c: enc(c, str(c.fx.short), ckpt=_no_kwargs(c)),
         ["nokw.safetensors", "no 'kwargs' metadata"]),
    Case("checkpoint kwargs not a DAC", lambda c: enc(c, str(c.fx.short), ckpt=_bad_kwargs(c)),
         ["kw.safetensors", "kwargs do not describe a DAC"]),
    Case("checkpoint missing file", lambda c: enc(c, str(c.fx.short), ckpt=str(c.d / "nope.pth")),
         ["nope.pth", "no such DAC checkpoint"]),
    Case("checkpoint empty folder", lambda c: enc(c, str(c.fx.short), ckpt=c.folder("ckpts")),
         ["ckpts", "no .safetensors or .pth"]),
    Case("checkpoint a pickle of something else", lambda c: enc(c, str(c.fx.short), ckpt=_torch_save(c, [1, 2])),
         ["other.pth", "not an official DAC checkpoint"]),
    # -------------------------------------------------------------- dac decode: the codes
    Case("codes 0-byte npy", lambda c: dec(c, c.file("c.npy")), ["c.npy", "empty (0 bytes)"]),
    Case("codes text file", lambda c: dec(c, c.file("c.npy", "1 2 3\n")), ["c.npy", "not a numpy .npy file"]),
    Case("codes npz archive", lambda c: dec(c, _npz(c)), ["c.npz", ".npz archive"]),
    Case("codes truncated npy", lambda c: dec(c, c.cut(c.fx.codes, "cut.npy", keep=0.8)),
         ["cut.npy", "not a readable .npy array"]),
    Case("codes object array", lambda c: dec(c, _codes(c, "o.npy", np.array([{"a": 1}], dtype=object))),
         ["o.npy", "not a readable .npy array"]),
    Case("codes out of range", lambda c: dec(c, _codes(c, "r.npy", np.full((2, 4), 5000, np.int32))),
         ["r.npy", "[0, 1024)", "5000"]),
    Case("codes negative", lambda c: dec(c, _codes(c, "n.npy", np.full((2, 4), -1, np.int32))),
         ["n.npy", "[0, 1024)"]),
    Case("codes wrong codebook count", lambda c: dec(c, _codes(c, "k.npy", np.zeros((9, 4), np.int32))),
         ["k.npy", "9 codebooks given", "the model has 2"]),
    Case("codes float", lambda c: dec(c, _codes(c, "f.npy", np.zeros((2, 4), np.float32))),
         ["f.npy", "integers", "float32"]),
    Case("codes 1-D", lambda c: dec(c, _codes(c, "v.npy", np.zeros(8, np.int32))), ["v.npy", "(n_codebooks, T)"]),
    Case("codes no frames", lambda c: dec(c, _codes(c, "e.npy", np.zeros((2, 0), np.int32))), ["e.npy", "T > 0"]),
    Case("codes unreadable", lambda c: dec(c, c.unreadable(c.fx.codes, "u.npy")), ["u.npy", "Permission denied"]),
    Case("codes directory", lambda c: dec(c, c.folder("codes")), ["codes", "is a directory"]),
    Case("codes missing", lambda c: dec(c, str(c.d / "nope.npy")), ["nope.npy", "no such codes file"]),
    # -------------------------------------------------------------- dac decode: the output
    Case("decode out is a directory", lambda c: dec(c, str(c.fx.codes), out=c.folder("y.wav")),
         ["-o", "y.wav", "is a directory"]),
    Case("decode out read-only folder", lambda c: dec(c, str(c.fx.codes), out=c.read_only("ro") + "/y.wav"),
         ["-o", "y.wav", "not writable"]),
    Case("decode out unknown extension", lambda c: dec(c, str(c.fx.codes), out="y.mp3"),
         ["-o", "y.mp3", "unknown audio extension"]),
    # -------------------------------------------------------------- dac seeded / convert
    Case("seeded negative seed", lambda c: (["dac", "seeded", "-o", str(c.d / "s.safetensors"), "--seed", "-1"],
                                            str(c.d / "s.safetensors")), ["--seed -1", ">= 0"]),
    Case("seeded unknown config", lambda c: (["dac", "seeded", "-o", str(c.d / "s.safetensors"), "--config",
                                              "99khz"], str(c.d / "s.safetensors")), ["--config 99khz", "unknown"]),
    Case("seeded read-only folder", lambda c: (["dac", "seeded", "-o", c.read_only("ro") + "/s.safetensors",
                                                "--config", "16khz"], None), ["s.safetensors", "not writable"]),
    Case("seeded out is a directory", lambda c: (["dac", "seeded", "-o", c.folder("s.safetensors")], None),
         ["s.safetensors", "is a directory"]),
    Case("convert 0-byte pth", lambda c: (["dac", "convert", c.file("z.pth"), str(c.d / "o.safetensors")],
                                          str(c.d / "o.safetensors")), ["z.pth", "empty (0 bytes)"]),
    Case("convert text as pth", lambda c: (["dac", "convert", c.file("t.pth", "hello\n"),
                                            str(c.d / "o.safetensors")], str(c.d / "o.safetensors")),
         ["t.pth", "not a PyTorch checkpoint"]),
    Case("convert truncated pth", lambda c: (["dac", "convert", c.cut(c.fx.pth, "cut.pth"),
                                              str(c.d / "o.safetensors")], str(c.d / "o.safetensors")),
         ["cut.pth", "not a readable PyTorch checkpoint"]),
    Case("convert read-only folder", lambda c: (["dac", "convert", str(c.fx.pth),
                                                 c.read_only("ro") + "/o.safetensors"], None),
         ["o.safetensors", "not writable"]),
    Case("convert out extension", lambda c: (["dac", "convert", str(c.fx.pth), str(c.d / "o.pth")],
                                             str(c.d / "o.pth")), ["o.pth", "unknown checkpoint extension"]),
    Case("convert directory as pth", lambda c: (["dac", "convert", c.folder("w.pth"), str(c.d / "o.safetensors")],
                                                str(c.d / "o.safetensors")), ["w.pth", "is a directory"]),
    Case("convert missing pth", lambda c: (["dac", "convert", str(c.d / "nope.pth"), str(c.d / "o.safetensors")],
                                           str(c.d / "o.safetensors")), ["nope.pth", "no such checkpoint"]),
    # -------------------------------------------------------------- tts
    Case("tts empty text", lambda c: tts(c, text="   "), ["--text", "empty"]),
    Case("tts speaker is a directory", lambda c: tts(c, speaker=c.folder("spk")), ["spk", "is a directory"]),
    Case("tts speaker not a profile", lambda c: tts(c, speaker=c.file("s.json", '{"name": "me"}')),
         ["s.json", "not an OuteTTS speaker profile", "'name'"]),
    Case("tts speaker a list", lambda c: tts(c, speaker=c.file("s.json", "[]")), ["s.json", "JSON object"]),
    Case("tts speaker not JSON", lambda c: tts(c, speaker=c.file("s.json", "{")), ["s.json", "not a JSON file"]),
    Case("tts speaker binary", lambda c: tts(c, speaker=c.file("s.json", b"\xff\xfe\x00garbage")),
         ["s.json", "not a JSON file"]),
    Case("tts speaker codes out of range", lambda c: tts(c, speaker=_speaker(c, lambda s: s["words"][0]["c1"]
                                                                              .__setitem__(0, 4096))),
         ["s.json", "words[0].c1 holds 4096"]),
    Case("tts speaker missing", lambda c: tts(c, speaker=str(c.d / "nope.json")), ["nope.json", "not found"]),
    Case("tts negative seed", lambda c: tts(c, "--seed", "-1"), ["--seed -1", ">= 0"]),
    Case("tts negative max-new-tokens", lambda c: tts(c, "--max-new-tokens", "-5"), ["--max-new-tokens -5", ">= 1"]),
    Case("tts zero max-new-tokens", lambda c: tts(c, "--max-new-tokens", "0"), ["--max-new-tokens 0", ">= 1"]),
    Case("tts non-numeric max-new-tokens", lambda c: tts(c, "--max-new-tokens", "lots"),
         ["argument --max-new-tokens: invalid int value: 'lots'"]),
    Case("tts bad dtype", lambda c: tts(c, "--dtype", "int8"), ["argument --dtype: invalid choice: 'int8'"]),
    Case("tts negative temperature", lambda c: tts(c, "--temperature", "-1"), ["--temperature -1.0", ">= 0"]),
    Case("tts nan temperature", lambda c: tts(c, "--temperature", "nan"), ["--temperature nan", "finite"]),
    Case("tts max-length below the prompt", lambda c: tts(c, "--max-length", "20"),
         ["--max-length 20", "the prompt has"]),
    Case("tts out unknown extension", lambda c: tts(c, out="x.mp3"), ["--out", "x.mp3", "unknown audio extension"]),
    Case("tts out is a directory", lambda c: tts(c, out=c.folder("x.wav")), ["--out", "x.wav", "is a directory"]),
    Case("tts out read-only folder", lambda c: tts(c, out=c.read_only("ro") + "/x.wav"), ["x.wav", "not writable"]),
    Case("tts out missing folder", lambda c: tts(c, out=str(c.d / "no" / "x.wav")), ["x.wav", "does not exist"]),
    Case("tts model missing", lambda c: tts(c, model=str(c.d / "nomodel")), ["--model", "nomodel", "no such folder"]),
    Case("tts model truncated safetensors", lambda c: tts(c, model=c.model_copy(_cut_lm)),
         ["model.safetensors", "not a readable safetensors"]),
    Case("tts model mis-shaped tensor", lambda c: tts(c, model=c.model_copy(_misshape_lm)),
         ["model.layers.0.mlp.up_proj.weight: checkpoint [64, 128] != model [128, 64]"]),
    Case("tts model config not JSON", lambda c: tts(c, model=c.model_copy(lambda d: (d / "config.json")
                                                                          .write_text("{oops"))),
         ["config.json", "not a JSON file"]),
    Case("tts codec text as .pth", lambda c: tts(c, codec=c.file("codec.pth", "hello\n")),
         ["codec.pth", "not a PyTorch checkpoint"]),
    # -------------------------------------------------------------- profile create / show
    Case("profile words empty list", lambda c: create(c, "--words", c.file("w.json", "[]")),
         ["w.json", "the words file is empty"]),
    Case("profile words segments not a list", lambda c: create(c, "--words", c.file("w.json", '{"segments": 5}')),
         ["w.json", "'segments'", "TypeError"]),
    Case("profile words without times", lambda c: create(c, "--words", c.file("w.json", '[{"word": "he"}]')),
         ["w.json", "word/start/end", "'start'"]),
    Case("profile words not JSON", lambda c: create(c, "--words", c.file("w.json", "nope")),
         ["w.json", "cannot read word timestamps"]),
    Case("profile words directory", lambda c: create(c, "--words", c.folder("words")), ["words", "is a directory"]),
    Case("profile truncated wav", lambda c: create(c, audio=c.cut(c.fx.clip, "half.wav")),
         ["half.wav", "truncated", "1.49 s"]),
    Case("profile directory as audio", lambda c: create(c, audio=c.folder("a.wav")), ["a.wav", "is a directory"]),
    Case("profile out is a directory", lambda c: create(c, out=c.folder("spk.json")), ["spk.json", "is a directory"]),
    Case("profile out read-only folder", lambda c: create(c, out=c.read_only("ro") + "/spk.json"),
         ["spk.json", "not writable"]),
    Case("profile out missing folder", lambda c: create(c, out=str(c.d / "no" / "spk.json")),
         ["spk.json", "does not exist"]),
    Case("profile codec truncated safetensors", lambda c: create(c, codec=c.cut(c.fx.dac, "t.safetensors")),
         ["t.safetensors", "not a readable safetensors"]),
    Case("profile empty text", lambda c: create(c, "--text", " "), ["--text is empty"]),
    Case("profile show directory", lambda c: (["profile", "show", c.folder("p")], None), ["p", "is a directory"]),
    Case("profile show not a profile", lambda c: (["profile", "show", c.file("p.json", '{"text": "hi"}')], None),
         ["p.json", "interface version"]),
    Case("profile show truncated", lambda c: (["profile", "show", c.cut(c.fx.speaker, "p.json")], None),
         ["p.json", "not a JSON file"]),
    Case("profile show unreadable", lambda c: (["profile", "show", c.unreadable(c.fx.speaker, "u.json")], None),
         ["u.json", "cannot read the speaker file", "Permission denied"]),
    Case("profile show missing", lambda c: (["profile", "show", str(c.d / "nope.json")], None),
         ["nope.json", "not found"]),
    Case("profile show c1/c2 lengths differ", lambda c: (["profile", "show", _speaker(
        c, lambda s: s["words"][1]["c2"].pop())], None), ["s.json", "words[1]", "equal length"]),
]


# argparse's own errors (missing required argument, unknown option, bad choice, bad number), for every command and
# action: one line naming the command, the action and the option, ending "(voiceport CMD --help)".
HELP = "--help)"
USAGE: List[Case] = [
    Case("usage unknown command", lambda c: (["speak", "--text", "hi"], None),
         ["argument COMMAND: invalid choice: 'speak'", "'dac', 'tts', 'profile'", "(voiceport --help)"],
         where="voiceport"),
    Case("usage dac without action", lambda c: (["dac"], None),
         ["required: ACTION: one of encode, decode, seeded, convert", "(voiceport dac --help)"]),
    Case("usage dac unknown action", lambda c: (["dac", "compress", str(c.fx.short)], None),
         ["argument ACTION: invalid choice: 'compress'", HELP]),
    Case("usage encode without -o", lambda c: (["dac", "encode", str(c.fx.short)], None),
         ["required: -o/--out", "(voiceport dac encode --help)"], where="voiceport dac encode"),
    Case("usage encode without audio", lambda c: (["dac", "encode", "-o", str(c.d / "c.npy")], str(c.d / "c.npy")),
         ["required: AUDIO", HELP], where="voiceport dac encode"),
    Case("usage encode -o without value", lambda c: (["dac", "encode", str(c.fx.short), "-o"], None),
         ["argument -o/--out: expected one argument", HELP], where="voiceport dac encode"),
    Case("usage encode unknown option", lambda c: (["dac", "encode", str(c.fx.short), "-o", str(c.d / "c.npy"),
                                                    "--bitrate", "6"], str(c.d / "c.npy")),
         ["unrecognized arguments: --bitrate 6", HELP], where="voiceport dac encode"),
    Case("usage decode without codes", lambda c: (["dac", "decode", "-o", str(c.d / "y.wav")], str(c.d / "y.wav")),
         ["required: CODES", HELP], where="voiceport dac decode"),
    Case("usage decode unknown option", lambda c: (["dac", "decode", str(c.fx.codes), "-o", str(c.d / "y.wav"),
                                                    "--rate", "16000"], str(c.d / "y.wav")),
         ["unrecognized arguments: --rate 16000", HELP], where="voiceport dac decode"),
    Case("usage seeded without -o", lambda c: (["dac", "seeded", "--config", "16khz"], None),
         ["required: -o/--out", HELP], where="voiceport dac seeded"),
    Case("usage seeded non-numeric seed", lambda c: (["dac", "seeded", "-o", str(c.d / "s.safetensors"), "--seed",
                                                      "one"], str(c.d / "s.safetensors")),
         ["argument --seed: invalid int value: 'one'", HELP], where="voiceport dac seeded"),
    Case("usage convert without output", lambda c: (["dac", "convert", str(c.fx.pth)], None),
         ["required: OUT", HELP], where="voiceport dac convert"),
    Case("usage convert extra argument", lambda c: (["dac", "convert", str(c.fx.pth), str(c.d / "o.safetensors"),
                                                     str(c.d / "p.safetensors")], str(c.d / "o.safetensors")),
         ["unrecognized arguments: ", "p.safetensors", HELP], where="voiceport dac convert"),
    Case("usage tts without --speaker", lambda c: (["tts", "--text", "Hi.", "--out", str(c.d / "o.wav")],
                                                   str(c.d / "o.wav")),
         ["required: --speaker", "(voiceport tts --help)"]),
    Case("usage tts without --text", lambda c: (["tts", "--speaker", str(c.fx.speaker), "--out", str(c.d / "o.wav")],
                                                str(c.d / "o.wav")),
         ["one of the arguments --text --text-file is required", HELP]),
    Case("usage tts unknown option", lambda c: tts(c, "--voice", "alice"),
         ["unrecognized arguments: --voice alice", HELP]),
    Case("usage tts non-numeric seed", lambda c: tts(c, "--seed", "1.5"),
         ["argument --seed: invalid int value: '1.5'", HELP]),
    Case("usage tts non-numeric temperature", lambda c: tts(c, "--temperature", "warm"),
         ["argument --temperature: invalid float value: 'warm'", HELP]),
    Case("usage tts bad quantize", lambda c: tts(c, "--quantize", "q2"),
         ["argument --quantize: invalid choice: 'q2'", "'q8', 'q4'", HELP]),
    Case("usage tts non-numeric max-length", lambda c: tts(c, "--max-length", "8k"),
         ["argument --max-length: invalid int value: '8k'", HELP]),
    Case("usage tts --text without value", lambda c: (["tts", "--speaker", str(c.fx.speaker), "--out",
                                                       str(c.d / "o.wav"), "--text"], str(c.d / "o.wav")),
         ["argument --text: expected one argument", HELP]),
    Case("usage profile without action", lambda c: (["profile"], None),
         ["required: ACTION: one of create, show", "(voiceport profile --help)"]),
    Case("usage profile unknown action", lambda c: (["profile", "delete", str(c.fx.speaker)], None),
         ["argument ACTION: invalid choice: 'delete'", "'create', 'show'"]),
    Case("usage create without -o", lambda c: (["profile", "create", str(c.fx.clip), "--text", "hi"], None),
         ["required: -o/--out", "(voiceport profile create --help)"], where="voiceport profile create"),
    Case("usage create without audio", lambda c: (["profile", "create", "--text", "hi", "-o", str(c.d / "s.json")],
                                                  str(c.d / "s.json")),
         ["required: AUDIO", HELP], where="voiceport profile create"),
    Case("usage create --text and --words", lambda c: create(c, "--text", "hi", "--words", str(c.d / "w.json")),
         ["argument --words: not allowed with argument --text", HELP], where="voiceport profile create"),
    Case("usage create unknown option", lambda c: create(c, "--language", "en"),
         ["unrecognized arguments: --language en", HELP], where="voiceport profile create"),
    Case("usage show without file", lambda c: (["profile", "show"], None), ["required: FILE", HELP],
         where="voiceport profile show"),
    Case("usage show unknown option", lambda c: (["profile", "show", str(c.fx.speaker), "--json"], None),
         ["unrecognized arguments: --json", HELP], where="voiceport profile show"),
]
CASES += USAGE


def _resampled(c: Ctx, sr: int) -> str:
    x, _ = sf.read(c.fx.short, dtype="int16")
    sf.write(c.d / "odd.wav", x, sr, subtype="PCM_16")
    return str(c.d / "odd.wav")


def _no_kwargs(c: Ctx) -> str:
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(c.fx.dac)), str(c.d / "nokw.safetensors"))
    return str(c.d / "nokw.safetensors")


def _bad_kwargs(c: Ctx) -> str:
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(c.fx.dac)), str(c.d / "kw.safetensors"),
              metadata={"kwargs": json.dumps({"encoder_rates": "fast", "sample_rate": 24000})})
    return str(c.d / "kw.safetensors")


def _torch_save(c: Ctx, obj) -> str:
    import torch

    torch.save(obj, str(c.d / "other.pth"))
    return str(c.d / "other.pth")


def _npz(c: Ctx) -> str:
    np.savez(c.d / "c.npz", codes=np.zeros((2, 4), np.int32))
    return str(c.d / "c.npz")


def _speaker(c: Ctx, edit) -> str:
    s = json.loads(c.fx.speaker.read_text())
    edit(s)
    return c.file("s.json", json.dumps(s))


def _cut_lm(d: Path) -> None:
    b = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(b[: len(b) // 2])


def _misshape_lm(d: Path) -> None:
    from safetensors.numpy import load_file, save_file

    w = load_file(str(d / "model.safetensors"))
    w["model.layers.0.mlp.up_proj.weight"] = np.zeros((64, 128), np.float32)
    save_file(w, str(d / "model.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------------ the runner

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, fx, tmp_path, capsys, monkeypatch):
    d = tmp_path / "case"
    d.mkdir()
    argv, out = case.build(Ctx(d, monkeypatch, fx))
    assert_refused(argv, out, d, capsys, case.where or f"voiceport {argv[0]}", case.frags)


def test_bad_input_catalogue_size():
    assert len(CASES) >= 120 and len({c.id for c in CASES}) == len(CASES)


def _subcommands(parser) -> dict:
    import argparse

    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_bad_input_usage_cases_cover_every_action():
    """Each shipping command and action has argparse cases: a missing required argument, and an unknown option or a
    bad value."""
    from impl.cli import build_parser

    commands = _subcommands(build_parser(only=None))
    actions = [("tts",)] + [(cmd, act) for cmd in ("dac", "profile") for act in _subcommands(commands[cmd])]
    for action in actions:
        cases = [c for c in USAGE if (tuple(c.where.split()[1:]) if c.where else (c.id.split()[1],)) == action]
        kinds = {k for c in cases for k in ("required", "unrecognized", "invalid") if any(k in f for f in c.frags)}
        assert "required" in kinds and kinds & {"unrecognized", "invalid"}, f"{' '.join(action)}: {kinds}"


def test_bad_input_read_only_check_can_fail(fx, tmp_path, monkeypatch, capsys):
    """The read-only cases prove something: without the monkeypatched os.access the same folder is written (we run
    as root, or the folder is writable anyway), so the error comes from the check, not from the file system."""
    ro = tmp_path / "ro"
    ro.mkdir()
    rc, _, err = run_cli(["dac", "encode", str(fx.short), "-o", str(ro / "x.npy"), "--checkpoint", str(fx.dac)],
                         capsys)
    assert rc == 0, err
    assert (ro / "x.npy").is_file()


# ------------------------------------------------------------------------------------------------ hypothesis

@st.composite
def corruption(draw, size: int, hot: Sequence[Tuple[int, int]] = ()):
    """("cut", n) keeps the first n bytes; ("flip", [(offset, xor), ...]) flips drawn bytes. Offsets are drawn over
    the whole file or, half the time, inside a `hot` range (headers, where a flip changes the structure)."""
    ranges = [(0, size - 1)] + [(a, min(b, size - 1)) for a, b in hot]
    offset = st.one_of(*[st.integers(a, b) for a, b in ranges])
    if draw(st.booleans()):
        return "cut", draw(offset)
    return "flip", draw(st.lists(st.tuples(offset, st.integers(1, 255)), min_size=1, max_size=8))


def corrupt(data: bytes, how) -> bytes:
    kind, arg = how
    if kind == "cut":
        return data[:arg]
    b = bytearray(data)
    for off, xor in arg:
        b[off] ^= xor
    return bytes(b)


def check_never_a_traceback(argv: List[str], folder: Path, out: Optional[Path], capsys) -> None:
    before = {p for p in os.listdir(folder)}
    rc, _, err = run_cli(argv, capsys)
    event(f"exit {rc}")  # --hypothesis-show-statistics: how many corruptions were refused, how many ran
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err, err
    if rc == 2:
        error_line(err, f"voiceport {argv[0]}")
        assert set(os.listdir(folder)) == before, "a failed run left a file"
        if out is not None:
            assert not out.exists()


def _header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


CORRUPT = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def _fuzz(fx, capsys, src: Path, name: str, how, argv_of: Callable[[Path, Path], Tuple[List[str], Optional[Path]]]):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bad = d / name
        bad.write_bytes(corrupt(src.read_bytes(), how))
        argv, out = argv_of(bad, d)
        check_never_a_traceback(argv, d, out, capsys)


@pytest.fixture(scope="module")
def sizes(fx):
    return {p: Path(p).stat().st_size for p in (fx.short, fx.codes, fx.dac, fx.pth, fx.speaker,
                                                fx.model / "model.safetensors")}


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_wav(fx, sizes, capsys, data):
    how = data.draw(corruption(sizes[fx.short], hot=[(0, 64)]))
    _fuzz(fx, capsys, fx.short, "c.wav", how,
          lambda bad, d: (["dac", "encode", str(bad), "-o", str(d / "o.npy"), "--checkpoint", str(fx.dac)],
                          d / "o.npy"))


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_codes_npy(fx, sizes, capsys, data):
    how = data.draw(corruption(sizes[fx.codes], hot=[(0, 128)]))
    _fuzz(fx, capsys, fx.codes, "c.npy", how,
          lambda bad, d: (["dac", "decode", str(bad), "-o", str(d / "o.wav"), "--checkpoint", str(fx.dac)],
                          d / "o.wav"))


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_dac_safetensors(fx, sizes, capsys, data):
    how = data.draw(corruption(sizes[fx.dac], hot=[(0, _header_len(fx.dac))]))
    _fuzz(fx, capsys, fx.dac, "c.safetensors", how,
          lambda bad, d: (["dac", "encode", str(fx.short), "-o", str(d / "o.npy"), "--checkpoint", str(bad)],
                          d / "o.npy"))


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_lm_safetensors(fx, sizes, capsys, data):
    src = fx.model / "model.safetensors"
    how = data.draw(corruption(sizes[src], hot=[(0, _header_len(src))]))
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        d = Path(tmp)
        model = d / "model"
        shutil.copytree(fx.model, model)
        (model / "model.safetensors").write_bytes(corrupt(src.read_bytes(), how))
        argv = ["tts", "--text", "Hi.", "--speaker", str(fx.speaker), "--out", str(d / "o.wav"), "--model",
                str(model), "--codec", str(fx.dac), "--max-new-tokens", "8", "--quiet"]
        check_never_a_traceback(argv, d, d / "o.wav", capsys)


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_pth_convert(fx, sizes, capsys, data):
    n = sizes[fx.pth]
    how = data.draw(corruption(n, hot=[(0, 1024), (n - 1024, n - 1)]))  # the pickle up front, the zip index last
    _fuzz(fx, capsys, fx.pth, "c.pth", how,
          lambda bad, d: (["dac", "convert", str(bad), str(d / "o.safetensors")], d / "o.safetensors"))


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_pth_checkpoint(fx, sizes, capsys, data):
    n = sizes[fx.pth]
    how = data.draw(corruption(n, hot=[(0, 1024), (n - 1024, n - 1)]))
    _fuzz(fx, capsys, fx.pth, "c.pth", how,
          lambda bad, d: (["dac", "encode", str(fx.short), "-o", str(d / "o.npy"), "--checkpoint", str(bad)],
                          d / "o.npy"))


@CORRUPT
@given(data=st.data())
def test_bad_input_corrupted_speaker_json(fx, sizes, capsys, data):
    how = data.draw(corruption(sizes[fx.speaker]))
    _fuzz(fx, capsys, fx.speaker, "s.json", how, lambda bad, d: (["profile", "show", str(bad)], None))


# ------------------------------------------------------------------------------------------------ tts that never stops

def test_bad_input_tts_default_cap_bounds_a_model_that_never_stops(fx, tmp_path, capsys):
    """No --max-new-tokens on random weights (which rarely emit <|im_end|>): each chunk stops at the stated cap,
    2 x the profile's audio tokens per character x the chunk's characters + 64; "prefill N prompt tokens" comes
    first, then a bar whose total is the cap."""
    import math

    from impl.outetts import generate as G
    from impl.outetts.tokens import SPECIAL
    from impl.speaker.profile import load_speaker

    text = "Hello there."
    rc, out, err = run_cli(["tts", "--text", text, "--speaker", str(fx.speaker), "--model", str(fx.model), "--codec",
                            str(fx.dac), "--out", str(tmp_path / "o.wav")], capsys)
    assert rc == 0, err
    tts, speaker = G.load(fx.model), load_speaker(fx.speaker)
    (plan,) = tts.plan(text, speaker, G.GenerationConfig(max_new_tokens=G.AUTO))
    audio_part = len(plan.prompt) - plan.prompt.index(tts.tokenizer.added_id(SPECIAL.audio_start)) - 1
    rate = audio_part / sum(len(w["word"]) for w in speaker["words"])
    assert plan.budget == math.ceil(2 * rate * len("Hellothere.")) + 64
    rule = f"{plan.budget} new tokens: auto: 2 x {rate:.1f} tokens/char (the profile's) x 11 chars + 64"
    assert f"cap {rule}; --max-new-tokens to change" in err
    assert f"prefill {len(plan.prompt)} prompt tokens" in err
    assert f"/{plan.budget} [" in err  # tqdm's n/total
    assert err.index("prefill") < err.index(f"/{plan.budget} [")
    n = int(out.split("tokens: ")[1].split()[0])
    assert 0 < n <= plan.budget
    assert rule in out.split("stopped: ")[1]


def test_bad_input_tts_api_generate_raises_when_no_codes(fx):
    """`TTS.generate` raises the CLI's error when the tokens hold no audio codes (it returned a (0,) array)."""
    import mlx.core as mx

    from impl.outetts import generate as G
    from impl.outetts.tokenizer import Tokenizer

    tok = Tokenizer(fx.model)
    row = np.zeros(tok.vocab_size, np.float32)
    row[tok.encode("a")[0]] = 100.0  # a text token, never a code

    def lm(ids, cache):
        return mx.broadcast_to(mx.array(row), (1, ids.shape[1], tok.vocab_size))

    tts = G.TTS(lm, tok, make_cache=lambda: None, vocab_size=tok.vocab_size, codec=object())
    with pytest.raises(G.GenerationError, match="produced no audio codes in 5 tokens"):
        tts.generate("Hi.", None, G.GenerationConfig(greedy=True, max_new_tokens=5))


def test_bad_input_tts_api_load_picks_the_cli_dtype(tmp_path):
    """`load()` without dtype computes as the CLI does: float32 on the CPU (a bf16 checkpoint is upcast), the
    checkpoint's dtype on a GPU."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from impl.outetts import generate as G
    from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir

    write_model_dir(tmp_path / "m", TINY_LM_CONFIG, dtype="bfloat16")
    want = mx.float32 if mx.default_device() == mx.cpu else mx.bfloat16
    assert G.default_dtype() == ("float32" if want == mx.float32 else None)
    assert {v.dtype for _, v in tree_flatten(G.load(tmp_path / "m").lm.parameters())} == {want}
    assert {v.dtype for _, v in tree_flatten(G.load(tmp_path / "m", dtype=None).lm.parameters())} == {mx.bfloat16}


# ------------------------------------------------------------------------------------------------ families (issue 29)
# Generators, not single cases: each family draws its inputs (JSON shapes, file types, output paths, environment
# values, signals) and runs them through every entry point that reads or writes that kind of thing. A new case of
# a family is then likely drawn already. Every run: exit 2 and one line (or the stated success), nothing written,
# no temporary file left, and no hang (SIGALRM fails a run that blocks).

FAMILY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
HANG_S = 20  # a reader that opens a FIFO blocks forever; far over any tiny-model run here


def run_bounded(argv: List[str], capsys) -> Tuple[int, str, str]:
    """run_cli, failed (not hung) after HANG_S seconds."""
    import signal

    def hung(signum, frame):
        raise AssertionError(f"{' '.join(argv)[:200]}: still running after {HANG_S} s (blocked on a special file?)")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_S)
    try:
        return run_cli(argv, capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def snapshot(folder: Path) -> dict:
    """parity.doubles.snapshot that never opens a special file (a FIFO would block it): entries by lstat, regular
    files by their bytes too."""
    import stat

    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            data = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if os.path.islink(p) else None
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), data,
                                               st.st_mtime_ns if stat.S_ISREG(st.st_mode) else None)
    return out


def refused(argv: List[str], folder: Path, capsys, *frags: str, out: Optional[Path] = None) -> str:
    """Exit 2, one `voiceport <cmd>: error:` line holding every fragment, `folder` unchanged (an earlier output at
    `out` kept byte for byte)."""
    from parity.doubles import keep_earlier_output

    keep_earlier_output(out)
    before = snapshot(folder)
    rc, _, err = run_bounded(argv, capsys)
    assert rc == 2, err
    line = error_line(err, f"voiceport {argv[0]}")
    for frag in frags:
        assert frag in line, f"{frag!r} not in {line!r}"
    assert snapshot(folder) == before, "the refused run changed its folder"
    return line


# ---------------------------------------------------------------- JSON shapes

@st.composite
def bad_json(draw) -> Tuple[bytes, str]:
    """(bytes, fragment the error must hold): nesting past the limit, integers past int64 (or int32 for configs:
    the fragment is the same), non-finite numbers, not UTF-8, not JSON at all."""
    kind = draw(st.sampled_from(["deep", "huge int", "non-finite", "not utf-8", "not json"]))
    if kind == "deep":
        n = draw(st.integers(65, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"w":', "}]")]))
        k = n if opener != '[{"w":' else (n + 1) // 2
        return (opener * k + "0" + closer * k).encode(), "levels deep"
    if kind == "huge int":
        digits = draw(st.integers(20, 6000))  # past int64; 4301+ is past Python's int() limit too
        sign = draw(st.sampled_from(["", "-"]))
        where = draw(st.sampled_from(["{v}", '{{"global": [{v}], "semantic": [1]}}', '[{{"word": "a", "start": {v}, '
                                      '"end": 1}}]', '{{"vocab_size": {v}}}', '{{"eos_token_id": {v}}}']))
        return where.format(v=sign + "9" * digits).encode(), "out of range"
    if kind == "non-finite":
        v = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]))
        return f'{{"a": [{v}]}}'.encode(), "JSON number" if v[-1].isalpha() else "out of range"
    if kind == "not utf-8":
        return b'{"a": "' + draw(st.binary(min_size=1, max_size=8).map(lambda b: b"\xff" + b)) + b'"}', "UTF-8"
    return draw(st.sampled_from([b"{", b"[1,", b"", b"   ", b"{'a': 1}", b"\x00"])), "JSON"


def _json_readers(fx, d: Path, data: bytes) -> List[Tuple[List[str], Optional[Path]]]:
    """Every command that reads a JSON file, given `data` as that file."""
    import shutil

    (d / "j.json").write_bytes(data)
    model = d / "model"
    shutil.copytree(fx.model, model)
    (model / "config.json").write_bytes(data)
    gen = d / "gen"
    shutil.copytree(fx.model, gen)
    (gen / "generation_config.json").write_bytes(data)
    kw = d / "kw.safetensors"
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(fx.dac)), str(kw))  # no kwargs metadata: read from config.json beside it
    (d / "config.json").write_bytes(data)
    o = d / "o.wav"
    return [
        (["profile", "show", str(d / "j.json")], None),
        (["tts", "--text", "Hi.", "--speaker", str(d / "j.json"), "--out", str(o), "--model", str(fx.model),
          "--codec", str(fx.dac), "--quiet"], o),
        (["profile", "create", str(fx.clip), "--words", str(d / "j.json"), "-o", str(d / "p.json"), "--codec",
          str(fx.dac), "--quiet"], d / "p.json"),
        (["tts", "--text", "Hi.", "--speaker", str(fx.speaker), "--out", str(o), "--model", str(model), "--codec",
          str(fx.dac), "--quiet"], o),
        (["tts", "--text", "Hi.", "--speaker", str(fx.speaker), "--out", str(o), "--model", str(gen), "--codec",
          str(fx.dac), "--quiet"], o),
        (["dac", "encode", str(fx.short), "-o", str(d / "o.npy"), "--checkpoint", str(kw)], d / "o.npy"),
    ]


@FAMILY
@given(case=bad_json())
def test_bad_input_family_json_shapes(fx, capsys, case):
    """Deep, huge-integer, non-finite, non-UTF-8 and non-JSON documents through every JSON reader: one line naming
    the file and the problem (never RecursionError / OverflowError / ValueError from int())."""
    data, frag = case
    event(frag)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for argv, out in _json_readers(fx, d, data):
            line = refused(argv, d, capsys, ".json", frag, out=out)


@pytest.fixture(scope="module")
def spark_dir(tmp_path_factory):
    """A Spark-TTS folder with the tiny BiCodec and wav2vec2 (`spark detokenize` / `tokenize` read against it)."""
    import shutil

    from impl.seeded.spark import seeded_bicodec, seeded_w2v

    d = tmp_path_factory.mktemp("spark") / "Spark-TTS-tiny"
    d.mkdir()
    shutil.copytree(seeded_bicodec("tiny", 0), d / "BiCodec")
    shutil.copytree(seeded_w2v("tiny", 0), d / "wav2vec2-large-xlsr-53")
    return d


@FAMILY
@given(case=bad_json())
def test_bad_input_family_json_tokens(spark_dir, capsys, case):
    data, frag = case
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "t.json").write_bytes(data)
        refused(["spark", "detokenize", str(d / "t.json"), "-o", str(d / "o.wav"), "--checkpoint", str(spark_dir)],
                d, capsys, "t.json", out=d / "o.wav")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
                           | st.text(max_size=6), lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.sampled_from(["word", "start", "end", "words", "segments", "global",
                                                              "semantic", "c1", "c2", "text"]), kids, max_size=4),
                           max_leaves=12)


@FAMILY
@given(value=JSON_VALUES)
def test_bad_input_family_json_any_value_never_a_traceback(fx, spark_dir, capsys, value):
    """Any small JSON value (wrong types, NaN, big integers) as a profile, word times or tokens: exit 0 or one line."""
    import math

    text = json.dumps(value, allow_nan=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "j.json").write_text(text)
        for argv in (["profile", "show", str(d / "j.json")],
                     ["profile", "create", str(fx.short), "--words", str(d / "j.json"), "-o", str(d / "p.json"),
                      "--codec", str(fx.dac), "--quiet"],
                     ["spark", "detokenize", str(d / "j.json"), "-o", str(d / "o.wav"), "--checkpoint",
                      str(spark_dir)]):
            rc, _, err = run_bounded(argv, capsys)
            assert rc in (0, 2) and "Traceback" not in err, err
            if rc == 2:
                error_line(err, f"voiceport {argv[0]}")
    assert math.isfinite(0.0)


# ---------------------------------------------------------------- input file types

def make_input(d: Path, kind: str, name: str) -> Tuple[str, str]:
    """A path of `kind` named like `name` in d -> (path, fragment the error line must hold)."""
    import socket

    p = d / name
    if kind == "fifo":
        os.mkfifo(p)
        return str(p), "FIFO"
    if kind == "char device":
        os.symlink("/dev/zero", p)  # reads forever; /dev/null reads as an empty file
        return str(p), "character device"
    if kind == "null device":
        os.symlink("/dev/null", p)
        return str(p), "character device"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
        return str(p), "socket"
    if kind == "dangling link":
        os.symlink(d / "gone", p)
        return str(p), "does not exist"
    if kind == "link loop":
        os.symlink(p, p)
        return str(p), "symbolic links"
    if kind == "name too long":
        return str(d / ("n" * 300 + Path(name).suffix)), "too long"
    if kind == "file as folder":
        (d / "plain").write_bytes(b"x")
        return str(d / "plain" / name), "Not a directory"
    raise ValueError(kind)


INPUT_KINDS = ["fifo", "char device", "null device", "socket", "dangling link", "link loop", "name too long",
               "file as folder"]


def _input_commands(fx, spark_dir, d: Path, path: str) -> List[Tuple[str, List[str]]]:
    """(entry, argv) for every option that reads a file, given `path` there."""
    o = str(d / "o.wav")
    tts = ["tts", "--text", "Hi.", "--out", o, "--model", str(fx.model), "--codec", str(fx.dac), "--quiet"]
    return [
        ("dac encode AUDIO", ["dac", "encode", path, "-o", str(d / "o.npy"), "--checkpoint", str(fx.dac)]),
        ("dac decode CODES", ["dac", "decode", path, "-o", o, "--checkpoint", str(fx.dac)]),
        ("dac --checkpoint", ["dac", "decode", str(fx.codes), "-o", o, "--checkpoint", path]),
        ("dac convert PTH", ["dac", "convert", path, str(d / "c.safetensors")]),
        ("profile show", ["profile", "show", path]),
        ("profile create AUDIO", ["profile", "create", path, "--text", "hi", "-o", str(d / "p.json"), "--codec",
                                  str(fx.dac), "--quiet"]),
        ("profile create --words", ["profile", "create", str(fx.short), "--words", path, "-o", str(d / "p.json"),
                                    "--codec", str(fx.dac), "--quiet"]),
        ("tts --speaker", tts + ["--speaker", path]),
        ("tts --text-file", ["tts", "--text-file", path] + tts[3:] + ["--speaker", str(fx.speaker)]),
        ("spark detokenize TOKENS", ["spark", "detokenize", path, "-o", o, "--checkpoint", str(spark_dir)]),
        ("spark tokenize AUDIO", ["spark", "tokenize", path, "-o", str(d / "t.json"), "--checkpoint",
                                  str(spark_dir)]),
    ]


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(INPUT_KINDS), name=st.sampled_from(["x.json", "x.wav", "x.npy", "x.safetensors",
                                                                "x.pth", "x.txt"]))
def test_bad_input_family_input_file_types(fx, spark_dir, capsys, kind, name):
    """Every reading option given a FIFO, a device, a socket, a dangling link, a loop of links, a name too long or
    a file used as a folder: one line naming the problem, at once (a FIFO is refused by type, never opened)."""
    event(kind)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path, frag = make_input(d, kind, name)
        for entry, argv in _input_commands(fx, spark_dir, d, path):
            line = refused(argv, d, capsys)
            if kind in ("fifo", "char device", "null device", "socket", "name too long"):
                assert frag in line, f"{entry}: {frag!r} not in {line!r}"


# ---------------------------------------------------------------- output paths

def _decode_argv(fx, out: str) -> List[str]:
    return ["dac", "decode", str(fx.codes), "-o", out, "--checkpoint", str(fx.dac)]


OUTPUT_KINDS = ["read-only file", "fifo", "char device", "link to a folder", "name too long", "path too long",
                "file as folder", "link loop"]


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(OUTPUT_KINDS), mode=st.sampled_from([0o444, 0o400, 0o555]))
def test_bad_input_family_outputs_refused(fx, capsys, kind, mode):
    """An output that must not be replaced or cannot be written: refused before any work, one line, the existing
    file untouched (bytes, mode, mtime), nothing left. As root too (read-only is the mode bits, not os.access)."""
    event(kind)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        out = d / "o.wav"
        frag = {"read-only file": "read-only", "fifo": "FIFO", "char device": "character device",
                "link to a folder": "is a directory", "name too long": "file name is",
                "path too long": "too long", "file as folder": "", "link loop": ""}[kind]
        if kind == "read-only file":
            out.write_bytes(b"keep me")
            os.chmod(out, mode)
        elif kind == "fifo":
            os.mkfifo(out)
        elif kind == "char device":
            os.symlink("/dev/null", out)
        elif kind == "link to a folder":
            (d / "sub").mkdir()
            os.symlink(d / "sub", out)
        elif kind == "name too long":
            out = d / ("o" * 256 + ".wav")
        elif kind == "path too long":
            out = d / "/".join(["p" * 200] * 24) / "o.wav"
        elif kind == "file as folder":
            (d / "plain").write_bytes(b"x")
            out = d / "plain" / "o.wav"
        elif kind == "link loop":
            os.symlink(out, out)
        before = (os.lstat(out).st_mode, out.read_bytes()) if kind == "read-only file" else None
        refused(_decode_argv(fx, str(out)), d, capsys, frag)
        if before is not None:
            assert (os.lstat(out).st_mode, out.read_bytes()) == before


def test_bad_input_family_output_symlink_is_followed(fx, tmp_path, capsys):
    """The stated policy (`voiceport --help`): an output that is a link is followed; its target is replaced, the
    link stays a link, with the target's mode kept; nothing else is left in either folder."""
    target_dir = tmp_path / "real"
    target_dir.mkdir()
    target = target_dir / "t.wav"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link = tmp_path / "o.wav"
    os.symlink(target, link)
    rc, _, err = run_cli(_decode_argv(fx, str(link)), capsys)
    assert rc == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert sf.info(str(target)).frames > 0 and (target.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in target_dir.iterdir()) == ["t.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav", "real"]
    from impl.cli import build_parser

    assert "symbolic link is followed" in " ".join(build_parser(only="").format_help().split())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(free=st.integers(0, 2 ** 20), how=st.sampled_from(["OSError ENOSPC", "libsndfile", "OSError EACCES"]))
def test_bad_input_family_disk_full(fx, capsys, monkeypatch, free, how):
    """No space: refused before decoding when statvfs says the output cannot fit; a writer that fails anyway (errno
    ENOSPC/EACCES, or libsndfile's bare "System error." on a full disk) is one line naming the output path."""
    import errno as E

    import soundfile

    from impl import _io

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        out = d / "o.wav"
        with monkeypatch.context() as m:  # statvfs: almost nothing free
            m.setattr(_io, "free_bytes", lambda folder: free)
            refused(_decode_argv(fx, str(out)), d, capsys, "o.wav", "needs about", "free", out=out)
        out.unlink()

        def failing(file, *a, **k):
            Path(file).write_bytes(b"RIFF partial")
            if how == "libsndfile":
                raise RuntimeError("Error opening ...: System error.")
            raise OSError(E.ENOSPC if how.endswith("ENOSPC") else E.EACCES, "write failed")

        with monkeypatch.context() as m:
            m.setattr(soundfile, "write", failing)
            if how == "libsndfile":  # the space check passes, then the disk is full when the writer fails
                real = _io.free_bytes
                m.setattr(_io, "free_bytes", lambda folder, calls=[0]: (calls.__setitem__(0, calls[0] + 1) or
                                                                        (real(folder) if calls[0] == 1 else 0)))
            want = {"OSError ENOSPC": "no space left", "libsndfile": "no space left",
                    "OSError EACCES": "permission denied"}[how]
            refused(_decode_argv(fx, str(out)), d, capsys, "o.wav", want, out=out)


# ---------------------------------------------------------------- environment variables

@st.composite
def bad_environment(draw) -> Tuple[str, Callable[[Path], str], str]:
    """(variable, value builder given a scratch folder, fragment)."""
    var = draw(st.sampled_from(["VOICEPORT_CACHE", "VOICEPORT_CONV", "VOICEPORT_KERNEL_WARMUP"]))
    if var == "VOICEPORT_CACHE":
        kind = draw(st.sampled_from(["file", "/dev/null", "fifo", "under a file", "read-only folder",
                                     "dangling link", "link loop"]))

        def build(d: Path, kind=kind) -> str:
            if kind == "file":
                (d / "f").write_text("x")
                return str(d / "f")
            if kind == "/dev/null":
                return "/dev/null"
            if kind == "fifo":
                os.mkfifo(d / "q")
                return str(d / "q")
            if kind == "under a file":
                (d / "f").write_text("x")
                return str(d / "f" / "cache")
            if kind == "read-only folder":
                return str(d)  # os.access patched to say not writable
            if kind == "dangling link":
                os.symlink(d / "gone" / "deeper", d / "l")
                return str(d / "l")
            os.symlink(d / "loop", d / "loop")
            return str(d / "loop")

        return var, build, {"file": "not a folder", "/dev/null": "character device", "fifo": "FIFO",
                            "under a file": "not a folder", "read-only folder": "not writable",
                            "dangling link": "", "link loop": ""}[kind]
    good = {"VOICEPORT_CONV": ("native", "gemm", ""), "VOICEPORT_KERNEL_WARMUP": ("0", "1")}[var]
    value = draw(st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12)
                 .filter(lambda v: v not in good))
    return var, (lambda d, v=value: v), "expected"


@FAMILY
@given(case=bad_environment(), command=st.sampled_from(["info", "dac", "profile"]))
def test_bad_input_family_environment(fx, capsys, monkeypatch, case, command):
    """A voiceport environment variable no command can use: one line naming the variable, exit 2, before any
    work; the same for every command."""
    var, build, frag = case
    argv = {"info": ["info"], "dac": _decode_argv(fx, "/nonexistent/o.wav"), "profile": ["profile", "show",
                                                                                          str(fx.speaker)]}[command]
    with tempfile.TemporaryDirectory() as tmp, monkeypatch.context() as m:
        d = Path(tmp)
        value = build(d)
        m.setenv(var, value)
        if frag == "not writable":
            real = os.access
            m.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == d and mode & os.W_OK
                      else real(p, mode, *a, **k))
        rc, out, err = run_bounded(argv, capsys)
    assert rc == 2, err
    line = error_line(err, f"voiceport {argv[0]}")
    assert f"{var}=" in line and frag in line, line


@FAMILY
@given(value=st.one_of(st.sampled_from(["1", "yes", "on", "openblas", "/nonexistent/libblas.so", "/dev/null",
                                        " auto", "/tmp"]), st.text(min_size=1, max_size=10)
                       .filter(lambda v: v not in ("auto", "rename", "0") and "\0" not in v and not
                               os.path.isfile(v))))
def test_bad_input_family_blas_request_is_a_warning(fx, capsys, monkeypatch, value):
    """VOICEPORT_BLAS asking for what cannot be had: the command runs (MLX's bundled BLAS works) with one warning
    line that names the variable and says the slow BLAS is used."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("VOICEPORT_BLAS is Linux-only")
    monkeypatch.setenv("VOICEPORT_BLAS", value)
    rc, _, err = run_bounded(["profile", "show", str(fx.speaker)], capsys)
    assert rc == 0, err
    (line,) = [x for x in err.splitlines() if "warning" in x]
    assert line.startswith("voiceport profile: warning: VOICEPORT_BLAS") and "bundled BLAS" in line, line


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.one_of(st.integers(max_value=-1), st.integers(min_value=2 ** 64)),
       command=st.sampled_from(["tts", "spark", "dac seeded"]))
def test_bad_input_family_seed_out_of_range(fx, capsys, monkeypatch, seed, command):
    """--seed outside [0, 2**64) (mx.random.key's range): one line before anything loads."""
    from impl.outetts import generate as G

    monkeypatch.setattr(G, "load", lambda *a, **k: pytest.fail("loaded before checking --seed"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        argv = {"tts": ["tts", "--text", "Hi.", "--speaker", str(fx.speaker), "--model", str(fx.model), "--codec",
                        str(fx.dac), "--out", str(d / "o.wav")],
                "spark": ["tts", "--model", "spark", "--text", "Hi.", "--gender", "female", "--out", str(d / "o.wav")],
                "dac seeded": ["dac", "seeded", "-o", str(d / "s.safetensors")]}[command]
        refused(argv + ["--seed", str(seed)], d, capsys, "--seed", str(seed)[:12])


@FAMILY
@given(text=st.text(st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u00ad \t\n\u3000\x01\x7f\u180e\u2028"),
                    min_size=1, max_size=12))
def test_bad_input_family_invisible_text_refused_before_loading(fx, capsys, monkeypatch, text):
    """OuteTTS text of only spaces, zero-width and control characters: one line before the LM loads."""
    from impl.outetts import generate as G

    monkeypatch.setattr(G, "load", lambda *a, **k: pytest.fail("the LM loaded for text with nothing to speak"))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        refused(["tts", "--text", text, "--speaker", str(fx.speaker), "--model", str(fx.model), "--codec",
                 str(fx.dac), "--out", str(d / "o.wav")], d, capsys, "--text")


@FAMILY
@given(parts=st.sets(st.sampled_from(["LLM", "BiCodec", "wav2vec2-large-xlsr-53", "config.yaml"])),
       name=st.sampled_from(["Spark-TTS-0.5B", "spark", "model"]), exists=st.booleans())
def test_bad_input_family_spark_folder(capsys, parts, name, exists):
    """A mistyped or incomplete Spark-TTS folder (Spark options given): one line about that folder (what is
    missing, or that it does not exist), never the OuteTTS answer "add --model spark"."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        root = d / "models" / name
        if exists:
            root.mkdir(parents=True)
            for p in parts:
                (root / p).mkdir()
        line = refused(["tts", "--model", str(root), "--text", "Hi.", "--gender", "female", "--out",
                        str(d / "o.wav")], d, capsys, str(root))
        assert "add --model spark" not in line
        if not exists:
            assert "no such folder" in line, line


# ---------------------------------------------------------------- signals and leftovers

@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_bad_input_family_signal_mid_write_leaves_nothing(fx, tmp_path, capsys, monkeypatch, signame):
    """A signal while the output is being written (the temporary file exists, half written): exit 128+N, the
    temporary file removed, the earlier output kept byte for byte."""
    import signal

    import soundfile

    from parity.doubles import keep_earlier_output

    sig = getattr(signal, signame)
    real = soundfile.write

    def interrupted(file, *a, **k):
        Path(file).write_bytes(b"RIFF half")
        os.kill(os.getpid(), sig)
        return real(file, *a, **k)

    out = tmp_path / "o.wav"
    keep_earlier_output(out)
    before = snapshot(tmp_path)
    monkeypatch.setattr(soundfile, "write", interrupted)
    if sig == signal.SIGINT:  # Python's own Ctrl-C handler, even where this run inherited SIGINT ignored (`cmd &`)
        old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rc, _, err = run_cli(_decode_argv(fx, str(out)), capsys)
    finally:
        if sig == signal.SIGINT:
            signal.signal(signal.SIGINT, old_handler)
    assert rc == 128 + sig, err
    assert snapshot(tmp_path) == before


def test_bad_input_family_sigterm_in_a_real_process_cleans_the_cache(tmp_path):
    """`voiceport dac seeded` killed by SIGTERM while its checkpoint is written (a child process; the writer made
    slow so the signal lands mid-write): exit 143, no `.voiceport-*` left in the output folder."""
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    code = ("import time, safetensors.numpy as s; real = s.save_file\n"
            "def slow(*a, **k):\n    real(*a, **k); time.sleep(60)\n"
            "s.save_file = slow\n"
            "import impl.seeded.dac as D; D.save_file = slow if hasattr(D, 'save_file') else None\n"
            "from impl.cli import main; import sys; sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "s.safetensors"
    env = dict(os.environ, PYTHONPATH=str(root), VOICEPORT_BLAS="0")
    p = subprocess.Popen([sys.executable, "-c", code, "dac", "seeded", "--config", "16khz", "-o", str(out)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(tmp_path.glob(".voiceport-*")) and time.time() - t0 < 60 and p.poll() is None:
        time.sleep(0.05)
    assert list(tmp_path.glob(".voiceport-*")), "the writer never started: " + (p.communicate()[1] if p.poll()
                                                                                 is not None else "")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert list(tmp_path.iterdir()) == [], err


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stale=st.lists(st.tuples(st.sampled_from(["file", "dir"]), st.sampled_from([".npy", ".wav", ""])),
                      min_size=1, max_size=4), old_style=st.booleans())
def test_bad_input_family_stale_temporaries_are_swept(fx, capsys, stale, old_style):
    """`.voiceport-*` temporaries a killed run left (its pid gone, or an old pid-less name over an hour old) are
    removed by the next write into that folder; a live process's temporary (here our parent's pid) is kept."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has exited
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for i, (kind, suffix) in enumerate(stale):
            p = d / (f".voiceport-{'' if old_style else dead + '-'}{i:012x}{suffix}")
            p.mkdir() if kind == "dir" else p.write_bytes(b"half")
            if old_style:
                os.utime(p, (1_600_000_000, 1_600_000_000))
        live = d / f".voiceport-{os.getppid()}-aaaaaaaaaaaa.wav"
        live.write_bytes(b"someone else's")
        rc, _, err = run_cli(_decode_argv(fx, str(d / "o.wav")), capsys)
        assert rc == 0, err
        assert sorted(p.name for p in d.iterdir()) == sorted(["o.wav", live.name])


def test_bad_input_family_info_reports_the_installation(capsys, tmp_path, monkeypatch):
    """`voiceport info`: versions, device, backends, BLAS, conv path, cache location and size (of the folder
    VOICEPORT_CACHE names: 3 files, 6 bytes here)."""
    cache = tmp_path / "cache"
    (cache / "checkpoints").mkdir(parents=True)
    for i in range(3):
        (cache / "checkpoints" / f"f{i}").write_bytes(b"ab")
    monkeypatch.setenv("VOICEPORT_CACHE", str(cache))
    rc, out, err = run_cli(["info"], capsys)
    assert rc == 0, err
    for frag in ("voiceport", "mlx", "numpy", "device:", "MLX backends:", "BLAS:", "convolution path:",
                 f"cache: {cache} (6 B in 3 files"):
        assert frag in out, (frag, out)
    rc, out, err = run_cli(["info", "--json"], capsys)
    facts = json.loads(out)
    assert rc == 0 and facts["cache"] == {"path": str(cache), "bytes": 6, "files": 3} and "blas" in facts


def test_bad_input_family_dac_decode_progress_has_totals(fx, tmp_path, capsys):
    """`dac decode` of codes longer than one chunk: a line with the totals (codes, seconds, chunks) and a bar
    ending at n/n codes; --quiet prints neither."""
    from impl.dac.interface import load_codec

    codec = load_codec(str(fx.dac))
    n = codec.chunk_length * 2 + 5
    codes = np.random.default_rng(0).integers(0, 1024, (2, n)).astype(np.int32)
    np.save(tmp_path / "long.npy", codes)
    argv = ["dac", "decode", str(tmp_path / "long.npy"), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(fx.dac)]
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0, err
    seconds = codec.samples(n) / codec.sr
    assert f"decoding {n:,} codes ({seconds:.1f} s of audio) in 3 chunks of {codec.chunk_length}" in err, err
    assert f"{n}/{n}" in err, err
    rc, _, err = run_cli(argv + ["--quiet"], capsys)
    assert rc == 0 and "decoding" not in err, err
