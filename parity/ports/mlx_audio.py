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
Only these modules are imported; they run on the environment's transformers 4.52.3 (the package declares >= 5.14).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict

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

    mel = model.get_mel_spectrogram(mx.array(inputs["ref_wav"]))  # (B, T, n_mels)
    x_vec, d_vec = model.speaker_encoder(mel)
    return {"mel": mel, "global_ids": model.speaker_encoder.tokenize(mel), "x_vector": x_vec, "d_vector": d_vec}


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


# What the adapter does not compare, and why (the report lists these under not_run).
NOT_ADAPTED = "not adapted yet (the port has the code: {}); the section is left out, not passed"
NOT_COMPARABLE = {
    "dac-codec": NOT_ADAPTED.format("DAC.encode/decode at other lengths; the `dac` section compares its codes and "
                                    "audio on one clip"),
    "dac-interface": NOT_ADAPTED.format("tts/models/outetts/dac_interface.py DacInterface: loudness, 5 s windows"),
    "prompt-ids": NOT_ADAPTED.format("tts/models/outetts/prompt_processor.py PromptProcessor"),
    "sampler": NOT_ADAPTED.format("lm/sample_utils.py make_sampler + make_logits_processors"),
    "speaker-profile": "mlx-audio builds profiles only through whisper (AudioProcessor.create_speaker_from_whisper, a "
                       "hub model): no transcript mode to feed the official words and times",
    "audio-path": NOT_ADAPTED.format("audio_io.read + utils.resample_audio"),
    "generation": "end to end needs the tokenizer, profile and sampler sections first",
    "spark-wav2vec2": NOT_ADAPTED.format("stt/models/wav2vec Wav2Vec2Model"),
    "spark-prompt-ids": NOT_ADAPTED.format("tts/models/spark/spark.py process_prompt"),
    "spark-sampler": "mlx-audio's Spark sampler adds a repetition penalty (1.3 over 20 tokens, spark.py generate) the "
                     "official generate does not have: distributions differ by design",
    "spark-generation": "end to end needs the prompt and sampler sections first",
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
        "llama": Component(load_outetts_lm, lm_runner(greedy=False), LM_RULES,
                           note="tts/models/outetts Model via tts.utils.load_model; logits; teacher-forced through "
                                "lm/models/cache"),
        "qwen2-0.5b": Component(load_spark_lm, lm_runner(greedy=True), LM_RULES,
                                note="tts/models/spark Model (Qwen2); logits; teacher-forced through lm/models/cache; "
                                     "greedy ids of lm/generate.generate_step"),
    },
    not_comparable=NOT_COMPARABLE,
    contracts={"lm-greedy": check_lm_greedy},
)
