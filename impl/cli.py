"""`voiceport` command line: one entry point, sub-commands implemented next to the code they drive.

Each sub-command module defines `configure(parser)` and `run(args) -> int`; modules are imported only when their
sub-command runs, so `voiceport --help` and the torch-free commands never import torch.

This is the shipping CLI: it knows only `impl`. The development tree's commands (parity, fixtures, bench) are added
by `parity/dev_cli.py`, which `./vp` runs, through the `commands` argument of `build_parser` and `main`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Dict, List, Optional, Tuple

# name -> (module, one-line help)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "dac": ("impl.dac.cli", "DAC codec: encode audio to codes, decode codes to audio, write seeded checkpoints"),
    "tts": ("impl.outetts.cli", "text -> speech: OuteTTS 1.0 (speaker profile, 24 kHz) or Spark-TTS (--model spark: "
                                "cloned or created voice, 16 kHz)"),
    "profile": ("impl.speaker.cli", "create / inspect OuteTTS v3 speaker profiles"),
    "spark": ("impl.spark.cli", "Spark-TTS BiCodec: tokenize audio to global + semantic ids, detokenize ids to audio"),
    "info": ("impl.info", "versions, device, MLX backend, BLAS path, cache location and size"),
}
OUTPUTS_NOTE = ("Outputs are written atomically (a temporary file renamed into place; nothing is left on an error, "
                "Ctrl-C or SIGTERM). An output path that is a symbolic link is followed: its target is replaced, the "
                "link is kept. An existing read-only output (e.g. mode 0444) is refused, never replaced.")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, exit 2: `voiceport tts: error: argument --seed: invalid int value: 'x'
    (voiceport tts --help)`, no usage block; `--help` prints the full help. Sub-parsers (add_subparsers) are of
    this class too, so every command and action of the CLI answers this way."""

    def error(self, message: str):
        for action in self._actions:  # "required: ACTION" -> "required: ACTION: one of encode, decode, ..."
            if isinstance(action, argparse._SubParsersAction) and message.endswith(f"required: {action.metavar}"):
                message += f": one of {', '.join(action.choices)}"
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports an unknown option from the top-level parser ("voiceport: error: unrecognized ...");
        # the sub-command it was given to names the command instead.
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            _chosen(self, ns).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


def _chosen(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest sub-parser that `ns` went through (`voiceport dac encode` -> the encode parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(ns, action.dest, None) in action.choices:
            return _chosen(action.choices[getattr(ns, action.dest)], ns)
    return parser


def build_parser(only: Optional[str] = None, commands: Dict[str, Tuple[str, str]] = COMMANDS,
                 prog: str = "voiceport") -> argparse.ArgumentParser:
    """The parser of `commands`; only the sub-command `only` (all when None) imports its module to configure."""
    parser = Parser(
        prog=prog,
        description="MLX port of two TTS models, checked layer by layer against the official PyTorch packages: "
                    "OuteTTS 1.0 (Llama LM + DAC 24 kHz + speaker profiles; 24 kHz audio) and Spark-TTS (Qwen2 LM "
                    "+ BiCodec; 16 kHz audio). Weights default to seeded random checkpoints at "
                    "the real architecture (no model hub is reachable); pass real checkpoints with the "
                    "--checkpoint/--model/--codec options of each command.",
        epilog=OUTPUTS_NOTE)
    from impl import __version__

    parser.add_argument("--version", action="version", version=f"voiceport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if only is None or only == name:
            importlib.import_module(module).configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[List[str]] = None, commands: Dict[str, Tuple[str, str]] = COMMANDS,
         prog: str = "voiceport") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from impl import info
    from impl._io import signals_unwind
    from impl.accel import blas, cuda

    wanted = next((a for a in argv if not a.startswith("-")), None)
    who = f"{prog} {wanted}" if wanted in commands else prog
    try:  # environment variables: once, before anything reads them (impl/info.py)
        for warning in info.check_environment():
            print(f"{who}: warning: {warning}", file=sys.stderr)
    except ValueError as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return 2
    blas.enable_fast_blas()  # Linux CPU: before any sub-command imports mlx (impl/accel/blas.py); elsewhere a no-op
    cuda.use_kernel_cache()  # CUDA: run-time compiled kernels kept in $VOICEPORT_CACHE (impl/accel/cuda.py); else no-op
    warning = info.blas_warning()
    if warning:
        print(f"{who}: warning: {warning}", file=sys.stderr)
    parser = build_parser(only=wanted if wanted in commands else "", commands=commands, prog=prog)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        with signals_unwind():  # SIGTERM unwinds like Ctrl-C: every temporary file is removed on the way out
            return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", 2)
        print("terminated" if signum != 2 else "interrupted", file=sys.stderr)
        return 128 + signum
    except (ValueError, FileNotFoundError) as e:  # our input errors are ValueError subclasses
        print(f"{prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the system refused a read or write nothing above words (EACCES, ENOSPC, EIO)
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog} {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
