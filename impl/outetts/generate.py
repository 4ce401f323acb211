"""OuteTTS v3 generation: prompt -> audio tokens -> codes -> audio, in MLX.

Ports outetts 0.4.4 `version/interface.py` (InterfaceHF: `chunk_generation`, the default generation type, and
`get_audio`), `models/hf_model.py` (HFModel._generate: transformers `generate` with outetts' sampler settings)
and `version/v3/prompt_processor.py` (`extract_audio_from_tokens`):
  - the text is split by `chunk_text`; each chunk gets its own prompt (same speaker) and its own generation
    (`impl.runtime.decode_loop`, shared with Spark-TTS);
  - a generation stops at an EOS id (the model config's `eos_token_id`, `<|im_end|>` for OuteTTS) -- included
    in the output, as transformers returns it -- or when prompt + output reach `max_length` (8192, outetts'
    GenerationConfig.max_length, transformers' MaxLengthCriteria; `GenerationConfig.outetts.max_length` here);
    `max_new_tokens` is an extra cap of ours: "auto" by default, in the API as in the CLI (the chunk's expected
    length from the profile's tokens per character, doubled); None restores outetts' behaviour;
  - the tokens of all chunks are concatenated; c1 and c2 codes are collected separately in order and cut to the
    shorter list (outetts' parse, kept as is), then decoded at once.
Beyond outetts: `stream()` yields the audio of each text chunk as soon as it is generated; a prompt that alone
reaches `max_length` is an error (transformers would warn and still emit one token); `generate` and `stream` raise
when no audio codes were produced (outetts returns empty audio); frames holding code 1024
(a v3 token that is no DAC code: torch's embedding lookup would fail) are dropped before decoding, with a
warning.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from impl.outetts.prompt import prompt_ids
from impl.outetts.sampler import Sampler, SamplerConfig
from impl.outetts.text import TextError, chunk_text, normalize
from impl.outetts.tokenizer import Tokenizer
from impl.outetts.tokens import CODEBOOK_SIZE, SPECIAL
from impl.runtime import (AUTO, CAP_FACTOR, CAP_MARGIN, ChunkPlan, ChunkResult, GenerationConfig,  # noqa: F401
                          GenerationError, OuteTTSOptions, auto_cap, decode_loop, default_dtype, generate_greedy,
                          no_audio_error, start_kernel_warmup, timed_chunk)
from impl.speaker.profile import validate_speaker

__all__ = ["AUTO", "GenerationConfig", "GenerationError", "OuteTTSOptions", "SAMPLE_RATE", "TTS", "load"]

SAMPLE_RATE = 24000
FRAME_RATE = 75          # DAC 24 kHz: 320 samples per frame
TOKENS_PER_SECOND = 150  # two code tokens per frame: what RTF and the progress bar count against
TEMPERATURE, TOP_K, TOP_P = 0.4, 40, 0.9  # outetts' SamplerConfig defaults (the v3 recommended settings)
NO_SPEAKER_TOKENS_PER_CHAR = 12.0  # no profile: 75 frames/s x 2 tokens / ~14.5 characters/s + word markup
DECODE_RATE = {"cpu": 4.0, "gpu": 300.0}  # typical 1B decode tokens/s, for the ETA (stored runs: docs/performance.md)


def sampler_config(config: GenerationConfig) -> SamplerConfig:
    """outetts' SamplerConfig for `config`: its defaults for what the config leaves None (temperature 0.4, top-k
    40, top-p 0.9), the nested OuteTTS options (repetition penalty 1.1 over 64 ids, min-p 0.05); greedy: T = 0."""
    t, k, p = config.pick(TEMPERATURE, TOP_K, TOP_P)
    o = config.outetts
    return SamplerConfig(temperature=t, repetition_penalty=o.repetition_penalty, repetition_range=o.repetition_range,
                         top_k=k, top_p=p, min_p=o.min_p)


def auto_max_new_tokens(chunk: str, prompt: Sequence[int], speaker: Optional[Dict[str, Any]],
                        audio_start_id: Optional[int]) -> Tuple[int, str]:
    """The default cap on a chunk's new tokens and the rule, stated: the chunk's expected length, doubled.

    The model writes the chunk's words in the profile's own format (word markup, then two code tokens per 75 Hz
    frame), so the profile's audio part -- its prompt tokens after `<|audio_start|>` -- per character of its words
    is the rate at which the chunk spends tokens: cap = 2 x tokens/char x the chunk's characters (spaces not
    counted) + 64. Without a profile: 12 tokens/char (75 frames/s x 2 / ~14.5 characters/s + markup).
    outetts has no such figure (it runs to EOS or max_length); a trained model stops well before the cap.
    """
    chars = sum(1 for ch in normalize(chunk) if not ch.isspace())
    rate, source = NO_SPEAKER_TOKENS_PER_CHAR, "no profile"
    if speaker is not None and audio_start_id is not None and audio_start_id in prompt:
        audio_part = len(prompt) - list(prompt).index(audio_start_id) - 1
        profile_chars = sum(len(w["word"].strip()) for w in speaker["words"])
        if profile_chars:
            rate, source = audio_part / profile_chars, "the profile's"
    return auto_cap(rate, chars), f"{CAP_FACTOR:g} x {rate:.1f} tokens/char ({source}) x {chars} chars + {CAP_MARGIN}"


def no_codes_error(n_tokens: int) -> GenerationError:
    """What `TTS.generate`, `TTS.stream` and the CLI raise when the tokens hold no complete (c1, c2) frame."""
    return no_audio_error(n_tokens, "audio codes")


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


class TTS:
    """An OuteTTS v3 pipeline: `lm(ids (1, L) int32, cache) -> logits (1, L, V)` + tokenizer + codec.

    `load()` builds one with everything loaded; this constructor is for other LMs (tests script the logits).

    Args:
        lm: an `impl.llama.Model` (or any callable with its signature; `make_cache` builds its cache).
        tokenizer: the v3 Tokenizer.
        make_cache: () -> cache object passed to `lm` (None: `impl.llama.make_cache(lm)`).
        stop_ids: ids that end a generation (None: the tokenizer's `<|im_end|>`).
        vocab_size: the LM's output size; the tokenizer must fit in it.
        codec: object with `decode(codes (1, 2, T)) -> audio` (an `impl.dac.interface.DacInterface`); None: tokens
            only (`generate` and `stream` then raise GenerationError before generating).
        variant: the LM variant `impl.accel.apply` gave it (a record: `load` sets it).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, lm: Callable, tokenizer: Tokenizer, make_cache: Optional[Callable[[], Any]] = None,
                 stop_ids: Optional[Sequence[int]] = None, vocab_size: Optional[int] = None, codec: Any = None,
                 variant: str = "plain"):
        if vocab_size is None:
            vocab_size = getattr(getattr(lm, "args", None), "vocab_size", None)
        if vocab_size is not None and tokenizer.vocab_size > vocab_size:
            raise GenerationError(f"tokenizer {tokenizer.path} has {tokenizer.vocab_size} tokens but the model's "
                                  f"vocabulary has {vocab_size}: they do not belong together")
        if make_cache is None:
            from impl.llama import make_cache as llama_cache

            make_cache = lambda: llama_cache(lm)  # noqa: E731
        self.lm, self.tokenizer, self.make_cache, self.codec, self.variant = lm, tokenizer, make_cache, codec, variant
        self.stop_ids = set(int(i) for i in (stop_ids if stop_ids is not None else [tokenizer.eos_id]))

    # ---------------------------------------------------------------------------------------------- tokens

    def budget(self, prompt: Sequence[int], config: GenerationConfig, chunk: str = "",
               speaker: Optional[Dict[str, Any]] = None) -> Tuple[int, str]:
        """(new-token budget, its rule) for one prompt: max_length - prompt, capped by max_new_tokens."""
        max_length = config.outetts.max_length
        if len(prompt) >= max_length:
            raise GenerationError(f"the prompt has {len(prompt)} tokens, max_length is {max_length}: "
                                  "use a shorter speaker profile or a larger max_length")
        budget, rule = max_length - len(prompt), f"max_length {max_length} - prompt {len(prompt)}"
        cap = config.max_new_tokens
        if cap == AUTO:
            cap, why = auto_max_new_tokens(chunk, prompt, speaker, self.tokenizer.added_id(SPECIAL.audio_start))
            rule = f"auto: {why}" if cap < budget else rule
        elif cap is not None:
            rule = "max_new_tokens" if cap < budget else rule
        return (budget if cap is None else min(budget, cap)), rule

    def plan(self, text: str, speaker: Optional[Dict[str, Any]], config: Optional[GenerationConfig] = None
             ) -> List[ChunkPlan]:
        """Every chunk's prompt and budget, before any generation: all input errors (empty text, bad profile,
        a prompt that alone reaches max_length) come from here."""
        config = config or GenerationConfig()
        chunks = chunk_text(text)
        if not chunks:
            raise TextError("text is empty: nothing to speak")
        if speaker is not None:
            speaker = validate_speaker(speaker)
        plans = []
        for chunk in chunks:
            prompt = prompt_ids(self.tokenizer, chunk, speaker)
            plans.append(ChunkPlan(chunk, prompt, *self.budget(prompt, config, chunk, speaker)))
        return plans

    def generate_ids(self, prompt: Sequence[int], config: GenerationConfig, sampler: Optional[Sampler] = None,
                     on_token: Optional[Callable[[int], None]] = None, budget: Optional[int] = None) -> List[int]:
        """New token ids after `prompt` (EOS included when reached), as transformers' `generate` returns them.
        `budget` (from `plan`) replaces the one computed from `config` (max_new_tokens "auto" needs the chunk)."""
        if budget is None:
            budget = self.budget(prompt, config)[0]
        return decode_loop(self.lm, self.make_cache(), prompt, sampler or Sampler(sampler_config(config), config.seed),
                           budget, self.stop_ids, on_token)

    def generate_chunks(self, text: str, speaker: Optional[Dict[str, Any]], config: Optional[GenerationConfig] = None,
                        on_token: Optional[Callable[[int], None]] = None,
                        on_chunk: Optional[Callable[[int, int, ChunkPlan], None]] = None,
                        plans: Optional[List[ChunkPlan]] = None) -> Iterator[ChunkResult]:
        """One ChunkResult per text chunk (outetts' chunked generation); one seeded sampler across chunks.

        on_chunk(index, n_chunks, plan) is called before each chunk's prefill; `plans` (from `plan`) skips
        planning again."""
        config = config or GenerationConfig()
        plans = self.plan(text, speaker, config) if plans is None else plans  # all input errors before any work
        sampler = Sampler(sampler_config(config), config.seed)
        for n, p in enumerate(plans):
            if on_chunk is not None:
                on_chunk(n, len(plans), p)
            yield timed_chunk(p, lambda tap: self.generate_ids(p.prompt, config, sampler, tap, budget=p.budget),
                              on_token)

    # ----------------------------------------------------------------------------------------------- audio

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(2, T) codes -> mono float32 audio at 24 kHz (empty for no frames)."""
        self._need_codec()
        codes = valid_frames(codes)
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        audio = self.codec.decode(codes[None].astype(np.int32))
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def _need_codec(self) -> None:
        if self.codec is None:
            raise GenerationError("no codec: this TTS was built without one (impl.outetts.generate.load loads it)")

    def generate(self, text: str, speaker: Optional[Dict[str, Any]] = None,
                 config: Optional[GenerationConfig] = None,
                 on_token: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, List[int]]:
        """(audio (N,) float32 at `sample_rate`, all generated tokens): outetts' chunked generation, the codes of
        all chunks decoded at once.

        Args:
            text: what to say (split into chunks as outetts does).
            speaker: an OuteTTS v3 profile (`impl.speaker.load_speaker`), or None (no voice prompt).
            config: `GenerationConfig` (None: the defaults; max_new_tokens "auto", as the CLI).
            on_token: called with each new token id as it is generated.
        Raises GenerationError (as the CLI) when the tokens hold no audio codes; TextError for empty text."""
        self._need_codec()
        tokens = self.generate_tokens(text, speaker, config, on_token)
        audio = self.decode(extract_codes(tokens, self.tokenizer))
        if audio.size == 0:
            raise no_codes_error(len(tokens))
        return audio, tokens

    def generate_tokens(self, text: str, speaker: Optional[Dict[str, Any]] = None,
                        config: Optional[GenerationConfig] = None,
                        on_token: Optional[Callable[[int], None]] = None) -> List[int]:
        """New tokens of all text chunks, concatenated (what outetts' chunk_generation returns)."""
        tokens: List[int] = []
        for r in self.generate_chunks(text, speaker, config, on_token):
            tokens += r.tokens
        return tokens

    def stream(self, text: str, speaker: Optional[Dict[str, Any]] = None,
               config: Optional[GenerationConfig] = None,
               on_token: Optional[Callable[[int], None]] = None) -> Iterator[np.ndarray]:
        """The audio of each text chunk as soon as its tokens are generated (a chunk that produced no codes yields
        nothing); GenerationError, as `generate`, when no chunk produced audio."""
        self._need_codec()
        n_tokens, n_samples = 0, 0
        for r in self.generate_chunks(text, speaker, config, on_token):
            n_tokens += len(r.tokens)
            audio = self.decode(extract_codes(r.tokens, self.tokenizer))
            if audio.size:
                n_samples += audio.size
                yield audio
        if n_samples == 0:
            raise no_codes_error(n_tokens)


# ------------------------------------------------------------------------------------------------ model dirs

def stop_ids_from_config(model_dir: Union[str, Path], tokenizer: Tokenizer) -> List[int]:
    """EOS ids as transformers reads them: generation_config.json, else config.json; else `<|im_end|>`."""
    for name in ("generation_config.json", "config.json"):
        f = Path(model_dir) / name
        if f.is_file():
            from impl.weights import read_json

            eos = read_json(f).get("eos_token_id")
            if eos is not None:
                return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    return [tokenizer.eos_id]


def load_codec(codec: Any = None) -> Any:
    """The codec `load` uses: None -> the embedded seeded DAC 24 kHz; a str/Path -> `impl.dac.load_codec(path)`
    (an official .pth or safetensors); anything else is used as given (an object with `decode(codes)`)."""
    if codec is None or isinstance(codec, (str, Path)):
        from impl.dac import load_codec as dac_codec

        return dac_codec(None if codec is None else str(codec))
    if not callable(getattr(codec, "decode", None)):
        raise GenerationError(f"codec={codec!r}: expected a checkpoint path or an object with decode(codes)")
    return codec


def load(model_dir: Optional[Union[str, Path]] = None, codec: Any = None, dtype: Optional[str] = AUTO,
         quantize: Optional[str] = None, variant: str = "auto", warmup: bool = False) -> TTS:
    """A TTS with everything it needs loaded: the LM, its tokenizer and the codec.

    Args:
        model_dir: an HF-format OuteTTS folder (config.json, safetensors, tokenizer.json); None: the embedded
            seeded 1B one (random weights), as the CLI (`impl.seeded.default_model()`).
        codec: None (the embedded seeded DAC 24 kHz, as the CLI), a DAC checkpoint path (.pth or safetensors),
            or a loaded codec (`impl.dac.load_codec(...)`).
        dtype: "auto" (default: `default_dtype()`, float32 on the CPU, as the CLI), None (the checkpoint's), or
            a dtype name.
        quantize: None, "q8" or "q4": the LM's weights in 8/4-bit groups of 64 (`impl.llama.load`).
        variant: the LM variant `impl.accel.apply` applies: "auto" (default: the device's, `accel.default_variant()`
            -- "cpu" on the CPU, "fused" on a GPU), "plain" (the model as written, what the layer parity taps),
            "fused" (q|k|v and gate|up fused projections), "cpu" (the Linux CPU layout + compiled decode step).
        warmup: on mlx-cuda, compile the generation's run-time kernels in child processes while the weights load
            (`impl.accel.cuda.KernelWarmup`); off by default (a library call starts no process unless asked);
            the CLI turns it on.
    Errors (FileNotFoundError, GenerationError, impl's checkpoint errors) come before any generation.
    """
    from impl import llama
    from impl.runtime import apply_variant, check_variant, warmup_if

    check_variant(variant)
    if model_dir is None:
        from impl.seeded import default_model

        model_dir = default_model()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    dtype = default_dtype() if dtype == AUTO else dtype
    started = warmup_if(warmup, model_dir, dtype, quantize)
    tokenizer = Tokenizer(model_dir)
    codec = load_codec(codec)  # seconds, before the LM (minutes the first time): its errors come first
    lm = llama.load(model_dir, dtype=dtype, quantize=quantize)
    applied = apply_variant(lm, variant)
    started.wait()
    return TTS(lm, tokenizer, stop_ids=stop_ids_from_config(model_dir, tokenizer), codec=codec, variant=applied)
