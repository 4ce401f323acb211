"""Contract: the Spark-TTS sampler (`impl.spark.sampler`: the official settings on impl.outetts.sampler's processors)
vs the processor list transformers 4.52.3 builds for SparkTTS.inference's `generate(do_sample=True,
temperature=0.8, top_k=50, top_p=0.95)` (reference.spark.logits_processor).

Per logits set: processed scores bit-equal (the support equal) and the distribution within the float32 softmax
bound of parity.specs.sampler (`softmax_bound`: |p - p_ref| <= 1.01 (71 u + 2 gamma_n) p_ref, derived there: the
same max subtracted from bit-equal scores, MLX CPU exp within 65 u, torch's within 2 u, the n-term sum and the
normalisation). A set where a token's cumulative probability lies within 1e-5 (relative) of 1 - top_p may fall either
side by summation order: the reference itself decides (its support changes under 1e-5 nudges of top_p) and such a
set is discarded. Sets: V 2..300 with distinct logits (hypothesis) at the official settings and at drawn ones, and
the real 166,000-token vocabulary with LM-like logits (a few large, a long flat tail).
"""
from __future__ import annotations

import numpy as np

from parity.specs.sampler import softmax_bound

__all__ = ["OFFICIAL", "VOCAB", "full_vocab", "softmax_bound"]  # softmax_bound: the bound, derived once

OFFICIAL = dict(temperature=0.8, top_k=50, top_p=0.95)
VOCAB = 166000


def full_vocab(seed: int) -> np.ndarray:
    """(1, 166000) float32 LM-like logits: N(0, 1) plus 60 tokens raised by 4..9."""
    rng = np.random.default_rng([19, seed])
    logits = rng.normal(0, 1, (1, VOCAB)).astype(np.float32)
    logits[0, rng.choice(VOCAB, 60, replace=False)] += rng.uniform(4, 9, 60).astype(np.float32)
    return logits
