"""OuteTTS v3 generation: impl (MLX LM + loop) vs outetts' HF backend (transformers generate) on outetts' prompt.

The model is a tiny seeded Llama (impl.seeded.outetts.TINY_LM_CONFIG) written in HF format with the
generated v3 tokenizer; the reference loads the same folder with transformers through outetts' HFModel and runs
InterfaceHF.chunk_generation (outetts' default). Greedy tokens must be identical; codes parsing is exact.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlx.core as mx

from impl.outetts import generate as G
from impl.outetts.prompt import prompt_ids
from impl.outetts.sampler import SamplerConfig
from impl.outetts.text import TextError, chunk_text
from impl.outetts.tokenizer import Tokenizer
from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir
from impl.seeded.speaker import synthetic_speaker
from parity.specs.sampler import LogitsScriptLM, window_case
from reference import outetts as R

SPEAKER = synthetic_speaker(0, "Hello there, this is me speaking.")


def _greedy(max_length: int = 8192) -> G.GenerationConfig:
    """outetts' own stopping (EOS or max_length, no cap of ours), greedy."""
    return G.GenerationConfig(greedy=True, max_new_tokens=None, outetts=G.OuteTTSOptions(max_length=max_length))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("outetts") / "tiny", TINY_LM_CONFIG, seed=0, nontrivial=True)


@pytest.fixture(scope="module")
def tts(model_dir):
    return G.load(model_dir, codec=FakeCodec())


@pytest.fixture(scope="module")
def ref(model_dir):
    return R.GenerationReference(model_dir)


def _prompt_len(tts, text, speaker):
    return max(len(prompt_ids(tts.tokenizer, c, speaker)) for c in chunk_text(text))


@pytest.mark.parametrize("text,speaker", [
    ("Testing one two three.", SPEAKER),
    ("No speaker at all, just text!", None),
    ("Ünïcode, digits 1234 and — dashes… “quotes”", synthetic_speaker(2, "no final punctuation")),
])
def test_outetts_generate_greedy_tokens_match(tts, ref, text, speaker):
    max_length = _prompt_len(tts, text, speaker) + 48
    cfg = _greedy(max_length)
    got = tts.generate_tokens(text, speaker, cfg)
    want = ref.generate_tokens(text, speaker, max_length=max_length)
    assert len(set(want)) > 5, "degenerate reference output: the test would not see a divergence"
    assert got == want


def test_outetts_generate_real_vocab_size(tmp_path):
    """The 1B model's 134,400-row embedding (tokenizer ids fill the first rows), greedy and sampled."""
    d = write_model_dir(tmp_path / "wide", dict(TINY_LM_CONFIG, vocab_size=134400), seed=1, nontrivial=True)
    tts = G.load(d, codec=FakeCodec())
    text = "A wider vocabulary."
    max_length = _prompt_len(tts, text, SPEAKER) + 24
    got = tts.generate_tokens(text, SPEAKER, _greedy(max_length))
    assert got == R.GenerationReference(d).generate_tokens(text, SPEAKER, max_length=max_length)
    unbounded = G.GenerationConfig(max_new_tokens=None, outetts=G.OuteTTSOptions(max_length=max_length))
    sampled = tts.generate_tokens(text, SPEAKER, unbounded)
    assert len(sampled) == 24 and all(0 <= t < 134400 for t in sampled)


def test_outetts_generate_chunked_long_text_matches(tts, ref):
    text = " ".join(f"This is sentence number {i}, and it keeps going for a while." for i in range(8))
    chunks = chunk_text(text)
    assert len(chunks) >= 3  # chunked, not truncated
    max_length = _prompt_len(tts, text, SPEAKER) + 12
    cfg = _greedy(max_length)
    results = list(tts.generate_chunks(text, SPEAKER, cfg))
    assert [r.text for r in results] == chunks
    assert all(r.prompt_len + len(r.tokens) == max_length for r in results)  # max_length per chunk, as HF
    got = [t for r in results for t in r.tokens]
    assert got == ref.generate_tokens(text, SPEAKER, max_length=max_length)


def test_outetts_generate_stops_at_eos(tts, ref):
    text = "Stop here."
    max_length = _prompt_len(tts, text, SPEAKER) + 40
    free = tts.generate_tokens(text, SPEAKER, _greedy(max_length))
    k = next(i for i in range(3, len(free)) if free[i] not in free[:i])
    stop = free[k]
    impl_stop = G.TTS(tts.lm, tts.tokenizer, stop_ids=[stop])
    got = impl_stop.generate_tokens(text, SPEAKER, _greedy(max_length))
    want = ref.generate_tokens(text, SPEAKER, max_length=max_length, eos_token_id=stop)
    assert got == want == free[:k + 1]  # EOS included, nothing after it


def test_outetts_generate_sampling_seeded(tts):
    cfg = G.GenerationConfig(max_new_tokens=30, seed=3)
    a = tts.generate_tokens("Seeded sampling.", SPEAKER, cfg)
    b = tts.generate_tokens("Seeded sampling.", SPEAKER, cfg)
    c = tts.generate_tokens("Seeded sampling.", SPEAKER, G.GenerationConfig(max_new_tokens=30, seed=4))
    assert a == b and len(a) == 30 and a != c


# ---------------------------------------------------------------------------------------------- codes

@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_outetts_generate_codes_parse_matches(tts, ref, data):
    tok = tts.tokenizer
    pool = st.one_of(st.integers(0, tok.vocab_size - 1), st.sampled_from(tok.c1_ids.tolist()),
                     st.sampled_from(tok.c2_ids.tolist()))
    tokens = data.draw(st.lists(pool, max_size=200))
    got = G.extract_codes(tokens, tok)
    want = ref.extract_codes(tokens)
    assert got.shape == (2, len(want[0]))
    assert got.tolist() == [list(want[0]), list(want[1])]


def test_outetts_generate_codes_frames_outside_codebook_dropped():
    codes = np.array([[1, 1024, 3], [4, 5, 1024]])
    with pytest.warns(UserWarning, match="dropping 2 of 3 frames"):
        assert G.valid_frames(codes).tolist() == [[1], [4]]


# ------------------------------------------------------------------------------------ scripted stand-in LM

class ScriptedLM:
    """Stand-in LM: whatever the input, the next logits put the maximum on script[step]."""

    def __init__(self, script, vocab):
        self.script, self.vocab, self.calls = list(script), vocab, 0

    def __call__(self, ids, cache):
        B, L = ids.shape
        out = np.full((B, L, self.vocab), -5.0, np.float32)
        out[:, -1, self.script[min(self.calls, len(self.script) - 1)]] = 5.0
        self.calls += 1
        return mx.array(out)


class FakeCodec:
    def decode(self, codes):
        c = np.array(codes)
        assert c.ndim == 3 and c.shape[:2] == (1, 2)
        return np.repeat(c[0, 0].astype(np.float32), 320)[None]


def _scripted(tok: Tokenizer, script, **kw):
    return G.TTS(ScriptedLM(script, tok.vocab_size), tok, make_cache=lambda: None, vocab_size=tok.vocab_size,
                 codec=FakeCodec(), **kw)


def test_outetts_generate_scripted_stop_codes_and_audio(tts):
    tok = tts.tokenizer
    ws, c1, c2 = tok.word_start_id, tok.c1_ids, tok.c2_ids
    script = [ws, c1[7], c2[8], c1[9], c2[10], c1[11], tok.audio_end_id, tok.eos_id, c1[1], c2[2]]
    engine = _scripted(tok, script)
    tokens = engine.generate_tokens("Hi.", SPEAKER, _greedy())
    assert tokens == script[:8]  # stops at <|im_end|>, included
    assert G.extract_codes(tokens, tok).tolist() == [[7, 9], [8, 10]]  # unpaired c1 11 cut, as outetts
    audio, _ = _scripted(tok, script).generate("Hi.", SPEAKER, _greedy())
    assert audio.shape == (2 * 320,) and audio[0] == 7 and audio[-1] == 9


def test_outetts_generate_stream_yields_per_chunk(tts):
    tok = tts.tokenizer
    script = [tok.c1_ids[5], tok.c2_ids[6], tok.eos_id]

    class Restart(ScriptedLM):  # the script restarts with every prompt (a prefill has L > 1)
        def __call__(self, ids, cache):
            if ids.shape[1] > 1:
                self.calls = 0
            return super().__call__(ids, cache)

    engine = G.TTS(Restart(script, tok.vocab_size), tok, make_cache=lambda: None, codec=FakeCodec())
    text = " ".join(f"Sentence {i} has a handful of words in it." for i in range(8))
    pieces = list(engine.stream(text, SPEAKER, _greedy()))
    assert len(pieces) == len(chunk_text(text)) >= 2
    assert all(p.shape == (320,) and p[0] == 5 for p in pieces)


def test_outetts_generate_max_new_tokens(tts):
    tok = tts.tokenizer
    engine = _scripted(tok, [tok.c1_ids[1]] * 50)
    assert len(engine.generate_tokens("Hi.", None, G.GenerationConfig(greedy=True, max_new_tokens=7))) == 7


def test_outetts_generate_errors(tts):
    tok = tts.tokenizer
    with pytest.raises(G.GenerationError, match="vocabulary has 100"):
        G.TTS(ScriptedLM([0], 100), tok, make_cache=lambda: None, vocab_size=100)
    engine = _scripted(tok, [0])
    with pytest.raises(G.GenerationError, match="max_length is 50"):
        engine.generate_tokens("Hi.", SPEAKER, G.GenerationConfig(outetts=G.OuteTTSOptions(max_length=50)))
    with pytest.raises(TextError, match="empty"):
        engine.generate_tokens("  \n ", SPEAKER)
    with pytest.raises(G.GenerationError, match="no codec"):
        G.TTS(ScriptedLM([0], tok.vocab_size), tok, make_cache=lambda: None).decode(np.zeros((2, 3), int))


# ------------------------------------------------------------------------------------------------------ CLI

@pytest.fixture
def cli_env(model_dir, tmp_path, monkeypatch):
    import json

    from impl.outetts import cli as tts_cli

    monkeypatch.setattr(tts_cli, "_load_codec", lambda path: FakeCodec())
    speaker = tmp_path / "speaker.json"
    speaker.write_text(json.dumps(SPEAKER))
    return tmp_path, speaker


@pytest.mark.parametrize("stream", [False, True])
def test_outetts_cli_writes_audio(model_dir, cli_env, capsys, stream):
    import soundfile as sf

    from impl.cli import main

    tmp, speaker = cli_env
    out = tmp / "out.wav"
    argv = ["tts", "--text", "Hello world. This is a test.", "--speaker", str(speaker), "--out", str(out),
            "--model", str(model_dir), "--max-new-tokens", "30", "--seed", "1", "--quiet"] + \
        (["--stream"] if stream else [])
    assert main(argv) == 0
    audio, sr = sf.read(out)
    assert sr == 24000 and audio.size > 0 and audio.size % 320 == 0
    text = capsys.readouterr().out
    assert "tokens/s" in text and "RTF:" in text


def test_outetts_cli_text_file_speaks_as_text(model_dir, cli_env, capsys):
    """--text-file FILE (UTF-8) gives the same audio as --text with the file's text."""
    import soundfile as sf

    from impl.cli import main

    tmp, speaker = cli_env
    (tmp / "in.txt").write_text("Hello world. This is a test.\n", encoding="utf-8")
    common = ["--speaker", str(speaker), "--model", str(model_dir), "--max-new-tokens", "30", "--seed", "1",
              "--quiet"]
    assert main(["tts", "--text", "Hello world. This is a test.", "--out", str(tmp / "a.wav"), *common]) == 0
    assert main(["tts", "--text-file", str(tmp / "in.txt"), "--out", str(tmp / "b.wav"), *common]) == 0
    np.testing.assert_array_equal(sf.read(tmp / "a.wav")[0], sf.read(tmp / "b.wav")[0])
    assert "LM variant" in capsys.readouterr().out


@pytest.mark.parametrize("change,msg", [
    (dict(text="  "), "empty"),
    (dict(out="out.mp3"), "unknown audio extension"),
    (dict(speaker="bad"), "not a JSON file"),
    (dict(out="missing/out.wav"), "does not exist"),
])
def test_outetts_cli_errors_leave_no_output(model_dir, cli_env, capsys, change, msg):
    from impl.cli import main

    tmp, speaker = cli_env
    (tmp / "bad.json").write_text("{")
    args = dict(text="Hello.", out="out.wav", speaker=str(speaker))
    args.update(change)
    if args["speaker"] == "bad":
        args["speaker"] = str(tmp / "bad.json")
    out = tmp / args["out"]
    rc = main(["tts", "--text", args["text"], "--speaker", args["speaker"], "--out", str(out),
               "--model", str(model_dir), "--quiet"])
    assert rc == 2
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(tmp.glob(".voiceport-*"))


def test_outetts_runtime_imports_no_torch_or_transformers(model_dir):
    """impl.outetts at run time (load, prompt, generate, CLI module) never imports torch or transformers."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import impl.outetts.cli\n"
        "from impl.outetts import generate as G\n"
        "from impl.seeded.speaker import synthetic_speaker\n"
        f"tts = G.load({str(model_dir)!r}, codec=type('C', (), {{'decode': lambda s, c: c}})())\n"
        "toks = tts.generate_tokens('Hi there.', synthetic_speaker(0), G.GenerationConfig(max_new_tokens=3))\n"
        "assert len(toks) == 3\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


# ------------------------------------------------------------- repetition-penalty window inside the real loop

def _reference_greedy(prompt, rows, penalty: float):
    """transformers' greedy search with outetts' patched repetition-penalty processor on the same logits."""
    ids = list(prompt)
    for row in rows:
        scores = R.process(row[None], np.array([ids]), repetition_penalty=penalty, do_sample=False)
        ids.append(int(scores[0].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("where", ["prompt-first-step", "prompt-later-step", "generated"])
@pytest.mark.parametrize("back", [64, 65])
def test_outetts_generate_penalty_window_in_loop_matches_outetts(back, where):
    """Guards the repetition-penalty window of the real decode loop (impl.runtime.decode_loop with the
    default SamplerConfig's window, greedy): the id exactly 64 back is penalised, the id 65 back is not, as in
    outetts' RepetitionPenaltyLogitsProcessorPatch (penalty_last_n = 64) run on the same logits. A window of 63
    (or 65) in the loop, at prefill or in its per-step update, changes the decision token and fails here."""
    prompt, rows, s = window_case(back, where)
    A, B = 5, 6
    cfg = SamplerConfig(temperature=0)  # the shipped defaults: window 64, penalty 1.1
    got = G.decode_loop(LogitsScriptLM(rows), None, prompt, G.Sampler(cfg), budget=len(rows))
    want = _reference_greedy(prompt, rows, cfg.repetition_penalty)
    seq = list(prompt) + want
    assert seq[len(prompt) + s - back] == A and A not in seq[len(prompt) + s - back + 1:len(prompt) + s]
    assert want[s] == (B if back <= 64 else A), "the reference does not decide the tie by the window"
    assert got == want, f"decision step {s} (id {back} back): impl chose {got[s]}, outetts {want[s]}"
