"""Contract: the OuteTTS v3 sampler vs outetts' patched transformers logits processors (repetition penalty over
the last 64 ids, temperature, top-k, top-p, min-p, in transformers' order), and the penalty window inside the real
decode loop.

Per logits set: processed scores bit-equal (on the support; the support itself equal) and the distribution within
the float32 softmax bound below. Cases where a token's cumulative / relative probability lies within 1e-5 of the
top-p / min-p threshold may fall either side by summation order: the reference itself decides (1e-5 nudges of the
thresholds change its support) and such cases are not recorded. Window cases: a near-tie decided only by the id
exactly 64 (penalised) or 65 (not) positions back, at prefill, at a later step, and for a generated id, through
`impl.outetts.generate.decode_loop` against transformers' greedy step with outetts' processor on the same logits.

Softmax bound (as parity/test_outetts_sampler.py derives it): bit-equal scores, the same max subtracted, then
exp within 65 u on MLX's CPU (exhaustive float32 sweep, tests/test_ops.py) and 2 u in torch, the n-term sum and
the normalisation: |p - p_ref| <= 1.01 (71 u + 2 gamma_n) p_ref, gamma_n = n u / (1 - n u), u = 2^-24.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from parity.contracts import Case, Contract, Section, ids_case, section

N_CASES = 96
U = 2.0 ** -24
BOUND_WHY = "|p - p_ref| <= 1.01 (71 u + 2 n u / (1 - n u)) p_ref per token (float32 softmax of bit-equal scores)"


def softmax_bound(p_ref: np.ndarray) -> np.ndarray:
    n = np.count_nonzero(p_ref > 0, axis=-1, keepdims=True)
    return 1.01 * (71 * U + 2 * n * U / (1 - n * U)) * p_ref


def _case(i: int):
    """(logits (B, V) float32, ids (B, L) int64, sampler kwargs) for case seed i; lengths around the window edge
    (63..66) are drawn often."""
    rng = np.random.default_rng([16, i])
    V, B = int(rng.integers(2, 301)), int(rng.integers(1, 4))
    scale = float(rng.choice([0.1, 1.0, 5.0, 30.0]))
    logits = (rng.permutation(np.linspace(-1, 1, V * B)).reshape(B, V) + rng.uniform(-1e-3, 1e-3, (B, V)))
    logits = (logits.astype(np.float32) * np.float32(scale))
    L = int(rng.choice([int(rng.integers(0, 151)), int(rng.integers(63, 67))]))
    ids = rng.integers(0, V, (B, L)).astype(np.int64)
    if rng.random() < 0.5:
        kw = dict(temperature=0.4, repetition_penalty=1.1, top_k=40, top_p=0.9, min_p=0.05)
    else:
        kw = dict(temperature=float(rng.uniform(0.05, 3.0)), repetition_penalty=float(rng.uniform(0.5, 2.5)),
                  top_k=int(rng.integers(0, V + 4)), top_p=float(rng.uniform(0.05, 1.0)),
                  min_p=float(rng.uniform(0.0, 1.0)))
    return logits, ids, kw


def _full_vocab(seed: int):
    rng = np.random.default_rng(seed)
    V = 134400
    logits = rng.normal(0, 1, (1, V)).astype(np.float32)
    logits[0, rng.choice(V, 60, replace=False)] += rng.uniform(4, 9, 60).astype(np.float32)
    ids = rng.integers(0, V, (1, 300))
    ids[0, -20:] = np.argsort(logits[0])[-20:]
    return logits, ids


FULL = [(0, dict(temperature=0.4, repetition_penalty=1.1, top_k=40, top_p=0.9, min_p=0.05)),
        (1, dict(temperature=1.3, repetition_penalty=1.1, top_k=0, top_p=0.8, min_p=0.0))]


def _inputs(quick: bool):
    """[(name, logits, ids, kwargs)] of every logits set."""
    out = [(f"set {i}",) + _case(i) for i in range(N_CASES)]
    for seed, kw in FULL:
        out.append((f"134,400-token vocabulary seed {seed}",) + _full_vocab(seed) + (kw,))
    return out


def window_case(back: int, where: str):
    """(prompt, logits rows, decision step) for a near-tie decided only by whether the id `back` positions before
    the decision (the oldest of a 64-id window when back = 64) is penalised.

    Every step but two is forced (filler F at logit 10, everything else -5: the 1.1 penalty cannot move it). One
    step has the far id A in the sequence (in the prompt, or forced as a generated token); at the decision step A
    has logit 1.05 and B (never in the sequence) 1.0: A penalised, 1.05 / 1.1 = 0.9545 < 1.0, B wins; A outside
    the window, A wins. `where`: A in the prompt and decided at the first (prefill) step, A in the prompt and
    decided at a later step (the loop's own window update), A generated and decided later."""
    V, F, A, B = 8, 0, 5, 6
    forced = lambda t: np.where(np.arange(V) == t, 10.0, -5.0).astype(np.float32)  # noqa: E731
    tie = np.full(V, -5.0, np.float32)
    tie[A], tie[B] = 1.05, 1.0
    if where == "prompt-first-step":
        prompt, steps, s = [A] + [F] * (back - 1), [], 0
    elif where == "prompt-later-step":
        s = 10
        prompt, steps = [A] + [F] * (back - 1 - s), [forced(F)] * s
    else:
        s = back + 2
        prompt, steps = [F] * 5, [forced(F), forced(F), forced(A)] + [forced(F)] * (s - 3)
    return prompt, steps + [tie, forced(F)], s


# the window's both ends: the oldest id (63/64/65 back) and the newest (1 back: the last prompt id at the prefill
# step, the last generated id in the loop), so that a window missing either end decides a tie differently
WINDOW = ([(back, where) for where in ("prompt-first-step", "prompt-later-step", "generated") for back in (63, 64, 65)]
          + [(1, "prompt-first-step"), (2, "prompt-first-step"), (1, "generated"), (2, "generated")])


def _sparse(p: np.ndarray, scores: np.ndarray):
    idx = np.flatnonzero(p > 0).astype(np.int32)
    return {"index": idx, "p": p.reshape(-1)[idx].astype(np.float32), "scores": scores.reshape(-1)[idx]}


def record(quick: bool) -> Dict[str, Any]:
    from reference import outetts as R

    sets: List[Dict[str, Any]] = []
    skipped = 0
    for name, logits, ids, kw in _inputs(quick):
        p_ref = R.probabilities(logits, ids, **kw)
        support = p_ref > 0
        nudges = (dict(top_p=min(1.0, kw["top_p"] * (1 + 1e-5))), dict(top_p=kw["top_p"] * (1 - 1e-5)),
                  dict(min_p=min(1.0, kw["min_p"] * (1 + 1e-5))), dict(min_p=kw["min_p"] * (1 - 1e-5)))
        if any(not np.array_equal(R.probabilities(logits, ids, **dict(kw, **n)) > 0, support) for n in nudges):
            skipped += 1
            continue
        sets.append({"name": name, "shape": list(p_ref.shape),
                     **_sparse(p_ref, R.process(logits, ids, **kw))})
    loops = []
    for back, where in WINDOW:
        prompt, rows, s = window_case(back, where)
        ids = list(prompt)
        for row in rows:
            scores = R.process(row[None], np.array([ids]), repetition_penalty=1.1, do_sample=False)
            ids.append(int(scores[0].argmax()))
        loops.append({"back": back, "where": where, "ids": np.asarray(ids[len(prompt):], np.int32)})
    return {"sets": sets, "skipped": skipped, "loops": loops}


def public_config(kw: Dict[str, Any]):
    """impl's SamplerConfig for the sampler settings `kw`, built the way a user's settings reach it: a
    GenerationConfig through `impl.outetts.generate.sampler_config` (outetts' defaults: the default GenerationConfig;
    drawn settings: each one passed), so that a setting the public path drops fails the drawn sets."""
    from impl.outetts import generate as G
    from impl.runtime import GenerationConfig, OuteTTSOptions

    default = dict(temperature=0.4, repetition_penalty=1.1, top_k=40, top_p=0.9, min_p=0.05)
    if kw == default:
        return G.sampler_config(GenerationConfig())
    return G.sampler_config(GenerationConfig(
        temperature=kw["temperature"], top_k=kw["top_k"], top_p=kw["top_p"],
        outetts=OuteTTSOptions(repetition_penalty=kw["repetition_penalty"], min_p=kw["min_p"])))


class LogitsScriptLM:
    """Stand-in LM for decode_loop: call n returns rows[n] as the last position's logits, whatever the input."""

    def __init__(self, rows):
        self.rows, self.calls = [np.asarray(r, np.float32) for r in rows], 0

    def __call__(self, ids, cache):
        import mlx.core as mx

        B, L = ids.shape
        out = np.zeros((B, L, self.rows[0].size), np.float32)
        out[:, -1] = self.rows[self.calls]
        self.calls += 1
        return mx.array(out)


def distribution_case(name: str, p: np.ndarray, scores: np.ndarray, rec: Dict) -> Tuple[Case, float]:
    """One logits set: impl's flat probabilities `p` and processed `scores` against the reference's record
    {index (its support), scores, p}: the support and the scores on it exact, |dp| within the softmax bound.
    Returns (case, max |dp|; 0 when the support or the scores differ)."""
    idx = rec["index"]
    support = np.flatnonzero(p > 0)
    if not np.array_equal(support, idx):
        extra = sorted(set(support.tolist()) ^ set(idx.tolist()))[:3]
        return Case(name, float("inf"), 1.0, False, "bound",
                    f"support differs: {len(support)} vs official {len(idx)} tokens, e.g. flat {extra}"), 0.0
    if not np.array_equal(scores[idx], rec["scores"]):
        k = int(np.flatnonzero(scores[idx] != rec["scores"])[0])
        return Case(name, float("inf"), 1.0, False, "bound", f"processed score of flat token {idx[k]}: "
                    f"{scores[idx][k]!r} != official {rec['scores'][k]!r} (must be bit-equal)"), 0.0
    bound = softmax_bound(rec["p"].astype(np.float64)[None])[0]
    d = np.abs(p[idx].astype(np.float64) - rec["p"])
    worst = int(np.argmax(d / bound))
    return Case(name, float(d[worst] / bound[worst]), 1.0, bool(d[worst] <= bound[worst]), "bound",
                f"max|dp| {d.max():.3g}; worst vs bound at flat token {idx[worst]}"), float(d.max())


def check(rec: Dict[str, Any], quick: bool) -> Section:
    import mlx.core as mx

    from impl.outetts import generate as G
    from impl.outetts.sampler import SamplerConfig, probabilities, process_logits

    inputs = {name: (logits, ids, kw) for name, logits, ids, kw in _inputs(quick)}
    cases: List[Case] = []
    max_dp = 0.0
    for s in rec["sets"]:
        logits, ids, kw = inputs[s["name"]]
        cfg = public_config(kw)
        window = mx.array(ids[:, max(0, ids.shape[1] - cfg.repetition_range):])
        p = np.array(probabilities(mx.array(logits), window, cfg)).reshape(-1)
        scores = np.array(process_logits(mx.array(logits), window, cfg)).reshape(-1)
        name = f"{s['name']} (V {s['shape'][-1]}, B {s['shape'][0]}, {ids.shape[1]} ids back)"
        case, dp = distribution_case(name, p, scores, s)
        cases.append(case)
        max_dp = max(max_dp, dp)
    for lp in rec["loops"]:
        prompt, rows, s = window_case(lp["back"], lp["where"])
        cfg = SamplerConfig(temperature=0)  # the shipped defaults: window 64, penalty 1.1
        got = G.decode_loop(LogitsScriptLM(rows), None, prompt, G.Sampler(cfg), budget=len(rows))
        cases.append(ids_case(f"penalty window in decode_loop: id {lp['back']} back, {lp['where']} "
                              f"(decision step {s})", got, lp["ids"].tolist()))
    return section("sampler", f"impl.outetts.sampler (settings through GenerationConfig, the public path) vs outetts' "
                   f"patched transformers processors: "
                   f"{len(rec['sets'])} logits sets (scores bit-equal, |dp| against the softmax bound) + "
                   f"{len(rec['loops'])} penalty-window decisions in the real decode loop", cases,
                   BOUND_WHY + "; window ids exact", "max |dp| / softmax bound (window: differing ids)",
                   [f"max |p - p_ref| over all sets: {max_dp:.3g}",
                    f"{rec['skipped']} drawn sets skipped: a top-p/min-p threshold within 1e-5 of a token "
                    "(the reference's own support changes under a 1e-5 nudge)"])


CONTRACT = Contract("sampler", record, check, version=2)  # 2: + the newest ids of the window
