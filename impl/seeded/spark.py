"""Seeded Spark-TTS BiCodec checkpoints in the official folder layout: `BiCodec/config.yaml` + `model.safetensors`.

`official_shapes(config)` lists every tensor of the official `BiCodec.state_dict()` (sparktts at SparkAudio/Spark-TTS
2f1ea90: hook-style weight norm `weight_g`/`weight_v`, BatchNorm running statistics, the persistent mel buffers
`mel_transformer.spectrogram.window` / `mel_transformer.mel_scale.fb`, the VQ's `cluster_size`, the training-only
postnet) walked from upstream's constructors, so that `BiCodec.load_from_checkpoint` reports no missing or unexpected
tensor (checked against the official model by tests/test_spark_seeded.py). Values are seeded per tensor name and
scaled so that activations stay O(1) through the random network (the ids and audio then exercise every code path:
FSQ levels all used, VQ argmax not degenerate, audio not saturated).

CONFIGS: "bicodec" = the real Spark-TTS-0.5B/BiCodec architecture (values of its config.yaml); "tiny" = the same
code paths at small widths for fast tests (ECAPA's 512 channels and the Perceiver's 8 x 64 heads are fixed by
upstream's constructors and stay); "tts-tiny" = "tiny" with the real id spaces, for the whole Spark-TTS folder.
Spark-TTS folders (`write_spark_dir`, `seeded_spark`, `default_spark_dir`): config.yaml, LLM/ (the generated
tokenizer of `build_llm_tokenizer` + a seeded Qwen2), BiCodec/, wav2vec2-large-xlsr-53/.
"""
from __future__ import annotations

import copy
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import numpy as np

from impl._io import atomic_dir
from impl.seeded import cache_dir

# Bump when the values seeded_state_dict gives change: cached folders carry it in their name.
GENERATOR_VERSION = 1

_BICODEC = {
    "audio_tokenizer": {
        "mel_params": {"sample_rate": 16000, "n_fft": 1024, "win_length": 640, "hop_length": 320,
                       "mel_fmin": 10, "mel_fmax": None, "num_mels": 128},
        "encoder": {"input_channels": 1024, "vocos_dim": 384, "vocos_intermediate_dim": 2048,
                    "vocos_num_layers": 12, "out_channels": 1024, "sample_ratios": [1, 1]},
        "decoder": {"input_channel": 1024, "channels": 1536, "rates": [8, 5, 4, 2], "kernel_sizes": [16, 11, 8, 4]},
        "quantizer": {"input_dim": 1024, "codebook_size": 8192, "codebook_dim": 8, "commitment": 0.25,
                      "codebook_loss_weight": 4.0, "use_l2_normlize": True, "threshold_ema_dead_code": 0.2},
        "speaker_encoder": {"input_dim": 128, "out_dim": 1024, "latent_dim": 128, "token_num": 32,
                            "fsq_levels": [4, 4, 4, 4, 4, 4], "fsq_num_quantizers": 1},
        "prenet": {"input_channels": 1024, "vocos_dim": 384, "vocos_intermediate_dim": 2048, "vocos_num_layers": 12,
                   "out_channels": 1024, "condition_dim": 1024, "sample_ratios": [1, 1],
                   "use_tanh_at_final": False},
        "postnet": {"input_channels": 1024, "vocos_dim": 384, "vocos_intermediate_dim": 2048, "vocos_num_layers": 6,
                    "out_channels": 1024, "use_tanh_at_final": False},
    }
}


def _tiny() -> Dict[str, Any]:
    c = copy.deepcopy(_BICODEC)
    t = c["audio_tokenizer"]
    t["encoder"].update(input_channels=64, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=2,
                        out_channels=48)
    t["decoder"].update(input_channel=48, channels=64)
    t["quantizer"].update(input_dim=48, codebook_size=256)
    t["speaker_encoder"].update(out_dim=48, latent_dim=32, token_num=8)
    t["prenet"].update(input_channels=48, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=2,
                       out_channels=48, condition_dim=48)
    t["postnet"].update(input_channels=48, vocos_dim=32, vocos_intermediate_dim=64, vocos_num_layers=1,
                        out_channels=48)
    return c


def _tts_tiny() -> Dict[str, Any]:
    """"tiny" with the real id spaces (8192 semantic codes, 32 global ids): every id the LLM's tokenizer can write
    decodes, as in the real folder (the end-to-end tests' BiCodec)."""
    c = _tiny()
    c["audio_tokenizer"]["quantizer"].update(codebook_size=8192)
    c["audio_tokenizer"]["speaker_encoder"].update(token_num=32)
    return c


CONFIGS: Dict[str, Dict[str, Any]] = {"bicodec": _BICODEC, "tiny": _tiny(), "tts-tiny": _tts_tiny()}


def resolve_config(config: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A CONFIGS name or a config dict (the config.yaml's content) -> a deep copy."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown BiCodec config {config!r}; known: {sorted(CONFIGS)}")
        return copy.deepcopy(CONFIGS[config])
    return copy.deepcopy(dict(config))


# ------------------------------------------------------------------------------------------------- shapes

Shapes = Dict[str, Tuple[Tuple[int, ...], str]]


def _linear(out: Shapes, name: str, n_in: int, n_out: int, bias: bool = True, kind: str = "w") -> None:
    out[f"{name}.weight"] = ((n_out, n_in), kind)
    if bias:
        out[f"{name}.bias"] = ((n_out,), "bias")


def _conv(out: Shapes, name: str, c_in: int, c_out: int, k: int, groups: int = 1) -> None:
    out[f"{name}.weight"] = ((c_out, c_in // groups, k), "w")
    out[f"{name}.bias"] = ((c_out,), "bias")


def _norm(out: Shapes, name: str, dim: int) -> None:
    out[f"{name}.weight"] = ((dim,), "norm_w")
    out[f"{name}.bias"] = ((dim,), "bias")


def _ada_norm(out: Shapes, name: str, cond: int, dim: int) -> None:
    _linear(out, f"{name}.scale", cond, dim, kind="ada_w")
    out[f"{name}.scale.bias"] = ((dim,), "ada_scale_b")
    _linear(out, f"{name}.shift", cond, dim, kind="ada_w")


def _batch_norm(out: Shapes, name: str, dim: int) -> None:
    _norm(out, name, dim)
    out[f"{name}.running_mean"] = ((dim,), "bn_mean")
    out[f"{name}.running_var"] = ((dim,), "bn_var")
    out[f"{name}.num_batches_tracked"] = ((), "count")


def _vocos(out: Shapes, name: str, c_in: int, dim: int, inter: int, layers: int, cond: Any = None) -> None:
    """sparktts.modules.blocks.vocos.VocosBackbone."""
    _conv(out, f"{name}.embed", c_in, dim, 7)
    (_ada_norm(out, f"{name}.norm", cond, dim) if cond else _norm(out, f"{name}.norm", dim))
    for i in range(layers):
        b = f"{name}.convnext.{i}"
        _conv(out, f"{b}.dwconv", dim, dim, 7, groups=dim)
        (_ada_norm(out, f"{b}.norm", cond, dim) if cond else _norm(out, f"{b}.norm", dim))
        _linear(out, f"{b}.pwconv1", dim, inter)
        _linear(out, f"{b}.pwconv2", inter, dim)
        out[f"{b}.gamma"] = ((dim,), "gamma")
    _norm(out, f"{name}.final_layer_norm", dim)


def _sampling(out: Shapes, name: str, dim: int, up: int = 1, down: int = 1) -> None:
    """sparktts.modules.blocks.samper.SamplingBlock (groups = dim); ratio 1 holds no tensor."""
    if up > 1:
        out[f"{name}.de_conv_upsampler.1.weight"] = ((dim, 1, 2 * up), "w")
        out[f"{name}.de_conv_upsampler.1.bias"] = ((dim,), "bias")
    if down > 1:
        _conv(out, f"{name}.conv_downsampler.1", dim, dim, 2 * down, groups=dim)


def _feat_encoder(out: Shapes, name: str, c: Dict[str, Any]) -> None:
    dim, inter = c["vocos_dim"], c["vocos_intermediate_dim"]
    _vocos(out, f"{name}.encoder", c["input_channels"], dim, inter, c["vocos_num_layers"])
    for j, r in enumerate(c.get("sample_ratios", [1, 1])):
        _sampling(out, f"{name}.downsample.{j}.0", dim, down=r)
        _vocos(out, f"{name}.downsample.{j}.1", dim, dim, inter, 2)
    _linear(out, f"{name}.project", dim, c["out_channels"])


def _feat_decoder(out: Shapes, name: str, c: Dict[str, Any]) -> None:
    dim, inter = c["vocos_dim"], c["vocos_intermediate_dim"]
    _linear(out, f"{name}.linear_pre", c["input_channels"], dim)
    for j, r in enumerate(c.get("sample_ratios", [1, 1])):
        _sampling(out, f"{name}.downsample.{j}.0", dim, up=r)
        _vocos(out, f"{name}.downsample.{j}.1", dim, dim, inter, 2)
    _vocos(out, f"{name}.vocos_backbone", dim, dim, inter, c["vocos_num_layers"], c.get("condition_dim"))
    _linear(out, f"{name}.linear", dim, c["out_channels"])


def _wn_conv(out: Shapes, name: str, c_in: int, c_out: int, k: int, g: str = "g", transpose: bool = False) -> None:
    if transpose:  # torch ConvTranspose1d stores (C_in, C_out, K); weight_norm's dim 0 is C_in
        out[f"{name}.weight_g"] = ((c_in, 1, 1), g)
        out[f"{name}.weight_v"] = ((c_in, c_out, k), "v")
    else:
        out[f"{name}.weight_g"] = ((c_out, 1, 1), g)
        out[f"{name}.weight_v"] = ((c_out, c_in, k), "v")
    out[f"{name}.bias"] = ((c_out,), "bias")


def _wave_generator(out: Shapes, name: str, c: Dict[str, Any]) -> None:
    """sparktts.modules.encoder_decoder.wave_generator.WaveGenerator (DAC's decoder with explicit kernels)."""
    ch = c["channels"]
    _wn_conv(out, f"{name}.model.0", c["input_channel"], ch, 7)
    for i, (k, s) in enumerate(zip(c["kernel_sizes"], c["rates"])):
        d_in, d_out = ch // 2 ** i, ch // 2 ** (i + 1)
        b = f"{name}.model.{i + 1}.block"
        out[f"{b}.0.alpha"] = ((1, d_in, 1), "alpha")
        _wn_conv(out, f"{b}.1", d_in, d_out, k, transpose=True)
        for r in range(3):
            u = f"{b}.{r + 2}.block"
            out[f"{u}.0.alpha"] = ((1, d_out, 1), "alpha")
            _wn_conv(out, f"{u}.1", d_out, d_out, 7, g="g_res")
            out[f"{u}.2.alpha"] = ((1, d_out, 1), "alpha")
            _wn_conv(out, f"{u}.3", d_out, d_out, 1, g="g_res")
    n = len(c["rates"])
    d = ch // 2 ** n
    out[f"{name}.model.{n + 1}.alpha"] = ((1, d, 1), "alpha")
    _wn_conv(out, f"{name}.model.{n + 2}", d, 1, 7, g="g_out")


def _ecapa(out: Shapes, name: str, feat_dim: int, embed_dim: int, channels: int = 512) -> None:
    """sparktts.modules.speaker.ecapa_tdnn.ECAPA_TDNN_GLOB_c512 (ASTP pooling with global context)."""
    _conv(out, f"{name}.layer1.conv", feat_dim, channels, 5)
    _batch_norm(out, f"{name}.layer1.bn", channels)
    width = channels // 8
    for layer in (2, 3, 4):
        b = f"{name}.layer{layer}.se_res2block"
        _conv(out, f"{b}.0.conv", channels, channels, 1)
        _batch_norm(out, f"{b}.0.bn", channels)
        for i in range(7):
            _conv(out, f"{b}.1.convs.{i}", width, width, 3)
            _batch_norm(out, f"{b}.1.bns.{i}", width)
        _conv(out, f"{b}.2.conv", channels, channels, 1)
        _batch_norm(out, f"{b}.2.bn", channels)
        _linear(out, f"{b}.3.linear1", channels, 128)
        _linear(out, f"{b}.3.linear2", 128, channels)
    _conv(out, f"{name}.conv", channels * 3, 512 * 3, 1)
    _conv(out, f"{name}.pool.linear1", 512 * 3 * 3, 128, 1)
    _conv(out, f"{name}.pool.linear2", 128, 512 * 3, 1)
    _batch_norm(out, f"{name}.bn", 512 * 3 * 2)
    _linear(out, f"{name}.linear", 512 * 3 * 2, embed_dim)


def _perceiver(out: Shapes, name: str, dim: int, dim_context: int, num_latents: int, depth: int = 2,
               dim_head: int = 64, heads: int = 8, ff_mult: int = 4) -> None:
    """sparktts.modules.speaker.perceiver_encoder.PerceiverResampler."""
    if dim_context != dim:
        _linear(out, f"{name}.proj_context", dim_context, dim)
    out[f"{name}.latents"] = ((num_latents, dim), "latents")
    inner = dim_head * heads
    ff_inner = int(dim * ff_mult * 2 / 3)
    for i in range(depth):
        _linear(out, f"{name}.layers.{i}.0.to_q", dim, inner, bias=False)
        _linear(out, f"{name}.layers.{i}.0.to_kv", dim, inner * 2, bias=False)
        _linear(out, f"{name}.layers.{i}.0.to_out", inner, dim, bias=False)
        _linear(out, f"{name}.layers.{i}.1.0", dim, ff_inner * 2)
        _linear(out, f"{name}.layers.{i}.1.2", ff_inner, dim)
    out[f"{name}.norm.gamma"] = ((dim,), "norm_w")


def _speaker_encoder(out: Shapes, name: str, c: Dict[str, Any]) -> None:
    latent, tokens = c["latent_dim"], c["token_num"]
    _ecapa(out, f"{name}.speaker_encoder", c["input_dim"], c["out_dim"])
    _perceiver(out, f"{name}.perceiver_sampler", latent, 512 * 3, tokens)
    n_levels = len(c["fsq_levels"])
    if n_levels != latent:
        _linear(out, f"{name}.quantizer.project_in", latent, n_levels)
        _linear(out, f"{name}.quantizer.project_out", n_levels, latent)
    _linear(out, f"{name}.project", latent * tokens, c["out_dim"])


def official_shapes(config: Union[str, Dict[str, Any]]) -> Shapes:
    """Official BiCodec state_dict key -> (shape, kind) for a config (its config.yaml content)."""
    t = resolve_config(config)["audio_tokenizer"]
    out: Shapes = {}
    _feat_encoder(out, "encoder", t["encoder"])
    _wave_generator(out, "decoder", t["decoder"])
    q = t["quantizer"]
    if q["input_dim"] != q["codebook_dim"]:
        _wn_conv(out, "quantizer.in_project", q["input_dim"], q["codebook_dim"], 1, g="g_proj")
        _wn_conv(out, "quantizer.out_project", q["codebook_dim"], q["input_dim"], 1, g="g_proj")
    out["quantizer.codebook.weight"] = ((q["codebook_size"], q["codebook_dim"]), "codebook")
    out["quantizer.cluster_size"] = ((q["codebook_size"],), "zeros")
    _speaker_encoder(out, "speaker_encoder", t["speaker_encoder"])
    _feat_decoder(out, "prenet", t["prenet"])
    _feat_decoder(out, "postnet", t["postnet"])
    m = t["mel_params"]
    out["mel_transformer.spectrogram.window"] = ((m["win_length"],), "window")
    out["mel_transformer.mel_scale.fb"] = ((m["n_fft"] // 2 + 1, m["num_mels"]), "mel_fb")
    return out


# ------------------------------------------------------------------------------------------------- values

def _tensor(name: str, shape: Tuple[int, ...], kind: str, seed: int, mel: Dict[str, Any]) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    n = lambda: rng.standard_normal(shape)  # noqa: E731
    if kind in ("w", "ada_w"):  # fan-in scaled: unit-variance inputs give unit-variance outputs
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return (n() / np.sqrt(fan_in) * (0.1 if kind == "ada_w" else 1.0)).astype(np.float32)
    if kind == "v":
        return n().astype(np.float32)
    if kind == "g":  # as impl.seeded.dac: main path filter norms > 1, residual branches < 1, the last conv small
        return rng.uniform(1.0, 2.0, shape).astype(np.float32)
    if kind == "g_res":
        return rng.uniform(0.3, 0.7, shape).astype(np.float32)
    if kind == "g_out":
        return rng.uniform(0.02, 0.04, shape).astype(np.float32)
    if kind == "g_proj":  # the VQ projections: unit-norm rows
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    if kind == "bias":
        return (0.02 * n()).astype(np.float32)
    if kind == "norm_w":
        return (1.0 + 0.1 * n()).astype(np.float32)
    if kind == "ada_scale_b":
        return (1.0 + 0.1 * n()).astype(np.float32)
    if kind == "gamma":  # ConvNeXt layer scale (upstream init 1 / num_layers)
        return rng.uniform(0.05, 0.3, shape).astype(np.float32)
    if kind == "bn_mean":
        return (0.1 * n()).astype(np.float32)
    if kind == "bn_var":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if kind == "count":
        return np.array(1000, dtype=np.int64)
    if kind == "alpha":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if kind == "latents":
        return (0.5 * n()).astype(np.float32)
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "window":  # torch.hann_window(win_length) (periodic), as torchaudio's Spectrogram registers it
        k = np.arange(shape[0])
        return (0.5 - 0.5 * np.cos(2 * np.pi * k / shape[0])).astype(np.float32)
    if kind == "mel_fb":
        from impl.spark.mel import melscale_fbanks

        return melscale_fbanks(mel["n_fft"] // 2 + 1, mel["mel_fmin"], mel["mel_fmax"] or mel["sample_rate"] / 2,
                               mel["num_mels"], mel["sample_rate"]).astype(np.float32)
    return n().astype(np.float32)  # codebook: nn.Embedding's N(0, 1)


def seeded_state_dict(config: Union[str, Dict[str, Any]], seed: int) -> Dict[str, np.ndarray]:
    """Official-layout state_dict (numpy) of a seeded random BiCodec at `config`'s architecture."""
    c = resolve_config(config)
    mel = c["audio_tokenizer"]["mel_params"]
    return {k: _tensor(k, shape, kind, seed, mel) for k, (shape, kind) in official_shapes(c).items()}


def to_yaml(d: Any, indent: int = 0) -> str:
    """The config as YAML (block mappings, flow lists, plain scalars): what `impl.spark.config.read_yaml` and
    omegaconf both read."""
    lines = []
    pad = "  " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines.append(to_yaml(v, indent + 1))
        else:
            lines.append(f"{pad}{k}: {_scalar(v)}")
    return "\n".join(lines)


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    return str(v)


def write_bicodec_dir(path: Union[str, Path], config: Union[str, Dict[str, Any]], seed: int) -> Path:
    """A BiCodec folder (config.yaml + model.safetensors) with seeded weights, written atomically."""
    from safetensors.numpy import save_file

    c = resolve_config(config)
    with atomic_dir(path, replace=True) as tmp:
        (tmp / "config.yaml").write_text(to_yaml(c) + "\n")
        save_file(seeded_state_dict(c, seed), str(tmp / "model.safetensors"))
    return Path(path)


def seeded_bicodec(config: Union[str, Dict[str, Any]] = "bicodec", seed: int = 0) -> Path:
    """The seeded BiCodec folder for (config, seed), written once into cache_dir() and reused."""
    c = resolve_config(config)
    key = hashlib.sha256(json.dumps([c, seed, GENERATOR_VERSION], sort_keys=True).encode()).hexdigest()[:12]
    name = config if isinstance(config, str) else "custom"
    dest = cache_dir() / f"spark-{name}-s{seed}-{key}" / "BiCodec"
    if not (dest / "model.safetensors").exists():
        write_bicodec_dir(dest, c, seed)
    return dest


# ------------------------------------------------------------------------------------------------- wav2vec2

# facebook/wav2vec2-large-xlsr-53's config.json (the keys Wav2Vec2Model reads; Spark-TTS-0.5B ships this folder as
# `wav2vec2-large-xlsr-53/`) and its preprocessor_config.json.
W2V_XLSR53: Dict[str, Any] = {
    "model_type": "wav2vec2", "architectures": ["Wav2Vec2ForPreTraining"], "hidden_size": 1024,
    "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096, "hidden_act": "gelu",
    "layer_norm_eps": 1e-5, "feat_extract_norm": "layer", "feat_extract_activation": "gelu", "conv_bias": True,
    "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_feat_extract_layers": 7, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": True, "mask_time_prob": 0.075, "vocab_size": 32, "hidden_dropout": 0.1,
    "attention_dropout": 0.1, "activation_dropout": 0.0, "feat_proj_dropout": 0.1, "layerdrop": 0.1,
    "initializer_range": 0.02,
}
W2V_PREPROCESSOR: Dict[str, Any] = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                                    "feature_size": 1, "padding_side": "right", "padding_value": 0,
                                    "return_attention_mask": True, "sampling_rate": 16000}
# The same code paths, small widths (hidden 64 = the tiny BiCodec's feature width); 17 layers: the 16 the features
# use, and one that is not run.
W2V_TINY: Dict[str, Any] = dict(W2V_XLSR53, hidden_size=64, num_hidden_layers=17, num_attention_heads=4,
                                intermediate_size=64, conv_dim=[16] * 7, num_conv_pos_embeddings=16,
                                num_conv_pos_embedding_groups=4)
W2V_CONFIGS = {"xlsr53": W2V_XLSR53, "tiny": W2V_TINY}


def w2v_shapes(config: Dict[str, Any]) -> Shapes:
    """transformers Wav2Vec2Model state_dict key -> (shape, kind), layer-norm feature encoder and stable layer norm
    (the xlsr-53 layout), the positional conv's weight norm hook-style (`weight_g` (1, 1, K), `weight_v`)."""
    c = config
    out: Shapes = {}
    H, dims = c["hidden_size"], c["conv_dim"]
    if c.get("mask_time_prob", 0) > 0:
        out["masked_spec_embed"] = ((H,), "uniform")
    for i, (d, k) in enumerate(zip(dims, c["conv_kernel"])):
        p = f"feature_extractor.conv_layers.{i}"
        out[f"{p}.conv.weight"] = ((d, dims[i - 1] if i else 1, k), "kaiming")
        out[f"{p}.conv.bias"] = ((d,), "bias")
        _norm(out, f"{p}.layer_norm", d)
    _norm(out, "feature_projection.layer_norm", dims[-1])
    _linear(out, "feature_projection.projection", dims[-1], H, kind="std02")
    K, G = c["num_conv_pos_embeddings"], c["num_conv_pos_embedding_groups"]
    out["encoder.pos_conv_embed.conv.weight_g"] = ((1, 1, K), "g_pos")
    out["encoder.pos_conv_embed.conv.weight_v"] = ((H, H // G, K), "v")
    out["encoder.pos_conv_embed.conv.bias"] = ((H,), "bias")
    _norm(out, "encoder.layer_norm", H)
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(out, f"{p}.attention.{proj}", H, H, kind="std02")
        _norm(out, f"{p}.layer_norm", H)
        _linear(out, f"{p}.feed_forward.intermediate_dense", H, c["intermediate_size"], kind="std02")
        _linear(out, f"{p}.feed_forward.output_dense", c["intermediate_size"], H, kind="std02")
        _norm(out, f"{p}.final_layer_norm", H)
    return out


def _w2v_tensor(name: str, shape: Tuple[int, ...], kind: str, seed: int, std: float) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(("w2v:" + name).encode())])
    if kind == "std02":  # HF _init_weights: N(0, initializer_range); 5x here so the layers do not vanish
        return (5 * std * rng.standard_normal(shape)).astype(np.float32)
    if kind == "kaiming":
        return (np.sqrt(2.0 / np.prod(shape[1:])) * rng.standard_normal(shape)).astype(np.float32)
    if kind == "g_pos":  # the positional conv's output stays O(1) (its fan-in is K * H / G)
        return rng.uniform(1.0, 3.0, shape).astype(np.float32)
    if kind == "uniform":
        return rng.uniform(0, 1, shape).astype(np.float32)
    return _tensor(name, shape, kind, seed, {})


def write_w2v_dir(path: Union[str, Path], config: Union[str, Dict[str, Any]], seed: int) -> Path:
    """A wav2vec2 folder (config.json, preprocessor_config.json, model.safetensors) with seeded weights."""
    from safetensors.numpy import save_file

    c = dict(W2V_CONFIGS[config] if isinstance(config, str) else config)
    state = {k: _w2v_tensor(k, s, kind, seed, c["initializer_range"]) for k, (s, kind) in w2v_shapes(c).items()}
    with atomic_dir(path, replace=True) as tmp:
        (tmp / "config.json").write_text(json.dumps(c, indent=2) + "\n")
        (tmp / "preprocessor_config.json").write_text(json.dumps(W2V_PREPROCESSOR, indent=2) + "\n")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    return Path(path)


def seeded_w2v(config: Union[str, Dict[str, Any]] = "tiny", seed: int = 0) -> Path:
    """The seeded wav2vec2 folder for (config, seed), written once into cache_dir() and reused."""
    c = dict(W2V_CONFIGS[config] if isinstance(config, str) else config)
    key = hashlib.sha256(json.dumps([c, seed, GENERATOR_VERSION], sort_keys=True).encode()).hexdigest()[:12]
    name = config if isinstance(config, str) else "custom"
    dest = cache_dir() / f"spark-w2v-{name}-s{seed}-{key}" / "wav2vec2-large-xlsr-53"
    if not (dest / "model.safetensors").exists():
        write_w2v_dir(dest, c, seed)
    return dest


# ------------------------------------------------------------------------------------------------- LLM tokenizer

# Qwen2's pre-tokenizer split (Llama 3's, but one digit per token): Qwen2.5's tokenizer.json
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLM_TOKENIZER_VERSION = 2  # bump when build_llm_tokenizer's output changes


def build_llm_tokenizer(path: Union[str, Path], n_merges: int = 256) -> Path:
    """Write a deterministic Spark-TTS LLM tokenizer folder (tokenizer.json, tokenizer_config.json,
    special_tokens_map.json) at `path`, structured as Spark-TTS-0.5B/LLM's: Qwen2.5's normalizer (NFC), split regex,
    byte-level BPE and decoder, no post-processor tokens; ids 0..151642 the base vocabulary (the byte alphabet, merges
    learned from a fixed corpus, then `<vp_unused_N>` entries no merge reaches), then every added token of
    `impl.spark.tokens.layout()` at its id (the real ids where a source exists: see that module). 166,000 ids in all.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    from impl.seeded.outetts import _CORPUS, _bytes_to_unicode, _learn_merges, save_tokenizer_folder
    from impl.spark import tokens as T

    path = Path(path)
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    merges = _learn_merges([w for w, _ in pre.pre_tokenize_str(_CORPUS)], n_merges)
    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for i in range(len(vocab), T.QWEN_BASE):
        vocab[f"<vp_unused_{i}>"] = i
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    rows = T.layout()
    assert [i for i, _, _ in rows] == list(range(T.QWEN_BASE, T.VOCAB_SIZE))
    # added in id order (each gets the next id), in runs of the same kind: special ones via add_special_tokens
    run: List[Any] = []
    for k, (_, content, special) in enumerate(rows):
        run.append(AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False,
                              single_word=False))
        if k + 1 == len(rows) or rows[k + 1][2] != special:
            (tok.add_special_tokens if special else tok.add_tokens)(run)
            run = []
    config = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": T.IM_END,
              "pad_token": "<|endoftext|>", "unk_token": None, "clean_up_tokenization_spaces": False,
              "errors": "replace", "model_max_length": 32768, "split_special_tokens": False}
    special_map = {"eos_token": T.IM_END, "pad_token": "<|endoftext|>"}
    return save_tokenizer_folder(path, tok, config, special_map)


# ------------------------------------------------------------------------------------------------- model folder

# The Spark-TTS-0.5B folder's config.yaml (the keys BiCodecTokenizer and SparkTTS read, and those they do not).
TOP_CONFIG = ("highpass_cutoff_freq: 40\nsample_rate: 16000\nsegment_duration: 2.4 # (s)\nmax_val_duration: 12 # (s)\n"
              "latent_hop_length: 320\nref_segment_duration: 6\nvolume_normalize: true\n")


def llm_configs() -> Dict[str, Dict[str, Any]]:
    """"0.5b": Spark-TTS-0.5B's LLM (impl.qwen2.SPARK_TTS_0_5B_CONFIG); "tiny": its structure scaled down at the
    real 166,000-token vocabulary (so the real token ids exist), untied head and initializer_range 0.2 (a tiny
    random LM with tied embeddings at 0.02 collapses onto one token)."""
    from impl.qwen2 import SPARK_TTS_0_5B_CONFIG

    tiny = dict(SPARK_TTS_0_5B_CONFIG, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, initializer_range=0.2)
    return {"0.5b": dict(SPARK_TTS_0_5B_CONFIG), "tiny": tiny}


def write_llm_dir(path: Union[str, Path], config: Union[str, Dict[str, Any]] = "tiny", seed: int = 0,
                  dtype: str = "float32") -> Path:
    """An `LLM/` folder: the generated tokenizer (build_llm_tokenizer) + a seeded Qwen2 (impl.seeded.qwen2)."""
    from impl.seeded.qwen2 import write_qwen2

    c = llm_configs()[config] if isinstance(config, str) else dict(config)
    if c["vocab_size"] < T_VOCAB:
        raise ValueError(f"LLM vocab_size {c['vocab_size']} < the tokenizer's {T_VOCAB} ids")
    with atomic_dir(path, replace=True) as tmp:
        build_llm_tokenizer(tmp)
        write_qwen2(tmp, c, seed, dtype)
    return Path(path)


T_VOCAB = 166000  # impl.spark.tokens.VOCAB_SIZE (not imported at module level: impl.spark pulls in mlx)


def write_spark_dir(path: Union[str, Path], llm: Union[str, Dict[str, Any]] = "tiny", bicodec: str = "tts-tiny",
                    w2v: str = "tiny", seed: int = 0, dtype: str = "float32") -> Path:
    """A whole Spark-TTS folder in the official layout: config.yaml, LLM/ (write_llm_dir), BiCodec/
    (write_bicodec_dir), wav2vec2-large-xlsr-53/ (write_w2v_dir); the loaders of both sides read it as is."""
    with atomic_dir(path, replace=True) as tmp:
        (tmp / "config.yaml").write_text(TOP_CONFIG)
        write_llm_dir(tmp / "LLM", llm, seed, dtype)
        write_bicodec_dir(tmp / "BiCodec", bicodec, seed)
        write_w2v_dir(tmp / "wav2vec2-large-xlsr-53", w2v, seed)
    return Path(path)


def seeded_spark(llm: str = "tiny", bicodec: str = "tts-tiny", w2v: str = "tiny", seed: int = 0,
                 dtype: str = "float32") -> Path:
    """The seeded Spark-TTS folder for these configs, written once into cache_dir() and reused; its BiCodec/ and
    wav2vec2-large-xlsr-53/ are symbolic links to `seeded_bicodec` / `seeded_w2v`'s cached folders (the same
    weights `voiceport spark` uses, stored once)."""
    key = hashlib.sha256(json.dumps([llm_configs()[llm], resolve_config(bicodec), W2V_CONFIGS[w2v], seed, dtype,
                                     GENERATOR_VERSION, LLM_TOKENIZER_VERSION], sort_keys=True).encode())
    dest = cache_dir() / f"spark-tts-{llm}-{bicodec}-{w2v}-s{seed}-{dtype}-{key.hexdigest()[:12]}"
    if not (dest / "LLM" / "model.safetensors").exists():
        codec, features = seeded_bicodec(bicodec, seed), seeded_w2v(w2v, seed)
        with atomic_dir(dest, replace=True) as tmp:
            (tmp / "config.yaml").write_text(TOP_CONFIG)
            write_llm_dir(tmp / "LLM", llm, seed, dtype)
            (tmp / "BiCodec").symlink_to(codec, target_is_directory=True)
            (tmp / "wav2vec2-large-xlsr-53").symlink_to(features, target_is_directory=True)
    return dest


def default_spark_dir() -> Path:
    """The embedded Spark-TTS folder the CLI uses without --model: Spark-TTS-0.5B's architecture throughout (LLM
    0.5B in bf16, BiCodec, wav2vec2-large-xlsr-53) with seeded weights."""
    return seeded_spark("0.5b", "bicodec", "xlsr53", 0, "bfloat16")
