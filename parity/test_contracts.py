"""Defaults that decide outputs, against the official packages' own: a config file or a call that leaves a key
out must get upstream's value. The report runs OuteTTS' configs, which set every key, so only these tests see a
changed default (found by the mutation self-test, parity/mutate.py: llama-default-eps, dac-default-rates,
generation-max-length). Also the fast form of a check otherwise behind a slow fixture: Spark's parse of generated ids
(spark-semantic-parse-off-by-one)."""
from __future__ import annotations

import dataclasses
import inspect

# the LlamaConfig keys that shape the forward pass (bos/eos/pad ids are read from config.json by the generation
# code, not from ModelArgs)
LLAMA_KEYS = ("num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling",
              "max_position_embeddings", "tie_word_embeddings", "attention_bias", "mlp_bias", "hidden_act")


def test_contracts_llama_defaults_equal_transformers_llama_config():
    """A config.json with only the required keys: ModelArgs takes what transformers' LlamaConfig takes."""
    from transformers import LlamaConfig

    from impl.llama import ModelArgs

    base = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4, vocab_size=100)
    ours, hf = ModelArgs.from_dict(base), LlamaConfig(**base)
    for key in LLAMA_KEYS:
        assert getattr(ours, key) == getattr(hf, key), key
    gqa = dict(base, num_key_value_heads=2, head_dim=8)  # given keys are kept, not replaced by the defaults
    assert (ModelArgs.from_dict(gqa).num_key_value_heads, ModelArgs.from_dict(gqa).head_dim) == (2, 8)


def test_contracts_dac_defaults_equal_official_dac_init():
    """DACConfig's defaults are `dac.model.DAC.__init__`'s (a checkpoint's kwargs may leave any of them out), and
    latent_dim=None resolves as upstream resolves it."""
    from dac.model.dac import DAC as OfficialDAC

    from impl.dac.model import DACConfig

    official = {k: p.default for k, p in inspect.signature(OfficialDAC.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    ours = DACConfig()
    for f in dataclasses.fields(DACConfig):
        if f.name != "latent_dim":
            assert getattr(ours, f.name) == official[f.name], f.name
    kwargs = dict(encoder_dim=8, encoder_rates=[2, 4], decoder_dim=16, decoder_rates=[4, 2], n_codebooks=2)
    assert DACConfig(**kwargs).latent_dim == OfficialDAC(**kwargs).latent_dim


def test_contracts_generation_defaults_equal_outetts():
    """GenerationConfig / DacInterface defaults that shape the output: max_length (prompt + new tokens) and the
    decode chunk, as outetts' GenerationConfig sets them; the sampler's are checked in test_outetts_sampler."""
    from outetts.models.config import GenerationConfig as OfficialConfig

    from impl.dac.interface import DacInterface
    from impl.outetts.generate import GenerationConfig, sampler_config
    from impl.outetts.sampler import SamplerConfig

    official = {f.name: f.default for f in dataclasses.fields(OfficialConfig)}
    assert GenerationConfig().outetts.max_length == official["max_length"]
    assert sampler_config(GenerationConfig()) == SamplerConfig()  # the config's defaults are the sampler's
    chunk = inspect.signature(DacInterface.__init__).parameters["chunk_length"].default
    assert chunk == official["dac_decoding_chunk"]


def test_contracts_spark_parse_equals_upstream_regex():
    r"""impl's parse of generated ids = SparkTTS.inference's: `batch_decode(skip_special_tokens=True)` with the
    official tokenizer, then `re.findall(r"bicodec_semantic_(\d+)")` (and global); ids with digits and specials
    next to bicodec tokens. The fast form of parity/test_spark_generate.py's hypothesis test (no LM, no BiCodec)."""
    import re

    from impl.spark import generate as G
    from impl.spark.tokens import Tokenizer
    from parity.specs.spark_prompt import llm_dir
    from reference import spark as R

    ours, theirs = Tokenizer(llm_dir()), R.official_tokenizer(llm_dir())
    ids = ([ours.semantic_ids[7], ours.semantic_ids[8191], ours.eos_id] + ours.encode("12 bicodec_semantic_3")
           + [ours.global_ids[0], ours.global_ids[4095], ours.semantic_ids[0], ours.ids["<|end_global_token|>"]]
           + ours.encode("x9") + [ours.semantic_ids[100], 151643, ours.global_ids[31]])
    text = theirs.batch_decode([ids], skip_special_tokens=True)[0]
    for kind in ("semantic", "global"):
        want = [int(t) for t in re.findall(rf"bicodec_{kind}_(\d+)", text)]
        assert G.parse_ids(ours.decode(ids), kind) == want, kind
    assert G.parse_ids(ours.decode(ids), "semantic")[:2] == [7, 8191]
