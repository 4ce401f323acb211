"""`voiceport tts --model spark` and the Python API (impl.spark.generate) on the tiny seeded Spark-TTS folder: a clone
runs and writes what the API gives; a created voice's global ids clone it for later chunks (scripted LM); the bad
inputs of issue 19 (empty text, prompt audio too short / silent / > 60 s, unknown gender or level, a tokenizer without
the Spark tokens, a vocabulary beyond the embeddings, ...) are one line, exit 2, nothing written."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest
import soundfile as sf

from parity.doubles import CaseFolder, assert_refused, run_cli

WHERE = "voiceport tts"


@dataclass(frozen=True)
class Fx:
    d: Path
    model: Path  # the tiny seeded Spark-TTS folder
    clip: Path  # LibriVox 0880, 3 s
    text: str  # its transcript


@pytest.fixture(scope="module")
def fx(tmp_path_factory, librivox):
    from impl.seeded.spark import seeded_spark

    return Fx(d=tmp_path_factory.mktemp("sparktts"), model=seeded_spark(), clip=Path(librivox["0880"].wav),
              text=librivox["0880"].text)


def test_spark_tts_cli_clone_writes_the_api_audio(fx, tmp_path, capsys):
    from impl.spark import generate as G

    out = tmp_path / "o.wav"
    argv = ["tts", "--model", str(fx.model), "--text", "Hello there, how are you?", "--prompt-audio", str(fx.clip),
            "--prompt-text", fx.text, "--out", str(out), "--max-new-tokens", "48", "--seed", "2"]
    rc, stdout, err = run_cli(argv, capsys)
    assert rc == 0, err
    got, sr = sf.read(out, dtype="float32")
    tts = G.load(fx.model)
    want, tokens = tts.generate("Hello there, how are you?", tts.voice_from_audio(fx.clip, fx.text),
                                G.GenerationConfig(max_new_tokens=48, seed=2))
    assert sr == 16000 and len(tokens) == 48
    np.testing.assert_array_equal(got, want)
    lines = stdout.splitlines()
    assert [line.split(":")[0].split(" ")[0] for line in lines] == ["wrote", "tokens", "stopped", "RTF"], stdout
    assert "tokens/s" in lines[1] and "48 new tokens: max_new_tokens" in lines[2]
    assert "prefill" in err and "1 chunk(s), cap 48" in err


def test_spark_tts_auto_cap_and_chunks(fx):
    from impl.spark import generate as G

    tts = G.load(fx.model)
    voice = tts.voice_from_audio(fx.clip, fx.text)
    short = tts.plan("Hello there.", voice, G.GenerationConfig(max_new_tokens=G.AUTO))
    assert len(short) == 1 and short[0].text == "Hello there."  # verbatim, as upstream
    rate = len(voice.semantic_codes) / sum(not c.isspace() for c in fx.text)
    assert short[0].budget == int(np.ceil(2 * rate * 11)) + 64, short[0].rule
    long = " ".join(["This sentence has exactly eight words in it."] * 12)
    plans = tts.plan(long, voice, G.GenerationConfig(max_new_tokens=None))
    assert len(plans) > 1 and all(len(p.text.split()) <= 50 for p in plans)
    assert all(p.budget == 3000 for p in plans)


def _script(tok, chunks: List[List[int]], vocab: int) -> list:
    """Logit rows forcing each chunk's ids; one more per chunk (decode_loop queues the step after EOS)."""
    rows = []
    for ids in chunks:
        for i in ids + [ids[-1]]:
            row = np.full(vocab, -10.0, np.float32)
            row[i] = 10.0
            rows.append(row)
    return rows


def test_spark_tts_created_voice_speaks_every_chunk(fx):
    """Creation: the first chunk writes 32 global ids then semantic ids; the next chunk is prompted as a clone of
    those 32 ids (scripted LM: its logits force each token)."""
    from impl.spark import generate as G
    from impl.spark.tokens import Tokenizer
    from parity.specs.sampler import LogitsScriptLM

    tok = Tokenizer(fx.model / "LLM")
    base = G.load(fx.model, need_w2v=False)
    glob = list(range(100, 132))
    first = [int(tok.global_ids[g]) for g in glob] + [int(s) for s in tok.semantic_ids[[5, 6, 7]]] + [tok.eos_id]
    second = [int(s) for s in tok.semantic_ids[[8, 9]]] + [tok.eos_id]
    lm = LogitsScriptLM(_script(tok, [first, second], 166000))
    tts = G.SparkTTS(lm, tok, codec=base.codec, make_cache=lambda: None, vocab_size=166000)
    text = "One two three four five six seven eight nine ten. " * 6
    voice = G.Voice(gender="male", pitch="low", speed="high")
    results = list(tts.generate_chunks(text, voice, G.GenerationConfig(greedy=True)))
    assert [r.tokens for r, _ in results] == [first, second]
    assert results[1][1].global_codes.tolist() == glob
    assert results[1][0].prompt_len == len(tts.prompt(results[1][0].text, results[1][1]))
    sem, g = tts.parse(second, results[1][1])
    assert sem.tolist() == [8, 9] and g.tolist() == glob
    audio = tts.decode(sem, g)
    assert audio.shape == (2 * 320,) and np.all(np.isfinite(audio))


def test_spark_tts_created_voice_too_few_global_ids_is_one_line(fx, tmp_path, capsys):
    """A random LLM rarely writes 32 global ids in a short cap: one line, exit 2, no output (upstream would fail
    in its detokenize)."""
    out = tmp_path / "o.wav"
    rc, _, err = run_cli(["tts", "--model", str(fx.model), "--text", "Hi.", "--gender", "female", "--out", str(out),
                          "--max-new-tokens", "20", "--quiet"], capsys)
    assert rc == 2 and not out.exists()
    assert err.strip().splitlines() == [err.strip()] and "global ids" in err and "BiCodec needs 32" in err, err


# ------------------------------------------------------------------------------------------------ bad inputs

class Ctx(CaseFolder):
    fx: Fx

    def wav(self, name: str, x: np.ndarray, sr: int = 16000) -> str:
        sf.write(self.d / name, x, sr, subtype="PCM_16")
        return str(self.d / name)

    def folder_with(self, edit: Callable[[Path], None]) -> str:
        """The tiny folder linked into the case folder, LLM/ copied, then `edit(LLM/)`."""
        import shutil

        root = self.d / "Spark"
        root.mkdir()
        for entry in self.fx.model.iterdir():
            if entry.name == "LLM":
                shutil.copytree(entry, root / "LLM")
            else:
                (root / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        edit(root / "LLM")
        return str(root)


def spark(c: Ctx, *extra: str, text: str = "Hello there.", model: Optional[str] = None, voice=None):
    out = str(c.d / "out.wav")
    voice = ["--prompt-audio", str(c.fx.clip)] if voice is None else voice
    return ["tts", "--model", model or str(c.fx.model), "--text", text, *voice, "--out", out, "--quiet",
            *extra], out


def _outetts_tokenizer(llm: Path) -> None:
    from impl.seeded.outetts import build_tokenizer

    build_tokenizer(llm)


def _vocab(n: int) -> Callable[[Path], None]:
    def edit(llm: Path) -> None:
        cfg = json.loads((llm / "config.json").read_text())
        (llm / "config.json").write_text(json.dumps(dict(cfg, vocab_size=n)))
    return edit


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Ctx], tuple]
    frags: List[str]


RNG = np.random.default_rng(0)
CASES = [
    Case("empty text", lambda c: spark(c, text=" \n "), ["--text is empty"]),
    Case("prompt audio too short", lambda c: spark(c, voice=["--prompt-audio", c.wav("s.wav", RNG.normal(0, .1, 100))]),
         ["s.wav", "too short"]),
    Case("prompt audio silent", lambda c: spark(c, voice=["--prompt-audio", c.wav("z.wav", np.zeros(16000))]),
         ["z.wav", "silent"]),
    Case("prompt audio over 60 s", lambda c: spark(c, voice=["--prompt-audio", c.wav(
        "long.wav", RNG.normal(0, .1, 16000 * 61), 16000)]), ["long.wav", "60"]),
    Case("prompt audio missing", lambda c: spark(c, voice=["--prompt-audio", str(c.d / "nope.wav")]), ["nope.wav"]),
    Case("prompt audio not audio", lambda c: spark(c, voice=["--prompt-audio", c.file("t.wav", "text")]), ["t.wav"]),
    Case("unknown gender", lambda c: spark(c, voice=["--gender", "other"]), ["--gender 'other'", "female, male"]),
    Case("unknown pitch", lambda c: spark(c, voice=["--gender", "male", "--pitch", "loud"]),
         ["--pitch 'loud'", "very_low"]),
    Case("unknown speed", lambda c: spark(c, voice=["--gender", "male", "--speed", "fast"]), ["--speed 'fast'"]),
    Case("empty pitch", lambda c: spark(c, voice=["--gender", "male", "--pitch", ""]), ["--pitch ''", "very_low"]),
    Case("pitch without gender", lambda c: spark(c, "--pitch", "high"), ["--pitch/--speed", "--gender"]),
    Case("clone and create", lambda c: spark(c, "--gender", "male"), ["--prompt-audio and --gender"]),
    Case("no voice", lambda c: spark(c, voice=[]), ["--prompt-audio FILE", "--gender"]),
    Case("transcript without audio", lambda c: spark(c, voice=["--gender", "male", "--prompt-text", "Hi."]),
         ["--prompt-text", "missing"]),
    Case("speaker with spark", lambda c: spark(c, "--speaker", str(c.fx.clip)), ["--speaker", "OuteTTS"]),
    Case("codec with spark", lambda c: spark(c, "--codec", str(c.fx.clip)), ["--codec", "BiCodec"]),
    Case("max-new-tokens 0", lambda c: spark(c, "--max-new-tokens", "0"), ["--max-new-tokens 0", "1..3000"]),
    Case("max-new-tokens 3001", lambda c: spark(c, "--max-new-tokens", "3001"), ["--max-new-tokens 3001"]),
    Case("temperature negative", lambda c: spark(c, "--temperature", "-1"), ["--temperature -1.0", ">= 0"]),
    Case("max-length with spark", lambda c: spark(c, "--max-length", "100"), ["--max-length", "OuteTTS", "Spark-TTS"]),
    Case("stream with spark", lambda c: spark(c, "--stream"), ["--stream", "Spark-TTS always decodes each chunk"]),
    Case("text file missing", lambda c: (["tts", "--model", str(c.fx.model), "--text-file", str(c.d / "none.txt"),
                                          "--prompt-audio", str(c.fx.clip), "--out", str(c.d / "o.wav")],
                                         str(c.d / "o.wav")), ["--text-file", "none.txt", "no such file"]),
    Case("text file not UTF-8", lambda c: (["tts", "--model", str(c.fx.model), "--text-file",
                                            c.file("latin.txt", "caf\xe9".encode("latin-1")),
                                            "--prompt-audio", str(c.fx.clip), "--out", str(c.d / "o.wav")],
                                           str(c.d / "o.wav")), ["--text-file", "latin.txt", "not UTF-8"]),
    Case("text file empty", lambda c: (["tts", "--model", str(c.fx.model), "--text-file", c.file("e.txt", " \n"),
                                        "--prompt-audio", str(c.fx.clip), "--out", str(c.d / "o.wav")],
                                       str(c.d / "o.wav")), ["--text-file is empty"]),
    Case("mistyped Spark folder", lambda c: spark(c, model=str(c.d / "nope" / "Spark-TTS-0.5B")),
         ["--model", "nope/Spark-TTS-0.5B", "no such folder"]),
    Case("Spark folder without BiCodec", lambda c: spark(c, model=c.folder_with(lambda llm: (
        llm.parent / "BiCodec").unlink())), ["no BiCodec/ folder"]),
    Case("unknown variant", lambda c: spark(c, "--variant", "turbo"), ["argument --variant", "'turbo'"]),
    Case("tokenizer without Spark tokens", lambda c: spark(c, model=c.folder_with(_outetts_tokenizer)),
         ["tokenizer.json", "not a Spark-TTS LLM tokenizer", "<|task_tts|>"]),
    Case("vocabulary beyond the embeddings", lambda c: spark(c, model=c.folder_with(_vocab(151936))),
         ["ids up to 165999", "151936 embedding rows"]),
    Case("vocabulary beyond the checkpoint's embeddings", lambda c: spark(c, model=c.folder_with(_vocab(170000))),
         ["170000", "model.embed_tokens.weight"]),
    Case("generation config key not honoured", lambda c: spark(c, model=c.folder_with(lambda llm: (
        llm / "generation_config.json").write_text('{"eos_token_id": 151645, "num_beams": 4}'))),
         ["generation_config.json", "num_beams=4", "does not implement"]),
    Case("no wav2vec2 for cloning", lambda c: spark(c, model=c.folder_with(lambda llm: (
        llm.parent / "wav2vec2-large-xlsr-53").unlink())), ["no wav2vec2-large-xlsr-53/ folder"]),
    Case("Spark options without spark", lambda c: (["tts", "--text", "Hi.", "--speaker", "s.json", "--gender", "male",
                                                    "--out", str(c.d / "o.wav")], str(c.d / "o.wav")),
         ["--gender", "Spark-TTS options", "--model spark"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_spark_tts_bad_input_one_line_nothing_written(fx, case, tmp_path, monkeypatch, capsys):
    c = Ctx(d=tmp_path, monkeypatch=monkeypatch)
    c.fx = fx
    argv, out = case.build(c)
    assert_refused(argv, out, tmp_path, capsys, WHERE, case.frags)
