"""`voiceport` command line: one entry point, sub-commands implemented next to the code they drive.

Each sub-command module defines `configure(parser)` and `run(args) -> int`; modules are imported only when their
sub-command runs, so `voiceport --help` and the torch-free commands never import torch.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import List, Optional

# name -> (module, one-line help)
COMMANDS = {
    "parity": ("parity.cli", "layer-by-layer parity report of impl vs the official packages (needs [reference])"),
    "fixtures": ("parity.fixtures_cli", "golden fixtures: generate from the reference, verify sha256 and versions"),
    "dac": ("impl.dac.cli", "DAC codec: encode audio to codes, decode codes to audio, write seeded checkpoints"),
    "tts": ("impl.outetts.cli", "text + speaker profile -> speech (OuteTTS 1.0 in MLX)"),
    "profile": ("impl.speaker.cli", "create / inspect OuteTTS v3 speaker profiles"),
    "bench": ("bench.cli", "benchmarks: impl vs reference, history and dashboard"),
}


def _available(module: str) -> bool:
    return importlib.util.find_spec(module.rsplit(".", 1)[0]) is not None and \
        importlib.util.find_spec(module) is not None


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voiceport",
        description="MLX port of OuteTTS 1.0 + DAC 24 kHz + speaker profiles, checked layer by layer "
                    "against the official PyTorch packages. Weights default to seeded random checkpoints at "
                    "the real architecture (no model hub is reachable); pass real checkpoints with the "
                    "--checkpoint/--model/--codec options of each command.")
    from impl import __version__

    parser.add_argument("--version", action="version", version=f"voiceport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        try:
            present = _available(module)
        except ModuleNotFoundError:
            present = False
        if not present:
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        if only is None or only == name:
            importlib.import_module(module).configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from impl import cpu

    cpu.enable_fast_blas()  # Linux CPU: before any sub-command imports mlx (impl/cpu.py); elsewhere a no-op
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=wanted if wanted in COMMANDS else "")
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:  # our input errors are ValueError subclasses
        print(f"voiceport {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
