"""OuteTTS v3 tokenizer, text normalisation, chunking and prompt ids: impl vs outetts 0.4.4's own code.

The reference is outetts' PromptProcessor (loading our generated tokenizer through transformers' AutoTokenizer)
and outetts' chunk_text; every comparison is exact (strings, token ids).
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from impl.outetts import text as T
from impl.outetts.prompt import prompt_ids, prompt_pieces
from impl.outetts.tokenizer import Tokenizer, TokenizerError
from impl.outetts.tokens import SPECIAL, special_token_list
from impl.seeded.outetts import build_tokenizer
from impl.seeded.speaker import synthetic_speaker
from impl.speaker.profile import SpeakerError, load_speaker, validate_speaker
from reference import outetts as R

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text pieces that exercise every normalisation rule and the tokenizer's edge cases.
_WORDS = st.sampled_from(["hello", "World", "it", "'s", "can", " 't", "I'm", "don't", "ok", "a", "Zoë", "naïve",
                          "Привет", "мир", "Γειά", "café", "日本語", "こんにちは", "你好", "세계", "مرحبا",
                          "2024", "3.14", "1,000", "10:30", "x" * 40, "<|im_end|>", "<|c1_5|>", "<|", "|>",
                          "word ' s", "rock 'n", "'N", "ſ", "ÃƒÂ©", "Ã©", "â€™"])
_PUNCT = st.sampled_from([".", ",", "!", "?", ";", ":", "...", "…", "!!", "??", "?!", "-", "--", "—", "–", "−",
                          "\"", "“", "”", "«", "»", "'", "‘", "’", "`", "´", "(", ")", "&", "%", "$", "#", "@",
                          "\n", "\t", "  ", "\u200b", "\ufeff", "\u00ad", "\x07", "\x85", "ﬁ", "①", "Ⅻ", "ｆｕｌｌ"])
_TEXTS = st.one_of(
    st.lists(st.one_of(_WORDS, _PUNCT, st.just(" ")), min_size=1, max_size=40).map("".join),
    st.lists(st.one_of(_WORDS, _PUNCT), min_size=1, max_size=30).map(" ".join),
    st.text(min_size=1, max_size=80),
)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("outetts_tok") / "tokenizer")


@pytest.fixture(scope="module")
def tok(tok_dir):
    return Tokenizer(tok_dir)


@pytest.fixture(scope="module")
def ref(tok_dir):
    return R.PromptReference(tok_dir)


# --------------------------------------------------------------------------------------------- tokenizer

def test_outetts_tokenizer_layout(tok, ref):
    specials = special_token_list()
    first = tok.token_id(SPECIAL.bos)
    assert [tok.token_id(t) for t in specials] == list(range(first, first + len(specials)))
    assert tok.vocab_size == first + len(specials) == len(ref.tokenizer)
    assert tok.c1_ids.tolist() == [tok.token_id(f"<|c1_{i}|>") for i in range(1025)]
    # outetts' own code maps (first id of each encoded code string -> code) agree with ours
    assert ref.processor.c1 == {int(t): i for i, t in enumerate(tok.c1_ids)}
    assert ref.processor.c2 == {int(t): i for i, t in enumerate(tok.c2_ids)}
    assert ref.tokenizer.eos_token == SPECIAL.eos and ref.tokenizer.eos_token_id == tok.eos_id


def test_outetts_tokenizer_deterministic(tok_dir, tmp_path):
    again = build_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (again / name).read_bytes() == (tok_dir / name).read_bytes(), name


@SETTINGS
@given(text=_TEXTS)
def test_outetts_tokenizer_encode_matches_transformers(tok, ref, text):
    assert tok.encode(text) == ref.tokenizer.encode(text, add_special_tokens=False)


def test_outetts_tokenizer_errors(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        Tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a readable"):
        Tokenizer(tmp_path)


def test_outetts_tokenizer_without_v3_tokens(tmp_path):
    from tokenizers import Tokenizer as HF
    from tokenizers.models import BPE

    HF(BPE(vocab={"a": 0, "b": 1}, merges=[])).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(TokenizerError, match="not an OuteTTS v3 tokenizer"):
        Tokenizer(tmp_path)


# ------------------------------------------------------------------------------------------------- text

@SETTINGS
@given(text=_TEXTS)
def test_outetts_text_normalize_matches(ref, text):
    assert T.normalize(text) == ref.normalize(text)


_LONG = st.lists(st.one_of(_WORDS, st.sampled_from([".", "!", "?", "。", ",", "\n"])), min_size=1,
                 max_size=160).map(" ".join)


@SETTINGS
@given(text=st.one_of(_LONG, _TEXTS))
def test_outetts_text_chunks_match(text):
    assert T.chunk_text(text) == R.chunk_text(text)


def test_outetts_text_chunks_long_text_not_truncated():
    words = [f"w{i}" for i in range(1000)]
    text = " ".join(words[:500]) + ". " + " ".join(words[500:]) + "."
    chunks = T.chunk_text(text)
    assert chunks == R.chunk_text(text)
    assert len(chunks) > 30 and all(len(c.split()) <= 30 for c in chunks)
    assert " ".join(chunks).replace(".", "").split() == words  # every word, in order, once


# ------------------------------------------------------------------------------------------------ prompt

def _speaker_variants():
    base = synthetic_speaker(3, "Hello there, this is a speaker.")
    no_punct = synthetic_speaker(4, "no final punctuation here")
    japanese = synthetic_speaker(5, "こんにちは 世界")
    odd = synthetic_speaker(6, "odd values! ")
    odd["words"][0]["duration"] = 25.5          # no <|t_25.50|> token: BPE-encoded text, as in outetts
    odd["words"][0]["features"] = {"energy": 150}  # out-of-range feature, missing keys default to 0
    odd["words"][1]["duration"] = 1             # an int duration formats as 1.00
    odd["words"][1]["word"] = ""
    return [None, base, no_punct, japanese, odd]


@SETTINGS
@given(text=_TEXTS, which=st.integers(0, 4))
def test_outetts_prompt_ids_exact(tok, ref, text, which):
    speaker = _speaker_variants()[which]
    if not T.normalize(text):
        with pytest.raises(T.TextError, match="empty"):
            prompt_ids(tok, text, speaker)
        return
    assert "".join(prompt_pieces(text, speaker)) == ref.prompt(text, speaker)
    assert prompt_ids(tok, text, speaker) == ref.prompt_ids(text, speaker)


@st.composite
def _profiles(draw):
    """Official-schema profiles with any words, durations (in and outside the <|t_..|> range), features."""
    n = draw(st.integers(1, 6))
    words = []
    for _ in range(n):
        frames = draw(st.integers(0, 8))
        words.append({
            "word": draw(st.one_of(_WORDS, st.text(max_size=8))),
            "duration": draw(st.one_of(st.integers(0, 2000).map(lambda c: round(c / 100, 2)),
                                       st.floats(0, 60, allow_nan=False))),
            "c1": draw(st.lists(st.integers(0, 1023), min_size=frames, max_size=frames)),
            "c2": draw(st.lists(st.integers(0, 1023), min_size=frames, max_size=frames)),
            "features": draw(st.dictionaries(st.sampled_from(["energy", "spectral_centroid", "pitch"]),
                                             st.integers(-5, 150))),
        })
    text = draw(st.one_of(_TEXTS, st.just(" ".join(w["word"] for w in words))))
    return {"text": text, "words": words, "global_features": {}, "interface_version": 3}


@SETTINGS
@given(text=_TEXTS, speaker=_profiles())
def test_outetts_prompt_ids_exact_random_profiles(tok, ref, text, speaker):
    assume(T.normalize(text))
    assert prompt_ids(tok, text, speaker) == ref.prompt_ids(text, speaker)


def test_outetts_prompt_long_text_and_profile(tok, ref):
    text = " ".join(["Sentence number %d is here, with words." % i for i in range(60)])
    speaker = synthetic_speaker(0, " ".join(f"w{i}" for i in range(40)), frames_per_word=(20, 40))
    ids = prompt_ids(tok, text, speaker)
    assert ids == ref.prompt_ids(text, speaker)
    assert ids[0] == tok.token_id(SPECIAL.bos) and ids[-1] == tok.word_start_id


def test_outetts_prompt_does_not_mutate_speaker(tok):
    speaker = synthetic_speaker(1, "no punctuation")
    before = json.dumps(speaker)
    assert prompt_ids(tok, "one", speaker) == prompt_ids(tok, "one", speaker)
    assert json.dumps(speaker) == before


@pytest.mark.parametrize("text", ["", "   ", "\n\t", '""', "\u200b\ufeff"])
def test_outetts_prompt_empty_text_error(tok, text):
    with pytest.raises(T.TextError, match="empty"):
        prompt_ids(tok, text, None)


# ------------------------------------------------------------------------------------------------ speaker

def test_outetts_speaker_roundtrip(tmp_path):
    sp = synthetic_speaker(0)
    (tmp_path / "s.json").write_text(json.dumps(sp, indent=2))
    assert load_speaker(tmp_path / "s.json") == sp


def _bad(mutate):
    sp = synthetic_speaker(0)
    mutate(sp)
    return sp


@pytest.mark.parametrize("speaker,msg", [
    (_bad(lambda s: s.pop("interface_version")), "version mismatch: 2 != 3"),
    (_bad(lambda s: s.update(interface_version=4)), "version mismatch: 4 != 3"),
    (_bad(lambda s: s.pop("text")), "'text'"),
    (_bad(lambda s: s.update(words=[])), "non-empty list"),
    (_bad(lambda s: s["words"][1].pop("c2")), r"words\[1\] lacks field 'c2'"),
    (_bad(lambda s: s["words"][0].update(c2=[1])), "equal length"),
    (_bad(lambda s: s["words"][0]["c1"].__setitem__(0, 1024)), r"words\[0\].c1 holds 1024"),
    (_bad(lambda s: s["words"][0].update(duration=-1)), "non-negative"),
    (_bad(lambda s: s["words"][0].update(features={"pitch": 0.5})), "features.pitch must be an integer"),
    ([1, 2], "JSON object"),
])
def test_outetts_speaker_errors(speaker, msg):
    with pytest.raises(SpeakerError, match=msg):
        validate_speaker(speaker)


def test_outetts_speaker_file_errors(tmp_path):
    with pytest.raises(SpeakerError, match="not found"):
        load_speaker(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SpeakerError, match="not a JSON file"):
        load_speaker(tmp_path / "bad.json")


def test_outetts_prompt_tokenizer_with_stripping_added_tokens(tok_dir, tmp_path):
    """Added tokens with rstrip/lstrip (as some HF tokenizers have) change the segmentation: still exact."""
    import shutil

    d = tmp_path / "strip"
    shutil.copytree(tok_dir, d)
    data = json.loads((d / "tokenizer.json").read_text())
    for t in data["added_tokens"]:
        if t["content"] in (SPECIAL.bos, SPECIAL.word_end, SPECIAL.audio_start):
            t["rstrip"] = t["lstrip"] = True
    (d / "tokenizer.json").write_text(json.dumps(data))
    tok2 = Tokenizer(d)
    assert not tok2.plain_added
    ref2 = R.PromptReference(d)
    for text, sp in (("Hello  world.", SPEAKER_SMALL), ("Just text", None)):
        assert prompt_ids(tok2, text, sp) == ref2.prompt_ids(text, sp)
    assert prompt_ids(tok2, "Hello.", SPEAKER_SMALL) != prompt_ids(Tokenizer(tok_dir), "Hello.", SPEAKER_SMALL)


SPEAKER_SMALL = synthetic_speaker(9, "Two words.")
