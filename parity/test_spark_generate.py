"""Spark-TTS end to end, greedy, impl vs sparktts' SparkTTS.inference on the same seeded folder and prompt audio
(parity/specs/spark_generation.py): prompt ids, generated ids and semantic ids exact, audio within 10x the fp32 floor;
and the generation rules beyond upstream (parse, caps, chunks, errors)."""
from __future__ import annotations

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
            tts.generate(S.TEXT, voice, G.GenerationConfig(greedy=True), on_token=ids.append)
        assert ids == ref_ids, (ids, ref_ids)
        assert "\n" not in str(err.value)
        return
    audio, ids = tts.generate(S.TEXT, voice, G.GenerationConfig(greedy=True))
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
