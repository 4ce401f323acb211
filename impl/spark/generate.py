"""Spark-TTS generation: text + a voice (prompt audio, or gender/pitch/speed) -> LLM ids -> BiCodec -> 16 kHz audio.

Ports sparktts `cli/SparkTTS.py` (SparkTTS.inference) on impl's pieces:
  - cloning: the prompt audio through BiCodecTokenizer.tokenize (impl.spark: load_audio, the 6 s reference clip,
    wav2vec2 features, BiCodec.tokenize) -> 32 global ids (+ semantic ids with a prompt transcript) ->
    `prompt.clone_ids`; creation: `prompt.control_ids`;
  - generate: prefill + one token per step (`impl.runtime.decode_loop`, shared with OuteTTS), the
    official sampler (`impl.spark.sampler`), until an EOS id of the LLM folder (generation_config.json, else
    config.json; included, as transformers returns it) or max_new_tokens (official: 3000); the folder's other
    generation keys as transformers merges them under the official call (`generation_settings`: repetition penalty
    and min-p honoured, keys that would change the ids otherwise refused);
  - parse as upstream: decode the new ids with skip_special_tokens, then `bicodec_semantic_(\\d+)` (and, creating a
    voice, `bicodec_global_(\\d+)`) over the text; BiCodec.detokenize -> audio.
Beyond upstream: "auto" max_new_tokens (the default, in the API as in the CLI: the text's expected semantic ids,
doubled: random weights rarely emit EOS; None: the official 3000); long texts split into chunks (50 words at most,
a CJK character counting as one word, no word splitter needed; a text that fits one chunk is used verbatim, as
upstream), every chunk in the same voice -- creating a voice, the first
chunk's generated global ids clone it for the rest; parsed ids outside the codebooks are dropped with a warning
(upstream's embedding lookup would fail); a voice creation that yields fewer global ids than BiCodec needs is an
error (upstream's reshape fails), more are cut to the first 32 with a warning; `stream()` yields each chunk's audio
and raises, as `generate`, when no chunk produced any.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mlx.core as mx
import numpy as np

from impl._io import INT32, read_json
from impl.runtime import (AUTO, CAP_FACTOR, CAP_MARGIN, ChunkPlan, ChunkResult, GenerationConfig,  # noqa: F401
                          GenerationError, OuteTTSOptions, auto_cap, decode_loop, default_dtype, no_audio_error,
                          timed_chunk)
from impl.spark import prompt as P
from impl.spark.sampler import TEMPERATURE, TOP_K, TOP_P, Sampler, SamplerConfig
from impl.spark.sampler import config as official_sampler
from impl.spark.tokens import Tokenizer

__all__ = ["AUTO", "GenerationConfig", "GenerationError", "SAMPLE_RATE", "SparkTTS", "Voice", "load"]

SAMPLE_RATE = 16000
TOKENS_PER_SECOND = 50  # semantic ids per second of audio (BiCodec hop 320 at 16 kHz)
MAX_NEW_TOKENS = 3000   # SparkTTS.inference's generate call
CHARS_PER_SECOND = 14.5  # speech without a transcript to measure: ~14.5 characters per second
CJK_WEIGHT = 3           # a CJK character is spoken ~3x as long as a Latin one (~4.5 characters/s)
CHUNK_WORDS = (20, 50)   # chunk_text's min/max words per chunk: ~20 s at most, well inside 3000 ids (60 s)
DECODE_RATE = {"cpu": 8.0, "gpu": 300.0}  # typical Qwen2 0.5B decode tokens/s, for the ETA (docs/performance.md)
AUDIO_CONFIG = {"sample_rate": 16000, "ref_segment_duration": 6, "latent_hop_length": 320, "volume_normalize": True}
LLM, BICODEC, W2V, CONFIG = "LLM", "BiCodec", "wav2vec2-large-xlsr-53", "config.yaml"
_CJK = "\u3040-\u30ff\u4e00-\u9fff\u3400-\u4dbf\uac00-\ud7af"


def sampler_config(config: GenerationConfig, folder: Optional["FolderGeneration"] = None) -> SamplerConfig:
    """The official sampler (temperature 0.8, top-k 50, top-p 0.95 for what `config` leaves None; greedy: T = 0)
    on an LLM folder whose generation config adds `folder`'s penalty / min-p. A config that changes the OuteTTS-only
    settings is refused: Spark-TTS' penalty and min-p come from its LLM folder."""
    if config.outetts != OuteTTSOptions():
        raise GenerationError("outetts=...: OuteTTS-only settings (max_length, repetition penalty, min-p); "
                              "Spark-TTS takes them from its LLM folder's generation config")
    t, k, p = config.pick(TEMPERATURE, TOP_K, TOP_P)
    extra = {} if folder is None else dict(repetition_penalty=folder.repetition_penalty, min_p=folder.min_p)
    return official_sampler(t, k, p, **extra)


@dataclass
class Voice:
    """Who speaks: cloned from prompt audio (`global_codes`, and `semantic_codes` + `prompt_text` when a transcript
    is given) or created from attributes (`gender`, `pitch`, `speed`)."""

    global_codes: Optional[np.ndarray] = None
    semantic_codes: Optional[np.ndarray] = None
    prompt_text: Optional[str] = None
    gender: Optional[str] = None
    pitch: str = "moderate"
    speed: str = "moderate"

    @property
    def creates(self) -> bool:
        return self.global_codes is None

    def __post_init__(self):
        if self.creates:
            if self.gender is None:
                raise GenerationError("a voice needs prompt audio (global ids) or a gender to create one")
            P.check_control(self.gender, self.pitch, self.speed)


def _units(text: str) -> List[str]:
    """The text's words for chunking, with no word splitter: each CJK character is one (upstream splits no words;
    outetts' MeCab is for its own chunking), every other run of non-space characters one; each keeps the spaces
    after it, so joining them gives the text back."""
    return re.findall(rf"[{_CJK}]\s*|[^\s{_CJK}]+\s*", text)


def _chunk_cjk(text: str, max_words: int) -> List[str]:
    """Sentence-aligned chunks of at most `max_words` units (`_units`) for text holding CJK characters."""
    from impl.outetts.text import split_sentences

    chunks, current, n = [], "", 0
    for sentence in split_sentences(re.sub(r"\s+", " ", text).strip()):
        units = _units(sentence)
        if n and n + len(units) > max_words:
            chunks.append(current.strip())
            current, n = "", 0
        for i in range(0, len(units), max_words):
            piece = "".join(units[i:i + max_words])
            if n + len(units[i:i + max_words]) > max_words:
                chunks.append(current.strip())
                current, n = "", 0
            current += (" " if current and not re.match(rf"[{_CJK}]", piece) else "") + piece.strip()
            n += len(units[i:i + max_words])
    if current.strip():
        chunks.append(current.strip())
    return chunks


def split_text(text: str) -> List[str]:
    """The chunks to generate one by one: the text verbatim when it fits one chunk (as upstream), else
    sentence-aligned chunks of at most CHUNK_WORDS[1] words (`chunk_text`'s; with CJK characters each counts as
    a word: no MeCab needed, Chinese is one of Spark-TTS' two languages)."""
    from impl.outetts.text import chunk_text

    if not text.strip():
        raise GenerationError("text is empty: nothing to speak")
    if re.search(rf"[{_CJK}]", text):
        chunks = _chunk_cjk(text, CHUNK_WORDS[1])
    else:
        chunks = chunk_text(text, *CHUNK_WORDS)
    if not chunks:
        raise GenerationError("text is empty: nothing to speak")
    return [text] if len(chunks) == 1 else chunks


def _spoken_chars(text: str) -> int:
    """Characters weighed by speaking time: a CJK character counts CJK_WEIGHT, spaces nothing."""
    return sum(CJK_WEIGHT if re.match(rf"[{_CJK}]", ch) else 1 for ch in text if not ch.isspace())


def auto_max_new_tokens(chunk: str, voice: Voice, n_global: int) -> Tuple[int, str]:
    """The default cap and its rule: 2 x the chunk's expected semantic ids + 64 (+ the global ids a created voice
    writes first), at most 3000. Rate: the prompt audio's semantic ids per transcript character when a transcript
    is given, else 50 ids/s / 14.5 characters/s (a CJK character counts 3)."""
    chars = _spoken_chars(chunk)
    rate, source = TOKENS_PER_SECOND / CHARS_PER_SECOND, "50 ids/s at 14.5 chars/s"
    if voice.prompt_text is not None and voice.semantic_codes is not None:
        n = _spoken_chars(voice.prompt_text)
        if n:
            rate, source = len(voice.semantic_codes) / n, "the prompt audio's"
    extra = n_global + 2 if voice.creates else 0
    cap = auto_cap(rate, chars, extra, MAX_NEW_TOKENS)
    return cap, (f"auto: {CAP_FACTOR:g} x {rate:.2f} ids/char ({source}) x {chars} chars + {CAP_MARGIN}"
                 + (f" + {extra} (global ids)" if extra else "") + f", at most {MAX_NEW_TOKENS}")


def parse_ids(text: str, kind: str) -> List[int]:
    """Upstream's parse: every `bicodec_{kind}_(\\d+)` in the decoded text."""
    return [int(t) for t in re.findall(rf"bicodec_{kind}_(\d+)", text)]


def _in_range(ids: List[int], n: int, what: str) -> np.ndarray:
    a = np.asarray(ids, dtype=np.int64)
    ok = (a >= 0) & (a < n)
    if not ok.all():
        warnings.warn(f"dropping {int((~ok).sum())} of {a.size} {what} ids outside 0..{n - 1}")
    return a[ok]


def no_semantic_error(n_tokens: int) -> GenerationError:
    """What `generate`, `stream` and the CLI raise when the new tokens hold no semantic id."""
    return no_audio_error(n_tokens, "semantic ids")


class SparkTTS:
    """Spark-TTS in MLX: an LLM `lm(ids (1, L) int32, cache) -> logits (1, L, V)`, its tokenizer, BiCodec
    (`impl.spark.load`) and, for cloning, the wav2vec2 features model (`impl.spark.wav2vec2.load`).

    Args:
        lm: the LLM (impl.qwen2 / impl.llama Model, or a callable with that signature and `make_cache`).
        tokenizer: `impl.spark.tokens.Tokenizer` of the LLM folder.
        codec: the BiCodec; w2v: the wav2vec2 features model (None: creation only).
        make_cache: () -> the LM's cache (None: `impl.llama.make_cache(lm)`).
        stop_ids: EOS ids (None: `<|im_end|>`); vocab_size: the LM's embedding rows (None: from lm.args).
        generation: the LLM folder's generation config (`generation_settings`; None: no penalty, no min-p).
        audio_config: the model folder's config.yaml keys BiCodecTokenizer reads.
        variant: the LM variant `impl.accel.apply` gave it (a record: `load` sets it).
    `load()` builds one with everything loaded; this constructor is for other LMs (tests script the logits).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, lm: Callable, tokenizer: Tokenizer, codec: Any = None, w2v: Any = None,
                 make_cache: Optional[Callable[[], Any]] = None, stop_ids: Optional[Sequence[int]] = None,
                 vocab_size: Optional[int] = None, audio_config: Optional[Dict[str, Any]] = None,
                 generation: Optional["FolderGeneration"] = None, variant: str = "plain"):
        if vocab_size is None:
            vocab_size = getattr(getattr(lm, "args", None), "vocab_size", None)
        if vocab_size is not None and tokenizer.max_id >= vocab_size:
            raise GenerationError(f"tokenizer {tokenizer.path} uses ids up to {tokenizer.max_id} but the LM has "
                                  f"{vocab_size} embedding rows: they do not belong together")
        if make_cache is None:
            from impl.llama import make_cache as llama_cache

            make_cache = lambda: llama_cache(lm)  # noqa: E731
        self.lm, self.tokenizer, self.codec, self.w2v, self.make_cache = lm, tokenizer, codec, w2v, make_cache
        self.stop_ids = set(int(i) for i in (stop_ids if stop_ids is not None else [tokenizer.eos_id]))
        self.generation, self.variant = generation, variant
        self.audio_config = dict(AUDIO_CONFIG, **(audio_config or {}))
        self.n_global = int(np.prod(codec.global_shape)) if codec is not None else 32

    # ------------------------------------------------------------------------------------------------ voices

    def voice_from_audio(self, path: Union[str, Path], prompt_text: Optional[str] = None) -> Voice:
        """BiCodecTokenizer.tokenize of the prompt audio -> a cloning Voice (AudioError for unusable audio)."""
        if self.w2v is None or self.codec is None:
            raise GenerationError("cloning needs the BiCodec and wav2vec2 models: load(..., need_w2v=True)")
        return voice_from_audio(self.codec, self.w2v, path, prompt_text, self.audio_config)

    def prompt(self, text: str, voice: Voice) -> List[int]:
        if voice.creates:
            return P.control_ids(self.tokenizer, text, voice.gender, voice.pitch, voice.speed)
        return P.clone_ids(self.tokenizer, text, voice.global_codes, voice.semantic_codes, voice.prompt_text)

    # ------------------------------------------------------------------------------------------------ tokens

    def plan(self, text: str, voice: Voice, config: Optional[GenerationConfig] = None) -> List[ChunkPlan]:
        """Every chunk's prompt and budget before any generation (input errors come from here). Creating a voice,
        chunks after the first are planned as clones of it (their prompts are rebuilt once its ids exist)."""
        config = config or GenerationConfig()
        sampler_config(config)  # settings Spark-TTS does not take: refused before any work
        plans = []
        for n, chunk in enumerate(split_text(text)):
            v = voice if n == 0 or not voice.creates else Voice(global_codes=np.zeros(self.n_global, np.int64))
            ids = self.prompt(chunk, v)
            if config.max_new_tokens == AUTO:
                budget, rule = auto_max_new_tokens(chunk, v, self.n_global)
            elif config.max_new_tokens is None:
                budget, rule = MAX_NEW_TOKENS, f"the official max_new_tokens {MAX_NEW_TOKENS}"
            else:
                budget, rule = config.max_new_tokens, "max_new_tokens"
            plans.append(ChunkPlan(chunk, ids, budget, rule))
        return plans

    def generate_chunks(self, text: str, voice: Voice, config: Optional[GenerationConfig] = None,
                        on_token: Optional[Callable[[int], None]] = None,
                        on_chunk: Optional[Callable[[int, int, ChunkPlan], None]] = None,
                        plans: Optional[List[ChunkPlan]] = None) -> Iterator[Tuple[ChunkResult, Voice]]:
        """(ChunkResult, the voice that spoke it) per chunk; one seeded sampler across chunks."""
        config = config or GenerationConfig()
        plans = self.plan(text, voice, config) if plans is None else plans
        sampler = Sampler(sampler_config(config, self.generation), config.seed)
        created = voice.creates
        for n, p in enumerate(plans):
            if n and created:  # the later chunks clone the voice the first one created
                p = replace(p, prompt=self.prompt(p.text, voice))
            if on_chunk is not None:
                on_chunk(n, len(plans), p)
            result = timed_chunk(p, lambda tap: decode_loop(self.lm, self.make_cache(), p.prompt, sampler, p.budget,
                                                            self.stop_ids, tap), on_token)
            spoke = voice
            if voice.creates:
                spoke = voice = Voice(global_codes=self.parse(result.tokens, voice)[1])
            yield result, spoke

    # ----------------------------------------------------------------------------------------------- audio

    def parse(self, tokens: Sequence[int], voice: Voice) -> Tuple[np.ndarray, np.ndarray]:
        """(semantic codes (T,), global codes (32,)) from new tokens, as upstream: decode with skip_special_tokens,
        regex. Cloning, the global codes are the voice's own."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        n_sem = self.codec.codebook_size if self.codec is not None else self.tokenizer.semantic_ids.size
        sem = _in_range(parse_ids(text, "semantic"), n_sem, "semantic")
        if not voice.creates:
            return sem, np.asarray(voice.global_codes, np.int64)
        n_glob = self.codec.global_codebook_size if self.codec is not None else self.tokenizer.global_ids.size
        glob = _in_range(parse_ids(text, "global"), n_glob, "global")
        if glob.size < self.n_global:
            raise GenerationError(f"creating a voice: the model wrote {glob.size} global ids in {len(tokens)} "
                                  f"tokens, BiCodec needs {self.n_global} (random weights? try a larger "
                                  "max_new_tokens)")
        if glob.size > self.n_global:
            warnings.warn(f"the model wrote {glob.size} global ids; the first {self.n_global} are used")
        return sem, glob[:self.n_global]

    def decode(self, semantic: np.ndarray, global_codes: np.ndarray) -> np.ndarray:
        """BiCodec.detokenize: semantic codes (T,), global codes (32,) -> (T * 320,) float32 at 16 kHz."""
        if self.codec is None:
            raise GenerationError("no BiCodec: this SparkTTS was built without one (impl.spark.generate.load "
                                  "loads it)")
        if semantic.size == 0:
            return np.zeros(0, np.float32)
        g = np.asarray(global_codes, np.int64).reshape((1,) + tuple(self.codec.global_shape))
        wav = self.codec.detokenize(mx.array(semantic.astype(np.int32)[None]), mx.array(g.astype(np.int32)))
        return np.array(wav, dtype=np.float32).reshape(-1)

    def generate(self, text: str, voice: Voice, config: Optional[GenerationConfig] = None,
                 on_token: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, List[int]]:
        """(audio (N,) float32 at `sample_rate` (16 kHz), every chunk's new tokens concatenated).

        Args:
            text: what to say (English or Chinese; over 50 words it is split at sentences).
            voice: `voice_from_audio(path, prompt_text)` (cloning) or `Voice(gender=, pitch=, speed=)` (creation).
            config: `GenerationConfig` (None: the defaults; max_new_tokens "auto", as the CLI).
            on_token: called with each new token id as it is generated.
        Raises GenerationError when no semantic id was produced (and for settings Spark-TTS does not take)."""
        audio, tokens = [], []
        for piece in self._pieces(text, voice, config, on_token, tokens):
            audio.append(piece)
        return np.concatenate(audio), tokens

    def stream(self, text: str, voice: Voice, config: Optional[GenerationConfig] = None,
               on_token: Optional[Callable[[int], None]] = None) -> Iterator[np.ndarray]:
        """Each chunk's audio as soon as its tokens are generated (a chunk with no semantic id yields nothing);
        GenerationError, as `generate`, when no chunk produced audio."""
        yield from self._pieces(text, voice, config, on_token, [])

    def _pieces(self, text: str, voice: Voice, config: Optional[GenerationConfig],
                on_token: Optional[Callable[[int], None]], tokens: List[int]) -> Iterator[np.ndarray]:
        if self.codec is None:
            self.decode(np.zeros(0, np.int64), np.zeros(0, np.int64))  # its error, before any generation
        n_samples = 0
        for r, spoke in self.generate_chunks(text, voice, config, on_token):
            tokens += r.tokens
            audio = self.decode(*self.parse(r.tokens, spoke))
            if audio.size:
                n_samples += audio.size
                yield audio
        if n_samples == 0:
            raise no_semantic_error(len(tokens))


def voice_from_audio(codec: Any, w2v: Any, path: Union[str, Path], prompt_text: Optional[str] = None,
                     audio_config: Optional[Dict[str, Any]] = None) -> Voice:
    """A cloning Voice from prompt audio, as BiCodecTokenizer.tokenize: load_audio (16 kHz, volume-normalised), the
    6 s reference clip -> 32 global ids, wav2vec2 features of the whole clip -> semantic ids."""
    from impl.spark import audio, wav2vec2

    c = dict(AUDIO_CONFIG, **(audio_config or {}))
    wav = audio.load_audio(path, c["sample_rate"], volume_normalize=c["volume_normalize"])
    clip = audio.ref_clip(wav, c["sample_rate"], c["ref_segment_duration"], c["latent_hop_length"])
    sem, glob = codec.tokenize(wav2vec2.features(w2v, wav), mx.array(clip.astype(np.float32))[None])
    return Voice(global_codes=np.array(glob).reshape(-1).astype(np.int64),
                 semantic_codes=np.array(sem).reshape(-1).astype(np.int64), prompt_text=prompt_text)


# ------------------------------------------------------------------------------------------------ model dirs

# transformers' generate merges the model's generation config (LLM/generation_config.json; without that file, the
# generation keys of config.json: GenerationConfig.from_model_config) under the call's own arguments. SparkTTS.inference
# passes do_sample, temperature, top_k, top_p and max_new_tokens; every other key comes from the folder. The official
# Spark-TTS-0.5B LLM/ has no generation_config.json and its config.json only bos/eos ids, so only EOS applies there.
# Each GenerationConfig key of transformers 4.52.3 is classified here (parity/test_spark_generate.py checks the list
# against transformers' own): honoured, overridden by the call, inert for one greedy/sampled sequence, or refused
# when set to anything but its default (the value given: transformers' default).
GEN_HONOURED = ("eos_token_id", "repetition_penalty", "min_p")
GEN_OVERRIDDEN = ("do_sample", "temperature", "top_k", "top_p", "max_new_tokens",
                  "max_length")  # generate sets max_length = prompt + max_new_tokens when max_new_tokens is given
GEN_INERT = ("bos_token_id", "pad_token_id", "decoder_start_token_id", "use_cache", "cache_implementation",
             "cache_config", "return_legacy_cache", "prefill_chunk_size", "output_attentions", "output_hidden_states",
             "output_scores", "output_logits", "early_stopping", "length_penalty", "low_memory", "is_assistant",
             "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold",
             "assistant_lookbehind", "target_lookbehind", "max_matching_ngram_size", "disable_compile",
             "_from_model_config", "transformers_version")  # beam/assisted/cache/output settings: no effect here
GEN_REFUSED: Dict[str, Any] = {
    "min_length": 0, "min_new_tokens": None, "max_time": None, "stop_strings": None, "num_beams": 1,
    "num_beam_groups": 1, "diversity_penalty": 0.0, "penalty_alpha": None, "dola_layers": None, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "force_words_ids": None, "renormalize_logits": False,
    "constraints": None, "forced_bos_token_id": None, "forced_eos_token_id": None, "remove_invalid_values": False,
    "exponential_decay_length_penalty": None, "suppress_tokens": None, "begin_suppress_tokens": None,
    "forced_decoder_ids": None, "sequence_bias": None, "token_healing": False, "guidance_scale": None,
    "watermarking_config": None, "num_return_sequences": 1, "return_dict_in_generate": False,
    "prompt_lookup_num_tokens": None, "assistant_early_exit": None, "generation_kwargs": {}}


@dataclass(frozen=True)
class FolderGeneration:
    """What an LLM folder's generation config adds to SparkTTS.inference's generate call."""

    stop_ids: Tuple[int, ...]
    repetition_penalty: float = 1.0  # transformers' RepetitionPenaltyLogitsProcessor: every id so far, prompt too
    min_p: float = 0.0               # MinPLogitsWarper, after top-p (sampling only)
    source: str = ""


def _number(file: Path, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise GenerationError(f"{file}: {key} {value!r} is not a number in [{low:g}, {high:g}]")
    return float(value)


def generation_settings(llm_dir: Union[str, Path]) -> FolderGeneration:
    """The folder's generation config as transformers merges it under SparkTTS.inference's call: EOS ids (none when
    the file has none), repetition penalty, min-p; GenerationError (one line naming the file and key) for a key that
    would change the official ids and that voiceport does not implement."""
    llm_dir = Path(llm_dir)
    file = llm_dir / "generation_config.json"
    if not file.is_file():
        file = llm_dir / "config.json"  # transformers: GenerationConfig.from_model_config(config)
    try:
        d = read_json(file, "generation config", GenerationError, ints=INT32) if file.is_file() else {}
    except OSError as e:
        raise GenerationError(f"{file}: cannot read: {e}") from None
    if not isinstance(d, dict):
        raise GenerationError(f"{file}: not a JSON object")
    if file.name == "config.json":
        d = {k: v for k, v in d.items() if v is not None}  # from_model_config drops None values
    for key, default in GEN_REFUSED.items():
        if key in d and d[key] != default and not (default is None and d[key] in ({}, [])):
            raise GenerationError(f"{file}: {key}={json.dumps(d[key])} changes what the official generate writes; "
                                  f"voiceport does not implement it (remove it, or set {json.dumps(default)})")
    eos = d.get("eos_token_id")
    if eos is None:
        stops = []  # transformers then has no EOS id: generate runs to max_new_tokens (no fallback to config.json)
    else:
        stops = eos if isinstance(eos, list) else [eos]
        if not stops or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in stops):
            raise GenerationError(f"{file}: eos_token_id {eos!r} is not a token id or a list of them")
    penalty = _number(file, "repetition_penalty", d.get("repetition_penalty", 1.0), 1e-9, math.inf)
    min_p = d.get("min_p")
    min_p = 0.0 if min_p is None else _number(file, "min_p", min_p, 0.0, 1.0)
    return FolderGeneration(tuple(int(e) for e in stops), penalty, min_p, str(file))


def stop_ids_from_config(llm_dir: Path, tokenizer: Optional[Tokenizer] = None) -> List[int]:
    """EOS ids as transformers' generate reads them: generation_config.json's, else config.json's (maybe none)."""
    return list(generation_settings(llm_dir).stop_ids)


def load_lm(llm_dir: Path, dtype: Optional[str] = None, quantize: Optional[str] = None, variant: str = "auto",
            warmup: bool = False) -> Tuple[Any, Callable[[], Any], str]:
    """(lm, make_cache, the variant applied) for the LLM folder by its config.json model_type: qwen2
    (Spark-TTS-0.5B) or llama; `variant` and `warmup` as `load`'s."""
    from impl.runtime import apply_variant, check_variant, warmup_if

    check_variant(variant)
    try:
        model_type = read_json(Path(llm_dir) / "config.json", "model config", GenerationError, ints=INT32).get(
            "model_type")
    except (OSError, AttributeError) as e:
        raise GenerationError(f"{Path(llm_dir) / 'config.json'}: cannot read: {e}") from None
    from impl import llama, qwen2

    if model_type not in ("qwen2", "llama"):
        raise GenerationError(f"{Path(llm_dir) / 'config.json'}: model_type {model_type!r}; Spark-TTS' LLM is qwen2")
    started = warmup_if(warmup, llm_dir, dtype, quantize, model="spark")  # mlx-cuda's first run (joins the CLI's)
    lm = (qwen2 if model_type == "qwen2" else llama).load(llm_dir, dtype=dtype, quantize=quantize)
    applied = apply_variant(lm, variant)
    started.wait()
    return lm, (lambda: llama.make_cache(lm)), applied


def audio_config(path: Union[str, Path]) -> Dict[str, Any]:
    """The keys BiCodecTokenizer reads from the model folder's config.yaml; Spark-TTS-0.5B's values when the file
    is absent. GenerationError for a sample rate other than 16 kHz (impl.spark.config.ConfigError for a file the
    reader refuses)."""
    from impl.spark.config import read_yaml

    path = Path(path)
    cfg = dict(AUDIO_CONFIG)
    if path.exists():
        found = read_yaml(path)
        cfg.update({k: found[k] for k in AUDIO_CONFIG if k in found})
    if cfg["sample_rate"] != 16000:
        raise GenerationError(f"{path}: sample_rate {cfg['sample_rate']}: BiCodec's mel and wav2vec2 are 16 kHz")
    return cfg


def check_folder(model_dir: Union[str, Path], need_w2v: bool = True) -> Tuple[Path, Tokenizer]:
    """The folder's layout and its LLM tokenizer, before any weight is read: GenerationError naming what is
    missing or mismatched (tokenizer without the Spark tokens, ids beyond the LM's embedding rows)."""
    from impl.spark.tokens import TokenizerError

    root = Path(model_dir)
    if not root.is_dir():
        raise GenerationError(f"{root}: no such Spark-TTS folder ({LLM}/, {BICODEC}/, {W2V}/, config.yaml)")
    want = [LLM, BICODEC] + ([W2V] if need_w2v else [])
    missing = [n + "/" for n in want if not (root / n).is_dir()]
    if missing:
        raise GenerationError(f"{root}: no {' or '.join(missing)} folder (the Spark-TTS-0.5B layout: {LLM}/, "
                              f"{BICODEC}/, {W2V}/, config.yaml)")
    try:
        tok = Tokenizer(root / LLM)
    except TokenizerError as e:
        raise GenerationError(str(e)) from None
    try:
        vocab = read_json(root / LLM / "config.json", "model config", GenerationError, ints=INT32)["vocab_size"]
        if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab <= 0:
            raise TypeError(f"vocab_size {vocab!r} is not a positive integer")
    except (OSError, KeyError, TypeError) as e:
        raise GenerationError(f"{root / LLM / 'config.json'}: no readable vocab_size ({e})") from None
    if tok.max_id >= vocab:
        raise GenerationError(f"{root / LLM}: the tokenizer uses ids up to {tok.max_id} but the LM has {vocab} "
                              "embedding rows (config.json vocab_size): they do not belong together")
    generation_settings(root / LLM)  # a generation config key voiceport cannot honour: refused here, up front
    return root, tok


def load(model_dir: Optional[Union[str, Path]] = None, dtype: Optional[str] = AUTO, quantize: Optional[str] = None,
         need_w2v: bool = True, variant: str = "auto", warmup: bool = False) -> SparkTTS:
    """A SparkTTS with everything it needs loaded (LLM, tokenizer, BiCodec, and wav2vec2 for cloning) from a
    Spark-TTS-0.5B-layout folder (LLM/, BiCodec/, wav2vec2-large-xlsr-53/, config.yaml).

    Args:
        model_dir: the folder; None: the embedded seeded one (`impl.seeded.spark.default_spark_dir()`, random
            weights), as the CLI's `--model spark`.
        dtype: "auto" (float32 on CPU, as the CLI), None (the checkpoint's) or a dtype name, for the LLM.
        quantize: None, "q8" or "q4": the LLM's weights in 8/4-bit groups.
        need_w2v: load wav2vec2 (cloning); False for voice creation only.
        variant: the LLM variant `impl.accel.apply` applies: "auto" (default: the device's -- "cpu" on the CPU,
            "fused" on a GPU), "plain" (the model as written), "fused", "cpu" (see `impl.outetts.generate.load`).
        warmup: on mlx-cuda, compile run-time kernels in child processes while loading; off by default (the CLI
            turns it on).
    Folder errors (layout, tokenizer, vocabulary, generation config) are GenerationError, before any weight loads.
    """
    from impl import spark
    from impl.spark import wav2vec2

    if model_dir is None:
        from impl.seeded.spark import default_spark_dir

        model_dir = default_spark_dir()
    root, tok = check_folder(model_dir, need_w2v)
    cfg = audio_config(root / CONFIG)
    gen = generation_settings(root / LLM)
    codec = spark.load(root / BICODEC)
    w2v = wav2vec2.load(root / W2V) if need_w2v else None
    lm, make_cache, applied = load_lm(root / LLM, default_dtype() if dtype == AUTO else dtype, quantize, variant,
                                      warmup)
    return SparkTTS(lm, tok, codec=codec, w2v=w2v, make_cache=make_cache, stop_ids=gen.stop_ids, audio_config=cfg,
                    generation=gen, variant=applied)
