"""Reference adapter: the official transformers Qwen2ForCausalLM (4.52.3), loaded with its own `from_pretrained`.

Eval mode, CPU, `attn_implementation="eager"` (the plain matmul/softmax path), as reference.llama. Numpy in,
numpy out; `forward` and `generate_greedy` are reference.llama's (they call the HF causal-LM interface, which
Qwen2ForCausalLM shares). The model's layers are its own `named_modules()` (`model.layers.3.self_attn`, ...).
Nothing here re-implements a layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from reference.llama import forward, generate_greedy  # noqa: F401 -- the same HF calls on a Qwen2ForCausalLM


def load(path: Union[str, Path], dtype: str = "float32"):
    """`Qwen2ForCausalLM.from_pretrained(path)` in `dtype` ("float32", "float64", "float16", "bfloat16" or a
    torch dtype); any missing / unexpected / mismatched key is an error."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model, info = Qwen2ForCausalLM.from_pretrained(str(path), torch_dtype=torch_dtype, attn_implementation="eager",
                                                   low_cpu_mem_usage=True, output_loading_info=True)
    # from_pretrained only logs missing keys (and random-inits them): a reference must not be half random.
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise ValueError(f"transformers could not load {path} cleanly: {bad}")
    return model.to("cpu").eval()
