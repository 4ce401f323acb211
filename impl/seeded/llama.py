"""Seeded HF Llama checkpoints (config.json + model.safetensors, or shards + index), torch-free.

Values follow transformers' `LlamaPreTrainedModel._init_weights`: N(0, initializer_range) for linear and embedding
weights, ones for RMSNorm weights, zeros for biases; drawn in fp32 from a per-tensor RNG keyed by
(seed, crc32(tensor name)), then cast to the stored dtype. The tied head is omitted, as `save_pretrained` does.
`nontrivial=True` (for tests) draws biases N(0, std) and norm weights 1 + N(0, std) as impl.seeded.qwen2 does, so
that a dropped bias or an unused norm weight changes the output; the default checkpoints are unchanged.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import mlx.core as mx
import numpy as np

from impl._io import atomic_dir, atomic_path
from impl.llama import OUTETTS_1B_CONFIG, ModelArgs
from impl.seeded import cache_dir


def param_shapes(config: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """HF LlamaForCausalLM state-dict names and shapes (tied head omitted, as save_pretrained does)."""
    a = ModelArgs.from_dict(config)
    D, F, hd = a.hidden_size, a.intermediate_size, a.head_dim
    shapes: Dict[str, Tuple[int, ...]] = {"model.embed_tokens.weight": (a.vocab_size, D)}
    for i in range(a.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (a.num_attention_heads * hd, D),
            p + "self_attn.k_proj.weight": (a.num_key_value_heads * hd, D),
            p + "self_attn.v_proj.weight": (a.num_key_value_heads * hd, D),
            p + "self_attn.o_proj.weight": (D, a.num_attention_heads * hd),
            p + "mlp.gate_proj.weight": (F, D),
            p + "mlp.up_proj.weight": (F, D),
            p + "mlp.down_proj.weight": (D, F),
            p + "input_layernorm.weight": (D,),
            p + "post_attention_layernorm.weight": (D,),
        })
        if a.attention_bias:
            for n, rows in (("q", a.num_attention_heads * hd), ("k", a.num_key_value_heads * hd),
                            ("v", a.num_key_value_heads * hd), ("o", D)):
                shapes[p + f"self_attn.{n}_proj.bias"] = (rows,)
        if a.mlp_bias:
            shapes.update({p + "mlp.gate_proj.bias": (F,), p + "mlp.up_proj.bias": (F,),
                           p + "mlp.down_proj.bias": (D,)})
    shapes["model.norm.weight"] = (D,)
    if not a.tie_word_embeddings:
        shapes["lm_head.weight"] = (a.vocab_size, D)
    return shapes


def seeded_tensor(name: str, shape: Tuple[int, ...], seed: int, std: float, nontrivial: bool = False) -> np.ndarray:
    """HF `_init_weights`: norm weights 1, biases 0, others N(0, std); per-tensor RNG keyed by (seed, crc32(name)).
    nontrivial: biases N(0, std) and norm weights 1 + N(0, std) instead (every parameter shows in a test)."""
    norm = name.endswith("layernorm.weight") or name == "model.norm.weight"
    if not nontrivial and norm:
        return np.ones(shape, np.float32)
    if not nontrivial and name.endswith(".bias"):
        return np.zeros(shape, np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    x = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)
    return x + np.float32(1.0) if norm else x


def write_seeded_checkpoint(path: Union[str, Path], config: Dict[str, Any], seed: int, dtype: str = "float32",
                            max_shard_bytes: Optional[int] = None, nontrivial: bool = False) -> Path:
    """Write a random-init HF checkpoint (config.json + model.safetensors) at `config`, each file atomically.

    Args:
        path: output folder (created).
        config: HF config.json dict (e.g. impl.llama.OUTETTS_1B_CONFIG).
        seed: the weights' seed.
        dtype: "float32", "float16" or "bfloat16" (stored as; recorded as config `torch_dtype`).
        max_shard_bytes: None writes one model.safetensors; else shards of at most this size plus
            model.safetensors.index.json (as `save_pretrained(max_shard_size=...)`), bounding peak memory.
            Sharding does not change any value.
        nontrivial: biases and norm weights drawn too (`seeded_tensor`), for tests.
    """
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(dtype, dtype)
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype {dtype!r} not one of float32, float16, bfloat16")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    std = float(config.get("initializer_range", 0.02))
    shapes = param_shapes(config)
    itemsize = 4 if dtype == "float32" else 2
    groups: List[List[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * itemsize
        if max_shard_bytes is not None and groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    files = (["model.safetensors"] if max_shard_bytes is None else
             [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))])
    total = 0
    for fname, names in zip(files, groups):
        tensors = {n: seeded_tensor(n, shapes[n], seed, std, nontrivial) for n in names}
        total += sum(t.size for t in tensors.values()) * itemsize
        with atomic_path(path / fname) as tmp:
            _save_safetensors(tmp, tensors, dtype)
        del tensors
    if max_shard_bytes is not None:
        index = {"metadata": {"total_size": total},
                 "weight_map": {n: f for f, names in zip(files, groups) for n in names}}
        with atomic_path(path / "model.safetensors.index.json") as tmp:
            Path(tmp).write_text(json.dumps(index, indent=2))
    cfg = dict(config)
    cfg["torch_dtype"] = dtype
    with atomic_path(path / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(cfg, indent=2))
    return path


def _save_safetensors(file: str, tensors: Dict[str, np.ndarray], dtype: str) -> None:
    """fp32/fp16 through safetensors.numpy; bf16 (no numpy dtype) through MLX's safetensors writer."""
    meta = {"format": "pt"}  # transformers refuses safetensors without a known format tag
    if dtype == "bfloat16":
        mx.save_safetensors(file, {n: mx.array(t).astype(mx.bfloat16) for n, t in tensors.items()}, metadata=meta)
        return
    from safetensors.numpy import save_file

    save_file({n: t.astype(np.dtype(dtype)) for n, t in tensors.items()}, file, metadata=meta)


def seeded_checkpoint(config: Optional[Dict[str, Any]] = None, seed: int = 0, dtype: str = "float32") -> Path:
    """The seeded checkpoint folder for (config, seed, dtype), generated once into cache_dir() and reused.

    The folder name carries a hash of the config, so a changed config never reuses stale weights; the folder is
    written under a temporary name and renamed into place, so a concurrent or interrupted writer never leaves
    half a model.
    """
    config = OUTETTS_1B_CONFIG if config is None else config
    key = hashlib.sha256(json.dumps([config, seed, dtype, 1], sort_keys=True).encode()).hexdigest()[:12]
    dest = cache_dir() / f"llama-{config.get('hidden_size')}x{config.get('num_hidden_layers')}-s{seed}-{dtype}-{key}"
    if (dest / "config.json").exists():
        return dest
    big = sum(int(np.prod(s)) for s in param_shapes(config).values()) * 4 > (1 << 30)
    with atomic_dir(dest) as tmp:
        write_seeded_checkpoint(tmp, config, seed, dtype, max_shard_bytes=(1 << 30) if big else None)
    return dest
