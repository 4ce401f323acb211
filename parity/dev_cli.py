"""`./vp COMMAND`: the development tree's command line, the shipping `voiceport` commands plus parity, fixtures, bench.

The installed `voiceport` (impl/cli.py) knows only `impl`; the commands that need this clone (the official packages,
fixtures/, bench/) are added here, on the same machinery. `./vp` runs `python -m parity.dev_cli` for every
sub-command but setup, test and python.
"""
from __future__ import annotations

import sys
from typing import List, Optional

from impl import cli

# name -> (module, one-line help); the shipping commands keep theirs
COMMANDS = {
    "parity": ("parity.cli", "layer-by-layer parity report of impl vs the official packages (needs [reference])"),
    "fixtures": ("parity.fixtures_cli", "golden fixtures: generate from the reference, verify sha256 and versions"),
    **cli.COMMANDS,
    "bench": ("bench.cli", "benchmarks: impl vs reference, history and dashboard"),
}


def build_parser(only: Optional[str] = None):
    return cli.build_parser(only, commands=COMMANDS, prog="vp")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["parity", "mutate"]:  # the mutation self-test rides under `parity` (parity/mutate.py)
        from parity import mutate

        return mutate.main(argv[2:])
    if argv[:1] == ["parity"]:
        # Strict fp32 unless `--precision device`: MLX reads MLX_ENABLE_TF32 once, at the process's first float32
        # product (mlx docs/src/usage/precision.rst; mlx/utils.h env::enable_tf32), so it is set here, before any
        # sub-command imports MLX; parity.cli.run keeps it for the run and its probe checks what holds.
        strict = not any(a in ("--precision=device",) for a in argv) and \
            not any(a == "--precision" and b == "device" for a, b in zip(argv, argv[1:]))
        from parity.cli import strict_fp32

        with strict_fp32(strict):
            return cli.main(argv, commands=COMMANDS, prog="vp")
    return cli.main(argv, commands=COMMANDS, prog="vp")


if __name__ == "__main__":
    sys.exit(main())
