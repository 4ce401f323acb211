"""OuteTTS v3 generation: prompt -> audio tokens -> codes -> audio, in MLX.

Ports outetts 0.4.4 `version/interface.py` (InterfaceHF: `chunk_generation`, the default generation type, and
`get_audio`), `models/hf_model.py` (HFModel._generate: transformers `generate` with outetts' sampler settings)
and `version/v3/prompt_processor.py` (`extract_audio_from_tokens`):
  - the text is split by `chunk_text`; each chunk gets its own prompt (same speaker) and its own generation;
  - a generation stops at an EOS id (the model config's `eos_token_id`, `<|im_end|>` for OuteTTS) -- included
    in the output, as transformers returns it -- or when prompt + output reach `max_length` (8192, outetts'
    GenerationConfig.max_length, transformers' MaxLengthCriteria); `max_new_tokens` is an extra cap of ours
    ("auto", the CLI's default: the chunk's expected length from the profile's tokens per character, doubled);
  - the tokens of all chunks are concatenated; c1 and c2 codes are collected separately in order and cut to the
    shorter list (outetts' parse, kept as is), then decoded at once.
Beyond outetts: `stream()` yields the audio of each text chunk as soon as it is generated; a prompt that alone
reaches `max_length` is an error (transformers would warn and still emit one token); `generate` raises when no
audio codes were produced (outetts returns empty audio); frames holding code 1024
(a v3 token that is no DAC code: torch's embedding lookup would fail) are dropped before decoding, with a
warning.
"""
from __future__ import annotations

import inspect
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mlx.core as mx
import numpy as np

from impl.outetts.prompt import prompt_ids
from impl.outetts.sampler import Sampler, SamplerConfig
from impl.outetts.text import TextError, chunk_text, normalize
from impl.outetts.tokenizer import Tokenizer
from impl.outetts.tokens import CODEBOOK_SIZE, SPECIAL
from impl.speaker.profile import validate_speaker

SAMPLE_RATE = 24000
FRAME_RATE = 75          # DAC 24 kHz: 320 samples per frame
TOKENS_PER_SECOND = 150  # two code tokens per frame: what RTF and the progress bar count against


AUTO = "auto"            # max_new_tokens: the chunk's expected length, doubled (auto_max_new_tokens)
CAP_FACTOR = 2.0         # auto cap: twice the expected tokens...
CAP_MARGIN = 64          # ... plus this many
NO_SPEAKER_TOKENS_PER_CHAR = 12.0  # no profile: 75 frames/s x 2 tokens / ~14.5 characters/s + word markup


class GenerationError(ValueError):
    """A generation request that cannot run as asked (model/tokenizer mismatch, prompt longer than max_length,
    bad settings), or a generation that produced no audio codes."""


@dataclass
class GenerationConfig:
    """outetts' GenerationConfig fields that shape the token stream, plus `max_new_tokens` and `seed`.

    max_new_tokens: None (outetts: until EOS or max_length), an int cap per chunk, or "auto" (the CLI's default:
    `auto_max_new_tokens`, the chunk's expected length doubled, for models that may never emit EOS).
    """

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    max_length: int = 8192
    max_new_tokens: Optional[Union[int, str]] = None
    seed: int = 0

    def __post_init__(self):
        m = self.max_new_tokens
        if not (m is None or m == AUTO or (isinstance(m, int) and not isinstance(m, bool) and m >= 1)):
            raise GenerationError(f"max_new_tokens must be None, {AUTO!r} or an integer >= 1, got {m!r}")
        if not isinstance(self.max_length, int) or self.max_length < 2:
            raise GenerationError(f"max_length must be an integer >= 2, got {self.max_length!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise GenerationError(f"seed must be an integer >= 0, got {self.seed!r}")


@dataclass
class ChunkPlan:
    """One text chunk before generation: its prompt ids and its new-token budget (`rule` says where from)."""

    text: str
    prompt: List[int]
    budget: int
    rule: str


@dataclass
class ChunkResult:
    """One text chunk's generation: its new tokens and timings (prefill = prompt to first token)."""

    text: str
    prompt_len: int
    tokens: List[int]
    seconds: float
    prefill_seconds: float
    budget: Optional[int] = None


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
    cap = int(math.ceil(CAP_FACTOR * rate * chars)) + CAP_MARGIN
    return cap, f"{CAP_FACTOR:g} x {rate:.1f} tokens/char ({source}) x {chars} chars + {CAP_MARGIN}"


def no_codes_error(n_tokens: int) -> GenerationError:
    """What the CLI and `TTS.generate` raise when the tokens hold no complete (c1, c2) frame."""
    return GenerationError(f"the model produced no audio codes in {n_tokens} tokens: nothing to decode "
                           "(random weights? try a larger --max-new-tokens / max_new_tokens)")


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


def timed_chunk(plan: ChunkPlan, run: Callable[[Callable[[int], None]], List[int]],
                on_token: Optional[Callable[[int], None]] = None) -> ChunkResult:
    """`run(tap)` generates `plan`'s tokens, calling tap(token) for each; the ChunkResult with its wall time and
    its prefill time (to the first token). on_token is called for every token as it arrives."""
    first: List[float] = []

    def tap(tok: int) -> None:
        if not first:
            first.append(time.perf_counter())
        if on_token is not None:
            on_token(tok)

    t0 = time.perf_counter()
    tokens = run(tap)
    end = time.perf_counter()
    return ChunkResult(plan.text, len(plan.prompt), tokens, end - t0, (first[0] if first else end) - t0, plan.budget)


def decode_loop(lm: Callable, cache: Any, prompt: Sequence[int], sampler: Sampler, budget: int,
                stop_ids: Container[int] = (), on_token: Optional[Callable[[int], None]] = None) -> List[int]:
    """The one decode loop (B = 1): prefill `prompt` in one pass, then one token per step, until a token in
    `stop_ids` (included) or `budget` new tokens.

    `lm(ids (1, L) uint32, cache) -> logits (1, L, V)`; `sampler(logits (1, V), window (1, W)) -> ids (1,)`, with
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
    # ids stay uint32 (what argmax / argpartition return) from here on: no cast node per step
    window = mx.array(np.asarray(prompt[max(0, len(prompt) - R):] if R else [], np.uint32)[None])
    y = sampler(next_logits(mx.array(np.asarray(prompt, np.uint32)[None])), window)  # one embedding kernel
    mx.async_eval(y)
    out: List[int] = []
    while True:
        window = mx.concatenate([window, y[:, None]], axis=1)[:, -R:] if R else window
        last = len(out) + 1 >= budget
        if not last:  # queue the next step before reading this one
            y_next = sampler(next_logits(y[:, None]), window)
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

    def budget(self, prompt: Sequence[int], config: GenerationConfig, chunk: str = "",
               speaker: Optional[Dict[str, Any]] = None) -> Tuple[int, str]:
        """(new-token budget, its rule) for one prompt: max_length - prompt, capped by max_new_tokens."""
        if len(prompt) >= config.max_length:
            raise GenerationError(f"the prompt has {len(prompt)} tokens, max_length is {config.max_length}: "
                                  "use a shorter speaker profile or a larger max_length")
        budget, rule = config.max_length - len(prompt), f"max_length {config.max_length} - prompt {len(prompt)}"
        cap = config.max_new_tokens
        if cap == AUTO:
            cap, why = auto_max_new_tokens(chunk, prompt, speaker, self.tokenizer.added_id(SPECIAL.audio_start))
            rule = f"auto: {why}" if cap < budget else rule
        elif cap is not None:
            rule = "max_new_tokens" if cap < budget else rule
        return (budget if cap is None else min(budget, cap)), rule

    def plan(self, text: str, speaker: Optional[Dict[str, Any]], config: GenerationConfig) -> List[ChunkPlan]:
        """Every chunk's prompt and budget, before any generation: all input errors (empty text, bad profile,
        a prompt that alone reaches max_length) come from here."""
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
        return decode_loop(self.lm, self.make_cache(), prompt, sampler or Sampler(config.sampler, config.seed),
                           budget, self.stop_ids, on_token)

    def generate_chunks(self, text: str, speaker: Optional[Dict[str, Any]], config: GenerationConfig,
                        on_token: Optional[Callable[[int], None]] = None,
                        on_chunk: Optional[Callable[[int, int, ChunkPlan], None]] = None,
                        plans: Optional[List[ChunkPlan]] = None) -> Iterator[ChunkResult]:
        """One ChunkResult per text chunk (outetts' chunked generation); one seeded sampler across chunks.

        on_chunk(index, n_chunks, plan) is called before each chunk's prefill; `plans` (from `plan`) skips
        planning again."""
        plans = self.plan(text, speaker, config) if plans is None else plans  # all input errors before any work
        sampler = Sampler(config.sampler, config.seed)
        for n, p in enumerate(plans):
            if on_chunk is not None:
                on_chunk(n, len(plans), p)
            yield timed_chunk(p, lambda tap: self.generate_ids(p.prompt, config, sampler, tap, budget=p.budget),
                              on_token)

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
        """(audio, all generated tokens): outetts' chunked generation, codes of all chunks decoded at once.
        Raises GenerationError (as the CLI) when the tokens hold no audio codes."""
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


def _json_or_empty(file: Path) -> Dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def start_kernel_warmup(model_dir: Optional[Union[str, Path]], dtype: Optional[str], quantize: Optional[str],
                        model: str = "outetts"):
    """`impl.accel.cuda.KernelWarmup(...).start()` for the LM `load` will build (mlx-cuda's first run; a no-op elsewhere):
    dtype None = the checkpoint's own, as its config.json states it (the embedded seeded model is bf16); `model`
    "spark" (Spark-TTS' callers) warms the BiCodec's kernels too."""
    from impl.accel import cuda

    if dtype is None:
        config = _json_or_empty(Path(model_dir) / "config.json") if model_dir is not None else {}
        dtype = str(config.get("torch_dtype") or "bfloat16")
    return cuda.KernelWarmup(dtype, quantize, model=model).start()


def default_dtype() -> Optional[str]:
    """The LM compute dtype the CLI and `load` pick: float32 on the CPU (MLX's bf16/fp16 matmuls there are far
    slower than fp32 through BLAS), None (the checkpoint's own) on a GPU."""
    return "float32" if mx.default_device() == mx.cpu else None


def load(model_dir: Optional[Union[str, Path]] = None, codec: Any = None, dtype: Optional[str] = AUTO,
         quantize: Optional[str] = None) -> TTS:
    """A TTS from an HF-format model folder (config.json, safetensors, tokenizer.json) and a loaded codec.

    Args:
        model_dir: the folder; None: the embedded seeded one, as the CLI (`impl.seeded.default_model()`).
        codec: an `impl.dac.load_codec()` (needed to decode audio; `load_codec()` is the embedded one).
        dtype: "auto" (default: `default_dtype()`, as the CLI), None (the checkpoint's), or a dtype name.
        quantize: None, "q8" or "q4": the LM's weights in 8/4-bit groups of 64 (`impl.llama.load`); the KL
            divergence and greedy agreement against bf16 are in bench/gpu.py's output.

    On mlx-cuda, a machine's first run compiles the generation's run-time kernels in parallel child processes
    while the weights load (`impl.accel.cuda.KernelWarmup`; VOICEPORT_KERNEL_WARMUP=0 turns it off).
    """
    from impl import llama

    if model_dir is None:
        from impl.seeded import default_model

        model_dir = default_model()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    dtype = default_dtype() if dtype == AUTO else dtype
    warmup = start_kernel_warmup(model_dir, dtype, quantize)
    tokenizer = Tokenizer(model_dir)
    lm = llama.load(model_dir, dtype=dtype, quantize=quantize)
    warmup.wait()
    return TTS(lm, tokenizer, stop_ids=stop_ids_from_config(model_dir, tokenizer), codec=codec)
