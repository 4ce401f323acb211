"""DAC 24 kHz (and the other official configs) in MLX: `load`, `DAC.encode`, `DAC.decode`, `load_codec`.

Modules: `model` (config, blocks, codec, sanitize, strict load), `layers` (Snake1d, weight-normed convs),
`quantize` (residual VQ), `interface` (outetts' chunked audio path; `load_codec`). Seeded checkpoints at the
official architectures: `impl.seeded.dac`.
"""
from impl.dac.interface import CodesError, DacInterface, load_codec, load_codes
from impl.dac.model import (CONFIGS, DAC, CheckpointError, DACConfig, from_state_dict, load, read_checkpoint,
                            resolve_config, sanitize)

__all__ = ["CONFIGS", "CheckpointError", "CodesError", "DAC", "DACConfig", "DacInterface", "from_state_dict",
           "load", "load_codec", "load_codes", "read_checkpoint", "resolve_config", "sanitize"]
