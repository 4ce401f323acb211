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
On the CPU (impl.ops' gemm path) `features` shares the work between two MLX CPU streams (`Wav2Vec2Features.streams`),
each running its products on one OpenBLAS thread (`blas_threads`): the conv front's blocks, each encoder layer's two
halves of frames, the attention's two halves of heads, the positional conv's groups. OpenBLAS's own two threads
wait for each other at every panel, a scheduler slice each when another process holds a core (2-core host, load 3:
the 16 heads' q k^T 250 ms on two threads, 17 ms on one); two streams never wait mid-product.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl import ops
from impl.accel.blas import blas_threads
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

    On impl.ops' gemm path (the CPU) the first CHUNKED layers run per block of at most FRAMES output frames of
    layer CHUNKED - 1 (each block from the samples it reads: the layers are frame-local, no padding, so a block's
    frames are the whole run's), evaluated as they go, then the rest on the joined blocks. Whole, layer 0 alone
    wrote 64 MB arrays at 10 s (32k frames x 512): each op's output was fresh memory that page-faulted per 4 kB
    (~240k faults, 0.5-0.8 s of system time a call, measured); a block's arrays are <= 25 MB (layer 1's im2col),
    reused from MLX's buffer cache (faults ~0). Blocking layers 0-5 (4 blocks at 10 s) beat layers 0-2 in blocks of
    1024 (1.0 vs 1.0-1.9 s under load 3.5, two streams): the later layers' products then also run on the streams.
    A 1 s clip (199 frames out of layer 5) runs whole."""

    CHUNKED, FRAMES = 6, 256

    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        dims = c["conv_dim"]
        self.conv_layers = [ConvLayer(dims[i - 1] if i else 1, d, k, s)
                            for i, (d, k, s) in enumerate(zip(dims, c["conv_kernel"], c["conv_stride"]))]

    def _span(self, layers, t0: int, t1: int) -> Tuple[int, int]:
        """Samples [a, b) that output frames [t0, t1) of `layers` read."""
        for layer in reversed(layers):
            K, s = layer.conv.weight.shape[1], layer.conv.stride
            t0, t1 = t0 * s, (t1 - 1) * s + K
        return t0, t1

    def __call__(self, x: mx.array, streams: Optional[List[mx.Stream]] = None) -> mx.array:
        """`streams` (two CPU streams, the gemm path): the blocks alternate between them on one OpenBLAS thread
        each, two blocks at a time (the LayerNorms and GELUs, single-threaded kernels, run side by side)."""
        head, tail = self.conv_layers[:self.CHUNKED], self.conv_layers[self.CHUNKED:]
        T = x.shape[1]
        for layer in head:
            T = (T - layer.conv.weight.shape[1]) // layer.conv.stride + 1
        if ops.path() == "native" or T <= self.FRAMES:
            head, tail = [], self.conv_layers
        else:
            two = streams is not None
            streams = streams or [mx.default_stream(mx.cpu)] * 2
            blocks = []
            with blas_threads(1) if two else nullcontext():
                for i, t0 in enumerate(range(0, T, self.FRAMES)):
                    a, b = self._span(head, t0, min(T, t0 + self.FRAMES))
                    with mx.stream(streams[i % 2]):
                        y = x[:, a:b]
                        for layer in head:
                            y = layer(y)
                    blocks.append(y)
                    if i % 2:
                        mx.eval(blocks[-2:])  # two blocks at once, one per stream
                mx.eval(blocks)
            x = mx.concatenate(blocks, axis=1)
        for layer in tail:
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
    """The positional conv after weight norm: weight (C_out, K, C_in / groups), `padding` both sides.

    On impl.ops' gemm path (the CPU), per block of at most FRAMES output frames and per group one matmul on one
    OpenBLAS thread (`blas_threads(1)`): im2col (frames, K * C_in/G) @ (K * C_in/G, C_out/G). MLX's CPU grouped
    conv1d took 1.6 s of a 1 s clip's 4.6 s features here (K 128, 16 groups, 1024 channels). At 10 s (499 frames)
    the 16 products of 499 x 8192 x 64 took 0.2 s this way under load 3.5, against 1.0 s as 4 blocks of 128 frames
    x 16 groups in batched matmuls on two threads (a short product split over two threads waits for the second at
    every panel, a scheduler slice each on a busy host). A block's im2col is <= 32 MB. The result is evaluated."""

    FRAMES = 1024

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.weight = mx.zeros((channels, kernel, channels // groups))
        self.bias = mx.zeros((channels,))
        self.padding, self.groups = kernel // 2, groups
        self._layouts: ops.LayoutStore = {}  # the gemm path's per-group weight (not a parameter)

    def _group_weight(self) -> mx.array:
        """(G, K * C_in/G, C_out/G), rows (k, ci): made once per weight."""
        hit = self._layouts.get("grouped")
        if hit is None or hit[0] is not self.weight:
            C_out, K, Cg = self.weight.shape
            G = self.groups
            w = mx.contiguous(self.weight.reshape(G, C_out // G, K, Cg).transpose(0, 2, 3, 1).reshape(G, K * Cg, -1))
            mx.eval(w)
            hit = self._layouts["grouped"] = (self.weight, w)
        return hit[1]

    def __call__(self, x: mx.array, streams: Optional[List[mx.Stream]] = None) -> mx.array:
        """`streams` (two CPU streams): the groups alternate between them, two at a time."""
        if ops.path() == "native":
            return mx.conv1d(x, self.weight, padding=self.padding, groups=self.groups) + self.bias
        C_out, K, Cg = self.weight.shape
        G, p = self.groups, self.padding
        w = self._group_weight()
        xp = mx.contiguous(mx.pad(x, [(0, 0), (p, p), (0, 0)]))
        mx.eval(xp)
        N, Lp, C = xp.shape
        L_out = Lp - K + 1
        blocks = []
        streams = streams or [mx.default_stream(mx.cpu)]
        with blas_threads(1):
            for n in range(N):
                for s0 in range(0, L_out, self.FRAMES):
                    m = min(self.FRAMES, L_out - s0)
                    groups = []
                    for g in range(G):
                        with mx.stream(streams[g % len(streams)]):
                            cols = mx.as_strided(xp, (m, K, Cg), (C, C, 1), (n * Lp + s0) * C + g * Cg)  # (m, K, Cg)
                            groups.append(mx.contiguous(cols).reshape(m, K * Cg) @ w[g])              # (m, C_out/G)
                        if g % len(streams) == len(streams) - 1 or g == G - 1:
                            mx.eval(groups[-len(streams):])  # a group's im2col per stream at a time
                    blocks.append(mx.concatenate(groups, axis=1))
        y = mx.concatenate(blocks, axis=0).reshape(N, L_out, C_out) + self.bias
        mx.eval(y)
        return y


class PositionalConvEmbedding(nn.Module):
    def __init__(self, c: Dict[str, Any]):
        super().__init__()
        K = c["num_conv_pos_embeddings"]
        self.conv = GroupedConv1d(c["hidden_size"], K, c["num_conv_pos_embedding_groups"])
        self.num_pad_remove = 1 if K % 2 == 0 else 0

    def __call__(self, x: mx.array, streams: Optional[List[mx.Stream]] = None) -> mx.array:
        y = self.conv(x, streams)
        if self.num_pad_remove:
            y = y[:, :-self.num_pad_remove, :]
        return gelu(y)


# Scores per block of queries at most (elements): 64 MB, bounding a long clip's (60 s: 16 x 3000 x 3000 = 576 MB)
_SCORES = 1 << 24


def attention(q: mx.array, k: mx.array, v: mx.array, scale: float,
              streams: Optional[List[mx.Stream]] = None) -> mx.array:
    """softmax(q k^T * scale) v without a mask, as transformers' eager Wav2Vec2Attention (q scaled first): q, k, v
    (N, H, L, d) -> (N, H, L, d).

    On impl.ops' gemm path (the CPU) the two products are MLX's, on one OpenBLAS thread (`blas_threads(1)`), and the
    softmax numpy's: MLX's CPU exp is a scalar loop (mx.fast.scaled_dot_product_attention took 71 ms of a layer's
    104 at 10 s, 16 x 499 x 499 scores; numpy's exp is vectorised). A product per head (499 x 64 x 499 at 10 s)
    split over two OpenBLAS threads waits for the second at every panel, a scheduler slice each when another process
    holds a core: 16 heads' q k^T took 250 ms on two threads against 17 ms on one (load 3, 2 cores, measured); numpy
    threads over the heads, likewise (the softmax: 11 ms on one thread). The division by the row sums comes after
    the product with v (L x d numbers, not L x L). `streams` (two CPU streams): each takes half the heads' products,
    side by side, and a thread each runs that half's softmax (numpy's ufuncs release the GIL), in place in the
    evaluated scores' buffer (a numpy view, `copy=False`), which then feeds the product with v: at 60 s (16 x 3000
    x 3000 scores) copying the scores out to numpy and back took 0.7 s of the attention's 0.82, one softmax thread
    idling the second core 0.13 more; 0.50 s without both (load 1.3, alternated, bit-identical). The result is
    evaluated."""
    if ops.path() == "native":
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale)
    N, H, L, d = q.shape
    S = k.shape[2]
    qs = q * scale
    mx.eval(qs, k, v)  # the projections before: on every thread
    kt = k.swapaxes(-1, -2)
    block = max(1, min(L, _SCORES // (N * H * S)))
    heads = [slice(0, H)] if not streams or H < 2 else [slice(0, H // 2), slice(H // 2, H)]
    streams = streams or [mx.default_stream(mx.cpu)]
    out = []
    with blas_threads(1), ThreadPoolExecutor(len(heads)) as pool:
        for s0 in range(0, L, block):
            s1 = min(L, s0 + block)
            scores = [mx.matmul(qs[:, hs, s0:s1], kt[:, hs], stream=st) for hs, st in zip(heads, streams)]
            mx.eval(scores)                                                              # (N, h, n, S) each
            # the evaluated scores' own buffers, overwritten in place (MLX's numpy view, copy=False)
            totals = list(pool.map(ops.exp_rows, [np.array(sc, copy=False) for sc in scores]))
            ys = [mx.divide(mx.matmul(e, v[:, hs], stream=st), mx.array(total), stream=st)
                  for hs, st, e, total in zip(heads, streams, scores, totals)]
            mx.eval(ys)
            out.append(ys[0] if len(ys) == 1 else mx.concatenate(ys, axis=1))
    return out[0] if len(out) == 1 else mx.concatenate(out, axis=2)


class Attention(nn.Module):
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
        out = attention(q, k, v, scale=(D // h) ** -0.5)
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

    def __call__(self, x: mx.array, streams: Optional[List[mx.Stream]] = None) -> mx.array:
        if not streams or x.shape[1] < 2 * self.ROWS:
            x = x + self.attention(self.layer_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        return self._halves(x, streams)

    ROWS = 64  # frames per half at least for `_halves`

    def _halves(self, x: mx.array, streams: List[mx.Stream]) -> mx.array:
        """The same layer, the CPU's way: every part but the attention's score and weighting is frame-local, so
        each half of the frames runs on one of two CPU streams (its LayerNorms, projections, GELU and residuals),
        on one OpenBLAS thread each, and the attention splits its heads between them. Two threads' products on a
        busy host wait for each other at every panel (the feed-forward: 80 ms on two threads, 56 on one, load 3);
        the streams never wait mid-product, and MLX's single-threaded elementwise kernels run side by side. The
        result is evaluated."""
        a = self.attention
        N, L, D = x.shape
        h = a.heads
        rows = [slice(0, L // 2), slice(L // 2, L)]
        with blas_threads(1):
            qkv = []
            for r, st in zip(rows, streams):
                with mx.stream(st):
                    n = self.layer_norm(x[:, r])
                    qkv.append([p(n) for p in (a.q_proj, a.k_proj, a.v_proj)])
            mx.eval(qkv)
            q, k, v = (mx.concatenate([part[i] for part in qkv], axis=1).reshape(N, L, h, D // h).transpose(0, 2, 1, 3)
                       for i in range(3))
            out = attention(q, k, v, (D // h) ** -0.5, streams).transpose(0, 2, 1, 3).reshape(N, L, D)
            ys = []
            for r, st in zip(rows, streams):
                with mx.stream(st):
                    y = x[:, r] + a.out_proj(out[:, r])
                    ys.append(y + self.feed_forward(self.final_layer_norm(y)))
            mx.eval(ys)
        return mx.concatenate(ys, axis=1)


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
        self._streams = None  # the CPU's two streams (impl.ops' gemm path), made at the first call

    def streams(self) -> Optional[List[mx.Stream]]:
        """On impl.ops' gemm path (the CPU) the model's two CPU streams (made at the first call), which the blocked
        parts share out between them; None on the native path (a GPU)."""
        if ops.path() != "gemm":
            return None
        if self._streams is None:  # a plain attribute (a list would join the module tree)
            object.__setattr__(self, "_streams", (mx.new_stream(mx.cpu), mx.new_stream(mx.cpu)))
        return list(self._streams)

    def hidden_states(self, wav: mx.array):
        """The hidden states transformers would return, up to index max(mix_layers)."""
        streams = self.streams()
        x = self.feature_extractor(wav[:, :, None], streams)
        x, _ = self.feature_projection(x)
        x = x + self.encoder.pos_conv_embed(x, streams)
        states = [x]
        for layer in self.encoder.layers:
            x = layer(x, streams)
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

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path / 'config.json'}: cannot read: {e}") from None
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


# MLX keeps at most 32 MB of freed buffers for reuse by default (mx.set_cache_limit); the feature encoder's arrays
# are larger (10 s: 32k frames x 512 channels, 64 MB), so every op on them took fresh pages from the system and
# paid a page fault per 4 kB (an add on one: 60 ms, 9 ms from the cache; its LayerNorm and GELU: 0.5 s of a 10 s
# clip's 4.6 s). `features` raises the limit for its call and puts the caller's back after (MLX trims the cache
# to it at the next allocation).
CACHE_LIMIT = 1 << 30


@contextmanager
def buffer_cache(limit: Optional[int] = None) -> Iterator[None]:
    """`with buffer_cache(): ...` lets MLX keep up to `limit` (default CACHE_LIMIT) bytes of freed buffers (never
    lowers the limit)."""
    limit = CACHE_LIMIT if limit is None else limit
    old = mx.set_cache_limit(limit)
    if old > limit:
        mx.set_cache_limit(old)
    try:
        yield
    finally:
        mx.set_cache_limit(old)


def features(model: Wav2Vec2Features, wav: np.ndarray) -> mx.array:
    """One clip (L,) at 16 kHz -> (1, frames, hidden_size), as BiCodecTokenizer.extract_wav2vec2_features."""
    with buffer_cache():
        out = model(mx.array(normalize(wav))[None])
        mx.eval(out)
    return out
