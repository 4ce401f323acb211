"""DAC (Descript Audio Codec) in MLX: config, blocks, encoder, decoder, the codec, sanitize and load.

Ports descript-audio-codec 1.0.0 `dac/model/dac.py` (ResidualUnit, EncoderBlock, Encoder, DecoderBlock, Decoder,
DAC.encode/decode in eval mode) and the checkpoint format of `audiotools.ml.BaseModel.save` ({"state_dict",
"metadata": {"kwargs"}} with hook-style weight norm `weight_g`/`weight_v`). Module and attribute names follow
upstream, so `decoder.model.1.block.2.block.1.weight` names the same conv in both trees. Arrays are channels-last
(N, L, C) inside; `DAC.encode`/`DAC.decode` take and return upstream's shapes without the channel axis of mono
audio: audio (B, L), codes (B, n_codebooks, T).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl.dac.layers import Snake1d, Tanh, WNConv1d, WNConvTranspose1d
from impl.dac.quantize import Codebook, ResidualVectorQuantize
from impl._io import INT32, check_input, loads, read_bytes, reason
from impl.weights import CheckpointError, check_weights

# The official configs (descript-audio-codec 1.0.0 `dac/utils/__init__.py` model tags, read from their metadata).
CONFIGS: Dict[str, Dict[str, Any]] = {
    # DAC.speech.v1.0, the codec of OuteTTS 1.0: 1.5 kbps, hop 320 -> 75 frames/s
    "24khz_speech": dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], latent_dim=1024, decoder_dim=1536,
                         decoder_rates=[8, 5, 4, 2], n_codebooks=2, codebook_size=1024, codebook_dim=8,
                         sample_rate=24000),
    "24khz": dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], latent_dim=1024, decoder_dim=1536,
                  decoder_rates=[8, 5, 4, 2], n_codebooks=32, codebook_size=1024, codebook_dim=8,
                  sample_rate=24000),
    "44khz": dict(encoder_dim=64, encoder_rates=[2, 4, 8, 8], latent_dim=1024, decoder_dim=1536,
                  decoder_rates=[8, 8, 4, 2], n_codebooks=9, codebook_size=1024, codebook_dim=8,
                  sample_rate=44100),
    "16khz": dict(encoder_dim=64, encoder_rates=[2, 4, 5, 8], latent_dim=1024, decoder_dim=1536,
                  decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8,
                  sample_rate=16000),
}


def resolve_config(config: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A config name from CONFIGS or a kwargs dict -> a kwargs dict (a copy)."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown DAC config {config!r}; known: {sorted(CONFIGS)}")
        return dict(CONFIGS[config])
    return dict(config)


# ------------------------------------------------------------------------------------------------- config

@dataclass
class DACConfig:
    """`DAC.__init__` keyword arguments, as upstream spells them (the `metadata.kwargs` of a checkpoint)."""
    encoder_dim: int = 64
    encoder_rates: List[int] = field(default_factory=lambda: [2, 4, 8, 8])
    latent_dim: Optional[int] = None
    decoder_dim: int = 1536
    decoder_rates: List[int] = field(default_factory=lambda: [8, 8, 4, 2])
    n_codebooks: int = 9
    codebook_size: int = 1024
    codebook_dim: Union[int, List[int]] = 8
    sample_rate: int = 44100

    def __post_init__(self):
        if self.latent_dim is None:  # upstream's default
            self.latent_dim = self.encoder_dim * (2 ** len(self.encoder_rates))
        self.encoder_rates = [int(r) for r in self.encoder_rates]
        self.decoder_rates = [int(r) for r in self.decoder_rates]

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DACConfig":
        """Known keys only (a checkpoint's kwargs may carry training-only ones such as quantizer_dropout)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.encoder_rates))


# ------------------------------------------------------------------------------------------------- blocks

class ResidualUnit(nn.Module):
    def __init__(self, dim: int = 16, dilation: int = 1):
        super().__init__()
        pad = ((7 - 1) * dilation) // 2
        self.block = [Snake1d(dim), WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=pad),
                      Snake1d(dim), WNConv1d(dim, dim, kernel_size=1)]

    def __call__(self, x: mx.array) -> mx.array:
        y = x
        for layer in self.block:
            y = layer(y)
        pad = (x.shape[1] - y.shape[1]) // 2  # 0 for DAC's "same" padding; kept as upstream crops
        if pad > 0:
            x = x[:, pad:-pad, :]
        return x + y


class EncoderBlock(nn.Module):
    def __init__(self, dim: int = 16, stride: int = 1):
        super().__init__()
        self.block = [ResidualUnit(dim // 2, 1), ResidualUnit(dim // 2, 3), ResidualUnit(dim // 2, 9),
                      Snake1d(dim // 2),
                      WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2))]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.block:
            x = layer(x)
        return x


class Encoder(nn.Module):
    def __init__(self, d_model: int = 64, strides: List[int] = (2, 4, 8, 8), d_latent: int = 64):
        super().__init__()
        self.block = [WNConv1d(1, d_model, kernel_size=7, padding=3)]
        for stride in strides:  # each block doubles the channels as it downsamples by `stride`
            d_model *= 2
            self.block.append(EncoderBlock(d_model, stride=stride))
        self.block += [Snake1d(d_model), WNConv1d(d_model, d_latent, kernel_size=3, padding=1)]
        self.enc_dim = d_model

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.block:
            x = layer(x)
        return x


class DecoderBlock(nn.Module):
    def __init__(self, input_dim: int = 16, output_dim: int = 8, stride: int = 1):
        super().__init__()
        self.block = [Snake1d(input_dim),
                      WNConvTranspose1d(input_dim, output_dim, kernel_size=2 * stride, stride=stride,
                                        padding=math.ceil(stride / 2)),
                      ResidualUnit(output_dim, 1), ResidualUnit(output_dim, 3), ResidualUnit(output_dim, 9)]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.block:
            x = layer(x)
        return x


class Decoder(nn.Module):
    def __init__(self, input_channel: int, channels: int, rates: List[int], d_out: int = 1):
        super().__init__()
        self.model = [WNConv1d(input_channel, channels, kernel_size=7, padding=3)]
        for i, stride in enumerate(rates):  # upsampling blocks halve the channels
            self.model.append(DecoderBlock(channels // 2 ** i, channels // 2 ** (i + 1), stride))
        output_dim = channels // 2 ** len(rates)
        self.model += [Snake1d(output_dim), WNConv1d(output_dim, d_out, kernel_size=7, padding=3), Tanh()]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.model:
            x = layer(x)
        return x


# ------------------------------------------------------------------------------------------------- model

class DAC(nn.Module):
    """The codec. `encode(audio (B, L)) -> codes (B, n_codebooks, T)`; `decode(codes) -> audio (B, 320*T - 8)`
    for the 24 kHz models (in general what upstream's decoder gives for T frames)."""

    def __init__(self, config: DACConfig):
        super().__init__()
        self.config = config
        self.sample_rate = int(config.sample_rate)
        self.hop_length = config.hop_length
        self.n_codebooks = config.n_codebooks
        self.codebook_size = config.codebook_size
        self.encoder = Encoder(config.encoder_dim, config.encoder_rates, config.latent_dim)
        self.quantizer = ResidualVectorQuantize(config.latent_dim, config.n_codebooks, config.codebook_size,
                                                config.codebook_dim)
        self.decoder = Decoder(config.latent_dim, config.decoder_dim, config.decoder_rates)

    def preprocess(self, audio: mx.array) -> mx.array:
        """Right-pad (B, L) audio with zeros to a whole number of hops (upstream `DAC.preprocess`)."""
        L = audio.shape[-1]
        right = math.ceil(L / self.hop_length) * self.hop_length - L
        return mx.pad(audio, [(0, 0), (0, right)]) if right else audio

    def encode(self, audio: mx.array, n_quantizers: Optional[int] = None) -> mx.array:
        """Audio (B, L) float at `sample_rate` -> codes (B, n_codebooks, T) int32, as upstream `DAC.encode` (no
        padding here: call `preprocess` first for whole hops, as upstream's `compress` and outetts do)."""
        audio = _check_audio(audio)
        z = self.encoder(audio[:, :, None])
        return self.quantizer(z, n_quantizers)[1]

    def decode(self, codes: mx.array) -> mx.array:
        """Codes (B, n, T) int -> audio (B, L_out) float32 (upstream `quantizer.from_codes` then `DAC.decode`)."""
        codes = self.check_codes(codes)
        return self.decoder(self.quantizer.from_codes(codes))[:, :, 0]

    def check_codes(self, codes) -> mx.array:
        """Codes as (B, n, T) int32 within [0, codebook_size); a clear error otherwise."""
        c = np.asarray(codes)
        if c.ndim == 2:
            c = c[None]
        if c.ndim != 3 or not 1 <= c.shape[1] <= self.n_codebooks or c.shape[2] == 0:
            raise ValueError(f"codes must be (B, n, T) with 1 <= n <= {self.n_codebooks} and T >= 1, "
                             f"got shape {tuple(np.shape(codes))}")
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"codes must be integers, got {c.dtype}")
        if c.min() < 0 or c.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got min {c.min()} max {c.max()}")
        return mx.array(c.astype(np.int32))

    def output_length(self, T: int) -> int:
        """Samples the decoder gives for T frames: conv transposes (L-1)s - 2 ceil(s/2) + 2s, 'same' convs."""
        L = T
        for s in self.config.decoder_rates:
            L = (L - 1) * s - 2 * math.ceil(s / 2) + 2 * s
        return L


def _check_audio(audio) -> mx.array:
    a = audio if isinstance(audio, mx.array) else mx.array(np.asarray(audio))
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"audio must be (B, L) mono samples, got shape {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError("audio is empty (0 samples)")
    if not mx.issubdtype(a.dtype, mx.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got {a.dtype} (scale int16 by 1/32768 first)")
    if not mx.all(mx.isfinite(a)).item():
        raise ValueError("audio contains NaN or Inf")
    return a.astype(mx.float32)


# ------------------------------------------------------------------------------------------------- sanitize/load

def _fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """torch weight_norm(dim=0): w = g * v / ||v|| with the norm over every axis but 0 (computed in float64)."""
    v64 = v.astype(np.float64)
    norm = np.sqrt(np.sum(v64 * v64, axis=tuple(range(1, v.ndim)), keepdims=True))
    return (g.astype(np.float64) * v64 / norm).astype(np.float32)


def sanitize(weights: Dict[str, np.ndarray], transposed: set) -> Dict[str, np.ndarray]:
    """Official state_dict (numpy) -> MLX parameters: fold weight norm, move conv axes, reshape Snake alphas.

    `transposed` names the ConvTranspose1d modules (their torch weight is (C_in, C_out, K); Conv1d's (C_out, C_in,
    K)); both become MLX's (C_out, K, C_in).
    """
    out: Dict[str, np.ndarray] = {}
    for key, value in weights.items():
        module, _, name = key.rpartition(".")
        half = {"weight_g": "weight_v", "weight_v": "weight_g"}.get(name)
        if half and f"{module}.{half}" not in weights:  # half a weight norm: let check_weights name it
            out[key] = value
        elif name == "weight_v":
            continue
        elif name == "weight_g":
            w = _fold_weight_norm(value, weights[f"{module}.weight_v"])
            w = w.transpose(1, 2, 0) if module in transposed else w.transpose(0, 2, 1)
            out[f"{module}.weight"] = w
        elif name == "weight" and value.ndim == 3:  # a conv saved without weight norm
            out[key] = value.transpose(1, 2, 0) if module in transposed else value.transpose(0, 2, 1)
        elif name == "alpha":
            out[key] = value.reshape(-1)
        else:
            out[key] = value
    return out


def _transposed_modules(model: DAC) -> set:
    return {name for name, m in model.named_modules() if isinstance(m, WNConvTranspose1d)}


def checkpoint_shapes(model: DAC, weights: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """The official state_dict names and shapes `model` takes (before sanitize): per conv `weight_g` (rows, 1, 1)
    and `weight_v` (or a plain `weight`, when the checkpoint stores the conv without weight norm), `bias`; Snake
    `alpha` (1, C, 1); codebook `weight`. Checking these names the file's own tensors in an error."""
    want: Dict[str, Tuple[int, ...]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (WNConv1d, WNConvTranspose1d)):
            C_out, K, C_in = m.weight.shape
            # torch Conv1d stores (C_out, C_in, K); ConvTranspose1d (C_in, C_out, K); weight norm's dim is 0
            rows, cols = (C_out, C_in) if isinstance(m, WNConv1d) else (C_in, C_out)
            if f"{name}.weight" in weights and not {f"{name}.weight_g", f"{name}.weight_v"} & set(weights):
                want[f"{name}.weight"] = (rows, cols, K)
            else:
                want[f"{name}.weight_g"] = (rows, 1, 1)
                want[f"{name}.weight_v"] = (rows, cols, K)
            want[f"{name}.bias"] = (C_out,)
        elif isinstance(m, Snake1d):
            want[f"{name}.alpha"] = (1, m.alpha.shape[0], 1)
        elif isinstance(m, Codebook):
            want[f"{name}.weight"] = tuple(m.weight.shape)
    return want


def _kwargs(raw: Any, path: Path) -> Dict[str, Any]:
    try:
        kwargs = loads(raw, "", ValueError, ints=INT32) if isinstance(raw, (str, bytes)) else raw
    except ValueError as e:  # not JSON, too deep, a number out of range
        raise CheckpointError(f"{path}: the DAC kwargs are not usable JSON ({e})") from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: the DAC kwargs must be an object of DAC arguments, got "
                              f"{type(kwargs).__name__}")
    return kwargs


def _read_safetensors(path: Path) -> (Dict[str, Any], Dict[str, np.ndarray]):
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
        if "kwargs" in meta:
            kwargs = _kwargs(meta["kwargs"], path)
        elif (path.parent / "config.json").is_file():
            kwargs = _kwargs(read_bytes(path.parent / "config.json", "DAC config", 1 << 20, CheckpointError),
                             path.parent / "config.json")
        else:
            raise CheckpointError(f"{path}: no 'kwargs' metadata and no config.json beside it")
        return kwargs, load_file(str(path))
    except (SafetensorError, OSError, TypeError, ValueError, KeyError, MemoryError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({reason(e)}; truncated or "
                              "corrupt?)") from None


def _read_pth(path: Path) -> (Dict[str, Any], Dict[str, np.ndarray]):
    try:
        import torch
    except ImportError as e:
        raise CheckpointError(f"{path}: reading an official .pth checkpoint needs torch; convert it once with "
                              f"`voiceport dac convert {path} OUT.safetensors` where torch is installed") from e
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:  # PermissionError and the like
        raise CheckpointError(f"{path}: cannot read the checkpoint ({reason(e)})") from None
    if not magic:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), not a PyTorch checkpoint")
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":  # torch.save's zip, or its legacy pickle (protocol 2)
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch.load on a bad file raises EOFError, UnpicklingError, KeyError,
        # RuntimeError (zip reader), ValueError, ...: all mean the same thing here
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason(e)}; truncated or "
                              "corrupt?)") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or not isinstance(blob.get("metadata"), dict) \
            or "kwargs" not in blob["metadata"]:
        keys = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: not an official DAC checkpoint (want keys 'state_dict' and "
                              f"'metadata.kwargs', got {keys})")
    state = blob["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)
           or not v.is_floating_point()]
    if bad:
        raise CheckpointError(f"{path}: 'state_dict' entries that are not float tensors: {', '.join(bad[:6])}")
    weights = {k: v.detach().float().numpy() for k, v in state.items()}
    return _kwargs(blob["metadata"]["kwargs"], path), weights


def read_checkpoint(path: Union[str, Path]) -> (Dict[str, Any], Dict[str, np.ndarray]):
    """(kwargs, state_dict as numpy) from an official `.pth` (needs torch, imported here only) or from
    `.safetensors` (kwargs in its metadata under "kwargs", or a `config.json` beside it). Anything unreadable
    raises CheckpointError naming the file."""
    path = Path(path)
    if path.is_dir():
        hits = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.pth"))
        if not hits:
            raise FileNotFoundError(f"{path}: no .safetensors or .pth DAC checkpoint in this folder")
        path = hits[0]
    if check_input(path, "DAC checkpoint", CheckpointError) is None:  # a FIFO or device refused unopened
        raise FileNotFoundError(f"{path}: no such DAC checkpoint")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_pth(path)


def from_state_dict(kwargs: Dict[str, Any], weights: Dict[str, np.ndarray], where: str = "state_dict") -> DAC:
    """Build the DAC `kwargs` describe, check the official state_dict's names and shapes (one CheckpointError
    naming every bad tensor), fold its weight norm and load it strictly."""
    try:
        model = DAC(DACConfig.from_dict(kwargs))
    except (TypeError, ValueError, KeyError, OverflowError, ZeroDivisionError) as e:
        raise CheckpointError(f"{where}: its kwargs do not describe a DAC ({reason(e)})") from None
    check_weights(model, weights, where, want=checkpoint_shapes(model, weights))
    params = sanitize(weights, _transposed_modules(model))
    model.load_weights([(k, mx.array(v)) for k, v in params.items()], strict=True)
    mx.eval(model.parameters())
    model.eval()
    return model


def load(path: Union[str, Path]) -> DAC:
    """The DAC of an official `.pth` or a `.safetensors` checkpoint (or a folder holding one), loaded strictly."""
    kwargs, weights = read_checkpoint(path)
    return from_state_dict(kwargs, weights, str(path))
