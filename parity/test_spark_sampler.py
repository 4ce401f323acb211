"""Spark-TTS sampler: impl (MLX) scores and distribution vs the processors transformers builds for the official
generate call (parity/specs/spark_sampler.py); greedy, seeded draws."""
from __future__ import annotations

import inspect

import mlx.core as mx
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from impl.spark import sampler as S
from parity.specs import spark_sampler as C
from reference import spark as R

def _window(B: int) -> mx.array:
    """No repetition window: Spark's call has no penalty."""
    return mx.zeros((B, 0), dtype=mx.uint32)


def test_spark_sampler_defaults_equal_official_inference():
    from spark_tts_lib.SparkTTS import SparkTTS

    p = inspect.signature(SparkTTS.inference).parameters
    assert (p["temperature"].default, p["top_k"].default, p["top_p"].default) == (S.TEMPERATURE, S.TOP_K, S.TOP_P)
    cfg = S.config()
    assert (cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty, cfg.min_p) == (0.8, 50, 0.95, 1.0, 0.0)


def test_spark_sampler_order_is_transformers():
    assert [type(p).__name__ for p in R.logits_processor()] == ["TemperatureLogitsWarper", "TopKLogitsWarper",
                                                                 "TopPLogitsWarper"]


@st.composite
def _case(draw):
    V, B = draw(st.integers(2, 300)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    logits = draw(hnp.arrays(np.float32, (B, V), unique=True,
                             elements=st.floats(-1, 1, width=32, allow_subnormal=False))) * np.float32(scale)
    if draw(st.booleans()):
        kw = dict(C.OFFICIAL)
    else:
        kw = dict(temperature=draw(st.floats(0.05, 3.0)), top_k=draw(st.integers(1, V + 3)),
                  top_p=draw(st.floats(0.05, 1.0)))
    return logits, kw


def _check(logits: np.ndarray, kw) -> None:
    cfg = S.config(**kw)
    p_ref = R.probabilities(logits, **kw)
    support = p_ref > 0
    scores = np.array(S.process_logits(mx.array(logits), _window(len(logits)), cfg))
    ref = R.process(logits, **kw)
    np.testing.assert_array_equal(scores > -np.inf, ref > -np.inf)
    np.testing.assert_array_equal(scores[support], ref[support])  # temperature, top-k, top-p: bit-equal
    got = np.array(S.probabilities(mx.array(logits), _window(len(logits)), cfg))
    np.testing.assert_array_equal(got > 0, support)
    ratio = float(np.max(np.abs(got - p_ref) / np.where(support, C.softmax_bound(p_ref), 1.0)))
    assert ratio <= 1.0, f"|p - p_ref| up to {ratio:.3g} x the softmax bound"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(case=_case())
def test_spark_sampler_distribution(case):
    logits, kw = case
    support = R.probabilities(logits, **kw) > 0
    for top_p in (min(1.0, kw["top_p"] * (1 + 1e-5)), kw["top_p"] * (1 - 1e-5)):  # away from the top-p edge
        assume(np.array_equal(R.probabilities(logits, **dict(kw, top_p=top_p)) > 0, support))
    _check(logits, kw)


def test_spark_sampler_distribution_full_vocab():
    """The real 166,000-token vocabulary at the official settings, two seeds."""
    for seed in (0, 1):
        _check(C.full_vocab(seed), dict(C.OFFICIAL))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(case=_case())
def test_spark_sampler_greedy_is_argmax_of_top_k_1(case):
    """Greedy = the official call with top_k=1 (the one candidate left is the argmax; the e2e tests' reference)."""
    logits, kw = case
    ref = R.process(logits, **dict(kw, top_k=1))
    got = np.array(S.make_sampler(greedy=True)(mx.array(logits), _window(len(logits))))
    assert np.all(np.isfinite(ref[np.arange(len(ref)), got]))
    assert np.all(np.sum(np.isfinite(ref), -1) == 1)


def test_spark_sampler_seeded_draws_follow_distribution():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(1, 80)) * 3).astype(np.float32)
    p = R.probabilities(logits, **C.OFFICIAL)[0]
    n = 20000
    many = mx.array(np.repeat(logits, n, 0))
    draws = np.array(S.make_sampler(seed=7)(many, _window(n)))
    freq = np.bincount(draws, minlength=80) / n
    assert np.all(freq[p == 0] == 0)
    # 4.5 binomial standard deviations (sqrt(p (1 - p) / n) <= 0.0035): false alarm <= 80 x 6.8e-6 < 1e-3
    assert np.max(np.abs(freq - p)) < 4.5 * np.sqrt(0.25 / n), (freq, p)
    np.testing.assert_array_equal(draws, np.array(S.make_sampler(seed=7)(many, _window(n))))
    assert not np.array_equal(draws, np.array(S.make_sampler(seed=8)(many, _window(n))))
