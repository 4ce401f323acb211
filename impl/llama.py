"""OuteTTS 1.0 backbone LM (Llama 3.2 1B architecture) in MLX.

Ports transformers 4.52.3 `models/llama/modeling_llama.py` (LlamaForCausalLM: GQA attention, RMSNorm, SwiGLU MLP,
tied embeddings) and `modeling_rope_utils.py` (`_compute_llama3_parameters`). Module and attribute names follow
HF, so `model.layers.3.self_attn.q_proj.weight` names the same tensor in both trees and HF safetensors load as is.

Fast paths: one-pass prefill with `mx.fast.scaled_dot_product_attention(mask="causal")` (through
`ops.attention`, which on CPU runs a multi-query softmax in numpy; `ops.swiglu` likewise), `mx.fast.rms_norm`,
`mx.fast.rope` (llama3 frequencies passed as `freqs`), and a KV cache pre-allocated in steps (`KVCache`), so a
decode step writes one slot instead of concatenating. On CPU the weight matrices are stored column-major
(`cpu_layout`; with impl/cpu.py's sgemv forwarder, per product, q|k|v and gate|up stacked into one product each:
`stack_projections`): a decode step's matrix-vector products then read them at full bandwidth; and a decode step runs
each layer's parts around the cached attention as compiled graphs (`compile_step`).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from impl import ops
from impl._io import reason
from impl.weights import CheckpointError, check_weights

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

    def host_slot(self, heads: int, dim: int) -> Tuple[np.ndarray, np.ndarray, int]:
        """Room for one more float32 token of one sequence computed outside MLX (impl.cpu_decode): NumPy views
        (heads, capacity, dim) of the key and value buffers (grown as `update_and_fetch` grows them) and the slot
        the token takes, its position; the offset moves past it. The caller writes that slot in place: no
        position before it changes, so arrays handed out earlier (slices up to the old offset) keep their values,
        and later MLX calls read the buffers with the slot filled."""
        self._reserve(1, heads, 1, dim, dim, mx.float32, mx.float32)
        views = []
        for name in ("keys", "values"):
            a = np.array(getattr(self, name), copy=False)
            if not (a.flags.c_contiguous and a.flags.writeable):  # a buffer MLX shares or strides: own it first
                setattr(self, name, mx.array(np.ascontiguousarray(a)))  # mx.array copies: a buffer of its own
                a = np.array(getattr(self, name), copy=False)
            views.append(a[0])
        slot = self.offset
        self.offset += 1
        return views[0], views[1], slot


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
        # a decode step (one row: bandwidth-bound) takes the stacked q|k|v of `stack_projections` (the CPU layout)
        # when there is one; several rows (compute-bound) take the modules, which the parity harness taps
        stacked = self.get("_qkv_weight") if L == 1 else None
        if stacked is None:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        else:
            qkv = x @ stacked.T if self.get("_qkv_bias") is None else mx.addmm(self._qkv_bias, x, stacked.T)
            q, k, v = mx.split(qkv, [self.n_heads * self.head_dim, (self.n_heads + self.n_kv_heads) * self.head_dim],
                               axis=-1)
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
        stacked = self.get("_gate_up_t")  # set by `stack_projections` (the CPU layout): one product for gate|up
        if stacked is None:
            return self.down_proj(ops.swiglu(self.gate_proj(x), self.up_proj(x)))
        gate, up = mx.split(x @ stacked, 2, axis=-1)
        return self.down_proj(ops.swiglu(gate, up))


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

    def step(self, x: mx.array, cache: KVCache) -> mx.array:
        """One decode step, x (B, 1, D) -> `self(x, None, cache)`, the parts before and after the cached attention
        each one compiled graph (made by `compile_step`; the position goes in as an array: no retrace per step)."""
        q, k, v = self.compiled_qkv(x, mx.array(cache.offset, mx.int32))
        k, v = cache.update_and_fetch(k, v)
        out = self.compiled_rest(x, ops.attention(q, k, v, self.self_attn.scale, None))
        for m in (self.self_attn, self.mlp):  # a trace re-wraps the layer's arrays (the same arrays): see `restack`
            if "_stacked_from" in m:
                m._stacked_from = _stack_parts(m)
        return out

    def qkv(self, x: mx.array, offset: Union[int, mx.array]) -> Tuple[mx.array, mx.array, mx.array]:
        """The layer up to the cache: input norm, projections, rope."""
        return self.self_attn.project(self.input_layernorm(x), offset)

    def rest(self, x: mx.array, o: mx.array) -> mx.array:
        """The layer after the attention (o: its heads' outputs): o_proj, residual, MLP, residual."""
        h = x + self.self_attn.output(o)
        return h + self.mlp(self.post_attention_layernorm(h))


class FusedAttention(Attention):
    """Attention with q|k|v in one projection and one rope call for q|k (a GPU decode step is bound by its number
    of kernels, not its bytes: 3 fewer launches a layer). Built by `fuse_projections` from a loaded Attention."""

    def __init__(self, attn: Attention):
        nn.Module.__init__(self)
        self.n_heads, self.n_kv_heads, self.head_dim, self.scale = (attn.n_heads, attn.n_kv_heads, attn.head_dim,
                                                                    attn.scale)
        self._freqs = attn._freqs
        self.qkv_proj = _concat_linear([attn.q_proj, attn.k_proj, attn.v_proj])
        self.o_proj = attn.o_proj

    def project(self, x: mx.array, offset: Union[int, mx.array]) -> Tuple[mx.array, mx.array, mx.array]:
        B, L, _ = x.shape
        H, KV = self.n_heads, self.n_kv_heads
        qkv = self.qkv_proj(x).reshape(B, L, H + 2 * KV, -1).transpose(0, 2, 1, 3)  # (B, H + 2 KV, L, hd)
        qk = mx.fast.rope(qkv[:, :H + KV], self.head_dim, traditional=False, base=None, scale=1.0, offset=offset,
                          freqs=self._freqs)  # rope acts per head: q and k heads in one call
        return qk[:, :H], qk[:, H:], qkv[:, H + KV:]


class FusedMLP(MLP):
    """MLP with gate|up in one projection (see FusedAttention)."""

    def __init__(self, mlp: MLP):
        nn.Module.__init__(self)
        self.gate_up_proj = _concat_linear([mlp.gate_proj, mlp.up_proj])
        self.down_proj = mlp.down_proj

    def __call__(self, x: mx.array) -> mx.array:
        gate, up = mx.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(ops.swiglu(gate, up))


def _concat_linear(parts: List[nn.Linear]) -> nn.Linear:
    """One Linear whose output is the parts' outputs side by side (weights stacked along `out`)."""
    w = mx.concatenate([m.weight for m in parts], axis=0)
    fused = nn.Linear(w.shape[1], w.shape[0], bias="bias" in parts[0])
    fused.weight = w
    if "bias" in parts[0]:
        fused.bias = mx.concatenate([m.bias for m in parts], axis=0)
    return fused


def fuse_projections(model: "Model") -> "Model":
    """Replace each layer's q/k/v and gate/up projections by one projection each (in place; returns `model`).

    The same dot products, stacked: one matrix-vector product instead of three (two) per layer and one rope call
    for q|k. The load path does this on a GPU; the parity suite checks the checkpoint's own modules (CPU) and a
    test checks fused == unfused (tests/test_llama_fused.py). Parameter names change (`qkv_proj`,
    `gate_up_proj`): save or compare checkpoints from an unfused model.
    """
    for layer in model.layers:
        if not isinstance(layer.self_attn, FusedAttention):
            layer.self_attn = FusedAttention(layer.self_attn)
        if not isinstance(layer.mlp, FusedMLP):
            layer.mlp = FusedMLP(layer.mlp)
        mx.eval(layer.parameters())  # one layer at a time: the unfused copies are freed as we go
    return model


def _stack_attention(attn: Attention) -> None:
    """q|k|v as one row-major (H + 2 KV) * hd x D matrix (and bias) in `attn._qkv_weight` / `_qkv_bias`; the three
    parameters become contiguous row views of it (same names, shapes and values, no second copy)."""
    mods = (attn.q_proj, attn.k_proj, attn.v_proj)
    w = mx.contiguous(mx.concatenate([m.weight for m in mods], axis=0))
    b = mx.concatenate([m.bias for m in mods], axis=0) if "bias" in attn.q_proj else None
    ends = np.cumsum([m.weight.shape[0] for m in mods])
    for m, e0, e1 in zip(mods, [0, *ends[:-1]], ends):
        m.weight = w[e0:e1]
        if b is not None:
            m.bias = b[e0:e1]
    attn._qkv_weight = w
    if b is not None:
        attn._qkv_bias = b
    attn._stacked_from = _stack_parts(attn)
    mx.eval(attn.parameters(), w, [] if b is None else b)


def _stack_mlp(mlp: MLP) -> None:
    """gate|up as one column-major 2F x D matrix, kept as its transpose (D, 2F) in `mlp._gate_up_t`; the two
    parameters become (strided) views of it."""
    F = mlp.gate_proj.weight.shape[0]
    t = mx.contiguous(mx.concatenate([mlp.gate_proj.weight, mlp.up_proj.weight], axis=0).T)  # (D, 2F)
    mlp.gate_proj.weight, mlp.up_proj.weight = t[:, :F].T, t[:, F:].T
    mlp._gate_up_t = t
    mlp._stacked_from = _stack_parts(mlp)
    mx.eval(mlp.parameters(), t)


def _stack_parts(module: nn.Module) -> Tuple[mx.array, ...]:
    """The parameter arrays a stacked matrix was made from (a replaced one is not among them)."""
    names = ("q_proj", "k_proj", "v_proj") if isinstance(module, Attention) else ("gate_proj", "up_proj")
    return tuple(module[n][k] for n in names for k in ("weight", "bias") if k in module[n])


def stack_projections(model: "Model") -> "Model":
    """Stack each layer's q/k/v and gate/up matrices into one product each, keeping the checkpoint's modules and
    names (in place; returns `model`). The CPU layout (`cpu_layout`) does this when MLX's one-row products go to
    OpenBLAS's sgemv (impl/cpu.py's forwarder).

    Why: a decode step's products are bandwidth-bound sgemv calls, each a fork/join of OpenBLAS's two threads;
    stacked, a layer makes 4 calls instead of 7 (a 0.5B Qwen2 step: 96 instead of 168, ~15 % less time measured
    here). Unlike `fuse_projections` (the GPU's), the parameters stay `q_proj.weight` ... `up_proj.weight`: views
    of the stacked matrix, so parity taps, saving and `tree_flatten` see the checkpoint's tensors once. The
    stacked product sums each output's dot product in the BLAS's order for that matrix (~1e-6 relative from
    the separate products'). A parameter replaced afterwards is seen: `LlamaModel.__call__` re-stacks a layer
    whose parameters are no longer the ones stacked (`restack`).
    """
    for layer in model.layers:
        if type(layer.self_attn) is Attention and all(
                type(layer.self_attn[n]) is nn.Linear for n in ("q_proj", "k_proj", "v_proj")):
            _stack_attention(layer.self_attn)
        if type(layer.mlp) is MLP and all(type(layer.mlp[n]) is nn.Linear and "bias" not in layer.mlp[n]
                                          for n in ("gate_proj", "up_proj")):  # the stacked product has no bias
            _stack_mlp(layer.mlp)
    return model


def restack(layer: "DecoderLayer") -> None:
    """Re-stack a layer's q|k|v or gate|up if one of their parameters was replaced since `stack_projections`
    (Python identity: `DecoderLayer.step` records the parameters again after its compiled calls, whose tracing
    puts new Python objects around the same arrays)."""
    attn, mlp = layer.self_attn, layer.mlp
    if "_stacked_from" in attn and any(a is not b for a, b in zip(_stack_parts(attn), attn._stacked_from)):
        _stack_attention(attn)
    if "_stacked_from" in mlp and any(a is not b for a, b in zip(_stack_parts(mlp), mlp._stacked_from)):
        _stack_mlp(mlp)


def compile_step(model: "Model") -> "Model":
    """Compile each layer's decode-step parts (`DecoderLayer.qkv`, `DecoderLayer.rest`) with `mx.compile`; a call
    with one token and a cache then takes `DecoderLayer.step` (in place; returns `model`). The load path does this
    on the CPU.

    Why: on the CPU, MLX runs `mx.fast.rms_norm`, `mx.fast.rope` and one-query attention as their reference
    graphs of small ops (a 0.5B Qwen2 decode step: ~140 graph nodes a layer, 24 layers), each one a task for
    MLX's stream thread, between the matrix-vector products that carry the bytes. Compiled, the elementwise
    chains fuse into single kernels and the graph is traced once per layer, not rebuilt node by node. The
    products, their operands and their order are unchanged (tests/test_llama_step.py checks step == call
    bit for bit). The weights are the compiled functions' `inputs` (the layer itself): replacing one is seen.
    """
    for layer in model.layers:
        layer.compiled_qkv = mx.compile(layer.qkv, inputs=layer)
        layer.compiled_rest = mx.compile(layer.rest, inputs=layer)
    model.model.compiled_step = True
    return model


class LlamaModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [DecoderLayer(args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.compiled_step = False  # True after `compile_step`: one-token calls with a cache take DecoderLayer.step
        self.host_step = None  # impl.cpu_decode.HostStep (`attach`, the CPU load path): one token of one sequence

    def host(self, ids: mx.array, cache: Optional[List[KVCache]], logits: bool = False) -> Optional[mx.array]:
        """The host step's output (the final norm's, or the logits) for one token of one sequence with a cache;
        None where it is not taken (no host step, other shapes, a parameter no longer in the layout it reads)."""
        if self.host_step is None or cache is None or ids.shape != (1, 1):
            return None
        for layer in self.layers:
            restack(layer)
        return self.host_step(ids, cache, logits)

    def __call__(self, ids: mx.array, cache: Optional[List[KVCache]] = None) -> mx.array:
        h = self.host(ids, cache)
        if h is not None:
            return h
        for layer in self.layers:
            restack(layer)
        h = self.embed_tokens(ids)
        if h.shape[1] == 1 and cache is not None and self.compiled_step:  # a decode step, see `compile_step`
            for layer, c in zip(self.layers, cache):
                h = layer.step(h, c)
            return self.norm(h)
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
        logits = self.model.host(ids, cache, logits=True)  # the CPU's one-token step, head included
        if logits is not None:
            return logits
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


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # IsADirectoryError, PermissionError, JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{file}: not a readable JSON file ({reason(e)})") from None


def _load_safetensors(file: Path) -> Dict[str, mx.array]:
    try:
        return dict(mx.load(str(file), format="safetensors"))
    except (RuntimeError, ValueError, OSError) as e:  # MLX's reader: "invalid data offsets ... incomplete download"
        raise CheckpointError(f"{file}: not a readable safetensors file ({reason(e)})") from None


def read_config(path: Path) -> Tuple[Path, Dict[str, Any]]:
    """(path/config.json, its dict): FileNotFoundError or CheckpointError naming the file."""
    config_path = path / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no config.json in {path}")
    return config_path, _read_json(config_path)


def _read_weights(path: Path) -> Dict[str, mx.array]:
    index = path / "model.safetensors.index.json"
    single = path / "model.safetensors"
    if single.exists():
        return _load_safetensors(single)
    if index.exists():
        data = _read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: no 'weight_map' of tensor name -> shard file")
        weights: Dict[str, mx.array] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = path / shard
            if not shard_path.exists():
                raise FileNotFoundError(f"{index} names shard {shard!r}, which is missing in {path}")
            weights.update(_load_safetensors(shard_path))
        absent = sorted(set(weight_map) - set(weights))
        if absent:
            raise CheckpointError(f"{index}: keys listed but absent from their shards: {absent}")
        return weights
    found = sorted(os.path.basename(p) for p in glob.glob(str(path / "*.safetensors")))
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {path} "
                            f"(safetensors files there: {found or 'none'})")


def load(path: Union[str, Path], dtype: Optional[str] = None, quantize: Optional[str] = None,
         fuse: Optional[bool] = None) -> Model:
    """Load an HF Llama checkpoint (config.json + model.safetensors or a sharded index).

    Args:
        path: folder with config.json and model.safetensors (or model.safetensors.index.json + shards).
        dtype: "float32"/"float16"/"bfloat16" (or fp32/fp16/bf16); None keeps the checkpoint's dtype.
        quantize: None, "q8" or "q4" (`mlx.nn.quantize`, group size 64, embeddings included).
        fuse: `fuse_projections` after loading; None = on a GPU (fewer kernels a decode step), not on the CPU
            (whose layout and BLAS path are tuned per matrix, and where the parity suite runs).
    """
    path = Path(path)
    config_path, config = read_config(path)
    try:
        args = ModelArgs.from_dict(config)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{config_path}: not a Llama config ({reason(e)})") from None
    return load_model(path, args, dtype, quantize, fuse)


def load_model(path: Path, args: ModelArgs, dtype: Optional[str] = None, quantize: Optional[str] = None,
               fuse: Optional[bool] = None, name: str = "Llama") -> Model:
    """`Model(args)` with the checkpoint's weights at `path` (strict keys and shapes), then `load`'s dtype,
    fusing, quantizing and CPU layout; `name` is the model's name in a key error (impl.qwen2 shares this)."""
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} not one of {sorted(_DTYPES)}")
    if quantize is not None and quantize not in _QUANT:
        raise ValueError(f"quantize {quantize!r} not one of {sorted(_QUANT)}")
    model = Model(args)
    weights = sanitize(_read_weights(path), args)
    emb = weights.get("model.embed_tokens.weight")
    notes = [] if emb is None or emb.shape[0] == args.vocab_size else [
        f"config vocab_size {args.vocab_size} != model.embed_tokens.weight rows {emb.shape[0]} "
        "(config.json and the checkpoint disagree)"]
    check_weights(model, weights, str(path), notes, name=name)
    if dtype is not None:
        weights = {k: v.astype(_DTYPES[dtype]) for k, v in weights.items()}
    model.load_weights(list(weights.items()), strict=True)
    if fuse or (fuse is None and mx.default_device() != mx.cpu):
        fuse_projections(model)
    if quantize is not None:
        nn.quantize(model, group_size=64, bits=_QUANT[quantize])
    elif mx.default_device() == mx.cpu:
        cpu_layout(model)
    if mx.default_device() == mx.cpu:
        compile_step(model)
    mx.eval(model.parameters())
    if mx.default_device() == mx.cpu:
        from impl import cpu_decode  # noqa: PLC0415 -- imports this module

        cpu_decode.attach(model)
    return model


def cpu_layout(model: Model) -> Model:
    """Store every projection matrix (and the tied embedding) column-major, for MLX on CPU.

    A layer computes `x @ W.T` with W (out, in) as HF stores it. On the CPU, MLX's BLAS call for that product
    with one row of x (a decode step, an sgemm) reads W at about half the bandwidth of the same product on a
    row-major (in, out) matrix (measured here: 7.3 vs 13.5 GB/s on a 2048x8192 fp32 matrix). With impl/cpu.py's
    gemv forwarder (Linux with a C compiler) both layouts read at sgemv speed; this keeps the fallback (no
    compiler, or another BLAS) fast. Re-laying W column-major makes `W.T` that row-major matrix, with no copy
    kept: the parameter keeps its shape, values and name, so parity, saving and quantizing see the same tensor. The embedding's row lookups become strided reads of
    hidden_size floats, a few microseconds per token. Apple Silicon (Metal) keeps the checkpoint's layout.

    With the forwarder bound (`blas.blas_info()['blas'] == 'openblas+gemv'`) each layer is laid out per product
    instead, as OpenBLAS's two sgemv kernels read each shape fastest here (Qwen2 0.5B decode, alternated in one
    process: 83 vs 93 ms/token at load 2.9): q|k|v stacked row-major and gate|up stacked column-major
    (`stack_projections`), o_proj and down_proj as stored (row-major: down's 4864-long rows are one dot product
    each); the embedding / head stays column-major.
    """
    from impl.accel import blas  # noqa: PLC0415 -- which BLAS MLX's matmul is bound to (Linux)

    keep = set()  # modules whose layout the sgemv forwarder reads best as stored (see below)
    if blas.blas_info()["blas"] == "openblas+gemv":
        stack_projections(model)
        for layer in model.layers:
            if "_stacked_from" in layer.self_attn:
                keep |= {id(layer.self_attn[n]) for n in ("q_proj", "k_proj", "v_proj", "o_proj")}
            if "_stacked_from" in layer.mlp:
                keep |= {id(layer.mlp[n]) for n in ("gate_proj", "up_proj", "down_proj")}
    for _, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)) and module.weight.ndim == 2 and id(module) not in keep:
            module.weight = mx.contiguous(module.weight.T).T
    return model
