"""Named transformations of a loaded `impl.llama.Model` (the OuteTTS and Spark LMs) for speed on one platform.

Each variant computes the function of the plain model (the checkpoint's own modules, `impl.llama`) and is
verified against the official package as its own parity section (`parity/specs/llama.py`, `qwen2.py`):

- `fuse(model)` ("fused"): each layer's q|k|v and gate|up projections become one projection each
  (`FusedAttention.qkv_proj`, `FusedMLP.gate_up_proj`: the same rows stacked along the output axis) and rope runs
  once on q|k. Device independent: fewer kernels per decode step (a GPU step is bound by its kernel count), and the
  same for plain and quantized (`nn.QuantizedLinear`) projections. Parameter names change: save or compare
  checkpoints from a plain model.
- `cpu_layout(model)` (part of "cpu"): the gate|up matrix and the (tied) embedding stored column-major (same
  shapes and values): a one-row product `x @ W.T` then reads a row-major `W.T`, the layout MLX's CPU matmul (and
  OpenBLAS's sgemv behind `impl.accel.blas`) reads at full bandwidth.
- `compile_step(model)` (part of "cpu"): a one-token call with a cache runs each layer's parts before and after
  the cached attention as `mx.compile`d graphs (MLX's CPU runs rms_norm, rope and small elementwise ops as many
  tiny tasks; compiled, they fuse). The same products on the same operands in the same order as the plain step.

Apply a variant after the weights are loaded (and after `nn.quantize`): the fused matrices are copies, so a weight
replaced in a fused model afterwards is not seen by the other parts; re-load and re-apply instead.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn

from impl import ops
from impl.llama import MLP, Attention, DecoderLayer, KVCache, Model


class FusedAttention(Attention):
    """`Attention` with q|k|v in one projection `qkv_proj` ((H + 2 KV) * hd rows) and one rope call for q|k."""

    def __init__(self, attn: Attention):
        nn.Module.__init__(self)
        self.n_heads, self.n_kv_heads, self.head_dim, self.scale = (attn.n_heads, attn.n_kv_heads, attn.head_dim,
                                                                    attn.scale)
        self._freqs = attn._freqs
        self.qkv_proj = _concat_projections([attn.q_proj, attn.k_proj, attn.v_proj])
        self.o_proj = attn.o_proj

    def project(self, x: mx.array, offset: Union[int, mx.array]) -> Tuple[mx.array, mx.array, mx.array]:
        B, L, _ = x.shape
        H, KV = self.n_heads, self.n_kv_heads
        qkv = self.qkv_proj(x).reshape(B, L, H + 2 * KV, -1).transpose(0, 2, 1, 3)  # (B, H + 2 KV, L, hd)
        qk = mx.fast.rope(qkv[:, :H + KV], self.head_dim, traditional=False, base=None, scale=1.0, offset=offset,
                          freqs=self._freqs)  # rope acts per head: q and k heads in one call
        return qk[:, :H], qk[:, H:], qkv[:, H + KV:]


class FusedMLP(MLP):
    """`MLP` with gate|up in one projection `gate_up_proj` (2 F rows)."""

    def __init__(self, mlp: MLP):
        nn.Module.__init__(self)
        self.gate_up_proj = _concat_projections([mlp.gate_proj, mlp.up_proj])
        self.down_proj = mlp.down_proj

    def __call__(self, x: mx.array) -> mx.array:
        gate, up = mx.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(ops.swiglu(gate, up))


def _concat_projections(parts: List[nn.Module]) -> nn.Module:
    """One projection whose output is the parts' outputs side by side: every array stacked along the output axis
    (axis 0). Exact for `nn.QuantizedLinear` too: its scales and biases are per output row."""
    p0 = parts[0]
    kinds = {type(p) for p in parts}
    if len(kinds) != 1 or not kinds <= {nn.Linear, nn.QuantizedLinear}:
        raise TypeError(f"cannot fuse projections of types {sorted(k.__name__ for k in kinds)}")
    out = sum(p.weight.shape[0] for p in parts)
    if isinstance(p0, nn.QuantizedLinear):
        fused = nn.QuantizedLinear(p0.scales.shape[1] * p0.group_size, out, bias="bias" in p0,
                                   group_size=p0.group_size, bits=p0.bits, mode=p0.mode)
    else:
        fused = nn.Linear(p0.weight.shape[1], out, bias="bias" in p0)
    for name in ("weight", "scales", "biases", "bias"):
        if name in p0:
            fused[name] = mx.concatenate([p[name] for p in parts], axis=0)
    return fused


def fuse(model: Model) -> Model:
    """The "fused" variant, in place (returns `model`); a fused layer is left as it is."""
    for layer in model.layers:
        if not isinstance(layer.self_attn, FusedAttention):
            layer.self_attn = FusedAttention(layer.self_attn)
        if not isinstance(layer.mlp, FusedMLP):
            layer.mlp = FusedMLP(layer.mlp)
        mx.eval(layer.parameters())  # one layer at a time: the separate matrices are freed as we go
    return model


def cpu_layout(model: Model) -> Model:
    """Store the fused gate|up matrices and the embedding (the tied head) column-major, in place (returns `model`).

    `x @ W.T` with one row of x reads W (out, in) row by row; column-major W makes `W.T` a row-major (in, out)
    matrix, which the CPU's sgemv reads at full bandwidth for these wide matrices. q|k|v, o and down stay as
    stored (their row-major rows are long dot products, read fastest as they are). Values, shapes and names are
    unchanged; the embedding's row lookups become strided reads of hidden_size floats (microseconds a token)."""
    mods: List[nn.Module] = [layer.mlp.gate_up_proj for layer in model.layers if isinstance(layer.mlp, FusedMLP)]
    mods.append(model.model.embed_tokens)
    if "lm_head" in model:
        mods.append(model.lm_head)
    for m in mods:
        if type(m) in (nn.Linear, nn.Embedding):  # quantized matrices keep their packed layout
            m.weight = mx.contiguous(m.weight.T).T
    mx.eval(model.parameters())
    return model


class CompiledStepLayer(DecoderLayer):
    """A `DecoderLayer` whose one-token calls with a cache run two compiled graphs around the cached attention:
    input norm, projections and rope (`_qkv`); o_proj, residual, MLP, residual (`_rest`). The position goes in as
    an array, so a step does not retrace. Other calls are the plain layer's."""

    def __init__(self, layer: DecoderLayer):
        nn.Module.__init__(self)
        self.self_attn, self.mlp = layer.self_attn, layer.mlp
        self.input_layernorm, self.post_attention_layernorm = layer.input_layernorm, layer.post_attention_layernorm
        # the layer is the compiled functions' `inputs`: its current arrays are read at every call
        self._qkv = mx.compile(self._qkv_graph, inputs=self)
        self._rest = mx.compile(self._rest_graph, inputs=self)

    def _qkv_graph(self, x: mx.array, offset: mx.array) -> Tuple[mx.array, mx.array, mx.array]:
        return self.self_attn.project(self.input_layernorm(x), offset)

    def _rest_graph(self, x: mx.array, o: mx.array) -> mx.array:
        h = x + self.self_attn.output(o)
        return h + self.mlp(self.post_attention_layernorm(h))

    def __call__(self, x: mx.array, mask: Optional[str] = "causal", cache: Optional[KVCache] = None) -> mx.array:
        if cache is None or x.shape[1] != 1:
            return super().__call__(x, mask, cache)
        q, k, v = self._qkv(x, mx.array(cache.offset, mx.int32))
        k, v = cache.update_and_fetch(k, v)
        return self._rest(x, ops.attention(q, k, v, self.self_attn.scale, None))


def compile_step(model: Model) -> Model:
    """Every layer a `CompiledStepLayer`, in place (returns `model`)."""
    layers = model.model.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, CompiledStepLayer):
            layers[i] = CompiledStepLayer(layer)
    return model
