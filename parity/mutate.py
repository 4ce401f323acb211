"""`./vp parity mutate`: the mutation self-test -- does every check fail when the port is wrong?

A catalogue of one-line porting bugs (`CATALOGUE`), each an exact `old -> new` text replacement in one file of
`impl/`, is applied one at a time to a temporary copy of the repository (HEAD by default, without .git and out/;
the copy's `./vp` finds the same environment, keyed by the requirement files' hash: checked before the run).
For each bug:
  1. the fast tests most likely to catch it, with `-x`, in the order listed (the first failing test id is the
     "caught by"); when none fails, the whole fast suite with `-x` (`--no-fallback` skips that);
  2. the parity report (`./vp parity COMPONENTS --quick --report DIR`), whose report.json names the failed
     sections (or components).
The table says, per bug, which test and which report section caught it. A bug marked `inert` cannot change any
output (the reason is stated): it is expected to pass every check, and the run shows whether it does.

Every `old` text must occur exactly once in its file, else the run stops naming it (`check_catalogue`, also
run by tests/test_mutate.py), so the catalogue cannot rot silently as impl/ changes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]


class MutationError(ValueError):
    """A catalogue entry that no longer applies (its old text is absent or not unique), or a bad request."""


@dataclass(frozen=True)
class Mutation:
    """One porting bug: replace `old` (found exactly once in `file`) by `new`; the two differ in one line (`old`
    may hold a neighbouring line too, to be unique).

    tests: pytest node ids or files to run first (likely catchers first); report: parity components to run
    (empty: the report's default set); inert: why the bug cannot change any output (empty: it can); blind: why
    the report, which runs OuteTTS' configs, cannot see it although other inputs' outputs change."""

    name: str
    file: str
    old: str
    new: str
    what: str
    tests: Tuple[str, ...]
    report: Tuple[str, ...] = ()
    inert: str = ""
    blind: str = ""


M = Mutation
T_DAC = "parity/test_dac.py"
T_DACI = "parity/test_dac_interface.py"
T_AUDIO = "parity/test_audio.py"
T_SPK = "parity/test_speaker.py"
T_LLAMA = "parity/test_llama.py"
T_QWEN2 = "parity/test_qwen2.py"
T_GEN = "parity/test_outetts_generate.py"
T_SAMP = "parity/test_outetts_sampler.py"
T_PROMPT = "parity/test_outetts_prompt.py"
T_OPS = "tests/test_ops.py"
T_SNAKE = "parity/test_dac_snake.py"
T_CONTRACTS = "parity/test_contracts.py"
T_SPROMPT = "parity/test_spark_prompt.py"
T_SSAMP = "parity/test_spark_sampler.py"
T_SGEN = "parity/test_spark_generate.py"
T_SETTINGS = "tests/test_settings_reach.py"
T_SPK_RAW = "parity/test_speaker_raw.py"
T_SPARK = "parity/test_spark.py"
T_SVIS = "parity/test_spark_contracts_visible.py"
T_AUDIT = "parity/test_audit_settings.py"

CATALOGUE: List[Mutation] = [
    # ---- the issue's own list
    M("dac-decode-one-short", "impl/dac/model.py",
      "return self.decoder(self.quantizer.from_codes(codes))[:, :, 0]",
      "return self.decoder(self.quantizer.from_codes(codes))[:, :-1, 0]",
      "DAC.decode returns one sample fewer",
      (f"{T_DAC}::test_dac_decode_output_length_matches_official", T_DACI), ("dac-codec", "dac-interface")),
    M("penalty-window-63", "impl/runtime.py",
      "window = mx.concatenate([window, y[:, None]], axis=1)[:, -R:] if R else window",
      "window = mx.concatenate([window, y[:, None]], axis=1)[:, -R + 1:] if R else window",
      "repetition-penalty window of 63 ids in the decode loop (outetts: 64)",
      (f"{T_GEN}::test_outetts_generate_penalty_window_in_loop_matches_outetts", T_GEN), ("sampler", "generation")),
    M("feature-bucket-int", "impl/speaker/features.py",
      "return {k: round(v * BUCKET_SCALE) for k, v in feats.items()}",
      "return {k: int(v * BUCKET_SCALE) for k, v in feats.items()}",
      "feature (pitch/energy/centroid) bucket by int() instead of round()",
      (T_SPK,), ("speaker-profile",)),
    M("loudness-target-2db", "impl/audio.py",
      "def loudness_normalize(x: np.ndarray, sr: int, target_lufs: float = -18.0, peak_db: float = -1.0,",
      "def loudness_normalize(x: np.ndarray, sr: int, target_lufs: float = -16.0, peak_db: float = -1.0,",
      "loudness target -16 LUFS instead of outetts' -18",
      (f"{T_AUDIO}::test_audio_loudness_normalize_matches_outetts", T_AUDIO, T_DACI, T_SPK),
      ("audio-path", "dac-interface", "speaker-profile")),
    M("rmsnorm-eps-1e-6", "impl/llama.py",
      "self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)",
      "self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=1e-6)",
      "RMSNorm eps 1e-6 (the HF default) instead of the config's 1e-5",
      (f"{T_LLAMA}::test_llama_small_layers_parity", T_LLAMA), ("llama", "lm-greedy")),
    M("snake-eps-dropped", "impl/ops.py",
      "return _axpy(x, _sin2(u), mx.reciprocal(alpha + 1e-9))",
      "return _axpy(x, _sin2(u), mx.reciprocal(alpha))",
      "Snake without upstream's 1e-9 (alpha = 0 gives NaN instead of x)",
      (f"{T_SNAKE}::test_dac_snake_alpha_zero_and_tiny_match_upstream", T_SNAKE), ("dac", "dac-codec"),
      blind="the seeded alphas lie in [0.5, 2] (trained ones are not ~0 either): dropping 1e-9 moves the output by "
            "~1e-9 relative, under the fp32 floor; only alpha ~ 0 changes (NaN)"),
    # ---- DAC codec
    M("encoder-stride-pad-floor", "impl/dac/model.py",
      "WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2))]",
      "WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=stride // 2)]",
      "encoder downsampling conv padding stride // 2 instead of ceil(stride / 2)",
      (f"{T_DAC}::test_dac_encode_frames_match_official", T_DAC), ("dac", "dac-codec")),
    M("decoder-convT-pad-floor", "impl/dac/model.py",
      "padding=math.ceil(stride / 2)),",
      "padding=stride // 2),",
      "decoder transposed-conv padding stride // 2 instead of ceil(stride / 2)",
      (f"{T_DAC}::test_dac_decode_output_length_matches_official", T_DAC), ("dac", "dac-codec")),
    M("convT-crop-shift", "impl/ops.py",
      "y = full[:, padding: padding + L_out, :]",
      "y = full[:, padding + 1: padding + 1 + L_out, :]",
      "transposed conv (gemm path) cropped one sample late",
      (f"{T_OPS}::test_conv_transpose1d_gemm_matches_native_torch_float64", T_DAC), ("dac",)),
    M("conv1d-tap-dilation-dropped", "impl/ops.py",
      "xs = xp[:, k * dilation: k * dilation + L_out, :]",
      "xs = xp[:, k: k + L_out, :]",
      "dilated conv (gemm path, per-tap branch) reads taps without the dilation",
      (f"{T_OPS}::test_conv1d_gemm_matches_native_torch_float64", T_DAC), ("dac",)),
    M("weight-norm-dim", "impl/dac/model.py",
      "norm = np.sqrt(np.sum(v64 * v64, axis=tuple(range(1, v.ndim)), keepdims=True))",
      "norm = np.sqrt(np.sum(v64 * v64, axis=tuple(range(0, v.ndim - 1)), keepdims=True))",
      "weight norm folded over the wrong axes (dim=-1 instead of dim=0)",
      (f"{T_DAC}::test_dac_speech_layers_parity", T_DAC), ("dac",)),
    M("dac-codebook-order", "impl/dac/quantize.py",
      "z_q = z_q + q.out_proj(q.decode_code(codes[:, i, :]))",
      "z_q = z_q + q.out_proj(q.decode_code(codes[:, -1 - i, :]))",
      "decode looks up codebook i with the codes of codebook n-1-i",
      (f"{T_DAC}::test_dac_speech_decode_within_floor", T_DAC, T_DACI), ("dac", "dac-codec")),
    M("rvq-residual-from-input", "impl/dac/quantize.py",
      "residual = residual - z_q_i",
      "residual = z - z_q_i",
      "RVQ residual taken from the input instead of the running residual (same result for 2 codebooks)",
      (f"{T_DAC}::test_dac_other_official_configs_codes_exact", T_DAC), ("dac", "dac-codec"),
      blind="with the speech codec's 2 codebooks both residuals are z - z_q1: only the 9-32 codebook configs "
            "change"),
    M("fade-out-reversed", "impl/dac/interface.py",
      "x[..., total - n: total] *= fade_ramp(1.0, 0.0, n)",
      "x[..., total - n: total] *= fade_ramp(0.0, 1.0, n)",
      "decode chunk fade-out ramp reversed (a fade in at both ends)",
      (f"{T_DACI}::test_dac_interface_apply_fade_equals_outetts", T_DACI), ("dac-interface",)),
    M("dac-default-rates", "impl/dac/model.py",
      "encoder_rates: List[int] = field(default_factory=lambda: [2, 4, 8, 8])",
      "encoder_rates: List[int] = field(default_factory=lambda: [2, 4, 5, 8])",
      "DACConfig's default encoder_rates are the 24 kHz model's, not DAC.__init__'s",
      (f"{T_CONTRACTS}::test_contracts_dac_defaults_equal_official_dac_init", T_DAC), ("dac", "dac-codec"),
      blind="every official checkpoint's kwargs carry encoder_rates: only a checkpoint that leaves the key out "
            "builds a different model"),
    M("l2norm-eps", "impl/dac/quantize.py",
      "return x / mx.maximum(mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True)), 1e-12)",
      "return x / mx.maximum(mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True)), 1e-6)",
      "codebook l2-normalisation floor 1e-6 instead of torch's 1e-12",
      (f"{T_DAC}::test_dac_encode_frames_match_official",), ("dac",),
      inert="the floor only acts on vectors of norm < 1e-6; DAC's projected latents and codebook rows are "
            "never that small (a zero latent gives the same argmax either way)"),
    # ---- audio path
    M("resample-rolloff", "impl/audio.py",
      "def resample(x: np.ndarray, orig_sr: int, new_sr: int, lowpass_filter_width: int = 6, rolloff: float = 0.99",
      "def resample(x: np.ndarray, orig_sr: int, new_sr: int, lowpass_filter_width: int = 6, rolloff: float = 0.95",
      "resampler rolloff 0.95 instead of torchaudio's 0.99",
      (f"{T_AUDIO}::test_audio_resample_matches_torchaudio", T_AUDIO), ("audio-path", "speaker-profile")),
    M("resample-window-power", "impl/audio.py",
      "window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2",
      "window = np.cos(t * math.pi / lowpass_filter_width / 2)",
      "resampler window cos instead of cos^2 (not hann)",
      (f"{T_AUDIO}::test_audio_resample_kernel_equals_torchaudio", T_AUDIO), ("audio-path",)),
    M("loudness-block-overlap", "impl/audio.py",
      "BLOCK_OVERLAP = 0.75",
      "BLOCK_OVERLAP = 0.5",
      "loudness blocks at 50 % overlap instead of BS.1770's 75 %",
      (f"{T_AUDIO}::test_audio_loudness_normalize_matches_outetts", T_AUDIO), ("audio-path", "dac-interface")),
    # ---- speaker profile
    M("slice-start-round", "impl/speaker/profile.py",
      "start = max(0, int(w.start * TPS) - MAX_EXTENSION)",
      "start = max(0, round(w.start * TPS) - MAX_EXTENSION)",
      "first word's code slice starts at round() instead of outetts' int() frame",
      (f"{T_SPK}::test_speaker_slicing_equals_outetts", T_SPK), ("speaker-profile",)),
    M("duration-round-1", "impl/speaker/profile.py",
      "DURATION_DECIMALS = 2",
      "DURATION_DECIMALS = 1",
      "word duration rounded to 1 decimal instead of 2",
      (f"{T_SPK}::test_speaker_slicing_equals_outetts", T_SPK), ("speaker-profile",)),
    # ---- LM
    M("llama-default-eps", "impl/llama.py",
      "rms_norm_eps: float = 1e-6",
      "rms_norm_eps: float = 1e-5",
      "ModelArgs' default RMSNorm eps is Llama 3's 1e-5, not LlamaConfig's 1e-6",
      (f"{T_CONTRACTS}::test_contracts_llama_defaults_equal_transformers_llama_config", T_LLAMA),
      ("llama", "lm-greedy"),
      blind="OuteTTS' config.json sets rms_norm_eps: only a config without the key changes"),
    M("rope-theta-default", "impl/llama.py",
      "inv = (1.0 / (np.float32(args.rope_theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))))",
      "inv = (1.0 / (np.float32(10000.0) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))))",
      "rope base 10000 (Llama 2's) instead of the config's 500000",
      (f"{T_LLAMA}::test_llama_rope_inv_freq_equals_transformers_llama3", T_LLAMA), ("llama", "lm-greedy")),
    M("llama3-wavelen-swap", "impl/llama.py",
      "low_wavelen, high_wavelen = old / low, old / high",
      "low_wavelen, high_wavelen = old / high, old / low",
      "llama3 rope scaling with the low/high wavelength bounds swapped",
      (f"{T_LLAMA}::test_llama_rope_inv_freq_equals_transformers_llama3", T_LLAMA), ("llama", "lm-greedy")),
    M("llama3-boundary-ge", "impl/llama.py",
      "scaled = np.where(wavelen > low_wavelen, inv / factor, inv)",
      "scaled = np.where(wavelen >= low_wavelen, inv / factor, inv)",
      "llama3 scaling: >= instead of > at the low-frequency bound",
      (f"{T_LLAMA}::test_llama_rope_inv_freq_equals_transformers_llama3",), ("llama", "lm-greedy"),
      inert="differs only for a frequency whose wavelength equals 8192 exactly in float32; none of the 1B's 32 "
            "(nearest 1497 away) or the small config's 8 does"),
    M("rope-interleaved-q", "impl/llama.py",
      "q = mx.fast.rope(q, self.head_dim, traditional=False,",
      "q = mx.fast.rope(q, self.head_dim, traditional=True,",
      "rope on q in the interleaved (GPT-J) layout instead of HF's rotate-half",
      (f"{T_LLAMA}::test_llama_small_layers_parity", T_LLAMA), ("llama", "lm-greedy")),
    M("gqa-head-order", "impl/ops.py",
      "qg = (q[b] * scale).reshape(KV, G, L, D)",
      "qg = (q[b] * scale).reshape(G, KV, L, D).swapaxes(0, 1)",
      "GQA: query heads grouped by tile (h % KV) instead of repeat (h // G) in the CPU prefill attention",
      (f"{T_OPS}::test_attention_gemm_matches_native_float64", T_LLAMA), ("llama", "lm-greedy")),
    M("attention-scale-hidden", "impl/llama.py",
      "self.scale = hd ** -0.5",
      "self.scale = args.hidden_size ** -0.5",
      "attention scale 1/sqrt(hidden_size) instead of 1/sqrt(head_dim)",
      (f"{T_LLAMA}::test_llama_small_layers_parity", T_LLAMA), ("llama", "lm-greedy")),
    M("kv-cache-extra-slot", "impl/llama.py",
      "return self.keys[..., :self.offset, :], self.values[..., :self.offset, :]",
      "return self.keys[..., :self.offset + 1, :], self.values[..., :self.offset + 1, :]",
      "KV cache returns one slot too many (a zero key/value, off by one)",
      (f"{T_LLAMA}::test_llama_greedy_64_tokens_identical", T_LLAMA), ("llama", "lm-greedy")),
    M("rope-offset-plus-one", "impl/llama.py",
      # Attention.__call__: every cached call but the "cpu" variant's compiled decode step (impl.accel.lm), so
      # prefill in chunks, the plain and fused variants' decode
      "q, k, v = self.project(x, 0 if cache is None else cache.offset)",
      "q, k, v = self.project(x, 0 if cache is None else cache.offset + 1)",
      "rope positions start at 1 on the cached path but not in the CPU variant's compiled decode step (the plain "
      "and fused variants shift every cached call alike, and rope reads position differences only)",
      (f"{T_LLAMA}::test_llama_greedy_64_tokens_identical", f"{T_LLAMA}::test_llama_cache_chunks_equal_full_forward",
       f"{T_LLAMA}::test_llama_teacher_forced_kl_through_cache"), ("llama", "lm-greedy")),
    M("tied-head-inverted", "impl/llama.py",
      "if args.tie_word_embeddings:",
      "if not args.tie_word_embeddings:",
      "sanitize drops lm_head.weight of untied models (keeps it for tied ones)",
      (f"{T_LLAMA}::test_llama_untied_head_and_bad_options", T_LLAMA), ("llama",),
      blind="OuteTTS ties its head and save_pretrained writes no lm_head.weight: only untied checkpoints change "
            "(they fail to load)"),
    # the platform wing's LM variants (impl/accel/lm.py): the parity tests run every shipped variant
    M("fused-v-is-k", "impl/accel/lm.py",
      "return qk[:, :H], qk[:, H:], qkv[:, H + KV:]",
      "return qk[:, :H], qk[:, H:], qkv[:, H:H + KV]",
      "the fused attention takes v from the k heads' rows (split point off by KV heads)",
      ("tests/test_accel_lm.py::test_accel_fused_attention_equals_attention_exactly",
       f"{T_LLAMA}::test_llama_greedy_64_tokens_identical", T_LLAMA), ("llama", "lm-greedy")),
    M("fused-gate-up-swapped", "impl/accel/lm.py",
      "gate, up = mx.split(self.gate_up_proj(x), 2, axis=-1)",
      "up, gate = mx.split(self.gate_up_proj(x), 2, axis=-1)",
      "the fused MLP applies silu to the up half instead of the gate half",
      ("tests/test_accel_lm.py::test_accel_fused_mlp_equals_mlp_exactly", T_LLAMA), ("llama", "lm-greedy")),
    M("compiled-step-offset", "impl/accel/lm.py",
      "q, k, v = self._qkv(x, mx.array(cache.offset, mx.int32))",
      "q, k, v = self._qkv(x, mx.array(cache.offset + 1, mx.int32))",
      "the CPU's compiled decode step ropes one position ahead of the prefill",
      ("tests/test_accel_lm.py::test_accel_compiled_step_equals_uncompiled_exactly",
       f"{T_LLAMA}::test_llama_greedy_64_tokens_identical", T_LLAMA), ("llama", "lm-greedy")),
    # ---- sampler and generation
    M("temperature-after-top-p", "impl/outetts/sampler.py",
      "scores = top_p_filter(scores, config.top_p)",
      "scores = top_p_filter(scores * config.temperature, config.top_p) / config.temperature",
      "top-p computed on the untempered logits (temperature applied after top-p)",
      (f"{T_SAMP}::test_outetts_sampler_order_matches_transformers", T_SAMP), ("sampler", "generation")),
    M("top-k-one-short", "impl/outetts/sampler.py",
      "ids = mx.argpartition(scores, kth=V - k, axis=-1)[..., V - k:]",
      "ids = mx.argpartition(scores, kth=V - k, axis=-1)[..., V - k + 1:]",
      "top-k keeps k - 1 candidates",
      (f"{T_SAMP}::test_outetts_sampler_distribution", T_SAMP), ("sampler", "generation")),
    M("min-p-absolute", "impl/outetts/sampler.py",
      "threshold = min_p * mx.max(probs, axis=-1, keepdims=True)",
      "threshold = min_p",
      "min-p as an absolute threshold instead of relative to the top probability",
      (f"{T_SAMP}::test_outetts_sampler_distribution", T_SAMP), ("sampler", "generation")),
    M("penalty-inverted", "impl/outetts/sampler.py",
      "picked = mx.where(picked <= 0, picked * penalty, picked / penalty)",
      "picked = mx.where(picked <= 0, picked / penalty, picked * penalty)",
      "repetition penalty rewards repeated tokens (multiply/divide swapped)",
      (f"{T_SAMP}::test_outetts_sampler_distribution", T_SAMP), ("sampler", "generation")),
    M("penalty-zero-branch", "impl/outetts/sampler.py",
      "picked = mx.where(picked <= 0, picked * penalty, picked / penalty)",
      "picked = mx.where(picked < 0, picked * penalty, picked / penalty)",
      "repetition penalty branch at < 0 instead of <= 0",
      (f"{T_SAMP}::test_outetts_sampler_distribution", f"{T_SAMP}::test_outetts_sampler_greedy_scores_exact"),
      ("sampler",),
      inert="the branches differ only at a logit of exactly 0, where 0 * p == 0 / p == 0"),
    M("generation-max-length", "impl/runtime.py",
      "max_length: int = 8192",
      "max_length: int = 4096",
      "GenerationConfig's max_length 4096 instead of outetts' 8192 (long generations stop early)",
      (f"{T_CONTRACTS}::test_contracts_generation_defaults_equal_outetts", T_GEN), ("generation",),
      blind="the report's generations (and outetts') stop long before 4096 tokens: only a longer one changes"),
    M("extract-codes-order", "impl/outetts/generate.py",
      "return np.stack([c1[:n], c2[:n]]).astype(np.int64)",
      "return np.stack([c2[:n], c1[:n]]).astype(np.int64)",
      "generated c1/c2 codes parsed into the wrong codebooks",
      (f"{T_GEN}::test_outetts_generate_codes_parse_matches", T_GEN), ("generation",)),
    # ---- prompt
    M("prompt-features-time-order", "impl/outetts/prompt.py",
      "out = [SPECIAL.word_start, word, SPECIAL.features, SPECIAL.time.format(w[\"duration\"])]",
      "out = [SPECIAL.word_start, word, SPECIAL.time.format(w[\"duration\"]), SPECIAL.features]",
      "prompt word line with the duration token before <|features|>",
      (f"{T_PROMPT}::test_outetts_prompt_ids_exact", T_PROMPT), ("prompt-ids", "generation")),
    M("prompt-code-order", "impl/outetts/prompt.py",
      "out += [SPECIAL.c1.format(a), SPECIAL.c2.format(b)]",
      "out += [SPECIAL.c2.format(b), SPECIAL.c1.format(a)]",
      "prompt codes interleaved c2 before c1",
      (f"{T_PROMPT}::test_outetts_prompt_ids_exact", T_PROMPT), ("prompt-ids", "generation")),
    # ---- Spark-TTS prompts, sampler, parse
    M("spark-transcript-space", "impl/spark/prompt.py",
      "ids += tok.encode(text if prompt_text is None else prompt_text + text)",
      "ids += tok.encode(text if prompt_text is None else prompt_text + \" \" + text)",
      "prompt transcript and text joined with a space (upstream joins them with none)",
      (f"{T_SPROMPT}::test_spark_prompt_texts_joined_without_separator", T_SPROMPT),
      ("spark-prompt-ids", "spark-generation")),
    M("spark-empty-transcript-no-semantic", "impl/spark/prompt.py",
      "    if prompt_text is not None:",
      "    if prompt_text:",
      "an empty prompt transcript drops the reference's semantic ids (upstream tests `is not None`)",
      (f"{T_SPROMPT}::test_spark_prompt_empty_transcript_still_adds_semantic_ids", T_SPROMPT),
      ("spark-prompt-ids",)),
    M("spark-control-pitch-from-speed", "impl/spark/prompt.py",
      't[f"<|pitch_label_{LEVELS_MAP[pitch]}|>"]',
      't[f"<|pitch_label_{LEVELS_MAP[speed]}|>"]',
      "voice creation: the pitch label token takes the speed level",
      (f"{T_SPROMPT}::test_spark_prompt_control_ids_equal_official", T_SPROMPT),
      ("spark-prompt-ids", "spark-generation")),
    M("spark-global-id-offset", "impl/spark/tokens.py",
      "self.global_ids = np.array(glob, np.int64)",
      "self.global_ids = np.array(glob, np.int64) + 1",
      "BiCodec global code g mapped to the token id of <|bicodec_global_{g+1}|>",
      (f"{T_SPROMPT}::test_spark_tokenizer_layout_ids", T_SPROMPT), ("spark-prompt-ids", "spark-generation")),
    M("spark-top-p-default", "impl/spark/sampler.py",
      "TEMPERATURE, TOP_K, TOP_P = 0.8, 50, 0.95",
      "TEMPERATURE, TOP_K, TOP_P = 0.8, 50, 0.9",
      "default top-p 0.9 instead of SparkTTS.inference's 0.95",
      (f"{T_SSAMP}::test_spark_sampler_defaults_equal_official_inference", T_SSAMP), ("spark-sampler",)),
    M("spark-min-p", "impl/spark/sampler.py",
      "top_p=top_p, min_p=0.0)",
      "top_p=top_p, min_p=0.05)",
      "Spark sampling with OuteTTS' min-p 0.05 (the official call has none)",
      (f"{T_SSAMP}::test_spark_sampler_distribution_full_vocab", T_SSAMP), ("spark-sampler",)),
    M("spark-semantic-parse-off-by-one", "impl/spark/generate.py",
      'return [int(t) for t in re.findall(rf"bicodec_{kind}_(\\d+)", text)]',
      'return [int(t) - 1 for t in re.findall(rf"bicodec_{kind}_(\\d+)", text)]',
      "generated bicodec ids parsed one too low (semantic and global codes off by one)",
      (f"{T_CONTRACTS}::test_contracts_spark_parse_equals_upstream_regex", T_SGEN), ("spark-generation",)),
    M("spark-decode-keeps-special", "impl/spark/tokens.py",
      "def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:",
      "def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:",
      "Tokenizer.decode keeps special tokens (<|im_end|> ...) by default, unlike the official batch_decode",
      (f"{T_SPROMPT}::test_spark_tokenizer_decode_skips_only_special",), ("spark-generation",),
      blind="parse passes skip_special_tokens=True itself, and no special token spells bicodec_*_N: the parsed "
            "ids and audio stay equal; only Tokenizer.decode's text (a public output) changes"),
    # Spark-TTS' LLM folder generation config (impl.spark.generate.generation_settings), merged under the official call
    M("spark-gen-config-ignored", "impl/spark/generate.py",
      "extra = {} if folder is None else dict(repetition_penalty=folder.repetition_penalty, min_p=folder.min_p)",
      "extra = {}",
      "a folder's generation_config.json repetition_penalty / min_p ignored (transformers' generate applies them)",
      (f"{T_SGEN}::test_spark_generation_config_penalty_greedy_equals_official", T_SGEN), ("spark-generation",),
      blind="the report's seeded folders carry no generation config (as the official Spark-TTS-0.5B LLM/): "
            "nothing to ignore there"),
    M("spark-gen-penalty-window", "impl/spark/sampler.py",
      "repetition_range=FULL_CONTEXT if repetition_penalty != 1.0 else 0)",
      "repetition_range=64 if repetition_penalty != 1.0 else 0)",
      "a folder's repetition penalty over OuteTTS' last 64 ids instead of transformers' whole sequence (prompt too)",
      (f"{T_SGEN}::test_spark_generation_config_penalty_reads_the_whole_sequence", T_SGEN), ("spark-generation",),
      blind="the report's seeded folders carry no generation config (as the official Spark-TTS-0.5B LLM/): "
            "no penalty there"),
    M("spark-w2v-block-span", "impl/spark/wav2vec2.py",
      "a, b = a * s, (b - 1) * s + K",
      "a, b = a * s, (b - 1) * s + K - 1",
      "wav2vec2's blocked conv front reads one sample short per block (each block loses its last frame)",
      ("tests/test_spark_tok_blocks.py::test_spark_tok_blocks_conv_front_equals_whole",
       "tests/test_spark_tok_blocks.py"),
      ("spark-wav2vec2",)),
    # Qwen2 (Spark-TTS' LLM): impl.qwen2 maps a Qwen2 config onto impl.llama's network
    M("qwen2-rope-theta-ignored", "impl/qwen2.py",
      "rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta,",
      "rms_norm_eps=self.rms_norm_eps, rope_theta=10000.0,",
      "the config's rope theta (1e6) ignored: Qwen2Config's default base 1e4",
      (f"{T_QWEN2}::test_qwen2_small_layers_parity", T_QWEN2), ("qwen2-0.5b",)),
    M("qwen2-eps-ignored", "impl/qwen2.py",
      "rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta,",
      "rms_norm_eps=1e-5, rope_theta=self.rope_theta,",
      "RMSNorm eps 1e-5 (Llama 3's) instead of the config's 1e-6",
      (f"{T_QWEN2}::test_qwen2_small_layers_parity", T_QWEN2), ("qwen2-0.5b",)),
    M("qwen2-kv-heads-default", "impl/qwen2.py",
      "num_key_value_heads: Optional[int] = 32  # Qwen2Config's default",
      "num_key_value_heads: Optional[int] = None  # Qwen2Config's default",
      "num_key_value_heads defaults to the attention heads (Qwen2Config keeps 32) when config.json omits it",
      (f"{T_QWEN2}::test_qwen2_defaults_equal_transformers_qwen2_config",), ("qwen2-0.5b",),
      blind="every Qwen2 config.json states num_key_value_heads: only a config that leaves it out changes"),
    M("qwen2-o-proj-bias", "impl/qwen2.py",
      "attention_bias=True, o_proj_bias=False,",
      "attention_bias=True, o_proj_bias=True,",
      "a bias on o_proj (Qwen2 has biases on q/k/v only)",
      (f"{T_QWEN2}::test_qwen2_small_layers_parity", T_QWEN2), ("qwen2-0.5b",)),
    # ---- issue 28: bugs of the families no catalogue entry had (settings off the public path, raw values before
    # rounding, signals that reach every branch, contracts that shrink on seeded weights, windows' newest ids,
    # computed buffers)
    M("outetts-top-k-ignored", "impl/outetts/generate.py",
      "top_k=k, top_p=p, min_p=o.min_p)",
      "top_k=TOP_K, top_p=p, min_p=o.min_p)",
      "GenerationConfig(top_k=...) never reaches the OuteTTS sampler (its default 40 always)",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("sampler", "generation")),
    M("spark-top-p-ignored", "impl/spark/generate.py",
      "    return official_sampler(t, k, p, **extra)",
      "    return official_sampler(t, k, TOP_P, **extra)",
      "GenerationConfig(top_p=...) never reaches the Spark-TTS sampler (its default 0.95 always)",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("spark-sampler", "spark-generation")),
    M("cli-temperature-dropped", "impl/outetts/cli.py",
      "config = G.GenerationConfig(temperature=args.temperature, greedy=args.greedy, seed=args.seed,",
      "config = G.GenerationConfig(temperature=None, greedy=args.greedy, seed=args.seed,",
      "voiceport tts --temperature ignored for OuteTTS (the default 0.4 always)",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("generation", "public-settings")),
    M("feature-centroid-nyquist-plus-one", "impl/speaker/features.py",
      'feats["spectral_centroid"] = float(np.float32(centroid) / np.float32(sr / 2))',
      'feats["spectral_centroid"] = float(np.float32(centroid) / np.float32(sr / 2 + 1))',
      "spectral centroid normalised by sr / 2 + 1 (8e-5 relative at 24 kHz: a bucket flips only near k + 0.5)",
      (f"{T_SPK_RAW}::test_speaker_features_raw_values_within_floor", T_SPK_RAW), ("speaker-profile",)),
    M("feature-hann-symmetric", "impl/speaker/features.py",
      "np.cos(k * np.float32(2.0 * np.pi / n))",
      "np.cos(k * np.float32(2.0 * np.pi / (n - 1)))",
      "pitch frames windowed by a symmetric Hann window instead of torch's periodic one",
      (f"{T_SPK_RAW}::test_speaker_features_raw_values_within_floor", T_SPK_RAW), ("speaker-profile",)),
    M("fsq-bound-eps-1e-4", "impl/spark/quantize.py",
      "half_l = ((lv - 1).astype(np.float32) * np.float32(1 + 1e-3)) / np.float32(2)",
      "half_l = ((lv - 1).astype(np.float32) * np.float32(1 + 1e-4)) / np.float32(2)",
      "FSQ bound with eps 1e-4 instead of upstream's 1e-3 (moves the values before round; a code flips rarely)",
      (f"{T_SPARK}::test_global_path_every_module", T_SPARK), ("spark-global",)),
    M("loudness-relative-gate-9", "impl/audio.py",
      "RELATIVE_GATE = -10.0",
      "RELATIVE_GATE = -9.0",
      "BS.1770 relative gate 9 LU under the absolute-gated mean instead of 10",
      (f"{T_AUDIO}::test_audio_integrated_loudness_both_gates_equal_pyloudnorm", T_AUDIO),
      ("audio-path", "dac-interface", "speaker-profile")),
    M("loudness-relative-gate-from-all-blocks", "impl/audio.py",
      "Gamma_r = -0.691 + 10.0 * np.log10(np.mean(gated)) + RELATIVE_GATE",
      "Gamma_r = -0.691 + 10.0 * np.log10(np.mean(z)) + RELATIVE_GATE",
      "relative gate from the mean of every block, silent ones included, not only those above -70 LUFS",
      (f"{T_AUDIO}::test_audio_integrated_loudness_both_gates_equal_pyloudnorm", T_AUDIO),
      ("audio-path", "dac-interface", "speaker-profile")),
    M("spark-layernorm-eps-1e-5", "impl/spark/vocos.py",
      "    def __init__(self, dim: int, eps: float = 1e-6):",
      "    def __init__(self, dim: int, eps: float = 1e-5):",
      "BiCodec LayerNorm eps 1e-5 (torch's default) instead of upstream's 1e-6",
      (f"{T_SVIS}::test_spark_every_layer_norm_on_low_variance_input", T_SVIS),
      ("spark-decoder", "spark-semantic")),
    M("spark-adanorm-eps-1e-5", "impl/spark/vocos.py",
      "    def __init__(self, condition_dim: int, embedding_dim: int, eps: float = 1e-6):",
      "    def __init__(self, condition_dim: int, embedding_dim: int, eps: float = 1e-5):",
      "BiCodec AdaLayerNorm eps 1e-5 instead of upstream's 1e-6",
      (f"{T_SVIS}::test_spark_every_layer_norm_on_low_variance_input", T_SVIS), ("spark-decoder",)),
    M("ecapa-variance-biased", "impl/spark/speaker.py",
      "var = mx.sum((x - mean) ** 2, axis=1, keepdims=True) / (T - 1)  # torch.var: unbiased",
      "var = mx.sum((x - mean) ** 2, axis=1, keepdims=True) / T  # torch.var: unbiased",
      "ECAPA statistics pooling with a biased variance (torch.var is unbiased)",
      (f"{T_SVIS}::test_spark_ecapa_pooling_short_sequences", T_SVIS), ("spark-global",)),
    M("penalty-window-drops-newest", "impl/outetts/sampler.py",
      "    picked = mx.take_along_axis(scores, window, axis=-1)",
      "    window = window[:, :-1]; picked = mx.take_along_axis(scores, window, axis=-1)",
      "repetition penalty skips the window's newest id (ids 2..64 back: the 64/65 probes pass)",
      (f"{T_SAMP}::test_outetts_sampler_window_newest_and_oldest_ids_penalised", T_SAMP), ("sampler",)),
    M("mel-fb-norm-shifted", "impl/spark/mel.py",
      "    return fb * (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels]))[None, :]",
      "    return fb * (2.0 / (f_pts[2:n_mels + 2] - f_pts[1:n_mels + 1]))[None, :]",
      "slaney filterbank normalisation over the wrong band edges (the checkpoint's buffer hides it)",
      ("parity/test_spark_mel.py", f"{T_SPARK}::test_global_path_every_module"), ("spark-global",)),
    # ---- an independent audit (bench/cpu_runs/mutate-audit-2026-12-06.json): 16 bugs written without this
    # catalogue; llama3-wavelen-swap, spark-adanorm-eps-1e-5 and spark-empty-transcript-no-semantic above are three
    # of them (the same old -> new), the other 13 follow
    M("dac-interface-chunk-1024", "impl/dac/interface.py",
      "                 chunk_length: int = 2048):",
      "                 chunk_length: int = 1024):",
      "DacInterface's decode chunk default halved (outetts: 2048 codes): over 1024 frames, fades mid-audio",
      (f"{T_AUDIT}::test_audit_ported_default_equals_upstream",
       f"{T_CONTRACTS}::test_contracts_generation_defaults_equal_outetts", T_AUDIT), ("public-settings",)),
    M("dac-encode-n-quantizers-dropped", "impl/dac/model.py",
      "        return self.quantizer(z, n_quantizers)[1]",
      "        return self.quantizer(z)[1]",
      "DAC.encode ignores n_quantizers (every codebook always)",
      (f"{T_AUDIT}::test_audit_dac_arguments_equal_official", T_AUDIT), ("public-settings",)),
    M("qwen2-rope-theta-not-forwarded", "impl/qwen2.py",
      "rms_norm_eps=self.rms_norm_eps, rope_theta=self.rope_theta, rope_scaling=None,",
      "rms_norm_eps=self.rms_norm_eps, rope_scaling=None,",
      "a Qwen2 config's rope_theta dropped on the way to the Llama args (1e6 becomes 10000)",
      (f"{T_QWEN2}::test_qwen2_small_layers_parity", T_QWEN2), ("qwen2-0.5b",)),
    M("outetts-min-p-hardcoded", "impl/outetts/generate.py",
      "                         top_k=k, top_p=p, min_p=o.min_p)",
      "                         top_k=k, top_p=p, min_p=0.05)",
      "OuteTTSOptions(min_p=...) never reaches the sampler (the default 0.05 always)",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("public-settings",)),
    M("decode-window-first-step-r-plus-1", "impl/runtime.py",
      "window = mx.array(np.asarray(prompt[max(0, len(prompt) - R):] if R else [], np.uint32)[None])",
      "window = mx.array(np.asarray(prompt[max(0, len(prompt) - R - 1):] if R else [], np.uint32)[None])",
      "the first decode step's repetition window holds R + 1 prompt ids",
      (f"{T_GEN}::test_outetts_generate_penalty_window_in_loop_matches_outetts", T_GEN), ("sampler", "generation")),
    M("speaker-word-audio-rounded", "impl/speaker/profile.py",
      "word_audio = audio[:, int(w.start * sr):int(w.end * sr)]",
      "word_audio = audio[:, round(w.start * sr):round(w.end * sr)]",
      "a word's feature audio cut at rounded sample indices (outetts truncates with int)",
      (f"{T_SPK_RAW}::test_speaker_features_raw_values_within_floor", T_SPK_RAW), ("speaker-profile",)),
    M("pitch-interpolation-sign", "impl/speaker/features.py",
      "delta = np.float32(0.5) * (alpha - gamma) / (alpha - 2 * beta + gamma + np.float32(1e-8))",
      "delta = np.float32(0.5) * (gamma - alpha) / (alpha - 2 * beta + gamma + np.float32(1e-8))",
      "the pitch tracker's parabolic peak offset with its sign flipped",
      (f"{T_SPK_RAW}::test_speaker_features_raw_values_within_floor", T_SPK_RAW), ("speaker-profile",)),
    M("loudness-block-count-truncated", "impl/audio.py",
      "num_blocks = int(np.round(((T - T_g) / (T_g * step)))) + 1",
      "num_blocks = int((T - T_g) / (T_g * step)) + 1",
      "integrated loudness: the block count truncated (pyloudnorm rounds it): the last block can be lost",
      (f"{T_AUDIO}::test_audio_loudness_normalize_matches_outetts", T_AUDIO), ("audio-path", "dac-interface")),
    M("resample-length-floored", "impl/audio.py",
      "target_length = int(np.ceil(np.float32(new * L / orig)))",
      "target_length = int(new * L // orig)",
      "resampled length floored (torchaudio: ceil in float32): one sample short for a non-integer ratio",
      (f"{T_AUDIO}::test_audio_resample_matches_torchaudio", T_AUDIO), ("audio-path",)),
    M("spark-mel-symmetric-left-pad", "impl/spark/mel.py",
      "        left = audio[:, 1:pad + 1][:, ::-1]",
      "        left = audio[:, :pad][:, ::-1]",
      "the mel's left padding repeats the edge sample (symmetric) instead of torch's reflect",
      ("parity/test_spark_mel.py::test_mel_matches_torchaudio_within_the_fp32_floor", T_SPARK), ("spark-global",)),
    M("spark-semantic-from-ref-clip", "impl/spark/generate.py",
      "sem, glob = codec.tokenize(wav2vec2.features(w2v, wav), mx.array(clip.astype(np.float32))[None])",
      "sem, glob = codec.tokenize(wav2vec2.features(w2v, clip), mx.array(clip.astype(np.float32))[None])",
      "the prompt's semantic ids from the 6 s reference clip instead of the whole prompt audio",
      (f"{T_SGEN}::test_spark_generate_greedy_equals_official", T_SGEN), ("spark-generation",)),
    M("cli-seed-dropped", "impl/outetts/cli.py",
      "config = G.GenerationConfig(temperature=args.temperature, greedy=args.greedy, seed=args.seed,",
      "config = G.GenerationConfig(temperature=args.temperature, greedy=args.greedy,",
      "voiceport tts --seed ignored for OuteTTS (seed 0 always)",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("public-settings",)),
    M("cli-spark-pitch-speed-swapped", "impl/spark/tts.py",
      "voice = G.Voice(gender=args.gender, pitch=_level(args.pitch), speed=_level(args.speed))",
      "voice = G.Voice(gender=args.gender, pitch=_level(args.speed), speed=_level(args.pitch))",
      "voiceport tts --model spark: --pitch and --speed swapped when creating a voice",
      (f"{T_SETTINGS}::test_setting_reaches_the_decode_loop", T_SETTINGS), ("public-settings",)),
]


# ------------------------------------------------------------------------------------------------ catalogue

def check_catalogue(root: Path = ROOT, catalogue: Sequence[Mutation] = CATALOGUE) -> List[str]:
    """Problems with the catalogue against the tree at `root` (empty: every entry applies): unique names, files
    under impl/, `old != new`, each `old` found exactly once in its file."""
    problems, seen = [], set()
    for m in catalogue:
        if m.name in seen:
            problems.append(f"{m.name}: duplicate name")
        seen.add(m.name)
        if not m.file.startswith("impl/"):
            problems.append(f"{m.name}: {m.file} is not under impl/")
        if m.old == m.new:
            problems.append(f"{m.name}: old and new text are the same")
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        n = path.read_text(encoding="utf-8").count(m.old)
        if n != 1:
            problems.append(f"{m.name}: old text found {n} times in {m.file} (want exactly 1): {m.old!r}")
    return problems


def apply(root: Path, m: Mutation) -> str:
    """Apply `m` to the tree at `root`; returns the file's original text (restore with `restore`)."""
    path = root / m.file
    text = path.read_text(encoding="utf-8")
    n = text.count(m.old)
    if n != 1:
        raise MutationError(f"{m.name}: old text found {n} times in {m.file} (want exactly 1): {m.old!r}")
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")
    return text


def restore(root: Path, m: Mutation, original: str) -> None:
    (root / m.file).write_text(original, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ the copy

def copy_tree(dst: Path, worktree: bool = False) -> str:
    """The repository's files into `dst` (no .git, no out/): HEAD's (`git archive`), or with `worktree` the
    working tree's tracked and untracked-not-ignored files. Returns a description of the source."""
    dst.mkdir(parents=True, exist_ok=True)
    if not worktree:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
        _add_profile(dst)
        return f"HEAD {sha}"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    n = 0
    for f in files:
        src = ROOT / f
        if not f or f.startswith(("out/", ".git/")) or not src.is_file():
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
        n += 1
    _add_profile(dst)
    return f"working tree ({n} files)"


# The copy's test session gets one more hypothesis profile: derandomized as CI's, and a failing example is reported
# as found (no shrinking phase: shrinking a bug that fails every example replays a slow test dozens of times).
PROFILE_CODE = """

# added by parity/mutate.py to its temporary copy only
from hypothesis import Phase as _Phase, settings as _settings  # noqa: E402

_settings.register_profile("mutate", derandomize=True, database=None,
                           phases=[_Phase.explicit, _Phase.reuse, _Phase.generate])
"""


def _add_profile(copy: Path) -> None:
    with open(copy / "conftest.py", "a", encoding="utf-8") as f:
        f.write(PROFILE_CODE)


def venv_of(copy: Path) -> Tuple[str, bool]:
    """(environment path, whether it is complete) that `copy/vp` would use: the launcher's own key computation
    (its lines up to `VPY=`, which only set variables) run in the copy."""
    lines = (copy / "vp").read_text().splitlines()
    head = []
    for line in lines:
        head.append(line)
        if line.startswith("VPY="):
            break
    script = "\n".join(head) + '\necho "$VENV"\n'
    r = subprocess.run(["bash", "-c", script], cwd=copy, capture_output=True, text=True)
    venv = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else ""
    return venv, bool(venv) and (Path(venv) / ".complete").is_file()


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file is never shadowed by the mutant's bytecode
    return env


# ------------------------------------------------------------------------------------------------ the checks

_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


def first_failure(output: str) -> Optional[str]:
    """The first `FAILED id` / `ERROR id` of pytest's short summary (-ra), without the ' - message' tail."""
    hit = _FAILED.search(output)
    return hit.group(2) if hit else None


@dataclass
class Check:
    """One check's outcome: caught (what failed), seconds, and what ran."""

    caught: Optional[str] = None
    seconds: float = 0.0
    ran: List[str] = field(default_factory=list)
    note: str = ""


def resolve_targets(copy: Path, targets: Sequence[str]) -> List[str]:
    """`targets` as the copy has them: a `file::test` whose test is not defined in the copy's file (renamed
    since) becomes its file; duplicates dropped, order kept."""
    out: List[str] = []
    for t in targets:
        file, _, func = t.partition("::")
        path = copy / file
        if func and path.is_file() and not re.search(rf"^def {re.escape(func)}\(", path.read_text(), re.M):
            t = file
        if t not in out:
            out.append(t)
    return out


def run_tests(copy: Path, targets: Sequence[str], log, timeout: float) -> Tuple[Optional[str], float, str]:
    """pytest -x over `targets` (in order) in the copy -> (first failing test id or None, seconds, note)."""
    targets = resolve_targets(copy, targets)
    cmd = ["nice", "-n", "10", str(copy / "vp"), "test", "-x", "-q", "-p", "no:cacheprovider",
           "--hypothesis-profile=mutate", "--ignore=tests/test_mutate.py", *targets]
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:.0f} s", time.time() - t0, ""
    dt = time.time() - t0
    out = r.stdout + r.stderr
    log.write(f"$ {' '.join(cmd)}\n{out}\n")
    if r.returncode == 0:
        return None, dt, ""
    if r.returncode in (4, 5):  # a target not found / nothing collected: the catalogue's fault, not a catch
        return None, dt, f"bad test target (pytest exit {r.returncode})"
    return first_failure(out) or f"pytest exit {r.returncode}", dt, ""


def fast_test_files(copy: Path, skip: Sequence[str]) -> List[str]:
    """Every fast-suite test file of the copy, parity/ first, minus `skip` (files already run)."""
    done = {s.split("::")[0] for s in skip}
    files = sorted(str(p.relative_to(copy)) for d in ("parity", "tests") for p in (copy / d).glob("test_*.py"))
    return [f for f in files if f not in done and f != "tests/test_mutate.py"]


def known_components(copy: Path) -> List[str]:
    """The parity components the copy's `./vp parity` knows (its COMPONENTS table), default ones first."""
    code = ("from parity import cli; import json; print(json.dumps([list(getattr(cli, 'DEFAULT', [])), "
            "list(cli.COMPONENTS)]))")
    r = subprocess.run([str(copy / "vp"), "python", "-c", code], cwd=copy, capture_output=True, text=True, env=_env())
    if r.returncode != 0:
        return []
    default, comps = json.loads(r.stdout.strip().splitlines()[-1])
    return list(dict.fromkeys(list(default) + list(comps)))


def failed_sections(report_json: Path) -> Tuple[Optional[bool], List[str]]:
    """(passed, failed section names) of a report.json: {"sections": [{"name", "passed"}], "passed"} or the
    older {"ok", "components": [{"spec", "rows": [{"ok"}]}]}."""
    data = json.loads(report_json.read_text())
    if "sections" in data:
        bad = [str(s.get("name")) for s in data["sections"] if not s.get("passed", False)]
        return bool(data.get("passed", not bad)), bad
    bad = []
    for c in data.get("components", []):
        ok = c.get("ok")
        if ok is None:
            ok = all(r.get("ok", True) for r in c.get("rows", []))
        if not ok:
            bad.append(str(c.get("spec")))
    bad += [f"{k} (not run)" for k in data.get("not_run", {})]
    return bool(data.get("ok", not bad)), bad


REPORT_FLAGS = {"quick": ["--quick"], "full": [], "fixtures": ["--fixtures"]}


def run_report(copy: Path, components: Sequence[str], mode: str, out: Path, log, timeout: float
               ) -> Tuple[Optional[str], float]:
    """`./vp parity COMPONENTS --report out` + the mode's flag (REPORT_FLAGS) in the copy -> (what failed or None,
    seconds)."""
    if out.exists():
        shutil.rmtree(out)
    cmd = ["nice", "-n", "10", str(copy / "vp"), "parity", *components, "--report", str(out), *REPORT_FLAGS[mode]]
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:.0f} s", time.time() - t0
    dt = time.time() - t0
    log.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
    rj = out / "report.json"
    if not rj.is_file():
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"report error (exit {r.returncode}: {tail[:100]})", dt
    passed, bad = failed_sections(rj)
    if bad:
        return ", ".join(bad), dt
    if not passed or r.returncode != 0:
        return f"report exit {r.returncode}", dt
    return None, dt


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class Result:
    name: str
    file: str
    what: str
    inert: str
    blind: str
    tests: Check
    report: Check

    @property
    def verdict(self) -> str:
        caught_t, caught_r = bool(self.tests.caught), bool(self.report.caught)
        if self.inert:
            return "inert: passes every check" if not (caught_t or caught_r) else "inert, but a check fails"
        if caught_t and caught_r:
            return "caught by both"
        if not self.report.ran:
            return "caught by a test (report not run)" if caught_t else "MISSED by the tests (report not run)"
        if caught_t and self.blind:
            return "caught by a test (outside the report's configs)"
        return "MISSED by the report" if caught_t else ("MISSED by the tests" if caught_r else "MISSED by both")

    @property
    def ok(self) -> bool:
        """What the issue asks: a live bug fails a fast test and the report (or is outside the report's configs);
        an inert one fails nothing."""
        if self.inert:
            return True
        return bool(self.tests.caught) and (bool(self.report.caught) or bool(self.blind) or not self.report.ran)


def run_one(copy: Path, m: Mutation, components: List[str], args, log) -> Result:
    """Apply `m` to the copy, run its tests (then the whole fast suite when they pass), then its report sections;
    the copy is restored whatever happens."""
    original = apply(copy, m)
    try:
        tests = Check()
        # pytest runs a file's tests in file order even when one of them was named first: the named tests
        # (likely catchers) go in a run of their own, then the listed files, then the rest of the fast suite
        named = [t for t in m.tests if "::" in t]
        stages = [named, [t for t in m.tests if "::" not in t]]
        if args.fallback and not m.inert:
            stages.append(fast_test_files(copy, stages[1]))
        notes = []
        for stage in stages:
            if not stage or tests.caught:
                continue
            caught, dt, note = run_tests(copy, stage, log, args.timeout)
            tests.caught, tests.seconds = caught, tests.seconds + dt
            tests.ran += stage
            notes += [note] if note else []
        tests.note = "; ".join(notes)
        report = Check()
        if args.report != "none":
            want = [c for c in m.report if c in components] if components else list(m.report)
            # one section at a time, stopping at the first that fails (as -x), unless --report-all
            groups = [want] if args.report_all or not want else [[c] for c in want]
            for group in groups:
                caught, dt = run_report(copy, group, args.report, Path(args.out) / "reports" / m.name, log,
                                        args.timeout)
                report.ran += group or ["(default set)"]
                report.caught, report.seconds = caught, report.seconds + dt
                if caught:
                    break
    finally:
        restore(copy, m, original)
    return Result(m.name, m.file, m.what, m.inert, m.blind, tests, report)


def table(results: Sequence[Result]) -> str:
    """The markdown table: bug -> caught by which test / which report section."""
    rows = ["| # | bug (file) | first failing fast test | failed report sections | verdict |",
            "|---|---|---|---|---|"]
    for i, r in enumerate(results, 1):
        what = r.what + (f"; *inert: {r.inert}*" if r.inert else "") + (f"; *{r.blind}*" if r.blind else "")
        t = f"`{r.tests.caught}`" if r.tests.caught else "none"
        rep = r.report.caught or ("not run" if not r.report.ran else f"none (ran {', '.join(r.report.ran)})")
        rows.append(f"| {i} | **{r.name}**: {what} (`{r.file}`) | {t} | {rep} | {r.verdict} |")
    return "\n".join(rows)


def totals(results: Sequence[Result]) -> str:
    live = [r for r in results if not r.inert]
    inert = [r for r in results if r.inert]
    t = sum(1 for r in live if r.tests.caught)
    rp = sum(1 for r in live if r.report.caught)
    blind = sum(1 for r in live if r.blind)
    quiet = sum(1 for r in inert if not (r.tests.caught or r.report.caught))
    return (f"{len(results)} mutations, {len(live)} that change an output: a fast test catches {t}/{len(live)}, the "
            f"report {rp}/{len(live)} ({blind} outside its configs); {len(inert)} inert, {quiet}/{len(inert)} "
            "pass every check")


def _write(out: Path, results: Sequence[Result], elapsed: float, done: bool) -> str:
    """table.md and results.json after every mutation, so that an interrupted run still leaves its table."""
    summary = totals(results) + f"; run time {elapsed / 60:.1f} min" + ("" if done else " (incomplete)")
    (out / "table.md").write_text(f"{table(results)}\n\n{summary}\n")
    (out / "results.json").write_text(json.dumps(
        {"seconds": round(elapsed, 1), "complete": done, "summary": summary,
         "results": [dict(asdict(r), verdict=r.verdict, ok=r.ok) for r in results]}, indent=2))
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    from impl.cli import Parser  # the project's argparse: a usage error is one line, exit 2

    p = Parser(prog="vp parity mutate", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="mutations to run (default: the whole catalogue); see --list")
    p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    p.add_argument("--check", action="store_true", help="check that every mutation still applies, and exit")
    p.add_argument("--report", choices=("quick", "full", "fixtures", "none"), default="quick",
                   help="parity report per mutation: live with --quick configs (default), live full configs, "
                        "replayed from the golden fixtures (--fixtures: the quick configs, torch-free), or none")
    p.add_argument("--report-all", action="store_true",
                   help="run all of a bug's report components even after one failed (default: stop there)")
    p.add_argument("--no-fallback", dest="fallback", action="store_false",
                   help="do not run the whole fast suite when the listed tests catch nothing")
    p.add_argument("--worktree", action="store_true",
                   help="copy the working tree (tracked + untracked files) instead of HEAD")
    p.add_argument("--out", default=str(ROOT / "out" / "mutate"),
                   help="folder for mutate.log, results.json, table.md and the per-mutation reports")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per test or report run (default 1200)")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = p.parse_args(argv)

    if args.list:
        for m in CATALOGUE:
            print(f"{m.name:30s} {m.file:28s} {m.what}" + (" [inert]" if m.inert else ""))
        return 0
    problems = check_catalogue(ROOT)
    if args.check or problems:
        for line in problems:
            print(f"vp parity mutate: error: {line}", file=sys.stderr)
        if not problems:
            print(f"catalogue OK: {len(CATALOGUE)} mutations apply to {ROOT / 'impl'}")
        return 2 if problems else 0
    by_name = {m.name: m for m in CATALOGUE}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        print(f"vp parity mutate: error: unknown mutation(s) {unknown}; see --list", file=sys.stderr)
        return 2
    chosen = [by_name[n] for n in args.names] if args.names else list(CATALOGUE)
    chosen.sort(key=lambda m: bool(m.inert))  # the bugs that can change an output first

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vp-mutate-"))
    copy = tmp / "repo"
    t_start = time.time()
    results: List[Result] = []
    try:
        source = copy_tree(copy, args.worktree)
        venv, ready = venv_of(copy)
        if not ready:
            print(f"vp parity mutate: error: the copy's environment {venv or '(unknown)'} is not built (its "
                  "requirement files differ from every installed environment's): run ./vp setup in a tree "
                  "with those files first", file=sys.stderr)
            return 2
        problems = check_catalogue(copy, chosen)
        if problems:
            for line in problems:
                print(f"vp parity mutate: error: {line} (in the copy of {source})", file=sys.stderr)
            return 2
        components = known_components(copy) if args.report != "none" else []
        print(f"[mutate] {len(chosen)} mutations on a copy of {source} at {copy}; environment {venv} (reused); "
              f"report: {args.report} (components known: {', '.join(components) or '?'}); log {out / 'mutate.log'}",
              flush=True)
        with open(out / "mutate.log", "w") as log:
            for i, m in enumerate(chosen, 1):
                print(f"[mutate] {i}/{len(chosen)} {m.name} ({m.file}) ...", flush=True)
                r = run_one(copy, m, components, args, log)
                log.flush()
                results.append(r)
                print(f"[mutate] {i}/{len(chosen)} {m.name}: test {r.tests.caught or 'none failed'} "
                      f"({_fmt_s(r.tests.seconds)}); report "
                      f"{(r.report.caught or 'passed') if r.report.ran else 'not run'} "
                      f"({_fmt_s(r.report.seconds)}) -> {r.verdict}", flush=True)
                print(f"[mutate] totals so far: {_write(out, results, time.time() - t_start, False)}", flush=True)
    finally:
        if args.keep:
            print(f"[mutate] copy kept at {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = _write(out, results, time.time() - t_start, True)
    print(f"\n{table(results)}\n\n{summary} ({out / 'table.md'})")
    return 0 if all(r.ok for r in results) else 1


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
