"""Reference adapter: the official transformers LlamaForCausalLM (4.52.3), loaded with its own `from_pretrained`.

Eval mode, CPU, `attn_implementation="eager"` (the plain matmul/softmax path: no SDPA kernel choice between runs).
Numpy in, numpy out. Nothing here re-implements a layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Union

import numpy as np


def load(path: Union[str, Path], dtype: str = "float32"):
    """`LlamaForCausalLM.from_pretrained(path)` in `dtype` ("float32", "float64", "float16", "bfloat16" or a
    torch dtype); any missing / unexpected / mismatched key is an error."""
    import torch
    from transformers import LlamaForCausalLM

    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model, info = LlamaForCausalLM.from_pretrained(str(path), torch_dtype=torch_dtype, attn_implementation="eager",
                                                   low_cpu_mem_usage=True, output_loading_info=True)
    # from_pretrained only logs missing keys (and random-inits them): a reference must not be half random.
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise ValueError(f"transformers could not load {path} cleanly: {bad}")
    return model.to("cpu").eval()


def forward(model, ids: np.ndarray) -> np.ndarray:
    """ids (B, L) int -> logits (B, L, vocab) as numpy (fp32 or fp64, the model's float; half widened to fp32)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(np.asarray(ids, dtype=np.int64)), use_cache=False).logits
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.numpy()


def generate_greedy(model, prompt: Union[List[int], np.ndarray], max_new_tokens: int) -> List[int]:
    """Argmax loop with transformers' own KV cache (`model.generate(do_sample=False)`), B = 1."""
    import torch

    ids = torch.from_numpy(np.asarray(prompt, dtype=np.int64)[None])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             min_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=None,
                             pad_token_id=0, repetition_penalty=1.0, temperature=None, top_p=None, top_k=None)
    return out[0, ids.shape[1]:].tolist()
