"""Spark-TTS-0.5B's language model (Qwen2, the Qwen2.5-0.5B architecture with a 166,000-token vocabulary) in MLX.

Ports transformers 4.52.3 `models/qwen2/modeling_qwen2.py` (Qwen2ForCausalLM) and `configuration_qwen2.py`
(Qwen2Config). Qwen2's maths is Llama's (GQA attention with rotate-half rope, RMSNorm, SwiGLU MLP, tied
embeddings) with biases on q/k/v and none on o, and plain (unscaled) rope: the model *is* `impl.llama.Model`,
built from a Qwen2 config by `Qwen2Args.llama_args`, so the KV cache (`make_cache`), prefill with
`logits_to_keep`, q8/q4 and the platform variants (`impl.accel.apply`) are the OuteTTS LM's, and one decode loop
serves both. Module names follow HF: `model.layers.3.self_attn.q_proj.bias` names the same tensor in both trees.

    model = load("Spark-TTS-0.5B/LLM")                       # fp32 as stored; dtype="bfloat16", quantize="q8"
    cache = make_cache(model)
    logits = model(mx.array([ids]), cache, logits_to_keep=1)  # (1, 1, 166000); then one id (1, 1) per step
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from impl import llama
from impl._io import reason
from impl.llama import KVCache, Model, make_cache  # noqa: F401 -- the Qwen2 model's cache and class are Llama's
from impl.weights import CheckpointError, read_hf_config

# Spark-TTS-0.5B/LLM/config.json, HF Qwen2Config keys. The checkpoint cannot be downloaded here; every value is
# from public copies of that file, cross-checked:
# - its TensorRT-LLM conversion (SparkAudio/Spark-TTS runtime/triton_trtllm/scripts/convert_checkpoint.py; the
#   resulting config as printed in ai-bot-pro/achatbot's deploy/modal tts_spark notes): Qwen2ForCausalLM, vocab
#   166000, hidden 896, 24 layers, 14 heads, 2 KV heads (head_size 64), intermediate 4864, max_position 32768,
#   norm_epsilon 1e-6, rotary_base 1e6, rotary_scaling null, attn_bias true, mlp_bias false, silu, tied embeddings;
# - Blaizzy/mlx-audio's Spark test config (a copy of config.json): the same values plus bos 151643, eos 151645
#   (`<|im_end|>`, as Qwen2.5-0.5B-Instruct's config.json; the base Qwen2.5-0.5B's eos is 151643 =
#   `<|endoftext|>`), use_sliding_window false, sliding_window 32768, max_window_layers 21, initializer_range 0.02,
#   torch_dtype "bfloat16", transformers_version 4.43.1;
# - third-party notes on the checkpoint: its safetensors hold F32 tensors though config.json says bfloat16
#   (unverifiable here). The official cli/SparkTTS.py loads it with no torch_dtype, i.e. in fp32 whatever is
#   stored; `load` keeps the stored dtype unless given one: dtype="float32" is the official setting.
SPARK_TTS_0_5B_CONFIG: Dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 166000,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": None,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "use_sliding_window": False,
    "sliding_window": 32768,
    "max_window_layers": 21,
    "attention_dropout": 0.0,
    "use_cache": True,
}


@dataclass
class Qwen2Args:
    """HF Qwen2Config keys with Qwen2Config's defaults (used where config.json leaves a key out)."""

    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 22016
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: Optional[int] = 32  # Qwen2Config's default (None: num_attention_heads)
    head_dim: Optional[int] = None  # not a Qwen2Config key; Qwen2Attention: getattr(config, "head_dim", D // H)
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_scaling: Optional[Dict[str, Any]] = None
    use_sliding_window: bool = False
    sliding_window: Optional[int] = 4096
    max_window_layers: int = 28
    attention_dropout: float = 0.0
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[Union[int, List[int]]] = None
    pad_token_id: Optional[int] = None
    model_type: str = "qwen2"

    def __post_init__(self):
        if self.num_key_value_heads is None:  # Qwen2Config's backward compatibility
            self.num_key_value_heads = self.num_attention_heads
        if self.model_type != "qwen2":
            raise ValueError(f"model_type {self.model_type!r} is not 'qwen2'")
        if self.use_sliding_window:
            raise ValueError("use_sliding_window true is not supported (sliding-window attention is not ported)")
        if self.rope_scaling is not None:
            raise ValueError(f"rope_scaling {self.rope_scaling!r} is not supported (Qwen2 here: plain rope, null)")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (Qwen2 uses 'silu')")

    @classmethod
    def from_dict(cls, config: Dict[str, Any]) -> "Qwen2Args":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})

    def llama_args(self) -> llama.ModelArgs:
        """The same network as an impl.llama config: q/k/v with bias, o and MLP without, unscaled rope."""
        return llama.ModelArgs(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            intermediate_size=self.intermediate_size, num_attention_heads=self.num_attention_heads,
            vocab_size=self.vocab_size, num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim,
            rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta, rope_scaling=None,
            max_position_embeddings=self.max_position_embeddings, tie_word_embeddings=self.tie_word_embeddings,
            attention_bias=True, o_proj_bias=False, mlp_bias=False, hidden_act=self.hidden_act,
            initializer_range=self.initializer_range, bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id, model_type="qwen2")


def model_args(config: Dict[str, Any]) -> llama.ModelArgs:
    """A Qwen2 config.json dict -> the impl.llama.ModelArgs of the same network (ValueError if unsupported)."""
    return Qwen2Args.from_dict(config).llama_args()


def load(path: Union[str, Path], dtype: Optional[str] = None, quantize: Optional[str] = None) -> Model:
    """Load an HF Qwen2 checkpoint (config.json + model.safetensors or a sharded index), strict keys and shapes.

    Args:
        path: folder with config.json and model.safetensors (Spark-TTS-0.5B's `LLM/`).
        dtype: "float32"/"float16"/"bfloat16" (or fp32/fp16/bf16); None keeps the checkpoint's dtype.
        quantize: None, "q8" or "q4" (`mlx.nn.quantize`, group size 64, embeddings included).

    Returns an `impl.llama.Model`: `model(ids (B, L) int32, cache=None, logits_to_keep=0) -> logits (B, L, V)`.
    """
    path = Path(path)
    config_path, config = read_hf_config(path)
    try:
        args = model_args(config)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{config_path}: not a supported Qwen2 config ({reason(e)})") from None
    return llama.load_model(path, args, dtype, quantize, name="Qwen2")
