"""Spark-TTS sampling: the logits processors of the official `generate` call, in transformers' order.

sparktts `cli/SparkTTS.py` calls `model.generate(do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
max_new_tokens=3000)`; transformers 4.52.3 `GenerationMixin._get_logits_processor` then appends
TemperatureLogitsWarper(0.8), TopKLogitsWarper(50, filter -inf, min_tokens_to_keep 1) and TopPLogitsWarper(0.95,
filter -inf, min_tokens_to_keep 1), in that order, and `_sample` draws from softmax of the processed scores. No
repetition penalty and no min-p (mlx-audio's Spark adds a 1.3 penalty that the original lacks). The processors are
`impl.outetts.sampler`'s (the same transformers warpers, proven there) with the penalty off (1.0, empty window) and
min-p 0 (its filter then removes nothing: no probability is below 0). Greedy: temperature 0, argmax. An LLM folder
whose generation config sets `repetition_penalty` or `min_p` adds them, as transformers merges them into the call
(transformers' penalty reads the whole sequence: the window is then the full context).
"""
from __future__ import annotations

from dataclasses import replace

from impl.outetts.sampler import Sampler, SamplerConfig, probabilities, process_logits

__all__ = ["Sampler", "SamplerConfig", "config", "make_sampler", "probabilities", "process_logits", "TEMPERATURE",
           "TOP_K", "TOP_P"]

TEMPERATURE, TOP_K, TOP_P = 0.8, 50, 0.95  # SparkTTS.inference's defaults


FULL_CONTEXT = 1 << 30  # a window longer than any sequence: transformers' penalty reads every id, prompt included


def config(temperature: float = TEMPERATURE, top_k: int = TOP_K, top_p: float = TOP_P,
           repetition_penalty: float = 1.0, min_p: float = 0.0) -> SamplerConfig:
    """The official sampling settings (temperature 0: greedy); a repetition penalty or min-p only when the LLM
    folder's generation config sets them (impl.spark.generate.generation_settings)."""
    official = SamplerConfig(temperature=temperature, repetition_penalty=1.0, repetition_range=0, top_k=top_k,
                             top_p=top_p, min_p=0.0)
    if repetition_penalty == 1.0 and not min_p:
        return official
    return replace(official, repetition_penalty=repetition_penalty, min_p=min_p,
                   repetition_range=FULL_CONTEXT if repetition_penalty != 1.0 else 0)


def make_sampler(seed: int = 0, greedy: bool = False, temperature: float = TEMPERATURE) -> Sampler:
    """A seeded sampler with the official settings: same seed, same draws."""
    return Sampler(config(0.0 if greedy else temperature), seed)
