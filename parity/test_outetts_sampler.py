"""OuteTTS v3 sampler: impl (MLX) distribution vs outetts' patched transformers logits processors.

Reference: transformers 4.52.3 builds its own processor list (`_get_logits_processor`) for the settings outetts
passes, with outetts' windowed repetition-penalty patch applied; the distribution is softmax of the processed
scores, as `_sample` draws from. Contract, away from the filters' decision boundaries (a token whose cumulative or
relative probability lies within 1e-5 of top_p / min_p's threshold may fall either side in fp32 by summation
order; such inputs are discarded after checking with the reference itself): processed scores bit-equal, the
distribution within the float32 softmax bound below.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mlx.core as mx

from impl.outetts.sampler import Sampler, SamplerConfig, SamplerError, probabilities, process_logits
from reference import outetts as R

U = 2.0 ** -24

# Softmax of bit-equal scores (asserted first): both sides subtract the same max (one correctly rounded op), then
# each p_i is within (e_exp + gamma_{n-1} + 2 u) p_i of the exact softmax of those scores: exp's relative error
# (MLX's CPU softmax uses its simd exp, within 64.9 u over every float32 input, mlx 0.32.4, see tests/test_ops.py;
# torch's Sleef expf_u10 within 1 ulp <= 2 u), the sum over the n-token support, and the normalisation (a division,
# or a reciprocal and a product). Both sides, second-order terms in the 1.01:
#     |p - p_ref| <= 1.01 (65 u + 2 u + 2 gamma_n + 4 u) p_ref,   gamma_n = n u / (1 - n u).


def _softmax_bound(p_ref: np.ndarray) -> np.ndarray:
    n = np.count_nonzero(p_ref > 0, axis=-1, keepdims=True)
    return 1.01 * (71 * U + 2 * n * U / (1 - n * U)) * p_ref


def test_outetts_sampler_defaults_match_outetts():
    ref = R.sampler_defaults()
    ours = SamplerConfig()
    for k in ("temperature", "repetition_penalty", "repetition_range", "top_k", "top_p", "min_p"):
        assert getattr(ours, k) == ref[k], k


def test_outetts_sampler_order_matches_transformers():
    names = [type(p).__name__ for p in R.logits_processor()]
    assert names == ["RepetitionPenaltyLogitsProcessorPatch", "TemperatureLogitsWarper", "TopKLogitsWarper",
                     "TopPLogitsWarper", "MinPLogitsWarper"]


@st.composite
def _case(draw):
    V = draw(st.integers(2, 300))
    B = draw(st.integers(1, 3))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    logits = draw(hnp.arrays(np.float32, (B, V), unique=True,
                             elements=st.floats(-1, 1, width=32, allow_subnormal=False))) * np.float32(scale)
    L = draw(st.integers(0, 150))
    ids = draw(hnp.arrays(np.int64, (B, L), elements=st.integers(0, V - 1)))
    if draw(st.booleans()):
        cfg = SamplerConfig()
    else:
        cfg = SamplerConfig(temperature=draw(st.floats(0.05, 3.0)),
                            repetition_penalty=draw(st.floats(0.5, 2.5)),
                            top_k=draw(st.integers(0, V + 3)),
                            top_p=draw(st.floats(0.05, 1.0)),
                            min_p=draw(st.floats(0.0, 1.0)))
    return logits, ids, cfg


def _kw(cfg: SamplerConfig, **over):
    kw = dict(temperature=cfg.temperature, repetition_penalty=cfg.repetition_penalty, top_k=cfg.top_k,
              top_p=cfg.top_p, min_p=cfg.min_p)
    kw.update(over)
    return kw


def _window(ids: np.ndarray, cfg: SamplerConfig) -> mx.array:
    return mx.array(ids[:, max(0, ids.shape[1] - cfg.repetition_range):])


@settings(max_examples=100, deadline=None)
@given(case=_case())
def test_outetts_sampler_distribution(case):
    logits, ids, cfg = case
    p_ref = R.probabilities(logits, ids, **_kw(cfg))
    # Away from the decision boundaries: the reference's support is stable under 1e-5 nudges of the thresholds.
    support = p_ref > 0
    for nudge in (dict(top_p=min(1.0, cfg.top_p * (1 + 1e-5))), dict(top_p=cfg.top_p * (1 - 1e-5)),
                  dict(min_p=min(1.0, cfg.min_p * (1 + 1e-5))), dict(min_p=cfg.min_p * (1 - 1e-5))):
        assume(np.array_equal(R.probabilities(logits, ids, **_kw(cfg, **nudge)) > 0, support))
    scores = np.array(process_logits(mx.array(logits), _window(ids, cfg), cfg))
    np.testing.assert_array_equal(scores, R.process(logits, ids, **_kw(cfg)))  # penalty, temperature, filters
    got = np.array(probabilities(mx.array(logits), _window(ids, cfg), cfg))
    assert got.shape == p_ref.shape
    np.testing.assert_array_equal(got > 0, support)
    ratio = float(np.max(np.abs(got - p_ref) / np.where(support, _softmax_bound(p_ref), 1.0)))
    assert ratio <= 1.0, f"|p - p_ref| up to {ratio:.3g} x the softmax bound"


@settings(max_examples=100, deadline=None)
@given(case=_case())
def test_outetts_sampler_greedy_scores_exact(case):
    logits, ids, cfg = case
    greedy = SamplerConfig(temperature=0, repetition_penalty=cfg.repetition_penalty)
    ref = R.process(logits, ids, repetition_penalty=greedy.repetition_penalty, do_sample=False)
    got = np.array(process_logits(mx.array(logits), _window(ids, greedy), greedy))
    np.testing.assert_array_equal(got, ref)
    s = Sampler(greedy, seed=0)
    np.testing.assert_array_equal(np.array(s(mx.array(logits), _window(ids, greedy))), ref.argmax(-1))


def test_outetts_sampler_window_is_64_tokens():
    V = 10
    logits = np.linspace(1, 2, V, dtype=np.float32)[None]
    ids = np.array([[9] + [0] * 64])  # token 9 is 65 tokens back: outside the window, not penalised
    p_ref = R.probabilities(logits, ids, top_k=0, top_p=1.0, min_p=0.0)
    cfg = SamplerConfig(top_k=0, top_p=1.0, min_p=0.0)
    got = np.array(probabilities(mx.array(logits), _window(ids, cfg), cfg))
    assert np.all(np.abs(got - p_ref) <= _softmax_bound(p_ref))  # the bound derived above
    assert got[0, 9] == got.max()


@pytest.mark.parametrize("back", [1, 2, 64])
def test_outetts_sampler_window_newest_and_oldest_ids_penalised(back):
    """Both ends of the 64-id window are penalised: the newest id (1 back), the one before it, and the oldest (64
    back); a window that drops its newest id (ids 2..65 back, or 63 ids) fails here."""
    V, A = 10, 9
    logits = np.linspace(1, 2, V, dtype=np.float32)[None]
    ids = np.array([[0] * (64 - back) + [A] + [0] * (back - 1)])  # A is `back` ids before the next token
    cfg = SamplerConfig(temperature=0)  # the shipped window 64, penalty 1.1
    ref = R.process(logits, ids, repetition_penalty=cfg.repetition_penalty, do_sample=False)
    got = np.array(process_logits(mx.array(logits), _window(ids, cfg), cfg))
    np.testing.assert_array_equal(got, ref)
    assert got[0, A] == np.float32(2.0) / np.float32(1.1), "the id was not penalised"


@pytest.mark.parametrize("back,where", [(1, "prompt-first-step"), (2, "prompt-first-step"), (1, "generated"),
                                        (2, "generated")])
def test_outetts_sampler_window_newest_ids_in_decode_loop(back, where):
    """The real decode loop's window holds the newest ids: the last prompt id at the prefill step, the last
    generated id at a later step (a tie decided by their penalty, against outetts' processor on the same logits;
    parity.specs.sampler.window_case)."""
    from impl.outetts import generate as G
    from parity.specs.sampler import LogitsScriptLM, window_case

    prompt, rows, s = window_case(back, where)
    cfg = SamplerConfig(temperature=0)
    got = G.decode_loop(LogitsScriptLM(rows), None, prompt, Sampler(cfg), budget=len(rows))
    ids = list(prompt)
    for row in rows:
        ids.append(int(R.process(row[None], np.array([ids]), repetition_penalty=1.1, do_sample=False)[0].argmax()))
    want = ids[len(prompt):]
    assert want[s] == 6, "the reference does not decide the tie by the penalty"
    assert got == want, f"decision step {s} (id {back} back): impl chose {got[s]}, outetts {want[s]}"


def test_outetts_sampler_draws_follow_distribution_and_seed():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 12)).astype(np.float32) * 2
    ids = np.array([[1, 2, 3]])
    cfg = SamplerConfig(top_k=6, top_p=0.95, min_p=0.02, temperature=0.8)
    p = R.probabilities(logits, ids, **_kw(cfg))[0]
    n = 20000
    draws = np.array(Sampler(cfg, seed=7)(mx.array(np.repeat(logits, n, 0)), mx.array(np.repeat(ids, n, 0))))
    freq = np.bincount(draws, minlength=12) / n
    assert np.all(freq[p == 0] == 0)
    # n seeded draws: each count is Binomial(n, p_i), sd sqrt(p_i (1 - p_i) / n) <= 0.0035 here; 5 sd per token
    # (two-sided 5.7e-7 each, < 1e-5 over the 12 tokens) if the draws follow p; a wrong temperature/filter moves
    # a p_i by far more than that
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)), (freq, p)
    again = np.array(Sampler(cfg, seed=7)(mx.array(np.repeat(logits, n, 0)), mx.array(np.repeat(ids, n, 0))))
    np.testing.assert_array_equal(draws, again)
    other = np.array(Sampler(cfg, seed=8)(mx.array(np.repeat(logits, n, 0)), mx.array(np.repeat(ids, n, 0))))
    assert not np.array_equal(draws, other)


@pytest.mark.parametrize("kw,msg", [(dict(temperature=-1), "temperature"), (dict(top_p=1.5), "top_p"),
                                    (dict(min_p=-0.1), "min_p"), (dict(top_k=-1), "top_k"),
                                    (dict(repetition_penalty=0), "repetition_penalty")])
def test_outetts_sampler_config_errors(kw, msg):
    with pytest.raises(SamplerError, match=msg):
        SamplerConfig(**kw)


@pytest.mark.parametrize("seed", [0, 1])
def test_outetts_sampler_distribution_full_vocab(seed):
    """The real model's 134,400-token vocabulary, LM-like logits (a few large, a long flat tail)."""
    rng = np.random.default_rng(seed)
    V = 134400
    logits = rng.normal(0, 1, (1, V)).astype(np.float32)
    logits[0, rng.choice(V, 60, replace=False)] += rng.uniform(4, 9, 60).astype(np.float32)
    ids = rng.integers(0, V, (1, 300))
    ids[0, -20:] = np.argsort(logits[0])[-20:]  # recent tokens among the top ones: the penalty matters
    for cfg in (SamplerConfig(), SamplerConfig(temperature=1.3, top_k=0, top_p=0.8, min_p=0.0)):
        p_ref = R.probabilities(logits, ids, **_kw(cfg))
        got = np.array(probabilities(mx.array(logits), _window(ids, cfg), cfg))
        np.testing.assert_array_equal(got > 0, p_ref > 0)
        ratio = float(np.max(np.abs(got - p_ref) / np.where(p_ref > 0, _softmax_bound(p_ref), 1.0)))
        assert ratio <= 1.0, f"|p - p_ref| up to {ratio:.3g} x the softmax bound"
