"""DAC 24 kHz (and the other official configs) in MLX: `load`, `DAC.encode`, `DAC.decode`, seeded checkpoints.

Modules: `model` (config, blocks, codec, sanitize, strict load), `layers` (Snake1d, weight-normed convs),
`quantize` (residual VQ), `checkpoints` (seeded official-layout weights), `interface` (outetts' chunked audio path).
"""
from impl.dac.checkpoints import (official_shapes, resolve_config, seeded_checkpoint, seeded_state_dict,
                                  write_seeded_safetensors)
from impl.dac.model import CONFIGS, DAC, CheckpointError, DACConfig, check_weights, load, read_checkpoint, sanitize

__all__ = ["CONFIGS", "CheckpointError", "DAC", "DACConfig", "check_weights", "load", "official_shapes",
           "read_checkpoint", "resolve_config", "sanitize", "seeded_checkpoint", "seeded_state_dict",
           "write_seeded_safetensors"]
