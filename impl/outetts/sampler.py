"""OuteTTS v3 sampling in MLX: the logits processors outetts' HF backend runs, in transformers' order.

Ports, for the configuration outetts 0.4.4 passes to `generate` (`models/hf_model.py` HFModel._generate with
`models/config.py` SamplerConfig):
  1. repetition penalty over the last 64 ids of the sequence (prompt included): outetts' patched
     `RepetitionPenaltyLogitsProcessorPatch` (hf_model.py): each distinct id in the window once,
     logit * p if logit <= 0 else logit / p;
  2. temperature, 3. top-k, 4. top-p, 5. min-p: transformers 4.52.3 `generation/logits_process.py`
     (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, min_tokens_to_keep=1),
     appended in this order by `GenerationMixin._get_logits_processor`;
then a draw from softmax of the processed scores. With top-k on (the default), everything after the
repetition penalty runs on the k candidates only (one partition of the vocabulary, then k-sized work, instead of
sorting the 134,400-token vocabulary). Greedy mode (outetts' temperature 0) is transformers' greedy search: the
repetition penalty, then argmax. Removed tokens get -inf, as transformers' filter_value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import mlx.core as mx


class SamplerError(ValueError):
    """Sampler settings outside what the processors accept."""


@dataclass(frozen=True)
class SamplerConfig:
    """outetts' SamplerConfig defaults (the v3 recommended settings). temperature 0 = greedy."""

    temperature: float = 0.4
    repetition_penalty: float = 1.1
    repetition_range: int = 64
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.05

    def __post_init__(self):
        if self.temperature < 0:
            raise SamplerError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise SamplerError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.repetition_range < 0:
            raise SamplerError(f"repetition_range must be >= 0, got {self.repetition_range}")
        if self.top_k < 0:
            raise SamplerError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise SamplerError(f"top_p must be in [0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise SamplerError(f"min_p must be in [0, 1], got {self.min_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def repetition_penalty(scores: mx.array, window: mx.array, penalty: float) -> mx.array:
    """scores (B, V) float32, window (B, W) int ids (the last `repetition_range` of the sequence) -> (B, V)."""
    if penalty == 1.0 or window.shape[-1] == 0:
        return scores
    picked = mx.take_along_axis(scores, window, axis=-1)  # duplicates read the same original value
    picked = mx.where(picked <= 0, picked * penalty, picked / penalty)
    return mx.put_along_axis(scores, window, picked, axis=-1)


def top_p_filter(scores: mx.array, top_p: float) -> mx.array:
    """Drop the least likely tokens whose cumulative probability (ascending) is <= 1 - top_p; keep the top one."""
    order = mx.argsort(scores, axis=-1)  # ascending, as transformers' sort(descending=False)
    cum = mx.cumsum(mx.softmax(mx.take_along_axis(scores, order, axis=-1), axis=-1), axis=-1)
    drop_sorted = cum <= (1 - top_p)
    V = scores.shape[-1]
    drop_sorted = mx.logical_and(drop_sorted, mx.arange(V) < V - 1)  # min_tokens_to_keep = 1
    drop = mx.put_along_axis(mx.zeros(scores.shape, dtype=mx.bool_), order, drop_sorted, axis=-1)
    return mx.where(drop, -mx.inf, scores)


def min_p_filter(scores: mx.array, min_p: float) -> mx.array:
    """Drop tokens with probability < min_p * (top probability); the top token always survives (min_p <= 1)."""
    probs = mx.softmax(scores, axis=-1)
    threshold = min_p * mx.max(probs, axis=-1, keepdims=True)
    return mx.where(probs < threshold, -mx.inf, scores)


def top_k_candidates(scores: mx.array, k: int):
    """(values, ids) of the k largest scores, (B, k) each, unordered. The fast path's only pass over the vocab.

    transformers keeps every score equal to the k-th largest; here exactly k survive. The two differ only when
    the k-th largest value is tied, which real logits are not (the tests draw distinct logits).
    """
    V = scores.shape[-1]
    k = min(k, V)
    ids = mx.argpartition(scores, kth=V - k, axis=-1)[..., V - k:]
    return mx.take_along_axis(scores, ids, axis=-1), ids


def _warp(scores: mx.array, config: SamplerConfig) -> mx.array:
    """Temperature, top-p, min-p (transformers' order) on scores (B, N) that top-k has already cut."""
    if config.temperature != 1.0:
        scores = scores / config.temperature
    if config.top_p < 1.0:
        scores = top_p_filter(scores, config.top_p)
    return min_p_filter(scores, config.min_p)


def process_candidates(logits: mx.array, window: mx.array, config: SamplerConfig):
    """Fast path (top_k > 0, sampling): processed scores of the top-k candidates and their ids, (B, k) each.

    Exact reordering of transformers' steps: temperature is a positive scale, so the top-k of scores / T are
    the top-k of scores, and top-p / min-p never see the -inf that top-k left elsewhere (they add 0).
    """
    scores = repetition_penalty(logits.astype(mx.float32), window, config.repetition_penalty)
    vals, ids = top_k_candidates(scores, config.top_k)
    return _warp(vals, config), ids


def process_logits(logits: mx.array, window: mx.array, config: SamplerConfig) -> mx.array:
    """Processed scores (B, V) float32 that the next token is drawn from (greedy: argmax of them).

    logits (B, V) next-token logits; window (B, W) the last `repetition_range` ids of each sequence.
    """
    if config.top_k and not config.greedy:
        vals, ids = process_candidates(logits, window, config)
        full = mx.full(logits.shape, -mx.inf, dtype=mx.float32)
        return mx.put_along_axis(full, ids, vals, axis=-1)
    scores = repetition_penalty(logits.astype(mx.float32), window, config.repetition_penalty)
    if config.greedy:
        return scores
    return _warp(scores, config)


def probabilities(logits: mx.array, window: mx.array, config: SamplerConfig) -> mx.array:
    """The next-token distribution (B, V)."""
    return mx.softmax(process_logits(logits, window, config), axis=-1)


def _step_fn(config: SamplerConfig):
    """The pure sampling step for `config`: (logits (B, V), window (B, W), key) -> (ids (B,), next key)."""
    if config.greedy:
        def greedy(logits, window, key):
            return mx.argmax(repetition_penalty(logits.astype(mx.float32), window, config.repetition_penalty), -1), key
        return greedy

    def sample(logits, window, key):
        key, sub = mx.random.split(key)
        if config.top_k:
            vals, ids = process_candidates(logits, window, config)
            pick = mx.random.categorical(vals, axis=-1, key=sub)
            return mx.take_along_axis(ids, pick[:, None], axis=-1)[:, 0], key
        return mx.random.categorical(process_logits(logits, window, config), axis=-1, key=sub), key
    return sample


class Sampler:
    """Seeded next-token sampler: `sampler(logits (B, V), window (B, W)) -> ids (B,)`; same seed, same draws.

    compiled: run the step through `mx.compile` (fused elementwise kernels, the same operations in the same
    order). Off by default: the step alone is faster compiled, but the decode loop runs at the same speed either
    way (the LM's step dominates; `python -m bench.gpu_loop`), and each compiled fusion is one more run-time kernel
    compilation on a GPU's first run.
    """

    def __init__(self, config: Optional[SamplerConfig] = None, seed: int = 0, compiled: bool = False):
        self.config = config or SamplerConfig()
        self.key = mx.random.key(seed)
        self.compiled = bool(compiled)
        step = _step_fn(self.config)
        self._step = mx.compile(step) if self.compiled else step

    def __call__(self, logits: mx.array, window: mx.array) -> mx.array:
        ids, self.key = self._step(logits, window, self.key)
        return ids
