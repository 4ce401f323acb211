"""Seeded HF Qwen2 checkpoints (config.json + model.safetensors), torch-free: Spark-TTS-0.5B's `LLM/` folder at the
real size (impl.qwen2.SPARK_TTS_0_5B_CONFIG), or any smaller Qwen2 config for tests.

Key names and shapes are Qwen2ForCausalLM's state dict (the tied `lm_head.weight` omitted, as `save_pretrained`
writes it). Values: linear and embedding weights N(0, initializer_range) as HF `_init_weights`, drawn as
impl.seeded.llama draws them (one RNG per tensor keyed by (seed, crc32(name)): byte-identical, order-free). Two
departures from HF init, so that every parameter shows in the parity tests: the q/k/v biases are
N(0, initializer_range) and the RMSNorm weights 1 + N(0, initializer_range), not zeros and ones (a dropped bias or
an unused norm weight would change nothing otherwise; trained Qwen2 q/k biases are far from zero).
model.safetensors is streamed one tensor at a time: the real size (2.0 GB fp32) never sits in memory at once.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from impl._io import atomic_dir, atomic_path
from impl.qwen2 import SPARK_TTS_0_5B_CONFIG, Qwen2Args
from impl.seeded import cache_dir

_ST_DTYPES = {"float32": ("F32", 4), "float16": ("F16", 2), "bfloat16": ("BF16", 2)}


def param_shapes(config: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """Qwen2ForCausalLM state-dict names and shapes (tied head omitted, as save_pretrained does)."""
    a = Qwen2Args.from_dict(config)
    D, F = a.hidden_size, a.intermediate_size
    hd = a.head_dim or D // a.num_attention_heads
    q, kv = a.num_attention_heads * hd, a.num_key_value_heads * hd
    shapes: Dict[str, Tuple[int, ...]] = {"model.embed_tokens.weight": (a.vocab_size, D)}
    for i in range(a.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (q, D), p + "self_attn.q_proj.bias": (q,),
            p + "self_attn.k_proj.weight": (kv, D), p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, D), p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (D, q),  # Qwen2Attention: o_proj has no bias
            p + "mlp.gate_proj.weight": (F, D),
            p + "mlp.up_proj.weight": (F, D),
            p + "mlp.down_proj.weight": (D, F),
            p + "input_layernorm.weight": (D,),
            p + "post_attention_layernorm.weight": (D,),
        })
    shapes["model.norm.weight"] = (D,)
    if not a.tie_word_embeddings:
        shapes["lm_head.weight"] = (a.vocab_size, D)
    return shapes


def seeded_tensor(name: str, shape: Tuple[int, ...], seed: int, std: float) -> np.ndarray:
    """fp32 values of one tensor: N(0, std), plus 1 for RMSNorm weights; per-tensor RNG (seed, crc32(name))."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    x = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    if name.endswith("layernorm.weight") or name == "model.norm.weight":
        x += np.float32(1.0)
    return x.astype(np.float32)


def _encode(x: np.ndarray, dtype: str) -> bytes:
    """Little-endian bytes of fp32 `x` stored as `dtype`; bf16 rounded to nearest even, as MLX's astype does."""
    if dtype == "bfloat16":
        import mlx.core as mx

        return np.array(mx.view(mx.array(x).astype(mx.bfloat16), mx.uint16)).astype("<u2").tobytes()
    return x.astype("<f4" if dtype == "float32" else "<f2").tobytes()


def _write_safetensors(file: Union[str, Path], shapes: Dict[str, Tuple[int, ...]], seed: int, std: float,
                       dtype: str) -> None:
    """The safetensors layout (u64 header size, JSON header, raw data), one tensor generated and written at a
    time. Metadata {"format": "pt"}: transformers refuses a safetensors file without a known format tag."""
    code, itemsize = _ST_DTYPES[dtype]
    header: Dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # data starts 8-byte aligned, as the safetensors writer pads it
    with open(file, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in shapes.items():
            f.write(_encode(seeded_tensor(name, shape, seed, std), dtype))


def write_qwen2(folder: Union[str, Path], config: Optional[Dict[str, Any]] = None, seed: int = 0,
                dtype: str = "float32") -> Path:
    """Write a seeded HF Qwen2 checkpoint: folder/config.json + folder/model.safetensors, each file atomically.

    Args:
        folder: output folder (created); e.g. `<Spark-TTS-0.5B folder>/LLM`.
        config: HF Qwen2 config.json dict; None = impl.qwen2.SPARK_TTS_0_5B_CONFIG (the real 0.5B, 2.0 GB fp32).
        seed: the weights' seed.
        dtype: "float32", "float16" or "bfloat16" (fp32/fp16/bf16): stored as; recorded as config `torch_dtype`.
    Returns `folder` as a Path.
    """
    config = dict(SPARK_TTS_0_5B_CONFIG if config is None else config)
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(dtype, dtype)
    if dtype not in _ST_DTYPES:
        raise ValueError(f"dtype {dtype!r} not one of float32, float16, bfloat16")
    shapes = param_shapes(config)  # validates the config (ValueError) before anything is written
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        _write_safetensors(tmp, shapes, seed, float(config.get("initializer_range", 0.02)), dtype)
    config["torch_dtype"] = dtype
    with atomic_path(folder / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2))
    return folder


def seeded_qwen2(config: Optional[Dict[str, Any]] = None, seed: int = 0, dtype: str = "float32") -> Path:
    """The seeded Qwen2 folder for (config, seed, dtype), written once into cache_dir() and reused (the name holds
    a hash of the config; written under a temporary name and renamed, so never half a model)."""
    config = SPARK_TTS_0_5B_CONFIG if config is None else config
    key = hashlib.sha256(json.dumps([config, seed, dtype, 1], sort_keys=True).encode()).hexdigest()[:12]
    dest = cache_dir() / f"qwen2-{config.get('hidden_size')}x{config.get('num_hidden_layers')}-s{seed}-{dtype}-{key}"
    if (dest / "config.json").exists():
        return dest
    with atomic_dir(dest) as tmp:
        write_qwen2(tmp, config, seed, dtype)
    return dest
