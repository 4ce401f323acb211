"""The sampler's `mx.compile`d step (an option for GPUs) draws what the plain step draws: same operations, same
order, same keys. Impl vs impl (no parity weight: parity/test_outetts_sampler.py checks the plain step against
transformers' processors). Exact: compile fuses elementwise operations without reassociating them."""
import mlx.core as mx
import numpy as np
import pytest

from impl.outetts.sampler import Sampler, SamplerConfig


@pytest.mark.parametrize("config", [SamplerConfig(), SamplerConfig(temperature=0.0), SamplerConfig(top_k=0),
                                    SamplerConfig(temperature=1.3, top_p=1.0, min_p=0.0)], ids=str)
def test_sampler_compiled_draws_equal_plain(config):
    rng = np.random.default_rng(0)
    plain, compiled = Sampler(config, 3, compiled=False), Sampler(config, 3, compiled=True)
    assert compiled.compiled and not plain.compiled
    for _ in range(12):
        logits = mx.array(rng.standard_normal((1, 3000)).astype(np.float32) * 3)
        window = mx.array(rng.integers(0, 3000, (1, 64)).astype(np.int32))
        assert plain(logits, window).item() == compiled(logits, window).item()
    assert np.array_equal(np.array(mx.random.key_data(plain.key) if hasattr(mx.random, "key_data") else plain.key),
                          np.array(mx.random.key_data(compiled.key) if hasattr(mx.random, "key_data") else compiled.key))
