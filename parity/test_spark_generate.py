"""Spark-TTS end to end, greedy, impl vs sparktts' SparkTTS.inference on the same seeded folder and prompt audio
(parity/specs/spark_generation.py): prompt ids, generated ids and semantic ids exact, audio within 10x the fp32 floor;
and the generation rules beyond upstream (parse, caps, chunks, errors); LLM/generation_config.json as transformers'
generate merges it under the official call (honoured keys equal to the official run, the rest refused in one line).
The real sizes: parity/test_spark_e2e.py (slow)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.spark import generate as G
from parity.harness import compare
from parity.spec import FLOOR_WHY, Tol
from parity.specs import spark_generation as S
from reference import spark as R


@pytest.fixture(scope="module")
def setup(tmp_path_factory, librivox):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster on this 2-core machine (parity/test_spark.py)
    wav = librivox["0880"].wav
    folder, stops = S.folder(tmp_path_factory.mktemp("spark") / "Spark-TTS-tiny", wav)
    yield {"impl": G.load(folder), "ref": R.SparkReference(folder), "folder": folder, "wav": wav, "stops": stops}
    torch.set_num_threads(threads)


def _voice(tts, wav, kw):
    if "gender" in kw:
        return G.Voice(gender=kw["gender"], pitch=kw["pitch"], speed=kw["speed"])
    return tts.voice_from_audio(wav, kw["prompt_text"])


@pytest.mark.parametrize("case", list(S.CASES))
def test_spark_generate_greedy_equals_official(setup, case):
    kw = S.CASES[case]
    tts, ref = setup["impl"], setup["ref"]
    voice = _voice(tts, setup["wav"], kw)
    ref_prompt, ref_glob = ref.prompt_ids(S.TEXT, setup["wav"], **kw)
    assert tts.prompt(S.TEXT, voice) == ref_prompt
    if ref_glob is not None:
        assert voice.global_codes.tolist() == ref_glob.tolist()
    ref_audio, ref_ids = ref.inference(S.TEXT, setup["wav"], top_k=1, **kw)
    assert ref_ids and ref_ids[-1] in setup["stops"] and len(ref_ids) <= S.STOP_AT + 1  # it stopped at an EOS id
    if voice.creates:
        assert isinstance(ref_audio, Exception)  # upstream cannot decode fewer than 32 global ids
        ids = []
        with pytest.raises(G.GenerationError, match="global ids") as err:
            tts.generate(S.TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=None), on_token=ids.append)
        assert ids == ref_ids, (ids, ref_ids)
        assert "\n" not in str(err.value)
        return
    audio, ids = tts.generate(S.TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=None))
    assert ids == ref_ids
    sem, glob = tts.parse(ids, voice)
    assert sem.size > 0, "the case must decode some audio"
    codec64 = R.load(setup["folder"] / "BiCodec", "float64")
    r64 = R.detokenize(codec64, sem[None], glob.reshape(1, 1, -1))[0]
    res = compare(audio, r64, ref_audio, Tol.floor(why=FLOOR_WHY))
    assert res["ok"], res


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.one_of(st.integers(0, 165999), st.integers(151643, 166000 - 1), st.integers(151665, 163952)),
                    max_size=60))
def test_spark_generate_parse_equals_upstream_regex(setup, ids):
    """impl's parse = upstream's: batch_decode(skip_special_tokens=True) with the official tokenizer, then the
    regexes; any ids (text tokens spelling digits next to bicodec tokens, specials, fillers)."""
    import re

    tts = setup["impl"]
    text = setup["ref"].tokenizer.batch_decode([ids], skip_special_tokens=True)[0]
    want = [int(t) for t in re.findall(r"bicodec_semantic_(\d+)", text)]
    got = G.parse_ids(tts.tokenizer.decode(ids), "semantic")
    assert got == want
    assert G.parse_ids(tts.tokenizer.decode(ids), "global") == [int(t) for t in re.findall(r"bicodec_global_(\d+)",
                                                                                           text)]


# ----------------------------------------------------------------------------------- LLM/generation_config.json
# transformers' generate merges the LLM folder's generation config under SparkTTS.inference's call arguments
# (impl.spark.generate.generation_settings). The official Spark-TTS-0.5B folder has no generation_config.json and
# only bos/eos ids in config.json; a folder that sets more is honoured (penalty, min-p) or refused in one line.

REFUSED_VALUES = dict(
    min_length=5, min_new_tokens=5, max_time=1.0, stop_strings=["ok"], num_beams=2, num_beam_groups=2,
    diversity_penalty=0.5, penalty_alpha=0.6, dola_layers="low", typical_p=0.9, epsilon_cutoff=1e-4, eta_cutoff=1e-4,
    encoder_repetition_penalty=1.2, no_repeat_ngram_size=3, encoder_no_repeat_ngram_size=3, bad_words_ids=[[5]],
    force_words_ids=[[5]], renormalize_logits=True, constraints=["x"], forced_bos_token_id=5, forced_eos_token_id=5,
    remove_invalid_values=True, exponential_decay_length_penalty=[10, 1.1], suppress_tokens=[5],
    begin_suppress_tokens=[5], forced_decoder_ids=[[1, 5]], sequence_bias=[[[5], 1.0]], token_healing=True,
    guidance_scale=1.5, watermarking_config={"greenlist_ratio": 0.25}, num_return_sequences=2,
    return_dict_in_generate=True, prompt_lookup_num_tokens=3, assistant_early_exit=4, generation_kwargs={"x": 1})
HONOURED = {"repetition_penalty": 1.3, "min_p": 0.1}


def test_spark_generation_config_every_transformers_key_classified():
    """Each GenerationConfig key of the installed transformers is honoured, overridden by the official call, inert,
    or refused; the refused keys' defaults are transformers' (a new transformers key fails here until classified)."""
    from transformers import GenerationConfig

    defaults = GenerationConfig().to_dict()
    groups = [set(G.GEN_HONOURED), set(G.GEN_OVERRIDDEN), set(G.GEN_INERT), set(G.GEN_REFUSED)]
    known = set().union(*groups)
    assert sum(map(len, groups)) == len(known), "a key in two classes"
    assert set(defaults) == known, (sorted(set(defaults) - known), sorted(known - set(defaults)))
    assert {k: defaults[k] for k in G.GEN_REFUSED} == G.GEN_REFUSED
    assert set(REFUSED_VALUES) == set(G.GEN_REFUSED)


@pytest.mark.parametrize("where", ["generation_config.json", "config.json"])
@pytest.mark.parametrize("key", sorted(REFUSED_VALUES))
def test_spark_generation_config_refused_key_is_one_line(tmp_path, key, where):
    import json

    cfg = {"bos_token_id": 151643, "eos_token_id": 151645, key: REFUSED_VALUES[key]}
    (tmp_path / where).write_text(json.dumps(cfg))
    with pytest.raises(G.GenerationError) as err:
        G.generation_settings(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / where) in msg and key in msg, msg


def test_spark_generation_config_penalty_reads_the_whole_sequence():
    """transformers' RepetitionPenaltyLogitsProcessor gathers over all of input_ids (prompt + generated): impl's
    penalty window (the ids decode_loop hands the sampler) must cover any sequence the LM can hold, not OuteTTS'
    last 64 ids; without a penalty no window is kept."""
    from impl.spark.generate import FolderGeneration

    penalised = G.sampler_config(G.GenerationConfig(), FolderGeneration((1,), repetition_penalty=1.3))
    assert penalised.repetition_range >= 32768  # Qwen2-0.5B's max_position_embeddings
    assert G.sampler_config(G.GenerationConfig(), FolderGeneration((1,), min_p=0.1)).repetition_range == 0
    assert G.sampler_config(G.GenerationConfig()).repetition_range == 0


def test_spark_reference_runs_plain_transformers_after_outetts_patched_it():
    """`import outetts` swaps transformers' repetition penalty for a 64-id window, process-wide; the Spark reference
    builds its processors with transformers' own inside reference.spark.plain_transformers (else, in a full-suite
    run, the official side would be OuteTTS-patched), and leaves the process as it found it. Runs before the
    distribution and penalty tests below, so that they meet the patch whichever tests ran first."""
    from reference import outetts as ref_outetts
    from transformers.generation import logits_process, utils

    ref_outetts._outetts()  # imports outetts' hf_model: the patch is in place from here on

    patched = utils.RepetitionPenaltyLogitsProcessor
    assert patched is not logits_process.RepetitionPenaltyLogitsProcessor, "outetts no longer patches: drop this"
    with R.plain_transformers():
        assert utils.RepetitionPenaltyLogitsProcessor is logits_process.RepetitionPenaltyLogitsProcessor
    assert utils.RepetitionPenaltyLogitsProcessor is patched


def test_spark_generation_config_defaults_and_official_folder_layout(tmp_path):
    """No file, or no eos_token_id: no stop ids (transformers then runs to max_new_tokens); config.json's eos alone
    (the official folder);
    a refused key at its default is accepted; an eos list; bad values of the honoured keys refused."""
    import json

    assert G.generation_settings(tmp_path) == G.FolderGeneration((), 1.0, 0.0, str(tmp_path / "config.json"))
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 151645, "num_beams": 1, "min_p": None,
                                                      "hidden_size": 896}))
    assert G.generation_settings(tmp_path).stop_ids == (151645,)
    (tmp_path / "generation_config.json").write_text(json.dumps({"repetition_penalty": 1.2}))
    assert G.generation_settings(tmp_path).stop_ids == ()  # not config.json's: the file replaces it whole
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9], "repetition_penalty": 1.2}))
    got = G.generation_settings(tmp_path)  # generation_config.json wins whole: config.json's keys are not merged
    assert (got.stop_ids, got.repetition_penalty, got.min_p) == ((7, 9), 1.2, 0.0)
    for bad in ({"repetition_penalty": 0}, {"min_p": 2}, {"eos_token_id": "x"}, {"eos_token_id": []}):
        (tmp_path / "generation_config.json").write_text(json.dumps(bad))
        with pytest.raises(G.GenerationError, match="generation_config.json"):
            G.generation_settings(tmp_path)
    (tmp_path / "generation_config.json").write_text("{")
    with pytest.raises(G.GenerationError, match="not a JSON file"):
        G.generation_settings(tmp_path)


@pytest.fixture(scope="module")
def honoured(tmp_path_factory, setup):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder, stops = S.folder(tmp_path_factory.mktemp("spark-gc") / "Spark-TTS-tiny", setup["wav"], HONOURED,
                             cases=["clone-transcript"])
    yield {"impl": G.load(folder), "ref": R.SparkReference(folder), "stops": stops}
    torch.set_num_threads(threads)


def test_spark_generation_config_penalty_greedy_equals_official(setup, honoured):
    """repetition_penalty from generation_config.json: impl greedy = the official inference (top_k=1: the penalty
    applies before the cut) on that folder; and the penalty changes the ids (it is not a no-op here)."""
    kw = S.CASES["clone-transcript"]
    tts = honoured["impl"]
    assert tts.generation.repetition_penalty == HONOURED["repetition_penalty"]
    voice = tts.voice_from_audio(setup["wav"], kw["prompt_text"])
    ref_audio, ref_ids = honoured["ref"].inference(S.TEXT, setup["wav"], top_k=1, **kw)
    assert ref_ids[-1] in honoured["stops"]
    ids = []
    try:
        tts.generate(S.TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=None), on_token=ids.append)
    except G.GenerationError:
        assert isinstance(ref_audio, Exception)
    assert ids == ref_ids
    plain = []
    setup["impl"].generate_chunks(S.TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=len(ids)),
                                  on_token=plain.append).__next__()
    assert plain != ids, "the penalty changed nothing: the test would pass without it"


@pytest.mark.parametrize("seed", range(4))
def test_spark_generation_config_distribution_equals_generate_processors(honoured, seed):
    """Sampling: impl's processed scores and distribution with the folder's penalty and min-p = those of the
    processors transformers' generate builds on the official LLM for inference's call (reference.spark.
    call_processors), at the 166,000-token vocabulary, over a prompt + generated ids context."""
    import mlx.core as mx
    import torch

    from impl.spark.sampler import probabilities, process_logits
    from parity.specs.sampler import distribution_case
    from parity.specs.spark_sampler import full_vocab

    rng = np.random.default_rng([19, 7, seed])
    logits = full_vocab(seed)
    top = np.argsort(logits[0])[-80:]  # the context holds many of the likely ids: the penalty moves the top-k
    # ... early in it, 200 ids before the end (the window's length itself: test_..._penalty_reads_the_whole_sequence)
    ids = np.concatenate([rng.choice(top, 40), rng.integers(0, 166000, 200)])[None].astype(np.int64)
    procs = R.call_processors(honoured["ref"].tts.model, ids)
    with torch.no_grad():
        scores = procs(torch.as_tensor(ids), torch.as_tensor(logits).clone()).numpy()[0]
    p_ref = torch.softmax(torch.as_tensor(scores), -1).numpy()
    idx = np.flatnonzero(p_ref > 0)
    config = G.sampler_config(G.GenerationConfig(), honoured["impl"].generation)
    assert (config.repetition_penalty, config.min_p) == (HONOURED["repetition_penalty"], HONOURED["min_p"])
    window = mx.array(ids.astype(np.uint32))
    got_scores = np.array(process_logits(mx.array(logits), window, config))[0]
    got_p = np.array(probabilities(mx.array(logits), window, config))[0]
    case, _ = distribution_case(f"seed {seed}", got_p, got_scores, {"index": idx, "scores": scores[idx],
                                                                      "p": p_ref[idx]})
    assert case.ok, case
    plain = R.process(logits)[0]
    assert not np.array_equal(np.flatnonzero(plain > -np.inf), idx), "penalty/min-p changed nothing here"

