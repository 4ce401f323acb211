"""Contract: Spark-TTS end to end, greedy: `impl.spark.generate.SparkTTS` vs sparktts' own `SparkTTS.inference`
(reference.spark.SparkReference) on the same seeded folder and the same prompt audio (LibriVox 0880, 3 s).

Per case: prompt ids exact (the official string through AutoTokenizer), generated ids exact (the official call with
top_k=1: one candidate left, the draw is the argmax = impl's greedy), parsed semantic ids exact, audio within 10x the
fp32 floor (the official float32 pipeline's audio vs BiCodec.detokenize of the same ids in float64). Cases: cloning
without and with the prompt transcript, and voice creation (gender/pitch/speed). A random LLM writes too few global
ids for a created voice: upstream then fails in its detokenize (it cannot reshape them), impl refuses with one line;
the ids up to there must still be equal.

The folder: the tiny seeded Spark-TTS folder (impl.seeded.spark.seeded_spark: real 166,000-token layout, Qwen2
structure, BiCodec with the real id spaces) with LLM/generation_config.json adding EOS ids, so that both sides stop
within ~100 tokens instead of the official 3000 (upstream's generate at the 166,000-token vocabulary takes ~43 ms a
step here): the ids each case's impl greedy run writes first at step >= STOP_AT. Both sides read the EOS ids from that
file (transformers' generate: generation_config.json; impl: stop_ids_from_config), so the stop rule is part of
what is compared.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

TEXT = "Hello there, how are you today?"
CASES: Dict[str, Dict[str, Any]] = {
    "clone": dict(prompt_text=None),
    "clone-transcript": dict(prompt_text="He was not an ill disposed young man."),
    "create": dict(gender="female", pitch="high", speed="low"),
}
STOP_AT = 60


def _link_tree(src: Path, dst: Path) -> None:
    """dst mirrors the Spark-TTS folder src through symbolic links, LLM/ as a real folder (a file is added there)."""
    dst.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name == "LLM":
            (dst / "LLM").mkdir()
            for f in entry.iterdir():
                (dst / "LLM" / f.name).symlink_to(f.resolve())
        else:
            (dst / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


def folder(dst: Path, prompt_audio: str) -> Tuple[Path, List[int]]:
    """(the test folder, its EOS ids): the seeded tiny folder linked into `dst`, plus LLM/generation_config.json."""
    from impl.seeded.spark import seeded_spark
    from impl.spark import generate as G

    src = seeded_spark()
    _link_tree(src, dst)
    tts = G.load(dst)
    stops = [tts.tokenizer.eos_id]
    for kw in CASES.values():
        voice = (G.Voice(gender=kw["gender"], pitch=kw["pitch"], speed=kw["speed"]) if "gender" in kw else
                 tts.voice_from_audio(prompt_audio, kw["prompt_text"]))
        ids = []
        try:
            next(tts.generate_chunks(TEXT, voice, G.GenerationConfig(greedy=True, max_new_tokens=STOP_AT + 1),
                                     on_token=ids.append))
        except G.GenerationError:
            pass  # a created voice's parse fails after its ids (too few global ids): the ids are what is needed
        stops.append(ids[STOP_AT])
    (dst / "LLM" / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 151643, "eos_token_id": stops, "pad_token_id": 151643}, indent=2) + "\n")
    return dst, stops
