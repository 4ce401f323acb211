"""OuteTTS v3 generation: prompt -> audio tokens -> codes -> audio, in MLX.

Ports outetts 0.4.4 `version/interface.py` (InterfaceHF: `chunk_generation`, the default generation type, and
`get_audio`), `models/hf_model.py` (HFModel._generate: transformers `generate` with outetts' sampler settings)
and `version/v3/prompt_processor.py` (`extract_audio_from_tokens`):
  - the text is split by `chunk_text`; each chunk gets its own prompt (same speaker) and its own generation;
  - a generation stops at an EOS id (the model config's `eos_token_id`, `<|im_end|>` for OuteTTS) -- included
    in the output, as transformers returns it -- or when prompt + output reach `max_length` (8192, outetts'
    GenerationConfig.max_length, transformers' MaxLengthCriteria); `max_new_tokens` is an extra cap of ours;
  - the tokens of all chunks are concatenated; c1 and c2 codes are collected separately in order and cut to the
    shorter list (outetts' parse, kept as is), then decoded at once.
Beyond outetts: `stream()` yields the audio of each text chunk as soon as it is generated; a prompt that alone
reaches `max_length` is an error (transformers would warn and still emit one token); frames holding code 1024
(a v3 token that is no DAC code: torch's embedding lookup would fail) are dropped before decoding, with a
warning.
"""
from __future__ import annotations

import inspect
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mlx.core as mx
import numpy as np

from impl.outetts.prompt import prompt_ids
from impl.outetts.sampler import Sampler, SamplerConfig
from impl.outetts.text import TextError, chunk_text
from impl.outetts.tokenizer import Tokenizer
from impl.outetts.tokens import CODEBOOK_SIZE

SAMPLE_RATE = 24000
FRAME_RATE = 75          # DAC 24 kHz: 320 samples per frame
TOKENS_PER_SECOND = 150  # two code tokens per frame: what RTF and the progress bar count against


class GenerationError(ValueError):
    """A generation request that cannot run as asked (model/tokenizer mismatch, prompt longer than max_length)."""


@dataclass
class GenerationConfig:
    """outetts' GenerationConfig fields that shape the token stream, plus `max_new_tokens` and `seed`."""

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    max_length: int = 8192
    max_new_tokens: Optional[int] = None
    seed: int = 0


@dataclass
class ChunkResult:
    """One text chunk's generation: its new tokens and timings (prefill = prompt to first token)."""

    text: str
    prompt_len: int
    tokens: List[int]
    seconds: float
    prefill_seconds: float


def extract_codes(tokens: Sequence[int], tokenizer: Tokenizer) -> np.ndarray:
    """outetts' `extract_audio_from_tokens`: (2, T) int codes; c1s and c2s in order, cut to the shorter."""
    t = np.asarray(tokens, dtype=np.int64)
    c1 = _lookup(t, tokenizer.c1_ids)
    c2 = _lookup(t, tokenizer.c2_ids)
    n = min(len(c1), len(c2))
    return np.stack([c1[:n], c2[:n]]).astype(np.int64)


def _lookup(tokens: np.ndarray, code_ids: np.ndarray) -> np.ndarray:
    order = np.argsort(code_ids)
    pos = np.searchsorted(code_ids[order], tokens)
    pos = np.clip(pos, 0, len(code_ids) - 1)
    hit = code_ids[order][pos] == tokens
    return order[pos[hit]]


def valid_frames(codes: np.ndarray) -> np.ndarray:
    """Drop frames with a code outside the DAC codebook (1024 has a token but no codebook entry)."""
    ok = np.all((codes >= 0) & (codes < CODEBOOK_SIZE), axis=0)
    if not ok.all():
        warnings.warn(f"dropping {int((~ok).sum())} of {codes.shape[1]} frames whose code is outside 0..1023")
    return codes[:, ok]


def decode_loop(lm: Callable, cache: Any, prompt: Sequence[int], sampler: Sampler, budget: int,
                stop_ids: Container[int] = (), on_token: Optional[Callable[[int], None]] = None) -> List[int]:
    """The one decode loop (B = 1): prefill `prompt` in one pass, then one token per step, until a token in
    `stop_ids` (included) or `budget` new tokens.

    `lm(ids (1, L) int32, cache) -> logits (1, L, V)`; `sampler(logits (1, V), window (1, W)) -> ids (1,)`, with
    `window` the last `sampler.config.repetition_range` ids of the sequence, prompt included. Each step is queued
    (`mx.async_eval`) before the previous token is read, so the device never waits on Python.
    """
    if budget < 1:
        return []
    keep_last = "logits_to_keep" in inspect.signature(lm).parameters

    def next_logits(ids: mx.array) -> mx.array:  # (1, V)
        if keep_last:  # project only the last position (impl.llama's prefill shortcut)
            return lm(ids, cache, logits_to_keep=1)[:, -1, :]
        return lm(ids, cache)[:, -1, :]

    R = sampler.config.repetition_range
    window = mx.array(np.asarray(prompt[max(0, len(prompt) - R):] if R else [], np.int32)[None])
    y = sampler(next_logits(mx.array(np.asarray(prompt, np.int32)[None])), window)
    mx.async_eval(y)
    out: List[int] = []
    while True:
        window = mx.concatenate([window, y[:, None].astype(mx.int32)], axis=1)[:, -R:] if R else window
        last = len(out) + 1 >= budget
        if not last:  # queue the next step before reading this one
            y_next = sampler(next_logits(y[:, None].astype(mx.int32)), window)
            mx.async_eval(y_next)
        tok = int(y.item())
        out.append(tok)
        if on_token is not None:
            on_token(tok)
        if last or tok in stop_ids:
            return out
        y = y_next


def generate_greedy(lm: Callable, prompt: Sequence[int], max_new_tokens: int) -> List[int]:
    """Exactly `max_new_tokens` argmax tokens after `prompt` from an `impl.llama.Model`: transformers' greedy
    search with no EOS and no repetition penalty, on the LM alone (no tokenizer)."""
    from impl.llama import make_cache

    greedy = Sampler(SamplerConfig(temperature=0.0, repetition_penalty=1.0, repetition_range=0))
    return decode_loop(lm, make_cache(lm), prompt, greedy, max_new_tokens)


class TTS:
    """An OuteTTS v3 pipeline: `lm(ids (1, L) int32, cache) -> logits (1, L, V)` + tokenizer + optional codec.

    Args:
        lm: an `impl.llama.Model` (or any callable with its signature; `make_cache` builds its cache).
        tokenizer: the v3 Tokenizer.
        make_cache: () -> cache object passed to `lm` (None: `impl.llama.make_cache(lm)`).
        stop_ids: ids that end a generation (None: the tokenizer's `<|im_end|>`).
        vocab_size: the LM's output size; the tokenizer must fit in it.
        codec: object with `decode(codes (1, 2, T)) -> audio` (an `impl.dac.interface.DacInterface`).
    """

    def __init__(self, lm: Callable, tokenizer: Tokenizer, make_cache: Optional[Callable[[], Any]] = None,
                 stop_ids: Optional[Sequence[int]] = None, vocab_size: Optional[int] = None, codec: Any = None):
        if vocab_size is None:
            vocab_size = getattr(getattr(lm, "args", None), "vocab_size", None)
        if vocab_size is not None and tokenizer.vocab_size > vocab_size:
            raise GenerationError(f"tokenizer {tokenizer.path} has {tokenizer.vocab_size} tokens but the model's "
                                  f"vocabulary has {vocab_size}: they do not belong together")
        if make_cache is None:
            from impl.llama import make_cache as llama_cache

            make_cache = lambda: llama_cache(lm)  # noqa: E731
        self.lm, self.tokenizer, self.make_cache, self.codec = lm, tokenizer, make_cache, codec
        self.stop_ids = set(int(i) for i in (stop_ids if stop_ids is not None else [tokenizer.eos_id]))

    # ---------------------------------------------------------------------------------------------- tokens

    def generate_ids(self, prompt: Sequence[int], config: GenerationConfig, sampler: Optional[Sampler] = None,
                     on_token: Optional[Callable[[int], None]] = None) -> List[int]:
        """New token ids after `prompt` (EOS included when reached), as transformers' `generate` returns them."""
        if len(prompt) >= config.max_length:
            raise GenerationError(f"the prompt has {len(prompt)} tokens, max_length is {config.max_length}: "
                                  "use a shorter speaker profile or a larger max_length")
        budget = config.max_length - len(prompt)
        if config.max_new_tokens is not None:
            budget = min(budget, config.max_new_tokens)
        return decode_loop(self.lm, self.make_cache(), prompt, sampler or Sampler(config.sampler, config.seed),
                           budget, self.stop_ids, on_token)

    def generate_chunks(self, text: str, speaker: Optional[Dict[str, Any]], config: GenerationConfig,
                        on_token: Optional[Callable[[int], None]] = None) -> Iterator[ChunkResult]:
        """One ChunkResult per text chunk (outetts' chunked generation); one seeded sampler across chunks."""
        chunks = chunk_text(text)
        if not chunks:
            raise TextError("text is empty: nothing to speak")
        prompts = [prompt_ids(self.tokenizer, c, speaker) for c in chunks]  # all input errors before any work
        sampler = Sampler(config.sampler, config.seed)
        for chunk, prompt in zip(chunks, prompts):
            first: List[float] = []

            def tap(tok: int) -> None:
                if not first:
                    first.append(time.perf_counter())
                if on_token is not None:
                    on_token(tok)

            t0 = time.perf_counter()
            tokens = self.generate_ids(prompt, config, sampler, tap)
            yield ChunkResult(chunk, len(prompt), tokens, time.perf_counter() - t0, first[0] - t0)

    # ----------------------------------------------------------------------------------------------- audio

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(2, T) codes -> mono float32 audio at 24 kHz (empty for no frames)."""
        if self.codec is None:
            raise GenerationError("no codec loaded: pass codec= to decode audio")
        codes = valid_frames(codes)
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        audio = self.codec.decode(codes[None].astype(np.int32))
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def generate(self, text: str, speaker: Optional[Dict[str, Any]] = None,
                 config: Optional[GenerationConfig] = None,
                 on_token: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, List[int]]:
        """(audio, all generated tokens): outetts' chunked generation, codes of all chunks decoded at once."""
        tokens = self.generate_tokens(text, speaker, config, on_token)
        return self.decode(extract_codes(tokens, self.tokenizer)), tokens

    def generate_tokens(self, text: str, speaker: Optional[Dict[str, Any]] = None,
                        config: Optional[GenerationConfig] = None,
                        on_token: Optional[Callable[[int], None]] = None) -> List[int]:
        """New tokens of all text chunks, concatenated (what outetts' chunk_generation returns)."""
        tokens: List[int] = []
        for r in self.generate_chunks(text, speaker, config or GenerationConfig(), on_token):
            tokens += r.tokens
        return tokens

    def stream(self, text: str, speaker: Optional[Dict[str, Any]] = None,
               config: Optional[GenerationConfig] = None,
               on_token: Optional[Callable[[int], None]] = None) -> Iterator[np.ndarray]:
        """Audio of each text chunk as soon as its tokens are generated."""
        config = config or GenerationConfig()
        for r in self.generate_chunks(text, speaker, config, on_token):
            yield self.decode(extract_codes(r.tokens, self.tokenizer))


# ------------------------------------------------------------------------------------------------ model dirs

def stop_ids_from_config(model_dir: Union[str, Path], tokenizer: Tokenizer) -> List[int]:
    """EOS ids as transformers reads them: generation_config.json, else config.json; else `<|im_end|>`."""
    for name in ("generation_config.json", "config.json"):
        f = Path(model_dir) / name
        if f.is_file():
            eos = json.loads(f.read_text()).get("eos_token_id")
            if eos is not None:
                return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    return [tokenizer.eos_id]


def load(model_dir: Union[str, Path], codec: Any = None, dtype: Optional[str] = None) -> TTS:
    """A TTS from an HF-format model folder (config.json, safetensors, tokenizer.json) and a loaded codec."""
    from impl import llama

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    tokenizer = Tokenizer(model_dir)
    lm = llama.load(model_dir, dtype=dtype)
    return TTS(lm, tokenizer, stop_ids=stop_ids_from_config(model_dir, tokenizer), codec=codec)
