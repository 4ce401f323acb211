"""OuteTTS 1.0 backbone LM (Llama 3.2 1B architecture) in MLX.

Ports transformers 4.52.3 `models/llama/modeling_llama.py` (LlamaForCausalLM: GQA attention, RMSNorm, SwiGLU MLP,
tied embeddings) and `modeling_rope_utils.py` (`_compute_llama3_parameters`). Module and attribute names follow
HF, so `model.layers.3.self_attn.q_proj.weight` names the same tensor in both trees and HF safetensors load as is.

Fast paths (mlx-lm's): one-pass prefill with `mx.fast.scaled_dot_product_attention(mask="causal")` (through
`ops.attention`), `mx.fast.rms_norm`, `mx.fast.rope` (llama3 frequencies passed as `freqs`), and a KV cache
pre-allocated in steps (`KVCache`), so a decode step writes one slot instead of concatenating. Platform variants of
this model (fused projections, the CPU layout, a compiled decode step) are transformations in `impl.accel`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl import ops
from impl._io import reason
from impl.weights import CheckpointError, check_weights, read_hf_config, read_hf_weights

# Llama-OuteTTS-1.0-1B (Llama 3.2 1B with a 134,400-token vocabulary), HF config.json keys.
OUTETTS_1B_CONFIG: Dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 134400,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 131072,
    "tie_word_embeddings": True,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "use_cache": True,
}


# ------------------------------------------------------------------------------------------------- config

@dataclass
class ModelArgs:
    """HF LlamaConfig keys; defaults are LlamaConfig's where config.json may omit a key."""

    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    vocab_size: int
    num_key_value_heads: Optional[int] = None
    head_dim: Optional[int] = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: Optional[Dict[str, Any]] = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    o_proj_bias: Optional[bool] = None  # not a LlamaConfig key: None = attention_bias; Qwen2 (impl.qwen2) sets False
    hidden_act: str = "silu"
    initializer_range: float = 0.02
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[Union[int, List[int]]] = None
    pad_token_id: Optional[int] = None
    model_type: str = "llama"

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.o_proj_bias is None:
            self.o_proj_bias = self.attention_bias
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (Llama uses 'silu')")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ("llama3", "default"):
                raise ValueError(f"rope_scaling type {kind!r} is not supported (expected 'llama3')")

    @classmethod
    def from_dict(cls, config: Dict[str, Any]) -> "ModelArgs":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})


def rope_inv_freq(args: ModelArgs) -> np.ndarray:
    """(head_dim/2,) fp32 inverse frequencies, as transformers' default + llama3 rope init computes them (fp32)."""
    dim = args.head_dim
    inv = (1.0 / (np.float32(args.rope_theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))))
    inv = inv.astype(np.float32)
    rs = args.rope_scaling
    if rs is None or rs.get("rope_type", rs.get("type")) == "default":
        return inv
    factor, low, high = (np.float32(rs[k]) for k in ("factor", "low_freq_factor", "high_freq_factor"))
    old = np.float32(rs["original_max_position_embeddings"])
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = np.float32(2 * math.pi) / inv
    scaled = np.where(wavelen > low_wavelen, inv / factor, inv)  # long wavelengths: divide by factor
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


# ------------------------------------------------------------------------------------------------- cache

class KVCache:
    """Per-layer keys/values (B, n_kv, S, D) pre-allocated in `step`-slot blocks; a write is a slice update."""

    step = 256

    def __init__(self):
        self.keys: Optional[mx.array] = None
        self.values: Optional[mx.array] = None
        self.offset = 0

    def _reserve(self, B: int, H: int, L: int, D: int, Dv: int, dtype: mx.Dtype, vdtype: mx.Dtype) -> None:
        """Room for L more positions (grown by whole `step` blocks, the cached ones kept)."""
        prev = self.offset
        if self.keys is None or prev + L > self.keys.shape[2]:
            n = ((prev + L + self.step - 1) // self.step) * self.step
            grow_k = mx.zeros((B, H, n - (0 if self.keys is None else self.keys.shape[2]), D), dtype)
            grow_v = mx.zeros((B, H, grow_k.shape[2], Dv), vdtype)
            if self.keys is None:
                self.keys, self.values = grow_k, grow_v
            else:
                self.keys = mx.concatenate([self.keys[..., :prev, :], grow_k], axis=2)
                self.values = mx.concatenate([self.values[..., :prev, :], grow_v], axis=2)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> Tuple[mx.array, mx.array]:
        B, H, L, D = keys.shape
        prev = self.offset
        self._reserve(B, H, L, D, values.shape[3], keys.dtype, values.dtype)
        self.offset += L
        self.keys[..., prev:self.offset, :] = keys
        self.values[..., prev:self.offset, :] = values
        return self.keys[..., :self.offset, :], self.values[..., :self.offset, :]

    @property
    def state(self) -> List[mx.array]:
        return [] if self.keys is None else [self.keys, self.values]

# ------------------------------------------------------------------------------------------------- layers

class Attention(nn.Module):
    """LlamaAttention: GQA, rotate-half rope on q and k, softmax(q k^T / sqrt(d)) v."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        D, H, KV, hd = args.hidden_size, args.num_attention_heads, args.num_key_value_heads, args.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = H, KV, hd
        self.scale = hd ** -0.5
        self.q_proj = nn.Linear(D, H * hd, bias=args.attention_bias)
        self.k_proj = nn.Linear(D, KV * hd, bias=args.attention_bias)
        self.v_proj = nn.Linear(D, KV * hd, bias=args.attention_bias)
        self.o_proj = nn.Linear(H * hd, D, bias=args.o_proj_bias)
        # rope periods 1/inv_freq: mx.fast.rope's `freqs` (a buffer, not a parameter: excluded from weights)
        self._freqs = mx.array(1.0 / rope_inv_freq(args))

    def __call__(self, x: mx.array, mask: Optional[str] = "causal", cache: Optional[KVCache] = None) -> mx.array:
        q, k, v = self.project(x, 0 if cache is None else cache.offset)
        if cache is not None:
            k, v = cache.update_and_fetch(k, v)
        return self.output(ops.attention(q, k, v, self.scale, mask))  # mx.fast sdpa (numpy softmax on CPU)

    def project(self, x: mx.array, offset: Union[int, mx.array]) -> Tuple[mx.array, mx.array, mx.array]:
        """x (B, L, D) -> q (B, H, L, hd), k and v (B, KV, L, hd), rope applied from position `offset`."""
        B, L, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)  # (B, H, L, hd)
        k = k.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)  # (B, KV, L, hd)
        v = v.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        q = mx.fast.rope(q, self.head_dim, traditional=False, base=None, scale=1.0, offset=offset, freqs=self._freqs)
        k = mx.fast.rope(k, self.head_dim, traditional=False, base=None, scale=1.0, offset=offset, freqs=self._freqs)
        return q, k, v

    def output(self, o: mx.array) -> mx.array:
        """The heads' outputs o (B, H, L, hd) -> o_proj of them side by side (B, L, D)."""
        B, _, L, _ = o.shape
        return self.o_proj(o.transpose(0, 2, 1, 3).reshape(B, L, -1))


class MLP(nn.Module):
    """LlamaMLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        D, F = args.hidden_size, args.intermediate_size
        self.gate_proj = nn.Linear(D, F, bias=args.mlp_bias)
        self.up_proj = nn.Linear(D, F, bias=args.mlp_bias)
        self.down_proj = nn.Linear(F, D, bias=args.mlp_bias)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(ops.swiglu(self.gate_proj(x), self.up_proj(x)))


class DecoderLayer(nn.Module):
    """LlamaDecoderLayer: pre-norm attention and MLP, each with a residual."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = Attention(args)
        self.mlp = MLP(args)
        self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x: mx.array, mask: Optional[str] = "causal", cache: Optional[KVCache] = None) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x), mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))

class LlamaModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [DecoderLayer(args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, ids: mx.array, cache: Optional[List[KVCache]] = None) -> mx.array:
        h = self.embed_tokens(ids)
        # One query token attends to everything cached: no mask. Several: causal, aligned to the last key.
        mask = None if h.shape[1] == 1 else "causal"
        for i, layer in enumerate(self.layers):
            h = layer(h, mask, None if cache is None else cache[i])
        return self.norm(h)


class Model(nn.Module):
    """LlamaForCausalLM: `model(ids (B, L) int32, cache=None) -> logits (B, L, vocab)`.

    `logits_to_keep=n > 0` (HF's argument) projects only the last n positions (B, n, vocab): a prefill that
    needs one next token skips the vocab projection of the others (a quarter of the 1B model's prefill FLOPs).
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model_type = args.model_type
        self.model = LlamaModel(args)
        if not args.tie_word_embeddings:
            self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)

    def __call__(self, ids: mx.array, cache: Optional[List[KVCache]] = None, logits_to_keep: int = 0) -> mx.array:
        h = self.model(ids, cache)
        if logits_to_keep > 0:
            h = h[:, -logits_to_keep:, :]
        if self.args.tie_word_embeddings:
            return self.model.embed_tokens.as_linear(h)
        return self.lm_head(h)

    @property
    def layers(self) -> List[DecoderLayer]:
        return self.model.layers

    def sanitize(self, weights: Dict[str, mx.array]) -> Dict[str, mx.array]:
        return sanitize(weights, self.args)


def make_cache(model: Model) -> List[KVCache]:
    """One empty KVCache per decoder layer."""
    return [KVCache() for _ in model.layers]


# ------------------------------------------------------------------------------------------------- loading

def sanitize(weights: Dict[str, mx.array], args: ModelArgs) -> Dict[str, mx.array]:
    """HF state dict -> this tree: drop rope buffers (`rotary_emb.inv_freq`) and the tied `lm_head`."""
    out = {k: v for k, v in weights.items() if "rotary_emb.inv_freq" not in k}
    if args.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


_DTYPES = {"float32": mx.float32, "fp32": mx.float32, "float16": mx.float16, "fp16": mx.float16,
           "bfloat16": mx.bfloat16, "bf16": mx.bfloat16}
_QUANT = {"q8": 8, "q4": 4}


def load(path: Union[str, Path], dtype: Optional[str] = None, quantize: Optional[str] = None) -> Model:
    """Load an HF Llama checkpoint (config.json + model.safetensors or a sharded index): the plain model.

    Args:
        path: folder with config.json and model.safetensors (or model.safetensors.index.json + shards).
        dtype: "float32"/"float16"/"bfloat16" (or fp32/fp16/bf16); None keeps the checkpoint's dtype.
        quantize: None, "q8" or "q4" (`mlx.nn.quantize`, group size 64, embeddings included).
    Returns the checkpoint's own modules; `impl.accel.apply(model, variant)` makes a platform variant of it.
    Raises FileNotFoundError (no config.json / weights), CheckpointError (unreadable files, wrong keys or shapes),
    ValueError (an unknown dtype or quantize).
    """
    path = Path(path)
    config_path, config = read_hf_config(path)
    try:
        args = ModelArgs.from_dict(config)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{config_path}: not a Llama config ({reason(e)})") from None
    return load_model(path, args, dtype, quantize)


def load_model(path: Path, args: ModelArgs, dtype: Optional[str] = None, quantize: Optional[str] = None,
               name: str = "Llama") -> Model:
    """`Model(args)` with the checkpoint's weights at `path` (strict keys and shapes), then `load`'s dtype and
    quantizing; `name` is the model's name in a key error (impl.qwen2 shares this)."""
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} not one of {sorted(_DTYPES)}")
    if quantize is not None and quantize not in _QUANT:
        raise ValueError(f"quantize {quantize!r} not one of {sorted(_QUANT)}")
    model = Model(args)
    weights = sanitize(read_hf_weights(path), args)
    emb = weights.get("model.embed_tokens.weight")
    notes = [] if emb is None or emb.shape[0] == args.vocab_size else [
        f"config vocab_size {args.vocab_size} != model.embed_tokens.weight rows {emb.shape[0]} "
        "(config.json and the checkpoint disagree)"]
    check_weights(model, weights, str(path), notes, name=name)
    if dtype is not None:
        weights = {k: v.astype(_DTYPES[dtype]) for k, v in weights.items()}
    model.load_weights(list(weights.items()), strict=True)
    if quantize is not None:
        nn.quantize(model, group_size=64, bits=_QUANT[quantize])
    mx.eval(model.parameters())
    return model
