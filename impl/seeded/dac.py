"""Seeded DAC checkpoints at the official architectures, in descript-audio-codec's key layout.

`seeded_state_dict(config, seed)` gives numpy tensors named and shaped as descript-audio-codec's
`DAC.state_dict()` (hook-style weight norm `weight_g`/`weight_v`, Snake `alpha` (1, C, 1)); the same values
are written as safetensors here (`write_seeded_safetensors`) and as the official `.pth` by
`reference.dac.write_seeded_checkpoint`, so impl and reference load identical weights through their own loaders.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from impl._io import atomic_path
from impl.dac.layers import Snake1d, WNConv1d, WNConvTranspose1d
from impl.dac.model import DAC, DACConfig, ResidualUnit, resolve_config
from impl.dac.quantize import Codebook
from impl.seeded import cache_dir

# Bump when the values seeded_state_dict gives change: cached checkpoints carry it in their name.
GENERATOR_VERSION = 2


def official_shapes(config: Union[str, Dict[str, Any]]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """Official state_dict key -> (shape, kind) for a config, walked from the MLX module tree."""
    model = DAC(DACConfig.from_dict(resolve_config(config)))
    residual = {f"{name}.{sub}" for name, m in model.named_modules() if isinstance(m, ResidualUnit)
                for sub, _ in m.named_modules() if sub}
    out_conv = f"decoder.model.{len(model.decoder.model) - 2}"  # the conv before tanh
    shapes: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (WNConv1d, WNConvTranspose1d)):
            C_out, K, C_in = m.weight.shape
            g = "g_res" if name in residual else "g_out" if name == out_conv else "g"
            if isinstance(m, WNConv1d):
                shapes[f"{name}.weight_g"] = ((C_out, 1, 1), g)
                shapes[f"{name}.weight_v"] = ((C_out, C_in, K), "v")
            else:  # torch ConvTranspose1d stores (C_in, C_out, K); weight_norm's dim 0 is C_in
                shapes[f"{name}.weight_g"] = ((C_in, 1, 1), g)
                shapes[f"{name}.weight_v"] = ((C_in, C_out, K), "v")
            shapes[f"{name}.bias"] = ((C_out,), "bias")
        elif isinstance(m, Snake1d):
            shapes[f"{name}.alpha"] = ((1, m.alpha.shape[0], 1), "alpha")
        elif isinstance(m, Codebook):
            shapes[f"{name}.weight"] = (tuple(m.weight.shape), "codebook")
    return shapes


def _tensor(name: str, shape: Tuple[int, ...], kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind == "v":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "g":  # filter norms on the main path: > 1, so the signal grows through the strided blocks
        return rng.uniform(1.0, 2.0, shape).astype(np.float32)
    if kind == "g_res":  # residual branches: < 1, so their sum stays O(1) through the residual units
        return rng.uniform(0.3, 0.7, shape).astype(np.float32)
    if kind == "g_out":  # the conv before tanh: small, so the seeded decoder's audio is not saturated
        return rng.uniform(0.02, 0.04, shape).astype(np.float32)
    if kind == "bias":
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "alpha":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)  # codebook: nn.Embedding's N(0, 1)


def seeded_state_dict(config: Union[str, Dict[str, Any]], seed: int) -> Dict[str, np.ndarray]:
    """Official-layout state_dict (numpy float32) of a seeded random DAC at `config`'s architecture."""
    return {k: _tensor(k, shape, kind, seed) for k, (shape, kind) in official_shapes(config).items()}


def write_seeded_safetensors(path: Union[str, Path], config: Union[str, Dict[str, Any]], seed: int) -> Path:
    """The seeded DAC as safetensors (official key names, kwargs in the metadata), written atomically."""
    from safetensors.numpy import save_file

    kwargs = resolve_config(config)
    with atomic_path(path) as tmp:
        save_file(seeded_state_dict(kwargs, seed), tmp,
                  metadata={"kwargs": json.dumps(kwargs, sort_keys=True)})  # one key: safetensors' header
        # stores metadata in a hash map, so several keys come out in a random order (not byte-identical)
    return Path(path)


def seeded_checkpoint(config: Union[str, Dict[str, Any]] = "24khz_speech", seed: int = 0) -> Path:
    """The seeded DAC for (config, seed), written once into cache_dir() and reused."""
    kwargs = resolve_config(config)
    key = hashlib.sha256(json.dumps([kwargs, seed, GENERATOR_VERSION], sort_keys=True).encode()).hexdigest()[:12]
    name = config if isinstance(config, str) else "custom"
    dest = cache_dir() / f"dac-{name}-s{seed}-{key}.safetensors"
    if not dest.exists():
        write_seeded_safetensors(dest, kwargs, seed)
    return dest
