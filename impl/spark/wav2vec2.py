"""The wav2vec2 features BiCodec's semantic path reads, in MLX: (hidden_states[11] + [14] + [16]) / 3.

Ports transformers 4.52 `Wav2Vec2Model` for the wav2vec2-large-xlsr-53 layout (feat_extract_norm "layer",
do_stable_layer_norm: pre-LN encoder layers) and `Wav2Vec2FeatureExtractor`'s do_normalize (float32 zero-mean
unit-variance, eps 1e-7), as sparktts `BiCodecTokenizer.extract_wav2vec2_features` calls them (one unpadded clip, no
attention mask). hidden_states[k] is the input of encoder layer k (the output of layer k - 1): only layers 0..15 run
(the checkpoint's others are accepted and dropped), and the final encoder layer norm (applied to the last hidden
state only) never does. Module names follow transformers (`encoder.layers.3.attention.q_proj`), channels-last.
Checkpoint: an HF folder (config.json + model.safetensors, keys with or without the `wav2vec2.` prefix of the
pre-training checkpoint); the positional conv's weight norm (dim 2; `weight_g`/`weight_v` or the parametrization's
`original0`/`original1`) is folded once in float64.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl import ops
from impl.spark.vocos import Conv1d, LayerNorm, gelu
from impl.weights import CheckpointError, check_weights

MIX_LAYERS = (11, 14, 16)  # hidden_states indices averaged by sparktts


def normalize(wav: np.ndarray) -> np.ndarray:
    """Wav2Vec2FeatureExtractor(do_normalize=True) on one clip: float32, (x - mean) / sqrt(var + 1e-7)."""
    x = np.asarray(wav, dtype=np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


class StridedConv1d(Conv1d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__(in_channels, out_channels, kernel_size)
        self.stride = stride

    def __call__(self, x: mx.array) -> mx.array:
        return ops.conv1d(x, self.weight, self.bias, stride=self.stride, layouts=self._layouts)


class ConvLayer(nn.Module):
    """Wav2Vec2LayerNormConvLayer: conv -> LayerNorm over channels (eps 1e-5) -> GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.conv = StridedConv1d(c_in, c_out, kernel, stride)
        self.layer_norm = LayerNorm(c_out, eps=1e-5)

    def __call__(self, x: mx.array) -> mx.array:
        return gelu(self.layer_norm(self.conv(x)))


class FeatureEncoder(nn.Module):
    """The strided conv stack: audio (N, L, 1) -> (N, frames, conv_dim[-1]).

    The first BLOCKED layers run per block of at most FRAMES output frames of layer BLOCKED - 1, each block from the
    samples it reads (the layers are frame-local, no padding: a block's frames are bit-equal to the whole run's),
    and the rest on the joined blocks; a clip of one block runs whole. MLX evaluates each block's chain before the
    next one's, so the large early arrays (layer 0: 512 channels at 3,200 frames a second) live one block at a time:
    peak memory grows with the block, not with the clip."""

    BLOCKED, FRAMES = 6, 256

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        dims = c["conv_dim"]
        self.conv_layers = [ConvLayer(dims[i - 1] if i else 1, d, k, s)
                            for i, (d, k, s) in enumerate(zip(dims, c["conv_kernel"], c["conv_stride"]))]

    def __call__(self, x: mx.array) -> mx.array:
        T = x.shape[1]
        for layer in self.conv_layers[:self.BLOCKED]:
            T = (T - layer.conv.weight.shape[1]) // layer.conv.stride + 1
        layers = self.conv_layers
        if T > self.FRAMES:  # else one block: the whole clip, trailing samples included (as each module's output)
            x = mx.concatenate([self._block(x, t0, min(T, t0 + self.FRAMES))
                                for t0 in range(0, T, self.FRAMES)], axis=1)
            layers = self.conv_layers[self.BLOCKED:]
        for layer in layers:
            x = layer(x)
        return x

    def _block(self, x: mx.array, t0: int, t1: int) -> mx.array:
        """Output frames [t0, t1) of layer BLOCKED - 1, from the samples [a, b) they read."""
        head = self.conv_layers[:self.BLOCKED]
        a, b = t0, t1
        for layer in reversed(head):
            K, s = layer.conv.weight.shape[1], layer.conv.stride
            a, b = a * s, (b - 1) * s + K
        x = x[:, a:b]
        for layer in head:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        self.layer_norm = LayerNorm(c["conv_dim"][-1], eps=c["layer_norm_eps"])
        self.projection = nn.Linear(c["conv_dim"][-1], c["hidden_size"])

    def __call__(self, x: mx.array) -> Tuple[mx.array, mx.array]:
        norm = self.layer_norm(x)
        return self.projection(norm), norm


class GroupedConv1d(nn.Module):
    """The positional conv after weight norm: weight (C_out, K, C_in / groups), `padding` both sides."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.weight = mx.zeros((channels, kernel, channels // groups))
        self.bias = mx.zeros((channels,))
        self.padding, self.groups = kernel // 2, groups

    def __call__(self, x: mx.array) -> mx.array:
        return mx.conv1d(x, self.weight, padding=self.padding, groups=self.groups) + self.bias


class PositionalConvEmbedding(nn.Module):
    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        K = c["num_conv_pos_embeddings"]
        self.conv = GroupedConv1d(c["hidden_size"], K, c["num_conv_pos_embedding_groups"])
        self.num_pad_remove = 1 if K % 2 == 0 else 0

    def __call__(self, x: mx.array) -> mx.array:
        y = self.conv(x)
        if self.num_pad_remove:
            y = y[:, :-self.num_pad_remove, :]
        return gelu(y)


class Attention(nn.Module):
    """Wav2Vec2Attention (eager, no mask): softmax((q_proj(x) * head_dim^-0.5) k^T) v, then out_proj."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def __call__(self, x: mx.array) -> mx.array:
        N, L, D = x.shape
        h = self.heads
        q, k, v = (p(x).reshape(N, L, h, D // h).transpose(0, 2, 1, 3) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = ops.attention(q, k, v, scale=(D // h) ** -0.5)  # (N, h, L, D / h); q scaled before the product
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(N, L, D))


class FeedForward(nn.Module):
    def __init__(self, dim: int, inter: int):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, inter)
        self.output_dense = nn.Linear(inter, dim)

    def __call__(self, x: mx.array) -> mx.array:
        return self.output_dense(gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Wav2Vec2EncoderLayerStableLayerNorm: x + attn(LN(x)), then + ff(LN(.))."""

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        H = c["hidden_size"]
        self.attention = Attention(H, c["num_attention_heads"])
        self.layer_norm = LayerNorm(H, eps=c["layer_norm_eps"])
        self.feed_forward = FeedForward(H, c["intermediate_size"])
        self.final_layer_norm = LayerNorm(H, eps=c["layer_norm_eps"])

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attention(self.layer_norm(x))
        return x + self.feed_forward(self.final_layer_norm(x))


class Encoder(nn.Module):
    def __init__(self, c: Dict[str, Any], n_layers: int):
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(c)
        self.layers = [EncoderLayer(c) for _ in range(n_layers)]


class Wav2Vec2Features(nn.Module):
    """Audio (N, L) at 16 kHz (already normalised: `normalize`) -> mixed features (N, frames, hidden_size)."""

    def __init__(self, config: Dict[str, Any], mix_layers=MIX_LAYERS):
        super().__init__()
        if not config.get("do_stable_layer_norm") or config.get("feat_extract_norm") != "layer":
            raise ValueError("wav2vec2: only the xlsr-53 layout (feat_extract_norm 'layer', do_stable_layer_norm) "
                             "is ported")
        self.config, self.mix_layers = config, tuple(mix_layers)
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config, max(self.mix_layers))

    def hidden_states(self, wav: mx.array):
        """The hidden states transformers would return, up to index max(mix_layers)."""
        x = self.feature_extractor(wav[:, :, None])
        x, _ = self.feature_projection(x)
        x = x + self.encoder.pos_conv_embed(x)
        states = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            states.append(x)
        return states

    def __call__(self, wav: mx.array) -> mx.array:
        states = self.hidden_states(wav)
        a, b, c = (states[i] for i in self.mix_layers)
        return (a + b + c) / 3

# ------------------------------------------------------------------------------------------------- load

def sanitize(weights: Dict[str, np.ndarray], n_layers: int) -> Dict[str, np.ndarray]:
    """HF keys -> impl's: strip `wav2vec2.`, drop what the features never reach (layers >= n_layers, the final
    encoder layer norm, masked_spec_embed, pre-training heads), fold the positional conv's weight norm (dim 2), move
    conv axes to MLX's (C_out, K, C_in)."""
    w = {(k[len("wav2vec2."):] if k.startswith("wav2vec2.") else k): v for k, v in weights.items()}
    pos = "encoder.pos_conv_embed.conv."
    g = w.get(pos + "weight_g", w.get(pos + "parametrizations.weight.original0"))
    v = w.get(pos + "weight_v", w.get(pos + "parametrizations.weight.original1"))
    out: Dict[str, np.ndarray] = {}
    if g is not None and v is not None:
        v64 = np.asarray(v, np.float64)
        folded = np.asarray(g, np.float64) * v64 / np.sqrt(np.sum(v64 * v64, axis=(0, 1), keepdims=True))
        out[pos + "weight"] = folded.transpose(0, 2, 1).astype(np.float32)
    for k, a in w.items():
        if k.startswith((pos + "weight_", pos + "parametrizations")) or not k.startswith(
                ("feature_extractor.", "feature_projection.", "encoder.pos_conv_embed.", "encoder.layers.")):
            continue
        if k.startswith("encoder.layers.") and int(k.split(".")[2]) >= n_layers:
            continue
        a = np.asarray(a)
        out[k] = (a.transpose(0, 2, 1) if a.ndim == 3 else a).astype(np.float32)
    return out


def load(path: Union[str, Path], mix_layers=MIX_LAYERS) -> Wav2Vec2Features:
    """An HF wav2vec2 folder (config.json + model.safetensors) -> the features model, strictly checked (after
    sanitize: every tensor the features need present with its shape, none left over)."""
    from safetensors.numpy import load_file

    from impl._io import check_input
    from impl.weights import read_json

    path = Path(path)
    config = read_json(path / "config.json")  # CheckpointError naming the file (special files, limits)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path / 'config.json'}: not a JSON object")
    check_input(path / "model.safetensors", "safetensors checkpoint", CheckpointError)
    try:
        weights = load_file(str(path / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 -- missing or corrupt: one message
        raise CheckpointError(f"{path / 'model.safetensors'}: not a readable safetensors file: {e}") from None
    model = Wav2Vec2Features(config, mix_layers)
    w = sanitize(weights, max(model.mix_layers))
    check_weights(model, w, str(path / "model.safetensors"), name="Wav2Vec2 (layers 0-15)")
    model.load_weights(list({k: mx.array(v) for k, v in w.items()}.items()), strict=True)
    mx.eval(model.parameters())
    return model


def features(model: Wav2Vec2Features, wav: np.ndarray) -> mx.array:
    """One clip (L,) at 16 kHz -> (1, frames, hidden_size), evaluated, as BiCodecTokenizer.extract_wav2vec2_features."""
    out = model(mx.array(normalize(wav))[None])
    mx.eval(out)
    return out
