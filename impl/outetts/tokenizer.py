"""OuteTTS v3 tokenizer: an HF `tokenizer.json` run through the `tokenizers` library (no transformers).

`build_tokenizer` writes a tokenizer folder (tokenizer.json, tokenizer_config.json, special_tokens_map.json)
that transformers' `AutoTokenizer` loads as a `PreTrainedTokenizerFast`, so outetts' own prompt processor can
use it: a small deterministic byte-level BPE (Llama 3 pre-tokenizer regex, merges learned here from a fixed
corpus) followed by every OuteTTS v3 special token (impl/outetts/tokens.py) as added special tokens.
The real Llama-OuteTTS-1.0 tokenizer has the same structure (byte-level BPE + added v3 tokens), with a 128k
Llama 3 base; `Tokenizer` loads either.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from impl.outetts.tokens import CODEBOOK_SIZE, N_CODE_TOKENS, SPECIAL, special_token_list


class TokenizerError(ValueError):
    """A tokenizer file that cannot serve OuteTTS v3 (missing, unreadable, lacking v3 tokens, too large)."""


# Llama 3's pre-tokenizer split (contractions, letters, 1-3 digits, punctuation runs, newlines, spaces).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The merges of the generated base vocabulary are learned from this text (fixed: same file every time).
_CORPUS = """\
The quick brown fox jumps over the lazy dog. A speaker profile holds the words, their codes and durations.
She said: "Hello, world!" and then, quietly, "it's only a test; nothing more." We'll see what they've done.
Numbers such as 1, 22, 333, 2024 and 3.14159 appear in text; so do dates like 12/05/1999 and times like 10:30.
In the beginning the cat watched from the windowsill, tail flicking with quiet curiosity as the first
snowflakes of winter began to fall, dusting the world in fragile white. Text to speech turns writing into
sound: a language model predicts audio tokens, and a codec decodes them into a waveform at 24 kHz.
Über naïve café résumé — voilà! ¿Qué tal? Straße, déjà vu, coöperate, façade, jalapeño, smörgåsbord.
Привет, мир. Γειά σου κόσμε. 你好，世界。こんにちは、世界。안녕하세요 세계. مرحبا بالعالم. שלום עולם.
"""


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _learn_merges(words: Sequence[str], n_merges: int) -> List[Tuple[str, str]]:
    """Plain BPE on byte-level words; ties broken by the pair's string order, so the result is deterministic."""
    vocab = Counter(tuple(w) for w in words)
    merges: List[Tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for word, freq in vocab.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = best[0] + best[1]
        new_vocab: Counter = Counter()
        for word, freq in vocab.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_vocab[tuple(out)] += freq
        vocab = new_vocab
    return merges


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def build_tokenizer(path: Union[str, os.PathLike], n_merges: int = 256, corpus: str = _CORPUS) -> Path:
    """Write a deterministic OuteTTS v3 tokenizer folder at `path`; returns the path.

    Ids: 0..255 the byte alphabet, then one id per learned merge, then the v3 special tokens in the order of
    `tokens.special_token_list()` (`<|im_start|>` first). Written to a temp folder, then renamed into place.
    """
    from tokenizers import AddedToken, Tokenizer, decoders
    from tokenizers.models import BPE

    path = Path(path)
    alphabet = list(_bytes_to_unicode().values())
    words = [w for w, _ in _pre_tokenizer().pre_tokenize_str(corpus)]
    merges = _learn_merges(words, n_merges)
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    specials = special_token_list()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False,
                                       single_word=False) for t in specials])
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": SPECIAL.bos,
        "eos_token": SPECIAL.eos,
        "pad_token": SPECIAL.eos,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 131072,
        "add_bos_token": False,
        "add_eos_token": False,
    }
    special_map = {"bos_token": SPECIAL.bos, "eos_token": SPECIAL.eos, "pad_token": SPECIAL.eos}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (tmp / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    path.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        os.replace(tmp / name, path / name)
    tmp.rmdir()
    return path


class Tokenizer:
    """A v3 tokenizer (tokenizer.json) with the ids OuteTTS needs looked up once.

    Attributes: `vocab_size` (ids in use, added tokens included), `c1_ids`/`c2_ids` (int arrays of the 1025 code
    tokens' ids, index = code), `eos_id`, `audio_end_id`, `word_start_id`.
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
