"""The CPU's one-token decode step for impl.llama models (Llama, Qwen2): NumPy for the vector work between the
products, the OpenBLAS bound to MLX's matmul for the products (`impl.cpu.sgemv` / `sgemm`), on the caller's thread.

Why: a decode step is bandwidth-bound. A Qwen2 0.5B fp32 step reads 2.03 GB of weights, and its products alone
stream them at the machine's bandwidth whether MLX or a direct sgemv calls them (all 97 products of a step:
58.3 vs 58.9 ms, alternated in one process, ~35 GB/s). Around them MLX's CPU runs ~75 graph nodes a layer even
with the step compiled (`compile_step`: the norms' reductions, rope's reference graph, the cache's slice updates,
one-query attention, views), each a task for its stream thread at ~6 us; the same arithmetic on vectors of
hidden_size floats in NumPy costs ~190 us a layer (4.5 ms a token). Whole step, alternated in one process
(min / median of 4 runs of 64 tokens, load 1.3): MLX's compiled step 85.7 / 88.7 ms, this one 65.9 / 69.3 ms; after
2,000 cached tokens (load 2-2.6) 100.1 / 107.4 vs 74.8 / 81.9 ms.

What it computes is `LlamaModel.__call__` for one token of one sequence with a KV cache: embedding row, then per
layer RMSNorm, q|k|v (+ bias), rotate-half rope at the cache's position, the token's key/value written into the
cache (`KVCache.host_slot`), softmax(q k^T / sqrt(d)) v over every cached position (GQA: query head h reads kv
head h // G), o_proj (+ bias) and residual, RMSNorm, silu(gate) * up, down_proj and residual; the final RMSNorm.
The same float32 operations as MLX's path; the sums run in NumPy's and OpenBLAS's order, so results differ from
MLX's in the last bits (tests/test_cpu_decode.py bounds that; parity/test_llama.py and parity/test_qwen2.py's
greedy-token and teacher-forced KL tests run this step against transformers). `Model.__call__` takes it with the
vocabulary product (the logits come back as one MLX array), `LlamaModel.__call__` without.

Taken (`attach`, at load on the CPU) only where it pays and is exact to that contract: MLX on the CPU with the sgemv
forwarder bound (`impl.cpu`; then `cpu_layout` has stacked q|k|v and gate|up), float32 weights, not quantized, no
MLP biases. Elsewhere (Apple Silicon's Metal, a GPU, bf16, q8/q4, several sequences) MLX's step runs.
`model.model.host_step = None` turns it off.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from impl import ops

if TYPE_CHECKING:
    from impl.llama import DecoderLayer, KVCache, Model


def _view(a: Optional[mx.array], orders: str = "C") -> Optional[np.ndarray]:
    """A NumPy view of a float32 MLX array (no copy), None if it is absent, not float32 or contiguous in none of
    `orders` ("C", "F" or "CF")."""
    if a is None or a.dtype != mx.float32:
        return None
    v = np.array(a, copy=False)
    return v if any(v.flags[f"{o}_CONTIGUOUS"] for o in orders) else None


class HostStep:
    """`step(ids (1, 1), cache, logits) -> the final norm's output (1, 1, hidden) or the logits (1, 1, vocab)` for one
    token, or None where the model's parameters are not (any more) in the layout it reads; built by `attach`."""

    def __init__(self, model: "Model", gemv: Callable[[int, int, int, int, int, int], None],
                 gemm: Callable[..., None]):
        from impl.llama import rope_inv_freq

        a = model.args
        self.model, self.gemv, self.gemm = model, gemv, gemm
        self.heads, self.kv_heads, self.head_dim = a.num_attention_heads, a.num_key_value_heads, a.head_dim
        self.scale = np.float32(a.head_dim ** -0.5)
        self.inv_freq = rope_inv_freq(a).astype(np.float32)  # the angles MLX's rope takes (1 / its `freqs`)
        self._layers: Dict[int, Tuple[tuple, dict]] = {}  # layer index -> (source arrays, their views and buffers)
        self._top: Optional[Tuple[tuple, tuple]] = None

    def _layer(self, i: int, layer: "DecoderLayer") -> Optional[dict]:
        """The layer's matrices as NumPy views (re-made when a parameter object changed) and its output buffers."""
        attn, mlp = layer.self_attn, layer.mlp
        src = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight, attn.get("_qkv_weight"),
               attn.get("_qkv_bias"), attn.o_proj.weight, attn.o_proj.get("bias"), mlp.get("_gate_up_t"),
               mlp.down_proj.weight)
        hit = self._layers.get(i)
        if hit is not None and all(x is y for x, y in zip(hit[0], src)):
            return hit[1]
        ln1, ln2, qkv, qkv_b, o, o_b, gate_up_t, down = (_view(x) for x in src)
        if any(v is None for v in (ln1, ln2, qkv, o, gate_up_t, down)) or \
                (src[3] is not None and qkv_b is None) or (src[5] is not None and o_b is None):
            return None
        w = dict(ln1=ln1, ln2=ln2, qkv=qkv, qkv_b=qkv_b, o=o, o_b=o_b, gate_up_t=gate_up_t, down=down,
                 y_qkv=np.empty(qkv.shape[0], np.float32), y_o=np.empty(o.shape[0], np.float32),
                 y_gu=np.empty(gate_up_t.shape[1], np.float32), y_down=np.empty(down.shape[0], np.float32),
                 eps=(layer.input_layernorm.eps, layer.post_attention_layernorm.eps))
        w["at"] = {k: w[k].ctypes.data for k in ("qkv", "o", "gate_up_t", "down", "y_qkv", "y_o", "y_gu", "y_down")}
        self._layers[i] = (src, w)
        return w

    def _top_views(self) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The embedding table, the final norm's weight and the head's (vocab, hidden) matrix (the tied table or
        lm_head) as NumPy views, re-made when a parameter object changed; the matrices either row- or column-major."""
        m = self.model
        head = m.model.embed_tokens.weight if m.args.tie_word_embeddings else m.lm_head.weight
        src = (m.model.embed_tokens.weight, m.model.norm.weight, head)
        if self._top is None or not all(x is y for x, y in zip(self._top[0], src)):
            views = (np.array(src[0], copy=False) if src[0].dtype == mx.float32 else None, _view(src[1]),
                     _view(src[2], "CF"))
            self._top = (src, views)
        views = self._top[1]
        return None if any(v is None for v in views) else views

    def __call__(self, ids: mx.array, cache: List["KVCache"], logits: bool = False) -> Optional[mx.array]:
        """The final norm's output (1, 1, hidden), or with `logits` the head's (1, 1, vocab), for ids (1, 1)."""
        layers = self.model.layers
        ws = [self._layer(i, layer) for i, layer in enumerate(layers)]
        top = self._top_views()
        if top is None or any(w is None for w in ws) or any(
                c.keys is not None and (c.keys.shape[0] != 1 or c.keys.dtype != mx.float32) for c in cache):
            return None  # checked before any cache slot is written
        table, norm_w, head = top
        H, KV, hd, gemv, gemm = self.heads, self.kv_heads, self.head_dim, self.gemv, self.gemm
        G, half = H // KV, hd // 2
        x = table[int(ids.item())].copy()  # (D,) float32, contiguous (the table may be column-major)
        D = x.shape[0]
        pos = cache[0].offset
        angle = self.inv_freq * np.float32(pos)
        cos, sin = np.cos(angle), np.sin(angle)
        f4 = 4  # bytes a float32
        for w, c in zip(ws, cache):
            at = w["at"]  # addresses of the matrices and output buffers
            n = rms_norm(x, w["ln1"], w["eps"][0])
            qkv = w["y_qkv"]
            gemv(0, qkv.shape[0], D, at["qkv"], n.ctypes.data, at["y_qkv"])
            if w["qkv_b"] is not None:
                qkv += w["qkv_b"]
            qk = qkv[:(H + KV) * hd].reshape(H + KV, hd)
            x1, x2 = qk[:, :half], qk[:, half:]
            r = np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=1)  # rotate-half rope, q and k heads
            keys, values, slot = c.host_slot(KV, hd)
            keys[:, slot] = r[H:]
            values[:, slot] = qkv[(H + KV) * hd:].reshape(KV, hd)
            S = slot + 1
            q = r[:H].reshape(KV, G, hd)  # query head h reads kv head h // G
            s, o = np.empty((KV, G, S), np.float32), np.empty((KV, G, hd), np.float32)
            q_at, k_at, v_at, s_at, o_at = (a.ctypes.data for a in (q, keys, values, s, o))
            cap = keys.shape[1]
            for j in range(KV):  # scores q_j k_j^T (G, S), keys (capacity, hd) row-major
                gemm(0, 1, G, S, hd, q_at + j * G * hd * f4, hd, k_at + j * cap * hd * f4, hd, s_at + j * G * S * f4, S)
            s *= self.scale
            s /= ops.exp_rows(s)
            for j in range(KV):  # probabilities p_j v_j (G, hd)
                gemm(0, 0, G, hd, S, s_at + j * G * S * f4, S, v_at + j * cap * hd * f4, hd, o_at + j * G * hd * f4, hd)
            y = w["y_o"]
            gemv(0, y.shape[0], H * hd, at["o"], o_at, at["y_o"])
            if w["o_b"] is not None:
                y += w["o_b"]
            x = x + y
            n = rms_norm(x, w["ln2"], w["eps"][1])
            gu = w["y_gu"]
            gemv(1, D, gu.shape[0], at["gate_up_t"], n.ctypes.data, at["y_gu"])  # (D, 2F)^T n
            act = ops.swiglu_numpy(gu[:gu.shape[0] // 2], gu[gu.shape[0] // 2:])
            y = w["y_down"]
            gemv(0, D, act.shape[0], at["down"], act.ctypes.data, at["y_down"])
            x += y
        x = rms_norm(x, norm_w, self.model.model.norm.eps)
        if not logits:
            return mx.array(x.reshape(1, 1, D))
        y = np.empty(head.shape[0], np.float32)
        if head.flags.c_contiguous:  # (vocab, D) row-major
            gemv(0, head.shape[0], D, head.ctypes.data, x.ctypes.data, y.ctypes.data)
        else:  # column-major: its transpose (D, vocab) is row-major
            gemv(1, D, head.shape[0], head.ctypes.data, x.ctypes.data, y.ctypes.data)
        return mx.array(y.reshape(1, 1, -1))


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight, float32 (x a vector)."""
    return x * (np.float32(1.0) / np.sqrt(np.dot(x, x) / np.float32(x.shape[0]) + np.float32(eps))) * weight


def attach(model: "Model") -> bool:
    """Give `model` (loaded, on the CPU, its layout made: `impl.llama.load_model` calls this) the host step where it
    is taken (see the module docstring); True if it was."""
    from impl import cpu
    from impl.llama import Attention, MLP

    gemv, gemm = (cpu.sgemv(), cpu.sgemm()) if cpu.blas_info()["blas"] == "openblas+gemv" else (None, None)
    ok = gemv is not None and gemm is not None and mx.default_device() == mx.cpu and all(
        v.dtype == mx.float32 for _, v in tree_flatten(model.parameters())) and all(
        type(layer.self_attn) is Attention and type(layer.mlp) is MLP and "_stacked_from" in layer.self_attn
        and "_gate_up_t" in layer.mlp and "bias" not in layer.mlp.down_proj for layer in model.layers)
    model.model.host_step = HostStep(model, gemv, gemm) if ok else None
    return ok
