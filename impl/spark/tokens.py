"""Spark-TTS' LLM tokens: the token strings cli/SparkTTS.py writes, their ids in Spark-TTS-0.5B/LLM, and `Tokenizer`
(the LLM folder's tokenizer.json through the `tokenizers` library only, no transformers).

Strings: sparktts `utils/token_parser.py` (TASK_TOKEN_MAP, GENDER_MAP, LEVELS_MAP and TokenParser's formats) and
`cli/SparkTTS.py` (the delimiters). Ids: the impl side never hard-codes one (it looks every string up in the
folder's tokenizer.json); `LAYOUT` below is what `impl.seeded.spark.build_tokenizer` writes:
  - 0..151642: Qwen2.5's byte-level BPE (151,643 tokens), then its 22 control tokens 151643..151664
    (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` = 151645, ...): Qwen2.5's tokenizer_config.json;
  - 151665..165157: SparkAudio's tokenizer-extension script (`extend_tokenizer`, Copyright 2025 SparkAudio, Xinsheng
    Wang; public, not in the Spark-TTS inference repository), which adds to Qwen2.5-0.5B-Instruct's tokenizer, with
    one `add_tokens` call (none special), in this order: 4096 global, 8192 semantic, pitch values 0..1000, pitch-var
    values 0..10, pitch labels 0..4, pitch-var labels 0..4, speed values 0..10, speed labels 0..4, loudness values
    0..30, loudness labels 0..4, ages 0..4, genders 0..2, emotions 0..100, then 22 task/delimiter tokens
    (`ADDED_ORDER`). Its recorded output ("Original vocab size: 151665 / Added 13493 tokens / New vocab size:
    165158") lists ids that this order reproduces: `<|bicodec_global_10|>` 151675, `<|bicodec_semantic_8191|>`
    163952, `<|pitch_value_0|>` 163953, `<|pitch_var_value_0|>` 164954, `<|pitch_label_0|>` 164965,
    `<|pitch_var_label_0|>` 164970, `<|speed_value_0|>` 164975, `<|speed_label_0|>` 164986, `<|loudness_value_0|>`
    164991, `<|loudness_label_0|>` 165022, `<|age_0|>` 165027, `<|gender_0|>` 165032, `<|emotion_0|>` 165035,
    `<|task_prompt_tts|>` 165144, `<|start_content|>` 165146, `<|start_style_label|>` 165147, `<|end_content|>`
    165152, `<|end_style_label|>` 165153, `<|start_global_token|>` 165150, `<|end_global_token|>` 165156,
    `<|start_semantic_token|>` 165151 (tests/test_spark_tokens.py checks each); the project's third-party notes
    and an independent public port agree on every id they state (global/semantic bases, `<|task_tts|>` 165137);
  - 165158..165999: `<|vp_reserved_N|>` fillers up to the LM's 166,000 embedding rows (the real checkpoint's
    tokenizer has 165,158 entries; its embedding is padded). A real checkpoint's own tokenizer.json decides every
    id: only the seeded folders use this layout.
Which tokens are "special" matters: the official decode skips special tokens before its regex, so the bicodec tokens
must not be special (else no id would survive); the Qwen control tokens are (`<|im_end|>` among them).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

N_GLOBAL, N_SEMANTIC = 4096, 8192  # BiCodec: FSQ 4^6 global codes, VQ 8192 semantic codes
GLOBAL, SEMANTIC = "<|bicodec_global_{}|>", "<|bicodec_semantic_{}|>"

# sparktts utils/token_parser.py, in file order
TASK_TOKEN_MAP = {
    "vc": "<|task_vc|>", "tts": "<|task_tts|>", "asr": "<|task_asr|>", "s2s": "<|task_s2s|>", "t2s": "<|task_t2s|>",
    "understand": "<|task_understand|>", "caption": "<|task_cap|>", "controllable_tts": "<|task_controllable_tts|>",
    "prompt_tts": "<|task_prompt_tts|>", "speech_edit": "<|task_edit|>",
}
LEVELS_MAP = {"very_low": 0, "low": 1, "moderate": 2, "high": 3, "very_high": 4}
GENDER_MAP = {"female": 0, "male": 1}

START_CONTENT, END_CONTENT = "<|start_content|>", "<|end_content|>"
START_GLOBAL, END_GLOBAL = "<|start_global_token|>", "<|end_global_token|>"
START_SEMANTIC, END_SEMANTIC = "<|start_semantic_token|>", "<|end_semantic_token|>"
START_STYLE, END_STYLE = "<|start_style_label|>", "<|end_style_label|>"
IM_END = "<|im_end|>"

# Qwen2.5's control tokens 151643..151664 and whether each is special (Qwen2.5's tokenizer_config.json)
QWEN_BASE = 151643
QWEN_CONTROL: List[Tuple[str, bool]] = [
    ("<|endoftext|>", True), ("<|im_start|>", True), (IM_END, True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
]
GLOBAL_BASE, SEMANTIC_BASE, VOCAB_SIZE = 151665, 155761, 166000

# SparkAudio's extend_tokenizer: the tokens it adds after Qwen2.5's 151,665, in its order (see the module docstring)
SPECIAL_ORDER = [
    "<|task_vc|>", "<|task_tts|>", "<|task_asr|>", "<|task_s2s|>", "<|task_t2s|>", "<|task_cap|>",
    "<|task_understand|>", "<|task_controllable_tts|>", "<|task_prompt_tts|>", "<|task_edit|>",
    "<|start_content|>", "<|start_style_label|>", "<|start_style_prompt|>", "<|start_acoustic_token|>",
    START_GLOBAL, START_SEMANTIC, "<|end_content|>", "<|end_style_label|>", "<|end_style_prompt|>",
    "<|end_acoustic_token|>", END_GLOBAL, END_SEMANTIC,
]


def added_order() -> List[str]:
    """Every token extend_tokenizer adds, in its order: the first gets id GLOBAL_BASE, the last 165157."""
    def run(fmt: str, n: int) -> List[str]:
        return [fmt.format(i) for i in range(n)]

    return (run(GLOBAL, N_GLOBAL) + run(SEMANTIC, N_SEMANTIC) + run("<|pitch_value_{}|>", 1001)
            + run("<|pitch_var_value_{}|>", 11) + run("<|pitch_label_{}|>", 5) + run("<|pitch_var_label_{}|>", 5)
            + run("<|speed_value_{}|>", 11) + run("<|speed_label_{}|>", 5) + run("<|loudness_value_{}|>", 31)
            + run("<|loudness_label_{}|>", 5) + run("<|age_{}|>", 5) + run("<|gender_{}|>", 3)
            + run("<|emotion_{}|>", 101) + SPECIAL_ORDER)


def layout() -> List[Tuple[int, str, bool]]:
    """(id, content, special) of every added token of the seeded LLM tokenizer, ids QWEN_BASE..VOCAB_SIZE - 1."""
    rows = [(QWEN_BASE + i, t, s) for i, (t, s) in enumerate(QWEN_CONTROL)]
    rows += [(GLOBAL_BASE + i, t, False) for i, t in enumerate(added_order())]
    taken = {i for i, _, _ in rows}
    rows += [(i, f"<|vp_reserved_{i}|>", False) for i in range(QWEN_BASE, VOCAB_SIZE) if i not in taken]
    return sorted(rows)


class TokenizerError(ValueError):
    """A tokenizer file that cannot serve Spark-TTS (missing, unreadable, lacking the Spark tokens)."""


class Tokenizer:
    """The Spark-TTS LLM tokenizer (LLM/tokenizer.json) with the ids the prompts and the parser need looked up once.

    Attributes: `vocab_size` (ids in use, added tokens included), `global_ids` / `semantic_ids` (int64 arrays, index
    = BiCodec code), `ids` (token string -> id for every delimiter, task, gender and level token), `eos_id`.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        from impl.outetts.tokenizer import open_tokenizer_json

        self.path, self._tok = open_tokenizer_json(path, TokenizerError)
        file = self.path
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        lookup = self._tok.token_to_id
        needed = [TASK_TOKEN_MAP["tts"], TASK_TOKEN_MAP["controllable_tts"], START_CONTENT, END_CONTENT,
                  START_GLOBAL, END_GLOBAL, START_SEMANTIC, START_STYLE, END_STYLE, IM_END]
        needed += [f"<|gender_{i}|>" for i in GENDER_MAP.values()]
        needed += [f"<|{k}_label_{i}|>" for k in ("pitch", "speed") for i in LEVELS_MAP.values()]
        self.ids: Dict[str, int] = {t: lookup(t) for t in needed}
        glob = [lookup(GLOBAL.format(i)) for i in range(N_GLOBAL)]
        sem = [lookup(SEMANTIC.format(i)) for i in range(N_SEMANTIC)]
        missing = [t for t, i in self.ids.items() if i is None]
        missing += [GLOBAL.format(i) for i, t in enumerate(glob) if t is None][:2]
        missing += [SEMANTIC.format(i) for i, t in enumerate(sem) if t is None][:2]
        if missing:
            raise TokenizerError(f"{file}: not a Spark-TTS LLM tokenizer, missing token(s) {', '.join(missing[:5])}")
        self.global_ids = np.array(glob, np.int64)
        self.semantic_ids = np.array(sem, np.int64)
        self.eos_id = self.ids[IM_END]
        self.max_id = int(max(self.vocab_size - 1, self.global_ids.max(), self.semantic_ids.max(),
                              max(self.ids.values())))

    def encode(self, text: str) -> List[int]:
        """Token ids of `text` (no post-processor tokens: the official call adds none for Qwen2's tokenizer)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of `ids`, special tokens skipped by default (the official `batch_decode(...,
        skip_special_tokens=True)`; transformers adds no clean-up for Qwen2's tokenizer_config)."""
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_id(self, token: str) -> int:
        i = self.ids.get(token)
        if i is None:
            i = self._tok.token_to_id(token)
        if i is None:
            raise TokenizerError(f"{self.path}: token {token!r} not in the vocabulary")
        return i

    def added_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)
