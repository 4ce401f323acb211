"""Reference adapter: the official descript-audio-codec 1.0.0 DAC, loaded with its own `DAC.load`.

Eval mode, CPU, float32 or float64. Numpy in, numpy out; `encode`/`decode` take impl's shapes (audio (B, L),
codes (B, n, T)). Upstream quirks named once here: `DAC.encode` returns a 5-tuple (z, codes, latents, two
losses) though its docstring says dict; `DAC.load` uses `load_state_dict(strict=False)` and silently ignores
missing or extra keys, so `load` below checks the keys itself. Nothing here re-implements a layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import numpy as np


def write_seeded_checkpoint(path: Union[str, Path], config: Union[str, Dict[str, Any]], seed: int) -> Path:
    """impl.seeded.dac's weights written in the official `.pth` format (what `BaseModel.save(package=False)`
    writes: {"state_dict", "metadata": {"kwargs"}})."""
    import torch

    from impl._io import atomic_path
    from impl.dac import resolve_config
    from impl.seeded.dac import seeded_state_dict

    kwargs = resolve_config(config)
    state = {k: torch.from_numpy(v) for k, v in seeded_state_dict(kwargs, seed).items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "metadata": {"kwargs": kwargs}}, tmp)
    return Path(path)


def load(path: Union[str, Path], dtype: str = "float32"):
    """`dac.DAC.load(path)` in eval mode and `dtype`; a checkpoint whose keys differ from the model's is an error
    (upstream would leave those weights at their random init)."""
    import dac
    import torch

    model = dac.DAC.load(str(path))
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    want, got = set(model.state_dict()), set(blob["state_dict"])
    if want != got:
        raise ValueError(f"{path}: keys differ from dac.DAC: missing {sorted(want - got)[:5]}, "
                         f"unexpected {sorted(got - want)[:5]}")
    return model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype).eval()


def encode(model, audio: np.ndarray) -> np.ndarray:
    """audio (B, L) -> codes (B, n_codebooks, T) int32 through `DAC.encode` (no padding, as upstream)."""
    import torch

    x = torch.from_numpy(np.asarray(audio)).to(next(model.parameters()).dtype)[:, None, :]
    with torch.no_grad():
        codes = model.encode(x)[1]
    return codes.numpy().astype(np.int32)


def decode(model, codes: np.ndarray) -> np.ndarray:
    """codes (B, n, T) -> audio (B, L_out) through `quantizer.from_codes` and `DAC.decode`."""
    import torch

    with torch.no_grad():
        z = model.quantizer.from_codes(torch.from_numpy(np.asarray(codes).astype(np.int64)))[0]
        return model.decode(z)[:, 0].numpy()


def write_random_init_checkpoint(path: Union[str, Path], config: Dict[str, Any], seed: int) -> Path:
    """A DAC with the official package's own random init (`torch.manual_seed(seed)`), saved by the package itself
    (`save(package=False)`: state_dict + metadata.kwargs)."""
    import dac
    import torch

    torch.manual_seed(seed)
    dac.DAC(**config).save(str(path), package=False)
    return Path(path)


class TorchDac:
    """The official torch DAC behind impl.dac's model API (`encode`, `decode`, `sample_rate`, `hop_length`,
    `config.codebook_size/n_codebooks`), so impl's DacInterface can run over it: isolates the interface logic.
    Array-likes in (mx or numpy), numpy out; `encode_lengths` records each encoded window's length."""

    def __init__(self, checkpoint: Union[str, Path]):
        self.model = load(checkpoint)
        self.sample_rate = int(self.model.sample_rate)
        self.hop_length = int(self.model.hop_length)
        self.config = self
        self.codebook_size = self.model.codebook_size
        self.n_codebooks = self.model.n_codebooks
        self.encode_lengths = []

    def encode(self, x) -> np.ndarray:
        """(B, L) -> codes (B, n_codebooks, T) int32."""
        x = np.asarray(x, dtype=np.float32)
        self.encode_lengths.append(x.shape[-1])
        return encode(self.model, x)

    def decode(self, codes) -> np.ndarray:
        """codes (B, n, T) -> (B, L_out) float32."""
        return decode(self.model, np.asarray(codes))
