"""OuteTTS v3 tokenizer: an HF `tokenizer.json` run through the `tokenizers` library (no transformers).

`Tokenizer` loads the real Llama-OuteTTS-1.0 tokenizer (byte-level BPE with a 128k Llama 3 base + the v3 tokens
of impl/outetts/tokens.py) or the generated one of the seeded model folders (`impl.seeded.outetts.build_tokenizer`,
same structure, small base), and looks up the ids OuteTTS needs once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from impl.outetts.tokens import CODEBOOK_SIZE, N_CODE_TOKENS, SPECIAL


class TokenizerError(ValueError):
    """A tokenizer file that cannot serve OuteTTS v3 (missing, unreadable, lacking v3 tokens, too large)."""


def open_tokenizer_json(path: Union[str, os.PathLike], error: type) -> Tuple[Path, Any]:
    """(file, `tokenizers.Tokenizer`) of a tokenizer.json or the folder holding one; `error(message)` naming the
    file when it is missing or unreadable."""
    from tokenizers import Tokenizer as HFTokenizer

    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise error(f"no tokenizer.json at {p}")
    try:
        return file, HFTokenizer.from_file(str(file))
    except Exception as e:  # noqa: BLE001 -- the library raises plain Exception on bad files
        raise error(f"{file}: not a readable tokenizer.json ({e})") from None


class Tokenizer:
    """A v3 tokenizer (tokenizer.json) with the ids OuteTTS needs looked up once.

    Attributes: `vocab_size` (ids in use, added tokens included), `c1_ids`/`c2_ids` (int arrays of the 1025 code
    tokens' ids, index = code), `eos_id`, `audio_end_id`, `word_start_id`.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path, self._tok = open_tokenizer_json(path, TokenizerError)
        file = self.path
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        added = self._tok.get_added_tokens_decoder()
        self._added = {t.content: i for i, t in added.items()}
        # Added tokens that strip neighbouring whitespace or go through the normalizer change how the text
        # around them is split: then prompts are encoded as whole strings (see prompt.prompt_ids).
        self.plain_added = all(not (t.lstrip or t.rstrip or t.normalized) for t in added.values())
        missing = [t for t in (SPECIAL.bos, SPECIAL.eos, SPECIAL.text_start, SPECIAL.text_end, SPECIAL.audio_start,
                               SPECIAL.audio_end, SPECIAL.word_start, SPECIAL.word_end, SPECIAL.features,
                               SPECIAL.code, SPECIAL.c1.format(0), SPECIAL.c2.format(CODEBOOK_SIZE - 1))
                   if t not in self._added]
        if missing:
            raise TokenizerError(f"{file}: not an OuteTTS v3 tokenizer, missing special tokens {missing[:5]}")
        self.eos_id = self.token_id(SPECIAL.eos)
        self.audio_end_id = self.token_id(SPECIAL.audio_end)
        self.word_start_id = self.token_id(SPECIAL.word_start)
        # outetts maps the FIRST id of each encoded code string (get_audio_token_map); for tokens in the vocab
        # that is the token itself.
        self.c1_ids = np.array([self.encode(SPECIAL.c1.format(i))[0] for i in range(N_CODE_TOKENS)], np.int64)
        self.c2_ids = np.array([self.encode(SPECIAL.c2.format(i))[0] for i in range(N_CODE_TOKENS)], np.int64)

    def encode(self, text: str) -> List[int]:
        """Token ids of `text`, no BOS/EOS added (outetts encodes with add_special_tokens=False)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def token_id(self, token: str) -> int:
        i = self._added.get(token)
        if i is None:
            raise TokenizerError(f"{self.path}: token {token!r} not in the vocabulary")
        return i

    def added_id(self, token: str) -> Optional[int]:
        """Id of an added (special) token, None for any other string."""
        return self._added.get(token)
