"""Spark-TTS' LLM tokens: the token strings cli/SparkTTS.py writes, their ids in Spark-TTS-0.5B/LLM, and `Tokenizer`
(the LLM folder's tokenizer.json through the `tokenizers` library only, no transformers).

Strings: sparktts `utils/token_parser.py` (TASK_TOKEN_MAP, GENDER_MAP, LEVELS_MAP and TokenParser's formats) and
`cli/SparkTTS.py` (the delimiters). Ids: the impl side never hard-codes one (it looks every string up in the
folder's tokenizer.json); `LAYOUT` below is what `impl.seeded.spark.build_tokenizer` writes, each id range with its
source:
  - 0..151642: Qwen2.5's byte-level BPE (151,643 tokens), then its 22 control tokens 151643..151664
    (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` = 151645, ...): Qwen2.5's tokenizer_config.json;
  - `<|bicodec_global_0..4095|>` 151665..155760 and `<|bicodec_semantic_0..8191|>` 155761..163952: the project's
    collected third-party notes and an independent public port (GLOBAL_BASE / SEMANTIC_BASE constants), agreeing;
  - `<|task_tts|>` 165137, `<|start_content|>` 165146, `<|end_content|>` 165152, `<|start_global_token|>` 165150,
    `<|end_global_token|>` 165156: that port's constants; `<|start_semantic_token|>` 165151,
    `<|end_semantic_token|>` 165157: the notes. The six starts then six ends are consecutive (165146..165157);
  - INFERRED, unverified: the ten task tokens in TASK_TOKEN_MAP's order ending right before `<|start_content|>`
    (this puts `<|task_tts|>` at 165137, as sourced; `<|task_controllable_tts|>` then is 165143), and
    `<|start_style_label|>` / `<|end_style_label|>` in the first free start/end slots (165147 / 165153);
  - NO public source: the attribute tokens (age, gender, pitch/speed/loudness values and labels, emotion) sit in
    163953..165135 in token_parser.py's order; the rest are `<|vp_reserved_N|>` fillers up to 166,000 (the LM's
    embedding rows). A real checkpoint's own tokenizer.json decides every id; only the seeded folders use these.
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
N_AGES, N_EMOTIONS = 5, 25  # AGE_MAP, EMO_MAP sizes

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
GLOBAL_BASE, SEMANTIC_BASE = 151665, 155761
ATTRIBUTE_BASE, TASK_BASE, DELIMITER_BASE, VOCAB_SIZE = 163953, 165136, 165146, 166000
# start/end slots 165146..165151 / 165152..165157: content, style (inferred), two unknown, global, semantic
DELIMITERS = ["content", "style_label", None, None, "global_token", "semantic_token"]


def attribute_tokens() -> List[str]:
    """token_parser.py's attribute tokens in its method order (age, gender, pitch value/label, pitch var
    value/label, loudness value/label, speed value/label, emotion)."""
    out = [f"<|age_{i}|>" for i in range(N_AGES)] + [f"<|gender_{i}|>" for i in range(len(GENDER_MAP))]
    for name, n in (("pitch", 1001), ("pitch_var", 11), ("loudness", 31), ("speed", 11)):
        out += [f"<|{name}_value_{i}|>" for i in range(n)] + [f"<|{name}_label_{i}|>" for i in range(5)]
    return out + [f"<|emotion_{i}|>" for i in range(N_EMOTIONS)]


def layout() -> List[Tuple[int, str, bool]]:
    """(id, content, special) of every added token of the seeded LLM tokenizer, ids QWEN_BASE..VOCAB_SIZE - 1."""
    rows = [(QWEN_BASE + i, t, s) for i, (t, s) in enumerate(QWEN_CONTROL)]
    rows += [(GLOBAL_BASE + i, GLOBAL.format(i), False) for i in range(N_GLOBAL)]
    rows += [(SEMANTIC_BASE + i, SEMANTIC.format(i), False) for i in range(N_SEMANTIC)]
    attrs = attribute_tokens()
    rows += [(ATTRIBUTE_BASE + i, t, False) for i, t in enumerate(attrs)]
    rows += [(TASK_BASE + i, t, False) for i, t in enumerate(TASK_TOKEN_MAP.values())]
    for k, name in enumerate(DELIMITERS):
        if name is not None:
            rows += [(DELIMITER_BASE + k, f"<|start_{name}|>", False),
                     (DELIMITER_BASE + 6 + k, f"<|end_{name}|>", False)]
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
        from tokenizers import Tokenizer as HFTokenizer

        p = Path(path)
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise TokenizerError(f"no tokenizer.json at {p}")
        try:
            self._tok = HFTokenizer.from_file(str(file))
        except Exception as e:  # noqa: BLE001 -- the library raises plain Exception on bad files
            raise TokenizerError(f"{file}: not a readable tokenizer.json ({e})") from None
        self.path = file
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
