"""mlx-audio 0.6.2 (Blaizzy/mlx-audio) as a foreign port: how to load it from the seeded official-format checkpoints
and how its module tree maps onto the official one. Findings: docs/ports.md.

Components:
  dac      mlx_audio/codec/models/descript (dac.py, nn/layers.py, nn/quantize.py): `DAC.from_pretrained` reads a
           folder of config.json + model.safetensors already in its own layout (the hub's mlx-community/
           dac-speech-24khz-1.5kbps); the package ships no converter from descript-audio-codec's layout, so the
           adapter writes that folder from the official seeded state dict (`dac_weights`: the layout conversions,
           as data) and calls `from_pretrained` itself (its hub fetch pointed at the folder).
  llama    mlx_audio/tts/models/outetts (Model, its sanitize) over mlx_audio/lm/models/llama: loaded by
           `mlx_audio.tts.utils.load_model(folder, model_type="outetts")` from the seeded HF checkpoint (a staging
           folder of links + config.json naming a local tokenizer: the wrapper loads one at construction).
  spark-*  mlx_audio/tts/models/spark/bicodec.py `BiCodec.load_from_checkpoint` on the seeded BiCodec folder
           (config.yaml + model.safetensors, the official layout: the port's own sanitize converts it).
  qwen2-0.5b mlx_audio/lm/models/qwen2 through `mlx_audio.lm` (Spark's LLM/ folder is a plain Qwen2 checkpoint).
  spark-wav2vec2 mlx_audio/stt/models/wav2vec `Wav2Vec2Model.from_pretrained` + its Wav2Vec2FeatureExtractor on the
           seeded wav2vec2 folder, as BiCodecTokenizer loads them (as loaded, and `-eval` after eval()).

Contracts (the official record of parity/specs/<name>.py, checked on the port's public functions):
  lm-greedy, dac-codec (DAC.encode / quantizer.from_codes + DAC.decode), dac-interface (tts/models/outetts
  DacInterface), prompt-ids (outetts PromptProcessor + tokenizer.encode), sampler (lm/sample_utils with OuteTTS
  Model.generate's settings; lm/generate.generate_step for the penalty window), audio-path (utils.resample_audio,
  process_audio_array), spark-prompt-ids (spark Model.process_prompt / process_prompt_control + tokenizer.encode).
Only these modules are imported; they run on the environment's transformers 4.52.3 (the package declares >= 5.14).
Audio files are read with soundfile where the port reads them through miniaudio/ffmpeg (not installed: --no-deps).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from parity.ports import Component, Layer, Port, Rule, activate

NAME = "mlx-audio"
VERSION = "0.6.2"
NCL_OUT = Layer(out="ncl")
NCL_IN_OUT = Layer(out="ncl", inp="ncl")


def _activate() -> None:
    activate(NAME, "mlx_audio")


def _stage_dir(what: str) -> Path:
    from impl.seeded import cache_dir

    d = cache_dir("ports") / f"mlx-audio-{VERSION}-{what}"
    return d


# ------------------------------------------------------------------------------------------------------ DAC

# descript-audio-codec's state dict -> mlx-audio's DAC tree (keys and layouts). MLX's nn.Sequential keeps its
# children in `.layers`, so every Sequential (`encoder.block`, `decoder.model`, each `.block`) gains a `layers.`.
DAC_KEY = (r"\.(block|model)\.(\d+)", r".\1.layers.\2")
# decoder.model.{i}.block.1 is a ConvTranspose1d: torch stores its weight_v (in, out, k) and, with weight norm over
# dim 0, weight_g (in, 1, 1); mlx-audio's WNConvTranspose1d keeps weight_v (out, k, in) and weight_g (1, 1, in).
DAC_CONV_TRANSPOSE = re.compile(r"decoder\.model\.\d+\.block\.1\.weight_[gv]")


def dac_weights(official: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Official DAC state dict (descript-audio-codec keys, torch layouts) -> mlx-audio DAC weights."""
    out = {}
    for k, v in official.items():
        key = re.sub(DAC_KEY[0], DAC_KEY[1], "." + k)[1:]
        if DAC_CONV_TRANSPOSE.fullmatch(k):
            v = np.transpose(v, (1, 2, 0)) if k.endswith("weight_v") else v.reshape(1, 1, -1)
        elif k.endswith("weight_v"):  # Conv1d (out, in, k) -> (out, k, in)
            v = np.transpose(v, (0, 2, 1))
        elif k.endswith("alpha"):  # Snake1d (1, C, 1) -> (1, 1, C)
            v = np.transpose(v, (0, 2, 1))
        out[key] = np.ascontiguousarray(v)
    return out


def dac_folder(config: str = "24khz_speech", seed: int = 0) -> Path:
    """The seeded DAC in the folder layout `DAC.from_pretrained` reads (config.json + model.safetensors), cached."""
    from safetensors.numpy import load_file, save_file

    from impl import dac
    from impl._io import atomic_dir
    from impl.seeded.dac import seeded_checkpoint

    cfg = dac.resolve_config(config)
    key = hashlib.sha256(json.dumps([cfg, seed], sort_keys=True).encode()).hexdigest()[:12]
    dest = _stage_dir(f"dac-{config if isinstance(config, str) else 'custom'}-s{seed}-{key}")
    if (dest / "config.json").exists():
        return dest
    with atomic_dir(dest) as tmp:
        save_file(dac_weights(load_file(str(seeded_checkpoint(config, seed)))), str(Path(tmp) / "model.safetensors"))
        (Path(tmp) / "config.json").write_text(json.dumps(cfg, indent=1))
    return dest


def load_dac(kwargs: Dict[str, Any]):
    """mlx-audio's `DAC.from_pretrained` on the staged folder (its hub download replaced by that folder)."""
    _activate()
    from mlx_audio.codec.models.descript import dac as mdac

    folder = dac_folder(kwargs.get("config", "24khz_speech"), kwargs.get("seed", 0))
    saved = mdac.fetch_from_hub
    mdac.fetch_from_hub = lambda repo: Path(repo)
    try:
        return mdac.DAC.from_pretrained(str(folder))
    finally:
        mdac.fetch_from_hub = saved


def run_dac(model, inputs):
    """The official spec's forward (encoder -> quantizer -> decoder on z_q) through mlx-audio's DAC.encode /
    DAC.decode (audio (B, L): mlx-audio takes (B, 1, L))."""
    import mlx.core as mx

    x = mx.array(inputs["audio"])[:, None, :]
    z, codes = model.encode(x)[:2]
    return {"codes": codes, "audio": model.decode(z)[:, :, 0]}


def _vq_isolate(module, args, kwargs):
    return module(args[0])  # VectorQuantize takes z (B, D, T): args already transposed (Layer.inp="ncl")


DAC_RULES = [
    # encoder convs and blocks: (N, L, C) like impl
    Rule(r"encoder\.block\.(\d+)\.block\.(\d+)", r"encoder.block.layers.\1.block.layers.\2"),
    Rule(r"encoder\.block\.(\d+)", r"encoder.block.layers.\1"),
    # quantizer: mlx-audio keeps z in (B, D, T) around each VectorQuantize and the residual quantizer
    Rule(r"quantizer\.quantizers\.(\d+)\.(in_proj|out_proj)", r"quantizer.quantizers.\1.\2"),
    Rule(r"quantizer\.quantizers\.(\d+)", r"quantizer.quantizers.\1", NCL_IN_OUT),
    Rule(r"quantizer", r"quantizer", NCL_IN_OUT),
    Rule(r"decoder\.model\.(\d+)\.block\.(\d+)", r"decoder.model.layers.\1.block.layers.\2"),
    Rule(r"decoder\.model\.(\d+)", r"decoder.model.layers.\1"),
]


# ------------------------------------------------------------------------------------------------- the LMs

def _link_folder(src: Path, dest: Path, config: Dict[str, Any], tokenizer=None) -> Path:
    """dest: links to src's weight files + `config` as config.json (+ a tokenizer folder's files), cached."""
    from impl._io import atomic_dir

    if (dest / "config.json").exists():
        return dest
    with atomic_dir(dest) as tmp:
        for f in sorted(src.iterdir()):
            if f.suffix == ".safetensors" or f.name.endswith(".index.json"):
                (Path(tmp) / f.name).symlink_to(f.resolve())
        if tokenizer is not None:
            tokenizer(Path(tmp))
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=1))
    return dest


def load_outetts_lm(kwargs: Dict[str, Any]):
    """mlx-audio's OuteTTS model (tts/models/outetts Model + its sanitize over lm/models/llama) through
    `mlx_audio.tts.utils.load_model(folder, model_type="outetts")`, on the seeded HF Llama checkpoint. The wrapper
    loads a tokenizer at construction (`AutoTokenizer.from_pretrained(config.tokenizer_name)`, the hub's
    OuteAI/Llama-OuteTTS-1.0-1B by default): the staging folder holds the generated v3 tokenizer and names it."""
    _activate()
    from impl.seeded.outetts import build_tokenizer
    from mlx_audio.tts.utils import load_model
    from parity.specs.llama import checkpoint

    config, seed = kwargs.get("config", "small"), kwargs.get("seed", 0)
    src = checkpoint(config, seed)
    dest = _stage_dir(f"outetts-{src.name}")
    cfg = dict(json.loads((src / "config.json").read_text()), tokenizer_name=str(dest))
    _link_folder(src, dest, cfg, tokenizer=build_tokenizer)
    return load_model(dest, model_type="outetts")


def load_spark_lm(kwargs: Dict[str, Any]):
    """mlx-audio's Spark-TTS model (tts/models/spark/spark.py Model over lm/models/qwen2): the steps of
    `mlx_audio.utils.base_load_model` (ModelConfig.from_dict, Model, load_weights, sanitize, strict load_weights)
    on the seeded Qwen2 checkpoint (Spark's LLM/ folder); its post_load_hook (tokenizer + BiCodec + wav2vec2 of a
    whole Spark folder) is not run: the LM alone is compared."""
    _activate()
    import mlx.core as mx
    from mlx_audio.tts.models.spark import spark as mspark
    from mlx_audio.utils import load_weights
    from parity.specs.qwen2 import checkpoint

    src = checkpoint(kwargs.get("config", "small"), kwargs.get("seed", 0))
    config = json.loads((src / "config.json").read_text())
    model = mspark.Model(mspark.ModelConfig.from_dict(config))
    model.load_weights(list(model.sanitize(load_weights(src)).items()), strict=True)
    mx.eval(model.parameters())
    return model


def lm_runner(greedy: bool):
    """run_impl for the LM specs: the full forward, the teacher-forced logits through the port's own KV cache
    (mlx_audio.lm.models.cache.make_prompt_cache: prefill half, then one token per step) and, for the Qwen2 spec,
    the greedy ids of mlx-audio's decode loop (mlx_audio.lm.generate.generate_step, its default argmax sampler)."""
    def run(model, inputs):
        import mlx.core as mx
        from mlx_audio.lm.models.cache import make_prompt_cache

        lm = model.model  # the lm/models Model under the TTS wrapper (spark's Model has no __call__)
        ids = mx.array(inputs["ids"].astype(np.int32))
        logits = lm(ids)
        mx.eval(logits)
        cache = make_prompt_cache(lm)
        half = ids.shape[1] // 2
        steps = [lm(ids[:, :half], cache=cache)]
        for t in range(half, ids.shape[1]):
            steps.append(lm(ids[:, t:t + 1], cache=cache))
            mx.eval(steps[-1])
        out = {"logits": logits, "logits_tf": mx.concatenate(steps, axis=1)}
        if greedy:
            from parity.specs.qwen2 import GREEDY_PROMPT, GREEDY_STEPS

            out["greedy"] = np.asarray(greedy_ids(lm, inputs["ids"][0, :GREEDY_PROMPT].tolist(), GREEDY_STEPS),
                                       np.int64)
        return out

    return run


def greedy_ids(lm, prompt, steps: int):
    """The `steps` new ids of mlx-audio's decode loop (generate_step with its default sampler: argmax)."""
    import mlx.core as mx
    from mlx_audio.lm.generate import generate_step

    return [int(t) for t, _ in generate_step(mx.array(prompt), lm, max_tokens=steps)]


LM_RULES = [Rule(r"model\.(.*)", r"model.model.\1")]  # the TTS wrapper's `model` holds the lm/models Model


# ---------------------------------------------------------------------------------------------- Spark BiCodec

# The official BiCodec state dict holds the torchaudio MelSpectrogram's persistent buffers; mlx-audio computes the
# mel in a function (spark/bicodec.py mel_spectrogram) and its strict load_weights refuses them (docs/ports.md).
SPARK_DROPPED = ("mel_transformer.spectrogram.window", "mel_transformer.mel_scale.fb")


def spark_quick_config() -> Dict[str, Any]:
    """impl.seeded.spark's "tiny" with the WaveGenerator 4x wider (channels 64 -> 256): mlx-audio's sanitizers pick
    a conv weight's layout by comparing its sizes (`v.shape[1] > v.shape[-1]`: input channels > kernel), which the
    tiny config's last blocks (4 and 8 channels, kernels 7-16) break (docs/ports.md); every real-size conv has more
    input channels than taps. Same code paths, the port's own loader."""
    from impl.seeded.spark import resolve_config

    c = resolve_config("tiny")
    c["audio_tokenizer"]["decoder"]["channels"] = 256
    return c


SPARK_QUICK = spark_quick_config()
SPARK_QUICK_LABEL = "tiny-dec256"


def bicodec_folder(config, seed: int = 0) -> Path:
    """The seeded official BiCodec folder with SPARK_DROPPED removed (everything else as written), cached."""
    from safetensors.numpy import load_file, save_file

    from impl._io import atomic_dir
    from parity.specs.spark import checkpoint

    src = checkpoint(config, seed)
    key = hashlib.sha256(str(src).encode()).hexdigest()[:12]
    dest = _stage_dir(f"bicodec-{key}")
    if (dest / "model.safetensors").exists():
        return dest
    with atomic_dir(dest) as tmp:
        (Path(tmp) / "config.yaml").write_text((src / "config.yaml").read_text())
        w = load_file(str(src / "model.safetensors"))
        save_file({k: v for k, v in w.items() if k not in SPARK_DROPPED}, str(Path(tmp) / "model.safetensors"))
    return dest


def load_bicodec(kwargs: Dict[str, Any]):
    """mlx-audio's `BiCodec.load_from_checkpoint` (its own sanitize and strict load) on the staged folder."""
    _activate()
    from mlx_audio.tts.models.spark.bicodec import BiCodec

    return BiCodec.load_from_checkpoint(bicodec_folder(kwargs.get("config", "tiny"), kwargs.get("seed", 0)))


def run_spark_decoder(model, inputs):
    """`BiCodec.detokenize(semantic (1, T), global (1, 1, token_num))` as BiCodecTokenizer.detokenize calls it."""
    import mlx.core as mx

    wav = model.detokenize(mx.array(inputs["semantic"]), mx.array(inputs["global"]))
    return {"audio": wav[:, 0, :]}  # (B, 1, L) -> (B, L)


def run_spark_global(model, inputs):
    """The global half of `BiCodec.tokenize`: get_mel_spectrogram -> speaker_encoder.tokenize; x-/d-vectors from
    speaker_encoder(mel)."""
    import mlx.core as mx

    from parity.specs.spark import _bounded, fsq_bounded, pool_probes

    mel = model.get_mel_spectrogram(mx.array(inputs["ref_wav"]))  # (B, T, n_mels)
    x_vec, d_vec = model.speaker_encoder(mel)
    layers = model.speaker_encoder.quantizer.layers
    with fsq_bounded(layers, []) as bounded:  # its FSQ has upstream's bound / quantize methods
        ids = model.speaker_encoder.tokenize(mel)
    pool = model.speaker_encoder.speaker_encoder.pool  # ASTP on (B, C, T)
    short = [pool(mx.array(x).transpose(0, 2, 1)).reshape(-1) for x in pool_probes(pool.in_dim)]
    # mel_computed: the port always computes its filterbank and window (no checkpoint buffers): its `mel` again
    return {"mel": mel, "global_ids": ids, "x_vector": x_vec, "d_vector": d_vec,
            "fsq_bounded": _bounded(bounded, bounded[0].shape[-1]),
            "mel_computed": mel, "pool_short": mx.concatenate(short)}


def run_spark_semantic(model, inputs):
    """The semantic half of `BiCodec.tokenize`: encoder(feat (B, C, T)) -> quantizer.tokenize."""
    import mlx.core as mx

    z = model.encoder(mx.array(inputs["feat"]).transpose(0, 2, 1))  # (B, C, T)
    return {"z": z.transpose(0, 2, 1), "semantic_ids": model.quantizer.tokenize(z)}


def _backbone_call(m, args, kwargs):
    """VocosBackbone(x, bandwidth_id=condition): the captured torch input is (N, C, L); fed as (N, L, C), the layout
    the port's own callers pass (its `x.shape[-1] != input_channels` check then leaves it alone)."""
    import mlx.core as mx

    cond = kwargs.get("condition", args[1] if len(args) > 1 else None)
    return m(mx.transpose(args[0], (0, 2, 1)), bandwidth_id=cond)


BACKBONE = Layer(call=_backbone_call)
SPARK_RULES = [
    Rule(r"mel_transformer", None, why="mlx-audio computes the mel in a function (spark/bicodec.py "
                                       "mel_spectrogram), no module: compared as the `mel` output"),
    Rule(r"decoder\.model\.(\d+)\.block\.(\d+)", r"decoder.model.\1.block.layers.\2"),
    Rule(r"(encoder|prenet)", r"\1", NCL_IN_OUT),  # Encoder / Decoder (feat_*.py): (B, C, T) in and out
    Rule(r"(.*(vocos_backbone|encoder\.encoder|downsample\.\d+\.1))", r"\1", BACKBONE),
    # ECAPA-TDNN (speaker/ecapa_tdnn.py): its blocks and the pooling take and return (B, C, T)
    Rule(r"(speaker_encoder\.speaker_encoder\.layer\d(\.se_res2block\.\d)?)", r"\1", NCL_IN_OUT),
    Rule(r"(speaker_encoder\.speaker_encoder\.pool)", r"\1", Layer(inp="ncl")),
    Rule(r"speaker_encoder\.quantizer", r"speaker_encoder.quantizer", NCL_IN_OUT),  # residual_fsq.py: (B, D, T)
    Rule(r"(.*)", r"\1"),
]


# ---------------------------------------------------------------------------------------- Spark wav2vec2

def load_wav2vec2(kwargs: Dict[str, Any]):
    """mlx-audio's wav2vec2 as its Spark BiCodecTokenizer loads it (tts/models/spark/audio_tokenizer.py:32-38):
    `Wav2Vec2Model.from_pretrained` (stt/models/wav2vec: its sanitize, strict load_weights) and
    `Wav2Vec2FeatureExtractor.from_pretrained` on the seeded `wav2vec2-large-xlsr-53` folder, output_hidden_states
    on. Nothing calls eval(): the model is returned in MLX's default training mode, as BiCodecTokenizer keeps it.
    The feature extractor rides along as `model.voiceport_processor` (a plain attribute: not a parameter)."""
    _activate()
    import warnings

    from mlx_audio.stt.models.wav2vec.feature_extractor import Wav2Vec2FeatureExtractor
    from mlx_audio.stt.models.wav2vec.wav2vec import Wav2Vec2Model

    from impl.seeded.spark import seeded_w2v

    folder = str(seeded_w2v(kwargs.get("config", "tiny"), kwargs.get("seed", 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # from_pretrained: "use mlx_audio.stt.load()"
        model = Wav2Vec2Model.from_pretrained(folder)
    model.config.output_hidden_states = True
    model.voiceport_processor = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    return model


def run_wav2vec2(model, inputs):
    """`BiCodecTokenizer.extract_wav2vec2_features(wav)` (audio_tokenizer.py:74-88; it reads only self.processor
    and self.feature_extractor): the port's feature extractor (normalisation), the model, the 11/14/16 mix; on the
    spec's clip, then on its long clip (the layer taps keep each module's first call)."""
    from types import SimpleNamespace

    from mlx_audio.tts.models.spark.audio_tokenizer import BiCodecTokenizer

    holder = SimpleNamespace(processor=model.voiceport_processor, feature_extractor=model)
    return {name: BiCodecTokenizer.extract_wav2vec2_features(holder, inputs[wav])
            for name, wav in (("features", "wav"), ("features_long", "wav_long"))}


W2V_RULES = [
    # the conv layers take and return (B, C, L) (stt/models/wav2vec/wav2vec.py:92-156); the rest is channels-last
    Rule(r"feature_extractor\.conv_layers\.(\d+)", r"feature_extractor.conv_layers.\1", NCL_IN_OUT),
    Rule(r"(feature_projection|encoder\.pos_conv_embed|encoder\.layers\.\d+)", r"\1"),
]


# ------------------------------------------------------------------------------------------------ contracts

def check_lm_greedy(rec: Dict[str, Any], quick: bool):
    """The lm-greedy contract (parity/specs/lm_greedy.py) on mlx-audio's decode loop: its OuteTTS model loaded as
    above, `generate_step` with the default argmax sampler, the official record's prompts and 64 steps."""
    from parity.contracts import ids_case, section
    from parity.specs.lm_greedy import STEPS, _prompt
    from parity.specs.llama import config_dict

    cfg = rec["config"]
    lm = load_outetts_lm({"config": cfg, "seed": 0}).model
    vocab = config_dict(cfg)["vocab_size"]
    cases = [ids_case(f"{cfg} prompt seed {r['seed']}: {STEPS} greedy ids",
                      greedy_ids(lm, _prompt(r["seed"], vocab), STEPS), [int(t) for t in r["ids"]])
             for r in rec["runs"]]
    return section(f"LM greedy-{STEPS} ({cfg})", f"mlx_audio.lm.generate.generate_step (argmax) on the OuteTTS model "
                   f"vs transformers generate(do_sample=False), {cfg} seeded LM, {STEPS} steps", cases,
                   "exact: token ids", "differing ids")


# ------------------------------------------------------------------------------------- OuteTTS prompt ids

def outetts_prompt_ids(processor, tokenizer, text: str, speaker) -> list:
    """The ids mlx-audio's OuteTTS feeds its LM for one text chunk: `PromptProcessor.get_completion_prompt` then
    `tokenizer.encode(prompt, add_special_tokens=False)` (tts/models/outetts/outetts.py:198-203). The speaker is
    copied: get_completion_prompt appends the separator to its last word in place, as outetts' does."""
    import copy

    return tokenizer.encode(processor.get_completion_prompt(text, copy.deepcopy(speaker)), add_special_tokens=False)


def check_prompt_ids(rec: Dict[str, Any], quick: bool):
    """The prompt-ids contract (parity/specs/prompt.py) on mlx-audio's PromptProcessor over the same generated v3
    tokenizer (`AutoTokenizer.from_pretrained`, as outetts.Model.__init__ loads `tokenizer_name`). Texts outetts
    normalises to nothing: the port's `text_normalizations` must give nothing too (it has no refusal of its own)."""
    _activate()
    from mlx_audio.tts.models.outetts.prompt_processor import PromptProcessor
    from transformers import AutoTokenizer

    from parity.contracts import Case, ids_case, section
    from parity.specs.prompt import _tokenizer_dir, recorded_cases

    tok = AutoTokenizer.from_pretrained(str(_tokenizer_dir()))
    pp = PromptProcessor(tok)
    out, at, empty = [], 0, 0
    for name, text, speaker, n in recorded_cases(rec):
        if n < 0:
            empty += 1
            norm = PromptProcessor.text_normalizations(text)
            out.append(Case(name, float(bool(norm)), 0.0, not norm, "exact",
                            "empty after normalisation on both sides" if not norm else
                            f"outetts normalises it to empty; the port's text_normalizations keeps {norm[:24]!r}"))
            continue
        want = rec["ids"][at:at + n].tolist()
        at += n
        try:
            got = outetts_prompt_ids(pp, tok, text, speaker)
        except Exception as e:  # noqa: BLE001 -- a crash on a case outetts handles is a divergence
            out.append(Case(name, float(n), 0.0, False, "exact", f"port raised {type(e).__name__}: {e}"))
            continue
        out.append(ids_case(name, got, want))
    return section("prompt ids", f"mlx_audio tts/models/outetts PromptProcessor.get_completion_prompt + "
                   f"tokenizer.encode vs outetts' PromptProcessor + transformers' tokenizer, {len(out)} seeded "
                   f"text/profile cases ({empty} empty after normalisation)", out, "exact: token ids",
                   "differing ids", [f"{int(rec['ids'].size)} ids compared in all"])


# ------------------------------------------------------------------------------------------ OuteTTS sampler

# Model.generate's sampler settings (tts/models/outetts/outetts.py:184-194): make_sampler(temperature, top_p,
# min_p, top_k) and make_logits_processors(logit_bias=None, repetition_penalty, repetition_context_size=64).
OUTETTS_CONTEXT = 64


@contextlib.contextmanager
def _draws(store: list):
    """While open, mlx-audio's `sample_utils.categorical_sampling(logits, temp)` (the last call of every sampler
    make_sampler builds, sample_utils.py:68) records its arguments instead of drawing: `mx.random.categorical`
    draws from softmax(logits * (1 / temp)) (sample_utils.py:280), the distribution compared."""
    import mlx.core as mx
    from mlx_audio.lm import sample_utils as su

    saved = su.categorical_sampling

    def record(logits, temp):
        store.append(logits * (1 / temp))  # the array sample_utils.py:280 draws from, in its float32
        return mx.zeros(logits.shape[:-1], mx.uint32)

    su.categorical_sampling = record
    try:
        yield store
    finally:
        su.categorical_sampling = saved


def sampler_distribution(logits: np.ndarray, ids: np.ndarray, kw: Dict[str, Any]):
    """mlx-audio's OuteTTS sampler on one logits set (B, V) with ids (B, L): per row, its logits processors
    (the repetition penalty over the last 64 ids, applied only when there are ids: generate.py:309), the
    log-softmax of generate_step (generate.py:317), then the sampler chain (top-p, min-p, top-k, then
    temperature) up to the draw. Returns (p (B*V,) float64 = softmax of the drawn-from scores, those scores
    (B*V,) float32, -inf off the support)."""
    import mlx.core as mx
    from mlx_audio.lm.sample_utils import make_logits_processors, make_sampler

    procs = make_logits_processors(None, kw["repetition_penalty"], OUTETTS_CONTEXT)
    sampler = make_sampler(kw["temperature"], kw["top_p"], min_p=kw["min_p"], top_k=kw["top_k"])
    scores = []
    for b in range(logits.shape[0]):
        row = mx.array(logits[b:b + 1])
        if ids.shape[1]:
            for proc in procs:
                row = proc(mx.array(ids[b]), row)
        logprobs = row - mx.logsumexp(row, keepdims=True)
        with _draws([]) as drawn:
            sampler(logprobs)
        scores.append(np.array(drawn[0]).reshape(-1))
    s = np.concatenate(scores)
    p = np.zeros(s.shape, np.float64)
    for b in range(logits.shape[0]):
        row = s[b * logits.shape[1]:(b + 1) * logits.shape[1]].astype(np.float64)
        e = np.exp(row - row.max())
        p[b * logits.shape[1]:(b + 1) * logits.shape[1]] = e / e.sum()
    return p, s


U = 2.0 ** -24
SAMPLER_BOUND_WHY = ("|p - p_ref| <= 1.01 (2 max_j (3 u |s_j| + 2 u |s_ref_j|) + 4 u + 2 n u / (1 - n u)) p_ref: "
                     "softmax moves ln p by at most twice the largest score error; the port's scores "
                     "(logits - logsumexp) * fl(1/T) carry 3 rounding errors of |s|, the official fl(l / T) and the "
                     "penalty one each of |s_ref|; torch's exp, division and float32 p, and its n-term sum")


def sampler_bound(p_ref: np.ndarray, s_port: np.ndarray, s_ref: np.ndarray) -> np.ndarray:
    n = p_ref.size
    shift = 2 * float(np.max(3 * U * np.abs(s_port) + 2 * U * np.abs(s_ref)))
    return 1.01 * (shift + 4 * U + 2 * n * U / (1 - n * U)) * p_ref


def sampler_window_ids(rows, prompt, steps: int):
    """The ids mlx-audio's decode loop (lm/generate.generate_step: its argmax default, OuteTTS' processors)
    picks over scripted logits rows; the LM stand-in answers each call with the next row (a prompt longer than
    one id costs one prefill call first, generate.py:324, and the loop computes one step ahead, generate.py:352)."""
    import mlx.core as mx
    from mlx_audio.lm.generate import generate_step
    from mlx_audio.lm.sample_utils import make_logits_processors

    from parity.specs.sampler import LogitsScriptLM

    V = len(rows[0])
    script = ([np.zeros(V, np.float32)] if len(prompt) > 1 else []) + list(rows) + [np.zeros(V, np.float32)]
    procs = make_logits_processors(None, 1.1, OUTETTS_CONTEXT)
    return [int(t) for t, _ in generate_step(mx.array(prompt), LogitsScriptLM(script), max_tokens=steps,
                                             logits_processors=procs, prompt_cache=[])]


def check_sampler(rec: Dict[str, Any], quick: bool):
    """The sampler contract (parity/specs/sampler.py) on mlx-audio's OuteTTS sampler: per recorded logits set the
    support exact and the distribution it draws from within SAMPLER_BOUND_WHY (its scores are log-probabilities,
    shifted from transformers' by logsumexp / T, so they cannot be bit-equal); the penalty-window decisions through
    its decode loop."""
    _activate()
    from parity.contracts import Case, ids_case, section
    from parity.specs.sampler import _inputs, window_case

    inputs = {name: (logits, ids, kw) for name, logits, ids, kw in _inputs(quick)}
    cases, max_dp, wider, narrower = [], 0.0, 0, 0
    for s in rec["sets"]:
        logits, ids, kw = inputs[s["name"]]
        name = f"{s['name']} (V {s['shape'][-1]}, B {s['shape'][0]}, {ids.shape[1]} ids back)"
        try:
            p, scores = sampler_distribution(logits, ids, kw)
        except Exception as e:  # noqa: BLE001 -- a setting transformers accepts and the port refuses
            cases.append(Case(name, float("inf"), 1.0, False, "bound", f"port raised {type(e).__name__}: {e}"))
            continue
        idx, support = s["index"], np.flatnonzero(p > 0)
        if not np.array_equal(support, idx):
            extra = sorted(set(support.tolist()) ^ set(idx.tolist()))[:3]
            wider += len(support) > len(idx)
            narrower += len(support) < len(idx)
            cases.append(Case(name, float("inf"), 1.0, False, "bound", f"support differs: {len(support)} vs "
                              f"official {len(idx)} tokens, e.g. flat {extra} (settings {kw})"))
            continue
        p_ref = s["p"].astype(np.float64)
        bound = sampler_bound(p_ref, scores[idx].astype(np.float64), s["scores"].astype(np.float64))
        d = np.abs(p[idx] - p_ref)
        worst = int(np.argmax(d / bound))
        max_dp = max(max_dp, float(d.max()))
        cases.append(Case(name, float(d[worst] / bound[worst]), 1.0, bool(np.all(d <= bound)), "bound",
                          f"max|dp| {d.max():.3g}; worst vs bound at flat token {idx[worst]}"))
    for lp in rec["loops"]:
        prompt, rows, step = window_case(lp["back"], lp["where"])
        cases.append(ids_case(f"penalty window in generate_step: id {lp['back']} back, {lp['where']} "
                              f"(decision step {step})", sampler_window_ids(rows, prompt, len(rows)),
                              lp["ids"].tolist()))
    return section("sampler", f"mlx_audio lm/sample_utils make_logits_processors + make_sampler (OuteTTS "
                   f"Model.generate's settings) vs outetts' patched transformers processors: {len(rec['sets'])} "
                   f"logits sets (support exact, |dp| against the bound) + {len(rec['loops'])} penalty-window "
                   "decisions in lm/generate.generate_step", cases, SAMPLER_BOUND_WHY + "; window ids exact",
                   "max |dp| / bound (window: differing ids)",
                   [f"max |p - p_ref| over the sets with the official support: {max_dp:.3g}",
                    f"supports differing: {wider} wider than the official, {narrower} narrower"])


# ---------------------------------------------------------------------------------------- Spark prompt ids

def spark_prompt_ids(tokenizer, mode: str, text: str, prompt_text, global_ids, semantic_ids, control) -> list:
    """The ids mlx-audio's Spark feeds its LM: `Model.process_prompt` (cloning; its `_audio_tokenizer.tokenize`
    answering with the given ids, shaped as BiCodecTokenizer returns them: (1, 1, 32) and (1, T)) or
    `process_prompt_control` (creation), then `tokenizer.encode(prompt, add_special_tokens=False)`
    (tts/models/spark/spark.py:261-273). Both methods read nothing else from self."""
    from types import SimpleNamespace

    import mlx.core as mx
    from mlx_audio.tts.models.spark.spark import Model

    if mode == "create":
        prompt = Model.process_prompt_control(SimpleNamespace(), *control, text)
    else:
        ids = (mx.array(np.asarray(global_ids, np.int32))[None, None],
               mx.array(np.asarray(semantic_ids, np.int32))[None])
        holder = SimpleNamespace(_audio_tokenizer=SimpleNamespace(tokenize=lambda _path: ids))
        prompt = Model.process_prompt(holder, text, Path("prompt.wav"), prompt_text if mode != "clone" else None)[0]
    return tokenizer.encode(prompt, add_special_tokens=False)


def check_spark_prompt_ids(rec: Dict[str, Any], quick: bool):
    """The spark-prompt-ids contract (parity/specs/spark_prompt.py) on mlx-audio's Spark prompt builders over the
    seeded LLM folder's tokenizer (AutoTokenizer, as Model.post_load_hook loads it, spark.py:84)."""
    _activate()
    from transformers import AutoTokenizer

    from parity.contracts import Case, ids_case, section
    from parity.specs.spark_prompt import MODES, llm_dir

    tok = AutoTokenizer.from_pretrained(str(llm_dir()), eos_token_ids=151645)  # spark.py:84, ModelConfig's eos
    sem_at = np.concatenate([[0], np.cumsum(rec["semantic_len"])])
    at = {m: np.concatenate([[0], np.cumsum(rec["lengths"][m])]) for m in MODES}
    out = []
    for i, text in enumerate(rec["text"]):
        g, pt, control = rec["global"][i].tolist(), rec["prompt_text"][i], rec["control"][i]
        s = rec["semantic"][sem_at[i]:sem_at[i + 1]].tolist()
        for m in MODES:
            want = rec["ids"][m][at[m][i]:at[m][i + 1]].tolist()
            name = f"case {i} {m} (text {text[:20]!r}" + (f", transcript {pt[:12]!r})" if m == MODES[1] else ")")
            try:
                got = spark_prompt_ids(tok, m, text, pt, g, s, control)
            except Exception as e:  # noqa: BLE001 -- a crash on a prompt upstream builds is a divergence
                out.append(Case(name, float(len(want)), 0.0, False, "exact", f"port raised {type(e).__name__}: {e}"))
                continue
            out.append(ids_case(name, got, want))
    return section("Spark prompt ids", f"mlx_audio tts/models/spark Model.process_prompt (without / with the "
                   f"transcript) and process_prompt_control + tokenizer.encode vs SparkTTS.process_prompt / "
                   f"process_prompt_control + tokenizer([prompt]): {len(rec['text'])} derandomized hypothesis cases "
                   f"x {len(MODES)} modes", out, "exact: token ids", "differing ids")


# ----------------------------------------------------------------------------------------------- audio path

def read_wav(path) -> Tuple[np.ndarray, int]:
    """A wav as `mlx_audio.audio_io.read` returns it (float64, (L,) or (L, C)), read by soundfile: audio_io decodes
    through miniaudio or ffmpeg, neither in the environment (the port is installed --no-deps); for PCM wav both
    scale int16 by 2**-15."""
    import soundfile as sf

    return sf.read(str(path), dtype="float64")


def check_audio_path(rec: Dict[str, Any], quick: bool):
    """The audio-path contract (parity/specs/audio_path.py) on the functions mlx-audio's OuteTTS codec interface
    calls: `mlx_audio.utils.resample_audio(x, sr, 24000, axis=-1)` (dac_interface.py:81, what load_audio runs
    on a clip) and `process_audio_array` (dac_interface.py:12, -18 LUFS and -1 dB peak over mlx_audio.dsp); on the
    signals that reach both BS.1770 gates, the integrated loudness it measures (mlx_audio.dsp.integrated_loudness)
    exactly, as the impl section compares its own."""
    _activate()
    import mlx.core as mx
    from mlx_audio.dsp import integrated_loudness
    from mlx_audio.tts.models.outetts.dac_interface import process_audio_array
    from mlx_audio.utils import resample_audio

    from parity.contracts import Case, floor_case, section
    from parity.doubles import LIBRIVOX, load_librivox
    from parity.spec import FLOOR_WHY
    from parity.specs.audio_path import RESAMPLE, _resample_input, _signals, gated_signals

    cases = []
    for (orig, new, n, ch), r in zip(RESAMPLE, rec["resample"]):
        got = resample_audio(_resample_input(orig, n, ch, 0), orig, new, axis=-1)
        cases.append(floor_case(f"resample {orig} -> {new} Hz, {ch} ch x {n}", got, r))
    clips = load_librivox()
    for name, r in zip(LIBRIVOX, rec["librivox"]):
        x, sr = read_wav(clips[name].wav)
        got = resample_audio(x.astype(np.float32), sr, 24000, axis=-1)
        cases.append(floor_case(f"resample LibriVox {name} {sr} -> 24000 Hz", got, r))
    for (name, x), r in zip(_signals().items(), rec["loudness"]):
        got = np.array(process_audio_array(mx.array(x)[None, None])).reshape(-1)
        cases.append(floor_case(f"process_audio_array {name}", got, r))
    for (name, x), r in zip(gated_signals().items(), rec.get("gated", [])):
        # what process_audio_array measures (dac_interface.py:38), on the float32 signal as np.array(audio) gives it
        got, want = float(integrated_loudness(x, 24000, block_size=0.400)), float(r["lufs"])
        cases.append(Case(f"integrated_loudness {name} (both gates)", abs(got - want), 0.0, got == want, "exact",
                          "" if got == want else f"{got!r} LUFS != pyloudnorm {want!r}"))
        got = np.array(process_audio_array(mx.array(x)[None, None])).reshape(-1)
        cases.append(floor_case(f"process_audio_array {name}", got, r["out"]))
    return section("audio path", "mlx_audio utils.resample_audio vs torchaudio Resample, tts/models/outetts "
                   "process_audio_array vs outetts' process_audio_tensor (-18 LUFS, -1 dB peak): lengths exact, "
                   "values within the floor", cases, FLOOR_WHY + " (truth: torchaudio / outetts on float64 input)",
                   "max|port - ref64|")


# --------------------------------------------------------------------------------- DAC codec and interface

def dac_encode_codes(model, audio: np.ndarray) -> np.ndarray:
    """audio (B, L) -> codes (B, n_codebooks, T) through mlx-audio's `DAC.encode` (it takes (B, 1, L))."""
    import mlx.core as mx

    return np.array(model.encode(mx.array(audio)[:, None, :])[1])


def dac_decode_audio(model, codes: np.ndarray) -> np.ndarray:
    """codes (B, n, T) -> audio (B, L) through `quantizer.from_codes` and `DAC.decode` (as DacInterface.decode
    calls them, dac_interface.py:146-147; decode returns (B, L, 1))."""
    import mlx.core as mx

    z = model.quantizer.from_codes(mx.array(np.asarray(codes, np.int32)))[0]
    return np.array(model.decode(z))[:, :, 0]


def check_dac_codec(rec: Dict[str, Any], quick: bool):
    """The dac-codec contract (parity/specs/dac_codec.py) on mlx-audio's DAC loaded as `load_dac` loads it: codes
    of DAC.encode at lengths that are not multiples of the hop, decode lengths and audio, real 24 kHz speech sizes
    and the tiny config with its strides."""
    from parity.contracts import exact_case, floor_case, section
    from parity.doubles import TINY
    from parity.spec import FLOOR_WHY
    from parity.specs.dac import make_signal
    from parity.specs.dac_codec import _codes

    model, tiny = load_dac({"config": "24khz_speech"}), load_dac({"config": dict(TINY)})
    cases = []
    for e in rec["encode"]:
        audio = make_signal(e["kind"], 24000, e["n"], e["seed"])[None]
        cases.append(exact_case(f"speech DAC.encode {e['kind']} n={e['n']}: codes", dac_encode_codes(model, audio),
                                e["codes"]))
    for d in rec["decode"]:
        cases.append(floor_case(f"speech DAC.decode T={d['T']}: audio ({320 * d['T'] - 8} samples)",
                                dac_decode_audio(model, _codes(d["T"], d["T"])), d["audio"]))
    for d in rec["tiny_decode"]:
        cases.append(floor_case(f"tiny DAC.decode T={d['T']}: length + audio",
                                dac_decode_audio(tiny, _codes(d["T"], 1000 + d["T"])), d["audio"]))
    for e in rec["tiny_encode"]:
        audio = make_signal("noise", 24000, e["n"], e["n"])[None]
        cases.append(exact_case(f"tiny DAC.encode n={e['n']}: codes", dac_encode_codes(tiny, audio), e["codes"]))
    return section("DAC encode/decode", "mlx_audio codec/models/descript DAC.encode codes (exact, vs torch fp32) "
                   "and quantizer.from_codes + DAC.decode output length (exact) + audio (floor), real 24 kHz speech "
                   "architecture and a tiny config with its strides", cases, FLOOR_WHY + "; codes and lengths exact",
                   "codes: mismatches; audio: max|port - ref64|")


def dac_interface(config) -> Any:
    """mlx-audio's OuteTTS `DacInterface(repo_id)` on the staged seeded DAC folder (its hub fetch pointed at it)."""
    _activate()
    from mlx_audio.codec.models.descript import dac as mdac
    from mlx_audio.tts.models.outetts.dac_interface import DacInterface

    folder = dac_folder(config, 0)
    saved = mdac.fetch_from_hub
    mdac.fetch_from_hub = lambda repo: Path(repo)
    try:
        return DacInterface(str(folder))
    finally:
        mdac.fetch_from_hub = saved


def check_dac_interface(rec: Dict[str, Any], quick: bool):
    """The dac-interface contract (parity/specs/dac_interface.py) on mlx-audio's OuteTTS DacInterface: encode of a
    file (load_audio: read, mono, resample_audio to 24 kHz) and of 44.1 kHz stereo (convert_audio_array), codes
    exact; decode (its fixed 4096-code chunks: no chunk_length argument) length exact and audio within the floor."""
    import mlx.core as mx

    from parity.contracts import exact_case, floor_case, section
    from parity.doubles import TINY, load_librivox
    from parity.spec import FLOOR_WHY
    from parity.specs.dac_interface import _codes, stereo

    ifaces = {"speech": dac_interface("24khz_speech"), "tiny": dac_interface(dict(TINY))}
    speech = ifaces["speech"]
    clips = load_librivox()
    cases = []
    for f in rec["files"]:
        x, sr = read_wav(clips[f["clip"]].wav)  # DacInterface.load_audio (dac_interface.py:88-96) from here on
        x = mx.array(x.astype(np.float32))
        x = x.reshape(1, -1) if x.ndim == 1 else x.T
        wav = speech.convert_audio_array(x, sr).reshape(1, 1, -1)
        cases.append(exact_case(f"load_audio + encode LibriVox {f['clip']} ({sr // 1000} kHz): codes",
                                np.array(speech.encode(wav))[0], f["codes"]))
    wav = speech.convert_audio_array(mx.array(stereo(44100, 1.3, 3)), 44100).reshape(1, 1, -1)
    cases.append(exact_case("convert_audio_array + encode 44.1 kHz stereo 1.3 s: codes",
                            np.array(speech.encode(wav))[0], rec["stereo"]))
    for d in rec["decode"]:
        got = np.array(ifaces[d["arch"]].decode(mx.array(_codes(d["T"], d["seed"])[None].astype(np.int32))))
        cases.append(floor_case(f"decode {d['arch']} T={d['T']} (official chunks of {d['chunk']}, the port's of "
                                f"4096): length + audio", got.reshape(-1), d["audio"]))
    return section(
        "DAC chunked interface (outetts)", "mlx_audio tts/models/outetts DacInterface (its DAC, seeded) vs outetts' "
        "DacInterface (official DAC): encode codes exact, decode length exact and audio within the floor", cases,
        FLOOR_WHY + " (fp64: outetts' DacInterface with the DAC in float64); codes exact",
        "codes: mismatches; audio: max|port - ref64|")


# What the adapter does not compare, and why (the report lists these under not_run).
NOT_COMPARABLE = {
    "speaker-profile": "not adapted live: its transcript mode (AudioProcessor.create_speaker_from_dict) is checked from "
                       "dumps (tools/dump_mlx_audio.py, docs/ports.md 'From dumps': no interface_version, a few codes "
                       "and buckets differ)",
    "generation": "an end-to-end draw needs the same distribution at every step: mlx-audio's sampler applies top-p and "
                  "min-p before the temperature (the sampler section), and its profiles differ (speaker-profile)",
    "spark-sampler": "mlx-audio's Spark sampler adds a repetition penalty (1.3 over 20 tokens, spark.py:278-282) the "
                     "official generate does not have: distributions differ by design",
    "spark-generation": "an end-to-end draw needs the same distribution at every step: the Spark sampler differs by "
                        "design (spark-sampler)",
}


# ---------------------------------------------------------------------------------------------------- port

PORT = Port(
    name=NAME,
    version=VERSION,
    components={
        "dac": Component(load_dac, run_dac, DAC_RULES,
                         note="codec/models/descript DAC.from_pretrained, DAC.encode (codes), DAC.decode (audio)"),
        "spark-decoder": Component(load_bicodec, run_spark_decoder, SPARK_RULES,
                                   note="tts/models/spark BiCodec.load_from_checkpoint, BiCodec.detokenize",
                                   quick={"config": SPARK_QUICK}, quick_label=SPARK_QUICK_LABEL),
        "spark-global": Component(load_bicodec, run_spark_global, SPARK_RULES,
                                  note="BiCodec.get_mel_spectrogram, speaker_encoder.tokenize / __call__ "
                                       "(as loaded: training mode)",
                                  quick={"config": SPARK_QUICK}, quick_label=SPARK_QUICK_LABEL),
        "spark-global-eval": Component(lambda kw: load_bicodec(kw).eval(), run_spark_global, SPARK_RULES,
                                       note="the same after BiCodec.eval() (the fix: docs/ports.md)",
                                       official="spark-global",
                                       quick={"config": SPARK_QUICK}, quick_label=SPARK_QUICK_LABEL),
        "spark-semantic": Component(load_bicodec, run_spark_semantic, SPARK_RULES,
                                    note="BiCodec.encoder, quantizer.tokenize",
                                    quick={"config": SPARK_QUICK}, quick_label=SPARK_QUICK_LABEL),
        "spark-wav2vec2": Component(load_wav2vec2, run_wav2vec2, W2V_RULES,
                                    note="stt/models/wav2vec Wav2Vec2Model + Wav2Vec2FeatureExtractor.from_pretrained, "
                                         "BiCodecTokenizer.extract_wav2vec2_features (as loaded: training mode)"),
        "spark-wav2vec2-eval": Component(lambda kw: load_wav2vec2(kw).eval(), run_wav2vec2, W2V_RULES,
                                         note="the same after Wav2Vec2Model.eval() (the fix: docs/ports.md)",
                                         official="spark-wav2vec2"),
        "llama": Component(load_outetts_lm, lm_runner(greedy=False), LM_RULES,
                           note="tts/models/outetts Model via tts.utils.load_model; logits; teacher-forced through "
                                "lm/models/cache"),
        "qwen2-0.5b": Component(load_spark_lm, lm_runner(greedy=True), LM_RULES,
                                note="tts/models/spark Model (Qwen2); logits; teacher-forced through lm/models/cache; "
                                     "greedy ids of lm/generate.generate_step"),
    },
    not_comparable=NOT_COMPARABLE,
    contracts={"lm-greedy": check_lm_greedy, "dac-codec": check_dac_codec, "dac-interface": check_dac_interface,
               "prompt-ids": check_prompt_ids, "sampler": check_sampler, "audio-path": check_audio_path,
               "spark-prompt-ids": check_spark_prompt_ids},
)
