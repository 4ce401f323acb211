"""Contract: Spark-TTS prompt ids, impl (`impl.spark.prompt`: fixed tokens looked up, the text encoded alone) vs the
official string (`SparkTTS.process_prompt` / `process_prompt_control`) through the official tokenizer
(transformers `AutoTokenizer` on the same LLM folder, `tokenizer([prompt])` as `inference` calls it). Exact.

Inputs (hypothesis, derandomized in the tests): texts and prompt transcripts over ASCII, whitespace (\\n, \\r, \\t),
accented, combining, CJK and emoji characters and the fragments that could fool an added-token split (`<|`, `|>`,
whole Spark and Qwen tokens typed in the text); 32 global ids in [0, 4096) and 2..80 semantic ids in [0, 8192);
gender x pitch x speed over every value of GENDER_MAP x LEVELS_MAP.
"""
from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from impl.spark.tokens import GENDER_MAP, LEVELS_MAP, N_GLOBAL, N_SEMANTIC

FRAGMENTS = ["<|", "|>", "<", ">", "|", "<|im_end|>", "<|endoftext|>", "<|bicodec_semantic_3|>", "<|bicodec_global_",
             "<|end_content|>", "<|start_content|>", "<|task_tts|>", "bicodec_semantic_12", "<tool_call>", " ", "  ",
             "\n", "\r\n", "\t", "'s", "'LL", "123", "3.14", "e\u0301", "\u00e9", "\u0301", "\uff21", "\u4f60\u597d",
             "\u3053\u3093\u306b\u3061\u306f", "\U0001f600", "\u00df", "\ufb01"]
ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))

texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(ALPHABET, max_size=8),
                           st.text("abcdefghijklmnopqrstuvwxyz ,.!?", min_size=1, max_size=12)),
                 max_size=8).map("".join)
global_codes = st.lists(st.integers(0, N_GLOBAL - 1), min_size=32, max_size=32)
semantic_codes = st.lists(st.integers(0, N_SEMANTIC - 1), min_size=2, max_size=80)
controls = st.tuples(st.sampled_from(list(GENDER_MAP)), st.sampled_from(list(LEVELS_MAP)),
                     st.sampled_from(list(LEVELS_MAP)))


def llm_dir() -> Path:
    """The seeded Spark-TTS folder's LLM/ (the generated tokenizer at the real ids)."""
    from impl.seeded.spark import seeded_spark

    return seeded_spark() / "LLM"
