"""Seeded OuteTTS model folders: an HF Llama checkpoint (impl.llama) + the generated v3 tokenizer, one folder.

The folder has what transformers and outetts' HF backend load (`AutoModelForCausalLM` / `AutoTokenizer` on the
same path): config.json (eos = `<|im_end|>`, bos = `<|im_start|>` of the tokenizer), safetensors, tokenizer files.
Random weights: the audio such a model makes is noise; the pipeline around it is the real one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

from impl._cache import cache_root
from impl.outetts.tokenizer import Tokenizer, build_tokenizer

# A small Llama with the real model's structure (GQA, llama3 rope) for tests and demos. Untied head and a wider
# init than the real model's 0.02: a tiny random Llama with tied embeddings just repeats its input token.
TINY_LM_CONFIG: Dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 4992, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "hidden_act": "silu",
    "initializer_range": 0.2, "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
    "pretraining_tp": 1, "use_cache": True,
}


def write_model_dir(path: Union[str, os.PathLike], lm_config: Dict[str, Any], seed: int = 0,
                    dtype: str = "float32") -> Path:
    """Write tokenizer + seeded LM into `path` (temp folder renamed into place); returns the path."""
    from impl import llama

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tokenizer(tmp)
    tok = Tokenizer(tmp)
    if tok.vocab_size > lm_config["vocab_size"]:
        raise ValueError(f"LM vocab_size {lm_config['vocab_size']} < tokenizer's {tok.vocab_size} tokens")
    config = dict(lm_config, eos_token_id=tok.eos_id, bos_token_id=tok.token_id("<|im_start|>"))
    big = config["hidden_size"] * config["vocab_size"] * 4 > (1 << 28)
    llama.write_seeded_checkpoint(tmp, config, seed, dtype, max_shard_bytes=(1 << 30) if big else None)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def cache_dir() -> Path:
    """$VOICEPORT_CACHE/outetts: the embedded seeded model folders."""
    return cache_root() / "outetts"


def default_model_dir(lm_config: Optional[Dict[str, Any]] = None, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """The embedded seeded model folder (OuteTTS 1.0 1B architecture by default), generated once, then reused."""
    from impl import llama

    lm_config = llama.OUTETTS_1B_CONFIG if lm_config is None else lm_config
    key = hashlib.sha256(json.dumps([lm_config, seed, dtype, 1], sort_keys=True).encode()).hexdigest()[:12]
    dest = cache_dir() / f"model-{lm_config['hidden_size']}x{lm_config['num_hidden_layers']}-s{seed}-{dtype}-{key}"
    if (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file():
        return dest
    return write_model_dir(dest, lm_config, seed, dtype)
