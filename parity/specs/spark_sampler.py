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

from typing import Any, Dict, List

import numpy as np

from parity.contracts import Case, Contract, Section, ids_case, section
from parity.specs.sampler import BOUND_WHY, distribution_case, softmax_bound

__all__ = ["OFFICIAL", "VOCAB", "full_vocab", "softmax_bound", "CONTRACT"]  # softmax_bound: the bound, derived once

OFFICIAL = dict(temperature=0.8, top_k=50, top_p=0.95)
VOCAB = 166000


def full_vocab(seed: int) -> np.ndarray:
    """(1, 166000) float32 LM-like logits: N(0, 1) plus 60 tokens raised by 4..9."""
    rng = np.random.default_rng([19, seed])
    logits = rng.normal(0, 1, (1, VOCAB)).astype(np.float32)
    logits[0, rng.choice(VOCAB, 60, replace=False)] += rng.uniform(4, 9, 60).astype(np.float32)
    return logits


# ------------------------------------------------------------------------------------------------ contract
# The report's section: N_CASES seeded logits sets (numpy, like parity/specs/sampler.py's: V 2..300, distinct logits,
# half at the official settings, half drawn) and the two 166,000-token sets; per set the scores bit-equal on the
# support, |dp| within the softmax bound, and greedy = the one candidate the official call with top_k=1 leaves.

N_CASES = 96


def _case(i: int):
    """(logits (B, V) float32, sampler kwargs) for case seed i."""
    rng = np.random.default_rng([19, 1, i])
    V, B = int(rng.integers(2, 301)), int(rng.integers(1, 4))
    scale = float(rng.choice([0.1, 1.0, 5.0, 30.0]))
    logits = rng.permutation(np.linspace(-1, 1, V * B)).reshape(B, V) + rng.uniform(-1e-3, 1e-3, (B, V))
    logits = logits.astype(np.float32) * np.float32(scale)
    if rng.random() < 0.5:
        kw = dict(OFFICIAL)
    else:
        kw = dict(temperature=float(rng.uniform(0.05, 3.0)), top_k=int(rng.integers(1, V + 4)),
                  top_p=float(rng.uniform(0.05, 1.0)))
    return logits, kw


def _inputs():
    """[(name, logits, kwargs)] of every logits set."""
    return ([(f"set {i}",) + _case(i) for i in range(N_CASES)] +
            [(f"166,000-token vocabulary seed {seed}", full_vocab(seed), dict(OFFICIAL)) for seed in (0, 1)])


def record(quick: bool) -> Dict[str, Any]:
    from reference import spark as R

    sets: List[Dict[str, Any]] = []
    skipped = 0
    for name, logits, kw in _inputs():
        p_ref = R.probabilities(logits, **kw)
        support = p_ref > 0
        nudges = (min(1.0, kw["top_p"] * (1 + 1e-5)), kw["top_p"] * (1 - 1e-5))
        if any(not np.array_equal(R.probabilities(logits, **dict(kw, top_p=t)) > 0, support) for t in nudges):
            skipped += 1
            continue
        scores = R.process(logits, **kw)
        idx = np.flatnonzero(support).astype(np.int32)
        greedy = R.process(logits, **dict(kw, top_k=1))  # the official call with top_k=1: one finite score a row
        sets.append({"name": name, "shape": list(p_ref.shape), "index": idx,
                     "p": p_ref.reshape(-1)[idx].astype(np.float32), "scores": scores.reshape(-1)[idx],
                     "greedy": np.argmax(greedy, axis=-1).astype(np.int32)})
    return {"sets": sets, "skipped": skipped}


def check(rec: Dict[str, Any], quick: bool) -> Section:
    import mlx.core as mx

    from impl.runtime import GenerationConfig
    from impl.spark import sampler as S
    from impl.spark.generate import sampler_config

    inputs = {name: (logits, kw) for name, logits, kw in _inputs()}
    cases: List[Case] = []
    max_dp = 0.0
    for s in rec["sets"]:
        logits, kw = inputs[s["name"]]
        # through the public path: official sets the default GenerationConfig, drawn ones each setting passed
        cfg = sampler_config(GenerationConfig() if kw == OFFICIAL else GenerationConfig(**kw))
        window = mx.zeros((logits.shape[0], 0), dtype=mx.uint32)  # Spark's call has no repetition penalty
        name = f"{s['name']} (V {s['shape'][-1]}, B {s['shape'][0]}, " + \
            ("official settings)" if kw == OFFICIAL else
             f"T {kw['temperature']:.3g}, top-k {kw['top_k']}, top-p {kw['top_p']:.3g})")
        p = np.array(S.probabilities(mx.array(logits), window, cfg)).reshape(-1)
        scores = np.array(S.process_logits(mx.array(logits), window, cfg)).reshape(-1)
        greedy = np.array(S.make_sampler(greedy=True)(mx.array(logits), window)).reshape(-1)
        cases.append(ids_case(f"{name}: greedy id", greedy.tolist(), s["greedy"].tolist()))
        case, dp = distribution_case(name, p, scores, s)
        cases.append(case)
        max_dp = max(max_dp, dp)
    return section("Spark sampler", "impl.spark.sampler (settings through GenerationConfig and "
                   "impl.spark.generate.sampler_config, the public path) vs the processors transformers builds for SparkTTS.inference's "
                   f"generate(do_sample=True, temperature, top_k, top_p): {len(rec['sets'])} logits sets (scores "
                   "bit-equal on the support, |dp| against the softmax bound; greedy = the official call's top_k=1 "
                   "survivor)", cases, BOUND_WHY + "; greedy ids exact", "max |dp| / softmax bound (greedy: "
                   "differing ids)",
                   [f"max |p - p_ref| over all sets: {max_dp:.3g}",
                    f"{rec['skipped']} drawn sets skipped: a token's cumulative probability within 1e-5 of the top-p "
                    "threshold (the reference's own support changes under a 1e-5 nudge)"])


CONTRACT = Contract("spark-sampler", record, check)
