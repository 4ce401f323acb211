"""Spark-TTS prompts straight to ids: voice cloning and voice creation, as sparktts `cli/SparkTTS.py` builds them.

`process_prompt` (cloning) joins
    <|task_tts|><|start_content|>{prompt_text}{text}<|end_content|><|start_global_token|>
    <|bicodec_global_g|> x 32 <|end_global_token|>[<|start_semantic_token|><|bicodec_semantic_s|> x T]
(the bracket only when a prompt transcript is given -- even an empty one: upstream tests `is not None`) and
`process_prompt_control` (creation) joins
    <|task_controllable_tts|><|start_content|>{text}<|end_content|>
    <|start_style_label|><|gender_G|><|pitch_label_P|><|speed_label_S|><|end_style_label|>
into one string that the tokenizer then encodes whole. Here each fixed token is looked up once and only the text is
encoded: the same ids, since every fixed token is an added token (the tokenizer splits added tokens out before
the BPE) and the text sits between two of them. Upstream quirk kept as is: the prompt transcript and the text are
joined with no separator ("Hello there." + "How are you?" -> "Hello there.How are you?"), and encoded as one string.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from impl.spark.tokens import (END_CONTENT, END_GLOBAL, END_STYLE, GENDER_MAP, LEVELS_MAP, START_CONTENT,
                               START_GLOBAL, START_SEMANTIC, START_STYLE, TASK_TOKEN_MAP, Tokenizer)


class PromptError(ValueError):
    """A prompt that cannot be built: unknown gender or level, ids out of the codebooks."""


def _codes(tok_ids: np.ndarray, codes: Sequence[int], what: str) -> List[int]:
    c = np.asarray(codes, dtype=np.int64).reshape(-1)
    bad = np.flatnonzero((c < 0) | (c >= len(tok_ids)))
    if bad.size:
        raise PromptError(f"{what} id {c[bad[0]]} at index {bad[0]} is outside [0, {len(tok_ids)})")
    return tok_ids[c].tolist()


def clone_ids(tok: Tokenizer, text: str, global_codes: Sequence[int], semantic_codes: Optional[Sequence[int]] = None,
              prompt_text: Optional[str] = None) -> List[int]:
    """`SparkTTS.process_prompt` ids: global_codes (32 BiCodec global ids of the prompt audio), semantic_codes (its
    semantic ids, used only when prompt_text is not None)."""
    t = tok.ids
    ids = [t[TASK_TOKEN_MAP["tts"]], t[START_CONTENT]]
    ids += tok.encode(text if prompt_text is None else prompt_text + text)
    ids += [t[END_CONTENT], t[START_GLOBAL]] + _codes(tok.global_ids, global_codes, "global") + [t[END_GLOBAL]]
    if prompt_text is not None:
        if semantic_codes is None:
            raise PromptError("a prompt transcript needs the prompt audio's semantic ids")
        ids += [t[START_SEMANTIC]] + _codes(tok.semantic_ids, semantic_codes, "semantic")
    return ids


def check_control(gender: str, pitch: str, speed: str) -> None:
    """The asserts of `process_prompt_control`, as one-line errors naming the parameter (`gender='other'`)."""
    for name, value, known in (("gender", gender, GENDER_MAP), ("pitch", pitch, LEVELS_MAP),
                               ("speed", speed, LEVELS_MAP)):
        if value not in known:
            raise PromptError(f"{name}={value!r}: expected one of {', '.join(known)}")


def control_ids(tok: Tokenizer, text: str, gender: str, pitch: str, speed: str) -> List[int]:
    """`SparkTTS.process_prompt_control` ids (voice creation: the LM then writes the global ids too)."""
    check_control(gender, pitch, speed)
    t = tok.ids
    return ([t[TASK_TOKEN_MAP["controllable_tts"]], t[START_CONTENT]] + tok.encode(text) +
            [t[END_CONTENT], t[START_STYLE], t[f"<|gender_{GENDER_MAP[gender]}|>"],
             t[f"<|pitch_label_{LEVELS_MAP[pitch]}|>"], t[f"<|speed_label_{LEVELS_MAP[speed]}|>"], t[END_STYLE]])
