"""The generation runtime both TTS models share: config, chunk plan/result, the decode loop, stop rules, the
default token cap, LM loading steps (dtype, variant, warm-up), progress and the summary lines.

OuteTTS (`impl.outetts.generate`) and Spark-TTS (`impl.spark.generate`) each build prompts, parse what the LM wrote
and decode audio their own way; everything between a prompt and its new tokens is here, once:
  - `GenerationConfig`: one vocabulary for both models (temperature, greedy, top_k, top_p, seed, max_new_tokens),
    the OuteTTS-only settings nested (`outetts=OuteTTSOptions(...)`);
  - `ChunkPlan` / `ChunkResult`: one text chunk before and after generation;
  - `decode_loop`: prefill, then one token per step until a stop id (included, as transformers returns it) or the
    budget; `timed_chunk` wraps it with wall and prefill times; `generate_greedy` is the LM-only greedy loop;
  - `auto_cap`: the default cap rule (the chunk's expected length, doubled, + 64), the same in the API and the CLI;
  - `load_lm_steps`: dtype default, `impl.accel.apply` variant, optional mlx-cuda kernel warm-up;
  - `Progress` / `Totals` / `eta_warning`: what the CLI prints (stderr progress, stdout summary).
Nothing here changes process-wide state unless the caller asks (`warmup=True` starts child processes).
"""
from __future__ import annotations

import inspect
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, List, Optional, Sequence, Tuple, Union

import mlx.core as mx
import numpy as np

AUTO = "auto"      # max_new_tokens: the chunk's expected length, doubled (auto_cap)
CAP_FACTOR = 2.0   # auto cap: twice the expected tokens...
CAP_MARGIN = 64    # ... plus this many


class GenerationError(ValueError):
    """A generation request that cannot run as asked (bad settings, model/tokenizer mismatch, a prompt too long),
    or a generation that produced no audio. Messages name API parameters (`max_new_tokens`, `gender=...`); the CLI
    maps them to its flags (`cli_terms`)."""


# ------------------------------------------------------------------------------------------------ config

def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class OuteTTSOptions:
    """OuteTTS-only settings (outetts 0.4.4 `models/config.py` GenerationConfig / SamplerConfig defaults):
    max_length = prompt + new tokens per chunk; the repetition penalty over the last `repetition_range` ids; min-p.
    Spark-TTS refuses a config that changes them (its penalty and min-p come from the LLM folder)."""

    max_length: int = 8192
    repetition_penalty: float = 1.1
    repetition_range: int = 64
    min_p: float = 0.05

    def __post_init__(self):
        if not (isinstance(self.max_length, int) and not isinstance(self.max_length, bool) and self.max_length >= 2):
            raise GenerationError(f"max_length={self.max_length!r}: must be an integer >= 2")
        if not (_number(self.repetition_penalty) and self.repetition_penalty > 0):
            raise GenerationError(f"repetition_penalty={self.repetition_penalty!r}: must be a finite number > 0")
        if not (isinstance(self.repetition_range, int) and self.repetition_range >= 0):
            raise GenerationError(f"repetition_range={self.repetition_range!r}: must be an integer >= 0")
        if not (_number(self.min_p) and 0 <= self.min_p <= 1):
            raise GenerationError(f"min_p={self.min_p!r}: must be a number in [0, 1]")


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate, for both models. None means the model's own default.

    Args:
        temperature: >= 0 (0 = greedy); None: OuteTTS 0.4, Spark-TTS 0.8 (the official defaults).
        greedy: argmax decoding (after OuteTTS' repetition penalty), whatever the temperature.
        top_k: >= 0 (0 = off); None: OuteTTS 40, Spark-TTS 50. top_p: in (0, 1]; None: OuteTTS 0.9, Spark 0.95.
        seed: >= 0; one seeded sampler runs across all chunks of a text.
        max_new_tokens: cap on new tokens per text chunk: "auto" (default, as the CLI: `auto_cap`, the chunk's
            expected length doubled), an int, or None (no cap of ours: OuteTTS runs to EOS or max_length, Spark-TTS
            to its official 3000).
        outetts: OuteTTS-only settings (`OuteTTSOptions`).
    """

    temperature: Optional[float] = None
    greedy: bool = False
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: int = 0
    max_new_tokens: Optional[Union[int, str]] = AUTO
    outetts: OuteTTSOptions = field(default_factory=OuteTTSOptions)

    def __post_init__(self):
        t, m = self.temperature, self.max_new_tokens
        if t is not None and not (_number(t) and t >= 0):
            raise GenerationError(f"temperature={t!r}: must be a finite number >= 0 (0 = greedy)")
        if not isinstance(self.greedy, bool):
            raise GenerationError(f"greedy={self.greedy!r}: must be True or False")
        if self.top_k is not None and not (isinstance(self.top_k, int) and not isinstance(self.top_k, bool)
                                           and self.top_k >= 0):
            raise GenerationError(f"top_k={self.top_k!r}: must be an integer >= 0 (0 = off)")
        if self.top_p is not None and not (_number(self.top_p) and 0 < self.top_p <= 1):
            raise GenerationError(f"top_p={self.top_p!r}: must be a number in (0, 1]")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2 ** 64):
            raise GenerationError(f"seed={self.seed!r}: must be an integer in [0, 2**64)")
        if not (m is None or m == AUTO or _positive_int(m)):
            raise GenerationError(f"max_new_tokens={m!r}: must be {AUTO!r}, None or an integer >= 1")
        if not isinstance(self.outetts, OuteTTSOptions):
            raise GenerationError(f"outetts={self.outetts!r}: must be an OuteTTSOptions")

    def pick(self, temperature: float, top_k: int, top_p: float) -> Tuple[float, int, float]:
        """(temperature, top_k, top_p) with a model's defaults for what is None; temperature 0 when greedy."""
        t = temperature if self.temperature is None else float(self.temperature)
        return (0.0 if self.greedy else t, top_k if self.top_k is None else self.top_k,
                top_p if self.top_p is None else float(self.top_p))


# ------------------------------------------------------------------------------------------------ chunks

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


def auto_cap(rate: float, chars: int, extra: int = 0, ceiling: Optional[int] = None) -> int:
    """The default cap: 2 x `rate` tokens/char x `chars` + 64 (+ `extra`), at most `ceiling`."""
    cap = int(math.ceil(CAP_FACTOR * rate * chars)) + CAP_MARGIN + extra
    return cap if ceiling is None else min(cap, ceiling)


def capped(result: ChunkResult, stop_ids: Container[int]) -> bool:
    """The stop rule, read back: a chunk stopped at its cap when it used its whole budget without a stop id."""
    return bool(result.tokens) and result.budget is not None and len(result.tokens) >= result.budget \
        and result.tokens[-1] not in stop_ids


def no_audio_error(n_tokens: int, what: str = "audio codes") -> GenerationError:
    """What `generate`, `stream` and the CLI raise when the new tokens hold nothing to decode."""
    return GenerationError(f"the model produced no {what} in {n_tokens} tokens: nothing to decode "
                           "(random weights? try a larger max_new_tokens)")


# ------------------------------------------------------------------------------------------------ the loop

def decode_loop(lm: Callable, cache: Any, prompt: Sequence[int], sampler: Callable, budget: int,
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


def generate_greedy(lm: Callable, prompt: Sequence[int], max_new_tokens: int) -> List[int]:
    """Exactly `max_new_tokens` argmax tokens after `prompt` from an `impl.llama` / `impl.qwen2` Model:
    transformers' greedy search with no EOS and no repetition penalty, on the LM alone (no tokenizer)."""
    from impl.llama import make_cache
    from impl.outetts.sampler import Sampler, SamplerConfig

    greedy = Sampler(SamplerConfig(temperature=0.0, repetition_penalty=1.0, repetition_range=0))
    return decode_loop(lm, make_cache(lm), prompt, greedy, max_new_tokens)


# ------------------------------------------------------------------------------------------------ loading

def default_dtype() -> Optional[str]:
    """The LM compute dtype `load` and the CLI pick: float32 on the CPU (MLX's bf16/fp16 matmuls there are far
    slower than fp32 through BLAS), None (the checkpoint's own) on a GPU."""
    return "float32" if mx.default_device() == mx.cpu else None


def check_variant(variant: str) -> str:
    """`variant` when it is one `impl.accel.apply` knows ("auto" or a key of `impl.accel.VARIANTS`)."""
    from impl import accel

    if variant != "auto" and variant not in accel.VARIANTS:
        raise GenerationError(f"variant={variant!r}: expected one of auto, {', '.join(accel.VARIANTS)}")
    return variant


def apply_variant(lm: Any, variant: str = "auto") -> str:
    """`impl.accel.apply(lm, variant)`: the named LM variant ("auto": the device's default; "plain": the model as
    written; "fused": q|k|v and gate|up fused; "cpu": the Linux CPU layout + compiled step); returns its name."""
    from impl import accel

    return accel.apply(lm, check_variant(variant))


def start_kernel_warmup(model_dir: Optional[Union[str, Path]], dtype: Optional[str], quantize: Optional[str],
                        model: str = "outetts"):
    """`impl.accel.cuda.KernelWarmup(...).start()` (mlx-cuda's first run: the generation's run-time kernels
    compile in child processes while the weights load; a no-op elsewhere). dtype None = the checkpoint's own, as
    its config.json states it (the embedded seeded models are bf16); `model` "spark" warms the BiCodec too."""
    import json

    from impl.accel import cuda

    if dtype is None:
        try:
            config = json.loads((Path(model_dir) / "config.json").read_text()) if model_dir is not None else {}
        except (OSError, ValueError):
            config = {}
        dtype = str((config if isinstance(config, dict) else {}).get("torch_dtype") or "bfloat16")
    return cuda.KernelWarmup(dtype, quantize, model=model).start()


class _NoWarmup:
    def wait(self) -> None:
        pass


def warmup_if(asked: bool, model_dir: Optional[Union[str, Path]], dtype: Optional[str], quantize: Optional[str],
              model: str = "outetts"):
    """`start_kernel_warmup` when the caller asked for it (the CLI does), else an object whose wait() is a no-op."""
    return start_kernel_warmup(model_dir, dtype, quantize, model) if asked else _NoWarmup()


# ------------------------------------------------------------------------------------------------ the CLI's lines

# API parameter names -> the tts command's flags (errors are raised in API terms, printed in the CLI's)
_FLAGS = ("max_new_tokens", "max_length", "temperature", "top_k", "top_p", "seed", "greedy", "variant", "gender",
          "pitch", "speed", "prompt_text", "prompt_audio", "text")


def cli_terms(message: str) -> str:
    """An API error message in the CLI's terms: `gender='other'` -> `--gender 'other'`, `max_new_tokens` ->
    `--max-new-tokens`."""
    names = "|".join(_FLAGS)
    message = re.sub(rf"\b({names})=", lambda m: f"--{m.group(1).replace('_', '-')} ", message)
    return re.sub(r"(?<![-\w])(max_new_tokens|max_length)\b", lambda m: "--" + m.group(1).replace("_", "-"), message)


def caps_text(plans: List[ChunkPlan]) -> str:
    """The caps and their rule, in words: "257 new tokens: auto: 2 x 8.8 tokens/char (the profile's) x 11 chars
    + 64"; several chunks: "212..398 new tokens: auto: 2 x 8.8 tokens/char (the profile's) x each chunk's chars
    + 64"."""
    if len(plans) == 1:
        return f"{plans[0].budget} new tokens: {plans[0].rule}"
    budgets = sorted(p.budget for p in plans)
    rules = sorted({re.sub(r" x \d+ chars", " x each chunk's chars", p.rule) for p in plans})
    return f"{budgets[0]}..{budgets[-1]} new tokens: {'; '.join(rules)}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def eta_warning(plans: List[ChunkPlan], tokens_per_second: float, where: str, limit_s: float = 180.0) -> Optional[str]:
    """A warning line when the caps of `plans` at `tokens_per_second` (a typical decode rate of the model on this
    device) imply more than `limit_s`; None when the run is short."""
    total = sum(p.budget for p in plans)
    seconds = total / tokens_per_second
    if seconds <= limit_s:
        return None
    return (f"{where}: warning: up to {total:,} new tokens in {len(plans)} chunk(s): up to ~{_duration(seconds)} at "
            f"~{tokens_per_second:g} tokens/s (a typical rate here; chunks that stop early take less); "
            "--max-new-tokens lowers the cap")


def decode_rate(rates: dict) -> float:
    """A model's typical decode tokens/s on this device, from its {"cpu": ..., "gpu": ...} table."""
    return rates["cpu" if mx.default_device() == mx.cpu else "gpu"]


def report_notes(notes: list, where: str = "voiceport tts") -> None:
    """Library warnings caught during a CLI run: one "note:" line each (duplicates once), on stderr."""
    for msg in dict.fromkeys(str(w.message) for w in notes):
        print(f"{where}: note: {msg}", file=sys.stderr)


class Totals:
    """Sums over the chunks' results and the summary lines `voiceport tts` prints (both models)."""

    def __init__(self):
        self.tokens = self.prompt = self.chunks = self.capped = 0
        self.gen_s = self.prefill_s = 0.0

    def add(self, r: ChunkResult, stop_ids: Container[int]) -> None:
        self.tokens += len(r.tokens)
        self.prompt += r.prompt_len
        self.chunks += 1
        self.capped += capped(r, stop_ids)
        self.gen_s += r.seconds
        self.prefill_s += r.prefill_seconds

    def summary(self, plans: List[ChunkPlan], load_s: float, compute_s: float, audio_s: float, stop: str,
                tokens_per_second: float) -> None:
        """The tokens / stopped / RTF lines (stdout); `stop` names what ends a chunk early."""
        decode_s = self.gen_s - self.prefill_s
        n_decode = self.tokens - self.chunks  # each chunk's first token is its prefill's
        rate = self.tokens / max(self.gen_s, 1e-9)
        print(f"tokens: {self.tokens} in {self.gen_s:.2f} s = {rate:.1f} tokens/s "
              f"(audio needs {tokens_per_second} tokens/s for real time); "
              f"prefill {self.prompt} prompt tokens in {self.prefill_s:.2f} s, decode "
              f"{n_decode / max(decode_s, 1e-9):.1f} tokens/s; load {load_s:.1f} s")
        print(f"stopped: {self.chunks - self.capped} of {self.chunks} chunk(s) at {stop}, {self.capped} at the cap "
              f"({caps_text(plans)})")
        print(f"RTF: {compute_s / audio_s:.3f} (compute {compute_s:.2f} s / audio {audio_s:.2f} s)")


class Progress:
    """stderr progress: a "prefill N tokens" line before each chunk's prefill, then one bar over all chunks with
    the caps' sum as total (shrunk by what a chunk leaves unused when it stops early) and an ETA."""

    def __init__(self, quiet: bool, plans: List[ChunkPlan], hint: str = "; --max-new-tokens to change"):
        self.quiet, self.plans, self.bar, self.desc = quiet, plans, None, "generating"
        if not quiet:
            auto = any(p.rule.startswith("auto") for p in plans)
            print(f"{len(plans)} chunk(s), cap {caps_text(plans)}" + (hint if auto else ""),
                  file=sys.stderr, flush=True)

    def chunk(self, index: int, n_chunks: int, plan: ChunkPlan) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        self.desc = f"chunk {index + 1}/{n_chunks}" if n_chunks > 1 else "generating"
        tqdm.write(f"{self.desc}: prefill {len(plan.prompt)} prompt tokens ...", file=sys.stderr)
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} (prefill)")

    def token(self, _tok: int) -> None:
        if self.quiet:
            return
        if self.bar is None:  # from the first token on: the prefill does not pollute the rate
            from tqdm import tqdm

            self.bar = tqdm(total=sum(p.budget for p in self.plans), unit="tok", desc=self.desc, file=sys.stderr,
                            dynamic_ncols=True)
        elif self.bar.desc != self.desc:
            self.bar.set_description_str(self.desc)
        self.bar.update(1)

    def done(self, result: ChunkResult) -> None:
        if self.bar is not None and result.budget is not None:
            self.bar.total -= result.budget - len(result.tokens)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
