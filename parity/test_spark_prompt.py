"""Spark-TTS prompt ids: impl vs the official prompt string through the official tokenizer (parity/specs/
spark_prompt.py), exact; and the tokenizer facts the prompts rely on."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from impl.spark import prompt as P
from impl.spark import tokens as T
from parity.specs import spark_prompt as S
from reference import spark as R

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def toks():
    d = S.llm_dir()
    return T.Tokenizer(d), R.official_tokenizer(d)


def _first_diff(a, b) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"lengths {len(a)} vs {len(b)}, first difference at {n}: {a[n:n + 4]} vs {b[n:n + 4]}"


@SETTINGS
@given(text=S.texts, prompt_text=S.texts, g=S.global_codes, s=S.semantic_codes)
def test_spark_prompt_clone_ids_equal_official(toks, text, prompt_text, g, s):
    ours, theirs = toks
    for pt in (None, prompt_text):
        got = P.clone_ids(ours, text, g, s, pt)
        ref = R.encode(theirs, R.prompt_string(text, g, s, pt))
        assert got == ref, _first_diff(got, ref)


@SETTINGS
@given(text=S.texts, control=S.controls)
def test_spark_prompt_control_ids_equal_official(toks, text, control):
    ours, theirs = toks
    got = P.control_ids(ours, text, *control)
    ref = R.encode(theirs, R.control_string(text, *control))
    assert got == ref, _first_diff(got, ref)


def test_spark_prompt_texts_joined_without_separator(toks):
    """The upstream quirk, ported: transcript and text meet with no space."""
    ours, _ = toks
    with_text = P.clone_ids(ours, "How are you?", [0] * 32, [1, 2], "Hello there.")
    start = with_text.index(ours.ids[T.START_CONTENT]) + 1
    end = with_text.index(ours.ids[T.END_CONTENT])
    assert ours.decode(with_text[start:end]) == "Hello there.How are you?"


def test_spark_prompt_empty_transcript_still_adds_semantic_ids(toks):
    """Upstream tests `prompt_text is not None`: an empty transcript keeps the reference's semantic ids."""
    ours, theirs = toks
    got = P.clone_ids(ours, "Hi.", [5] * 32, [7, 8, 9], "")
    assert got == R.encode(theirs, R.prompt_string("Hi.", [5] * 32, [7, 8, 9], ""))
    assert got[-3:] == ours.semantic_ids[[7, 8, 9]].tolist()


def test_spark_tokenizer_layout_ids(toks):
    """The generated tokenizer holds every token of impl.spark.tokens.layout() at its id (both libraries), and its
    size equals the LM's 166,000 embedding rows."""
    ours, theirs = toks
    assert ours.vocab_size == len(theirs) == T.VOCAB_SIZE
    rows = T.layout()
    ids = theirs.convert_tokens_to_ids([c for _, c, _ in rows])
    assert ids == [i for i, _, _ in rows]
    assert ours.global_ids.tolist() == list(range(151665, 155761))
    assert ours.semantic_ids.tolist() == list(range(155761, 163953))
    assert (ours.eos_id, ours.ids[T.TASK_TOKEN_MAP["tts"]], ours.ids[T.START_GLOBAL]) == (151645, 165137, 165150)
    special = {c for _, c, s in rows if s}
    assert set(theirs.all_special_tokens) <= special | {"<|endoftext|>"}


def test_spark_tokenizer_decode_skips_only_special(toks):
    """`decode(skip_special_tokens=True)` as transformers' batch_decode: bicodec tokens kept, <|im_end|> dropped."""
    ours, theirs = toks
    ids = [ours.semantic_ids[5], ours.eos_id, ours.global_ids[7]] + ours.encode("x 12") + [ours.ids[T.END_STYLE]]
    assert ours.decode(ids) == theirs.batch_decode([ids], skip_special_tokens=True)[0]
    assert "im_end" not in ours.decode(ids) and "bicodec_semantic_5" in ours.decode(ids)


@pytest.mark.parametrize("kw,msg", [(dict(gender="other"), "gender='other'"), (dict(pitch="loud"), "pitch='loud'"),
                                    (dict(speed="fast"), "speed='fast'"), (dict(pitch=""), "pitch=''")])
def test_spark_prompt_control_bad_values(toks, kw, msg):
    """The library's errors name the parameter (API terms); the CLI maps them to its flags."""
    args = {**dict(gender="female", pitch="moderate", speed="moderate"), **kw}
    with pytest.raises(P.PromptError, match=msg):
        P.control_ids(toks[0], "Hi.", **args)


def test_spark_prompt_codes_out_of_range(toks):
    with pytest.raises(P.PromptError, match="global id 4096"):
        P.clone_ids(toks[0], "Hi.", [4096] + [0] * 31)
    with pytest.raises(P.PromptError, match="semantic id -1"):
        P.clone_ids(toks[0], "Hi.", [0] * 32, np.array([3, -1]), "x")
