"""Seeded OuteTTS model folders: the generated v3 tokenizer + a seeded HF Llama checkpoint, in one folder.

The folder has what transformers and outetts' HF backend load (`AutoModelForCausalLM` / `AutoTokenizer` on the
same path): config.json (eos = `<|im_end|>`, bos = `<|im_start|>` of the tokenizer), safetensors, tokenizer files
(tokenizer.json, tokenizer_config.json, special_tokens_map.json). Random weights: the audio such a model makes is
noise; the pipeline around it is the real one.

The tokenizer (`build_tokenizer`) is a small deterministic byte-level BPE (Llama 3 pre-tokenizer regex, merges
learned here from a fixed corpus) followed by every OuteTTS v3 special token (impl/outetts/tokens.py) as added
special tokens; transformers' `AutoTokenizer` loads it as a `PreTrainedTokenizerFast`, so outetts' own prompt
processor can use it. The real Llama-OuteTTS-1.0 tokenizer has the same structure with a 128k Llama 3 base;
`impl.outetts.tokenizer.Tokenizer` loads either.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from impl._io import atomic_dir, atomic_path
from impl.outetts.tokens import SPECIAL, special_token_list
from impl.seeded import cache_dir

# A small Llama with the real model's structure (GQA, llama3 rope) for tests and demos. Untied head and a wider
# init than the real model's 0.02: a tiny random Llama with tied embeddings just repeats its input token.
TINY_LM_CONFIG: Dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 4992, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "hidden_act": "silu",
    "initializer_range": 0.2, "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
    "pretraining_tp": 1, "use_cache": True,
}


# ------------------------------------------------------------------------------------------------- tokenizer

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


def save_tokenizer_folder(path: Path, tok: Any, config: Dict[str, Any], special_map: Dict[str, Any]) -> Path:
    """tokenizer.json (a `tokenizers.Tokenizer`), tokenizer_config.json and special_tokens_map.json in `path`,
    each written atomically."""
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / "tokenizer.json") as tmp:
        tok.save(tmp)
    for name, content in (("tokenizer_config.json", config), ("special_tokens_map.json", special_map)):
        with atomic_path(path / name) as tmp:
            Path(tmp).write_text(json.dumps(content, indent=2) + "\n")
    return path


def build_tokenizer(path: Union[str, os.PathLike], n_merges: int = 256, corpus: str = _CORPUS) -> Path:
    """Write a deterministic OuteTTS v3 tokenizer folder at `path`; returns the path.

    Ids: 0..255 the byte alphabet, then one id per learned merge, then the v3 special tokens in the order of
    `tokens.special_token_list()` (`<|im_start|>` first). Each file is written atomically.
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
    return save_tokenizer_folder(path, tok, config, special_map)


# ------------------------------------------------------------------------------------------------- model folder

def write_model_dir(path: Union[str, os.PathLike], lm_config: Dict[str, Any], seed: int = 0,
                    dtype: str = "float32", nontrivial: bool = False) -> Path:
    """Write tokenizer + seeded LM into `path` (a temporary folder renamed into place, replacing `path`);
    nontrivial: the LM's norm weights and biases drawn too (`impl.seeded.llama.seeded_tensor`), for tests."""
    from impl.outetts.tokenizer import Tokenizer
    from impl.seeded.llama import write_seeded_checkpoint

    path = Path(path)
    with atomic_dir(path, replace=True) as tmp:
        build_tokenizer(tmp)
        tok = Tokenizer(tmp)
        if tok.vocab_size > lm_config["vocab_size"]:
            raise ValueError(f"LM vocab_size {lm_config['vocab_size']} < tokenizer's {tok.vocab_size} tokens")
        config = dict(lm_config, eos_token_id=tok.eos_id, bos_token_id=tok.token_id("<|im_start|>"))
        big = config["hidden_size"] * config["vocab_size"] * 4 > (1 << 28)
        write_seeded_checkpoint(tmp, config, seed, dtype, max_shard_bytes=(1 << 30) if big else None,
                                nontrivial=nontrivial)
    return path


def default_model_dir(lm_config: Optional[Dict[str, Any]] = None, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """The seeded model folder for (lm_config, seed, dtype) in $VOICEPORT_CACHE/outetts, generated once, then
    reused; the default is the embedded one: OuteTTS 1.0 1B architecture, bf16."""
    from impl.llama import OUTETTS_1B_CONFIG

    lm_config = OUTETTS_1B_CONFIG if lm_config is None else lm_config
    key = hashlib.sha256(json.dumps([lm_config, seed, dtype, 1], sort_keys=True).encode()).hexdigest()[:12]
    name = f"model-{lm_config['hidden_size']}x{lm_config['num_hidden_layers']}-s{seed}-{dtype}-{key}"
    dest = cache_dir("outetts") / name
    if (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file():
        return dest
    return write_model_dir(dest, lm_config, seed, dtype)
