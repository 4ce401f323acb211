"""BiCodec (Spark-TTS' audio tokenizer and decoder) in MLX: the model, sanitize and a strict load.

Ports sparktts `models/bicodec.py` at inference: `tokenize` (wav2vec2 features -> semantic ids; reference-clip mel
-> global ids) and `detokenize` (ids -> 16 kHz audio: VQ lookup + out_project, d-vector from the FSQ codes, prenet
conditioned on it, + d-vector, WaveGenerator). The postnet is training-only: its tensors are accepted and dropped.
Module names follow upstream (`prenet.vocos_backbone.convnext.3.norm.scale`); arrays are channels-last inside.

Checkpoint: a BiCodec folder, `config.yaml` (its `audio_tokenizer` section) + `model.safetensors` in the official
key layout (hook-style weight norm `weight_g`/`weight_v`, folded once here in float64; torch conv layouts moved to
MLX's). Keys are checked in the official key space before anything loads: one error names every missing, unexpected
and mis-shaped tensor. Optional (a file may hold them or not): the postnet, BatchNorm `num_batches_tracked`, the VQ's
`cluster_size` and the mel buffers `mel_transformer.spectrogram.window` / `mel_transformer.mel_scale.fb` - when
present they are what the mel uses (the official model loads them over its own), else impl computes them in float64
(torchaudio computes them in float32: up to 3.4e-7 apart on the filterbank).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl.spark.config import ConfigError, bicodec_config, read_yaml
from impl.spark.mel import MelSpectrogram
from impl.spark.quantize import FactorizedVectorQuantize
from impl.spark.speaker import SpeakerEncoder
from impl.spark.vocos import Decoder, Encoder
from impl.spark.wave import WaveGenerator
from impl.weights import CheckpointError, check_weights

SAMPLE_RATE = 16000
OPTIONAL = ("postnet.", "mel_transformer.", "quantizer.cluster_size")


class BiCodec(nn.Module):
    def __init__(self, config: Dict[str, Any]):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config["encoder"])
        self.quantizer = FactorizedVectorQuantize(config["quantizer"])
        self.speaker_encoder = SpeakerEncoder(config["speaker_encoder"])
        self.prenet = Decoder(config["prenet"])
        self.decoder = WaveGenerator(config["decoder"])
        self.mel_transformer = MelSpectrogram(**config["mel_params"])
        self.hop_length = int(np.prod(config["decoder"]["rates"]))
        self.codebook_size = int(config["quantizer"]["codebook_size"])
        self.global_codebook_size = int(np.prod(config["speaker_encoder"]["fsq_levels"]))
        self.global_shape = (int(config["speaker_encoder"]["fsq_num_quantizers"]),
                             int(config["speaker_encoder"]["token_num"]))

    def mel(self, ref_wav: mx.array) -> mx.array:
        """(N, L) -> (N, frames, num_mels)."""
        return self.mel_transformer(ref_wav)

    def tokenize(self, feat: mx.array, ref_wav: mx.array) -> Tuple[mx.array, mx.array]:
        """wav2vec2 features (N, T, input_channels) and the reference clip (N, L) -> (semantic ids (N, T),
        global ids (N, num_quantizers, token_num)), both int32, upstream's `BiCodec.tokenize`."""
        semantic = self.quantizer.tokenize(self.encoder(feat))
        return semantic, self.speaker_encoder.tokenize(self.mel(ref_wav))

    def detokenize(self, semantic: mx.array, global_ids: mx.array) -> mx.array:
        """semantic ids (N, T), global ids (N, num_quantizers, token_num) -> audio (N, T * hop) at 16 kHz."""
        semantic, global_ids = self.check_ids(semantic, global_ids)
        z_q = self.quantizer.detokenize(semantic)
        d_vector = self.speaker_encoder.detokenize(global_ids)
        x = self.prenet(z_q, d_vector) + d_vector[:, None, :]
        return self.decoder(x)[:, :, 0]

    def check_ids(self, semantic, global_ids) -> Tuple[mx.array, mx.array]:
        """ValueError (one line) for ids the model cannot decode: wrong rank or count, out of range."""
        s, g = np.asarray(semantic), np.asarray(global_ids)
        if s.ndim != 2 or s.shape[1] == 0 or not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"semantic ids: expected (batch, frames >= 1) integers, got {s.dtype} {list(s.shape)}")
        if g.ndim != 3 or tuple(g.shape[1:]) != self.global_shape or not np.issubdtype(g.dtype, np.integer):
            raise ValueError(f"global ids: expected (batch, {self.global_shape[0]}, {self.global_shape[1]}) "
                             f"integers, got {g.dtype} {list(g.shape)}")
        if g.shape[0] != s.shape[0]:
            raise ValueError(f"global ids batch {g.shape[0]} != semantic ids batch {s.shape[0]}")
        for name, a, n in (("semantic", s, self.codebook_size), ("global", g, self.global_codebook_size)):
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"{name} ids out of range [0, {n}): min {a.min()}, max {a.max()}")
        return mx.array(s.astype(np.int32)), mx.array(g.astype(np.int32))


# ------------------------------------------------------------------------------------------------- sanitize

def _fold(g: np.ndarray, v: np.ndarray, rows: int = 64) -> np.ndarray:
    """torch._weight_norm(v, g, dim=0) in float64, rounded to float32: g * v / ||v|| over all axes but 0. A block
    of rows at a time (the same per-row operations, bit-equal to the whole-array form), so the float64 temporaries
    of the 19 M-element transposed convs stay one block's size."""
    out = np.empty(v.shape, np.float32)
    axes = tuple(range(1, v.ndim))
    for i in range(0, v.shape[0], rows):
        v64 = v[i:i + rows].astype(np.float64)
        norm = np.sqrt(np.sum(v64 * v64, axis=axes, keepdims=True))
        out[i:i + rows] = g[i:i + rows].astype(np.float64) * v64 / norm
    return out


def _is_transposed(key: str) -> bool:
    """WaveGenerator's WNConvTranspose1d: `decoder.model.{i}.block.1` (torch layout (C_in, C_out, K))."""
    parts = key.split(".")
    return key.startswith("decoder.model.") and len(parts) >= 5 and parts[3:5] == ["block", "1"] and \
        len(parts) == 6


def sanitize(weights: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Official keys -> impl's: drop the optional tensors, fold weight norm, move conv axes to MLX's layout
    (Conv1d (C_out, C_in, K) and ConvTranspose1d (C_in, C_out, K) -> (C_out, K, C_in); Snake alpha (1, C, 1) ->
    (C,)). Pure: the input is not modified (float32 tensors may be returned as views of it)."""
    out: Dict[str, np.ndarray] = {}
    for k, v in weights.items():
        if k.startswith(OPTIONAL) or k.endswith("num_batches_tracked") or k.endswith(".weight_g"):
            continue
        v = np.asarray(v)
        if k.endswith(".weight_v"):
            base = k[: -len(".weight_v")]
            w = _fold(np.asarray(weights[base + ".weight_g"]), v)
            out[base + ".weight"] = w.transpose(1, 2, 0) if _is_transposed(k) else w.transpose(0, 2, 1)
        elif k.endswith(".alpha"):
            out[k] = np.asarray(v.reshape(-1), np.float32)
        elif k.endswith(".weight") and v.ndim == 3:  # plain Conv1d (incl. depthwise (C, 1, K))
            out[k] = np.asarray(v.transpose(0, 2, 1), np.float32)
        else:
            out[k] = np.asarray(v, np.float32)
    return out


# ------------------------------------------------------------------------------------------------- load

def read_weights(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    from impl._io import check_input

    check_input(path, "safetensors checkpoint", CheckpointError)  # a FIFO would block the reader
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (a BiCodec folder holds config.yaml and model.safetensors)") \
            from None
    except Exception as e:  # noqa: BLE001 -- safetensors raises several types for a corrupt file
        raise CheckpointError(f"{path}: not a readable safetensors file: {type(e).__name__}: {e}") from None


def from_state_dict(config: Dict[str, Any], weights: Dict[str, np.ndarray], where: str = "checkpoint") -> BiCodec:
    """Build the model for the `audio_tokenizer` config and load official-layout tensors, strictly."""
    from impl.seeded.spark import official_shapes

    want = {k: s for k, (s, _) in official_shapes({"audio_tokenizer": config}).items()}
    for k in list(want):  # optional tensors: absent is fine, present must fit
        if (k.startswith(OPTIONAL) or k.endswith("num_batches_tracked")) and k not in weights:
            del want[k]
    model = BiCodec(config)
    check_weights(model, weights, where, want=want, name="BiCodec")
    model.load_weights(list({k: mx.array(v) for k, v in sanitize(weights).items()}.items()), strict=True)
    mel = model.mel_transformer
    if "mel_transformer.mel_scale.fb" in weights:
        mel.set_filterbank(np.asarray(weights["mel_transformer.mel_scale.fb"], np.float32))
    if "mel_transformer.spectrogram.window" in weights:
        mel.set_window(np.asarray(weights["mel_transformer.spectrogram.window"], np.float32))
    mx.eval(model.parameters())
    return model


def load(path: Union[str, Path]) -> BiCodec:
    """A BiCodec folder (config.yaml + model.safetensors), as `BiCodec.load_from_checkpoint(model_dir)` reads it."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a BiCodec folder (config.yaml + model.safetensors)")
    try:
        config = bicodec_config(read_yaml(path / "config.yaml"), str(path / "config.yaml"))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return from_state_dict(config, read_weights(path / "model.safetensors"), str(path / "model.safetensors"))
