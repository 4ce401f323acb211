"""Parity specs: impl.spark (MLX) vs the official Spark-TTS BiCodec (reference/spark.py), every module, on seeded
checkpoints in the official folder layout (impl.seeded.spark; "tiny" for the tests, "bicodec" the real sizes).

Both trees share upstream's module names, so pairs map a path to itself. Three specs, one per path of the codec:

- `decoder_spec`: semantic + global ids -> audio (`BiCodec.detokenize`): the VQ's out_project, the residual FSQ's
  project_out and the d-vector projection, the prenet (linear_pre, each downsample stage's backbone, the conditioned
  backbone's embed and every ConvNeXt block, the backbone, linear, the whole prenet), the WaveGenerator (first conv,
  each block's transposed conv and residual units, each block, last conv, tanh). Output: the audio.
- `global_spec`: reference clip -> mel -> 32 global ids (`SpeakerEncoder.tokenize`) and the x-/d-vectors
  (`SpeakerEncoder.forward`): mel, ECAPA-TDNN (layer1, each SE-Res2Block and its four parts, the 1536-channel
  conv, ASTP pooling, bn, linear, the whole), the Perceiver (proj_context, each attention and feed-forward linear,
  norm, the whole), the residual FSQ (project_in, the FSQ's codes exact, project_out, the whole) and the
  projection. Outputs: mel, global ids (exact), the FSQ's values before `round` (`fsq_bounded`), x-vector,
  d-vector, and the mel with window and filterbank computed on both sides (`mel_computed`: the official loader
  accepts a checkpoint without the `mel_transformer` buffers, and `mel` reads them from the checkpoint on both).
- `semantic_spec`: wav2vec2 features -> z -> semantic ids (`Encoder` + `FactorizedVectorQuantize.tokenize`): the
  backbone's embed, every ConvNeXt block, the backbone, each downsample stage, project, the encoder, in_project.
  Outputs: z and the semantic ids (exact).

Layouts: torch convs are (N, C, L) ("ncl"); the Vocos backbones, Linears, Perceiver and FSQ work on (N, L, C)
("same"). A backbone takes (N, C, L) and returns (N, L, C): its isolated run transposes the captured input.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict

import numpy as np

from parity.spec import FLOOR_WHY, Pair, Spec, Tol

SIGNALS = ("speech", "noise", "silence", "sweep")


def checkpoint(config: str = "tiny", seed: int = 0):
    """The seeded BiCodec folder (config.yaml + model.safetensors) for a named config, written once."""
    from impl.seeded.spark import seeded_bicodec

    return seeded_bicodec(config, seed)


def _cfg(config: str) -> Dict[str, Any]:
    from impl.seeded.spark import resolve_config

    return resolve_config(config)["audio_tokenizer"]


def make_signal(kind: str, n: int, seed: int) -> np.ndarray:
    """n samples at 16 kHz, float32: real speech (the in-repo LibriVox clips, fixtures/data/librivox, 16 kHz),
    noise, silence or a sweep."""
    if kind == "speech":
        import soundfile as sf

        from parity.doubles import LIBRIVOX, LIBRIVOX_DIR

        a = np.concatenate([sf.read(str(LIBRIVOX_DIR / f"sense_and_sensibility_01_austen_64kb-{c}.wav"),
                                    dtype="float32", always_2d=True)[0].mean(axis=1) for c in LIBRIVOX])
        start = (seed * 7919) % len(a)
        a = np.tile(a, 2 + n // len(a))
        return np.ascontiguousarray(a[start:start + n], dtype=np.float32)
    from parity.specs.dac import make_signal as dac_signal

    return dac_signal(kind, 16000, n, seed)


def _backbone_isolate(m, args, kwargs):
    """A Vocos backbone's captured input is (N, C, L) (torch) while its output is (N, L, C): transpose the input."""
    import mlx.core as mx

    cond = kwargs.get("condition", args[1] if len(args) > 1 else None)
    return m(mx.transpose(args[0], (0, 2, 1)), condition=cond)


def _vocos_pairs(prefix: str, layers: int, conditioned: bool) -> list:
    pairs = [Pair(f"{prefix}.embed", f"{prefix}.embed"),
             Pair(prefix + ".convnext.{i}", prefix + ".convnext.{i}", over=range(layers))]
    pairs.append(Pair(prefix, prefix, layout="same", isolate=_backbone_isolate))
    return pairs


def _ids(config: Dict[str, Any], frames: int, seed: int):
    rng = np.random.default_rng(seed)
    q, s = config["quantizer"], config["speaker_encoder"]
    sem = rng.integers(0, q["codebook_size"], (1, frames)).astype(np.int32)
    glob = rng.integers(0, int(np.prod(s["fsq_levels"])), (1, s["fsq_num_quantizers"], s["token_num"]))
    return sem, glob.astype(np.int32)


def decoder_spec(config: str = "tiny", frames: int = 20, seed: int = 0) -> Spec:
    """Detokenize `frames` seeded random semantic ids + seeded global ids (weights seeded with `seed` too)."""
    import mlx.core as mx

    from impl import spark
    from reference import spark as ref

    c = _cfg(config)
    folder = checkpoint(config, seed)

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        sem, glob = _ids(c, frames, s)
        return {"semantic": sem, "global": glob}

    def run_ref(model, inputs):
        return {"audio": ref.detokenize(model, inputs["semantic"], inputs["global"])}

    def run_impl(model, inputs):
        return {"audio": model.detokenize(mx.array(inputs["semantic"]), mx.array(inputs["global"]))}

    n_dec = len(c["decoder"]["rates"])
    blocks = range(1, n_dec + 1)
    stages = range(len(c["prenet"].get("sample_ratios", [1, 1])))
    pairs = [Pair("quantizer.out_project", "quantizer.out_project"),
             Pair("speaker_encoder.quantizer.project_out", "speaker_encoder.quantizer.project_out", layout="same"),
             Pair("speaker_encoder.project", "speaker_encoder.project", layout="same"),
             Pair("prenet.linear_pre", "prenet.linear_pre", layout="same"),
             Pair("prenet.downsample.{i}.1", "prenet.downsample.{i}.1", over=stages, layout="same",
                  isolate=_backbone_isolate)]
    pairs += _vocos_pairs("prenet.vocos_backbone", c["prenet"]["vocos_num_layers"], True)
    pairs += [Pair("prenet.linear", "prenet.linear", layout="same"),
              Pair("prenet", "prenet"),
              Pair("decoder.model.0", "decoder.model.0"),
              Pair("decoder.model.{i}.block.1", "decoder.model.{i}.block.1", over=blocks)]
    for u in (2, 3, 4):
        pairs.append(Pair(f"decoder.model.{{i}}.block.{u}", f"decoder.model.{{i}}.block.{u}", over=blocks))
    pairs += [Pair("decoder.model.{i}", "decoder.model.{i}", over=blocks),
              Pair(f"decoder.model.{n_dec + 2}", f"decoder.model.{n_dec + 2}"),
              Pair(f"decoder.model.{n_dec + 3}", f"decoder.model.{n_dec + 3}")]
    return Spec(
        name=f"spark-decoder-{config}",
        build_impl=lambda: spark.load(folder),
        build_ref=lambda dtype: ref.load(folder, dtype),
        make_inputs=make_inputs, run_impl=run_impl, run_ref=run_ref, pairs=pairs,
        outputs={"audio": Tol.floor(why=FLOOR_WHY)},
        description=f"BiCodec {config} (seeded {seed}) detokenize: {frames} semantic ids + global ids -> "
                    f"{frames * 320} samples at 16 kHz",
    )


@contextlib.contextmanager
def fsq_bounded(layers, out: list):
    """While open, each FSQ layer's `quantize` (either tree: the same method name upstream and in impl) first
    appends its `bound(z)` -- the values `round` turns into codes -- to `out`. Instance attributes only."""
    saved = []
    for layer in layers:
        quantize = layer.quantize

        def tap(z, _layer=layer, _quantize=quantize):
            out.append(_layer.bound(z))
            return _quantize(z)

        layer.quantize = tap
        saved.append(layer)
    try:
        yield out
    finally:
        for layer in saved:
            del layer.quantize


def _bounded(values, fsq_dim: int) -> np.ndarray:
    """The recorded bound values of every quantizer, (1, T * quantizers, d), as float32/64 numpy."""
    arrs = [np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for v in values]
    return np.concatenate([a.reshape(1, -1, fsq_dim) for a in arrs], axis=1)


POOL_T = (2, 3, 4)  # frames: the pooling's variance denominator (T - 1 vs T) matters by 2 .. 1.33


def pool_probes(channels: int):
    """(1, T, channels) float32 activations at the pooled conv's scale (N(0.3, 2^2)) for each T in POOL_T: the
    ECAPA attentive statistics pooling on a sequence this short makes its statistics' contract visible (the
    report's clip gives it hundreds of frames, where a biased variance moves the output below the floor)."""
    return [(np.random.default_rng([23, T]).standard_normal((1, T, channels)) * 2.0 + 0.3).astype(np.float32)
            for T in POOL_T]


def global_spec(config: str = "tiny", samples: int = 16000, signal: str = "speech", seed: int = 0) -> Spec:
    """The global path on `samples` of `signal` (16 kHz) as the reference clip."""
    from types import SimpleNamespace

    import mlx.core as mx

    from impl import spark
    from impl.spark.mel import MelSpectrogram
    from reference import spark as ref

    c = _cfg(config)
    folder = checkpoint(config, seed)
    fsq_dim = len(c["speaker_encoder"]["fsq_levels"])

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        return {"ref_wav": make_signal(signal, samples, s)[None]}

    def run_ref(model, inputs):
        import torch

        with torch.no_grad():
            wav = torch.from_numpy(inputs["ref_wav"]).to(next(model.parameters()).dtype)
            m = model.mel_transformer(wav).squeeze(1)
            with fsq_bounded(model.speaker_encoder.quantizer.layers, []) as bounded:
                ids = model.speaker_encoder.tokenize(m.transpose(1, 2))
            x_vec, d_vec = model.speaker_encoder(m.transpose(1, 2))
            computed = SimpleNamespace()  # upstream's own constructor: torchaudio computes window and filterbank
            type(model).init_mel_transformer(computed, c["mel_params"])
            m_computed = computed.mel_transformer.to(wav.dtype)(wav).squeeze(1)
            pool = model.speaker_encoder.speaker_encoder.pool
            short = [pool(torch.from_numpy(x.transpose(0, 2, 1)).to(wav.dtype)).reshape(-1)
                     for x in pool_probes(pool.linear2.out_channels)]
        return {"mel": m.transpose(1, 2), "global_ids": ids.numpy().astype(np.int32), "x_vector": x_vec,
                "d_vector": d_vec, "fsq_bounded": _bounded(bounded, fsq_dim), "mel_computed": m_computed.transpose(1, 2),
                "pool_short": torch.cat(short)}

    def run_impl(model, inputs):
        m = model.mel(mx.array(inputs["ref_wav"]))
        with fsq_bounded(model.speaker_encoder.quantizer.layers, []) as bounded:
            ids = model.speaker_encoder.tokenize(m)
        x_vec, d_vec = model.speaker_encoder(m)
        computed = MelSpectrogram(**c["mel_params"])  # window and filterbank computed, not the checkpoint's
        pool = model.speaker_encoder.speaker_encoder.pool
        short = [pool(mx.array(x)).reshape(-1) for x in pool_probes(pool.linear2.weight.shape[0])]
        return {"mel": m, "global_ids": ids, "x_vector": x_vec, "d_vector": d_vec,
                "fsq_bounded": _bounded(bounded, fsq_dim), "mel_computed": computed(mx.array(inputs["ref_wav"])),
                "pool_short": mx.concatenate(short)}

    e = "speaker_encoder.speaker_encoder"
    p = "speaker_encoder.perceiver_sampler"
    q = "speaker_encoder.quantizer"
    pairs = [Pair("mel_transformer", "mel_transformer"),
             Pair(f"{e}.layer1", f"{e}.layer1")]
    for part in range(4):
        pairs.append(Pair(e + ".layer{i}.se_res2block." + str(part), e + ".layer{i}.se_res2block." + str(part),
                          over=(2, 3, 4)))
    pairs += [Pair(e + ".layer{i}", e + ".layer{i}", over=(2, 3, 4)),
              Pair(f"{e}.conv", f"{e}.conv"),
              Pair(f"{e}.pool", f"{e}.pool"),
              Pair(f"{e}.bn", f"{e}.bn", layout="same"),
              Pair(f"{e}.linear", f"{e}.linear", layout="same"),
              Pair(e, e, layout="same"),
              Pair(f"{p}.proj_context", f"{p}.proj_context", layout="same"),
              Pair(p + ".layers.{i}.0", p + ".layers.{i}.0", over=range(2), layout="same"),
              Pair(p + ".layers.{i}.1.0", p + ".layers.{i}.1.0", over=range(2), layout="same"),
              Pair(p + ".layers.{i}.1.2", p + ".layers.{i}.1.2", over=range(2), layout="same"),
              Pair(f"{p}.norm", f"{p}.norm", layout="same"),
              Pair(p, p, layout="same"),
              Pair(f"{q}.project_in", f"{q}.project_in", layout="same"),
              Pair(q + ".layers.{i}", q + ".layers.{i}", over=range(c["speaker_encoder"]["fsq_num_quantizers"]),
                   layout="same", tol=Tol.exact()),  # the FSQ codes: quantised values, exact
              Pair(f"{q}.project_out", f"{q}.project_out", layout="same"),
              Pair(q, q),
              Pair("speaker_encoder.project", "speaker_encoder.project", layout="same")]
    return Spec(
        name=f"spark-global-{config}",
        build_impl=lambda: spark.load(folder),
        build_ref=lambda dtype: ref.load(folder, dtype),
        make_inputs=make_inputs, run_impl=run_impl, run_ref=run_ref, pairs=pairs,
        outputs={"mel": Tol.floor(why=FLOOR_WHY), "global_ids": Tol.exact(), "x_vector": Tol.floor(why=FLOOR_WHY),
                 "d_vector": Tol.floor(why=FLOOR_WHY),
                 # the FSQ's bounded values before `round`: a bound bug shows here, not only when a code flips
                 "fsq_bounded": Tol.floor(why=FLOOR_WHY),
                 # the mel with its window and filterbank computed on both sides: the official loader accepts a
                 # checkpoint without those buffers (load_state_dict(strict=False)); `mel` reads the checkpoint's
                 "mel_computed": Tol.floor(40, why="40 x the floor: torchaudio computes its filterbank in float32 "
                                           "(its fp64 run casts that), impl in float64 then rounds: each weight "
                                           "differs by fp32 rounding, which the fp32-vs-fp64 floor does not hold "
                                           "(measured 15 x)"),
                 # the ECAPA pooling alone on 2..4-frame probes (pool_probes): its statistics' contract visible
                 "pool_short": Tol.floor(why=FLOOR_WHY)},
        description=f"BiCodec {config} (seeded {seed}) global path: {samples} samples ({samples / 16000:.2f} s) of "
                    f"{signal} -> mel -> ECAPA-TDNN -> Perceiver -> residual FSQ -> global ids; x-/d-vectors",
    )


def semantic_spec(config: str = "tiny", frames: int = 50, seed: int = 0) -> Spec:
    """The semantic path on `frames` seeded N(0, 1) feature frames (standing in for wav2vec2's mixed features)."""
    import mlx.core as mx

    from impl import spark
    from reference import spark as ref

    c = _cfg(config)
    folder = checkpoint(config, seed)

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng([s, 77])
        return {"feat": rng.standard_normal((1, frames, c["encoder"]["input_channels"])).astype(np.float32)}

    def run_ref(model, inputs):
        import torch

        with torch.no_grad():
            feat = torch.from_numpy(inputs["feat"]).to(next(model.parameters()).dtype)
            z = model.encoder(feat.transpose(1, 2))
            ids = model.quantizer.tokenize(z)
        return {"z": z.transpose(1, 2), "semantic_ids": ids.numpy().astype(np.int32)}

    def run_impl(model, inputs):
        z = model.encoder(mx.array(inputs["feat"]))
        return {"z": z, "semantic_ids": model.quantizer.tokenize(z)}

    stages = range(len(c["encoder"].get("sample_ratios", [1, 1])))
    pairs = _vocos_pairs("encoder.encoder", c["encoder"]["vocos_num_layers"], False)
    pairs += [Pair("encoder.downsample.{i}.1", "encoder.downsample.{i}.1", over=stages, layout="same",
                   isolate=_backbone_isolate),
              Pair("encoder.project", "encoder.project", layout="same"),
              Pair("encoder", "encoder"),
              Pair("quantizer.in_project", "quantizer.in_project")]
    return Spec(
        name=f"spark-semantic-{config}",
        build_impl=lambda: spark.load(folder),
        build_ref=lambda dtype: ref.load(folder, dtype),
        make_inputs=make_inputs, run_impl=run_impl, run_ref=run_ref, pairs=pairs,
        outputs={"z": Tol.floor(why=FLOOR_WHY), "semantic_ids": Tol.exact()},
        description=f"BiCodec {config} (seeded {seed}) semantic path: {frames} feature frames -> encoder -> "
                    f"factorized VQ -> semantic ids",
    )


# samples of the second clip: more than one block of impl's blocked conv front (wav2vec2.FeatureEncoder.FRAMES = 256
# frames of conv layer 5, stride 160: 40,960 samples), as a real reference clip (3..10 s) runs it
LONG_SAMPLES = 48000


def wav2vec2_spec(config: str = "tiny", samples: int = 16000, signal: str = "speech", seed: int = 0,
                  long_samples: int = LONG_SAMPLES) -> Spec:
    """The wav2vec2 features (transformers Wav2Vec2Model + Wav2Vec2FeatureExtractor as sparktts calls them) on
    `samples` of `signal`: every conv layer of the feature encoder, the feature projection, the positional conv,
    encoder layers 0-15 (the mix reads hidden_states 11, 14, 16). Outputs: the mixed features, and those of a
    second clip of `long_samples` (`features_long`: impl's conv front runs it in blocks, whose layers the taps of
    the first clip (one block) cannot see)."""
    import mlx.core as mx

    from impl.seeded.spark import seeded_w2v
    from impl.spark import wav2vec2 as w2v
    from reference import spark as ref

    folder = seeded_w2v(config, seed)
    n_conv = 7
    holder = {}

    def build_ref(dtype):
        processor, model = ref.load_wav2vec2(folder, dtype)
        holder["processor"] = processor
        return model

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        return {"wav": make_signal(signal, samples, s).astype(np.float64),
                "wav_long": make_signal(signal, long_samples, s + 1).astype(np.float64)}

    def run_ref(model, inputs):  # the short clip first: the layer taps keep each module's first call
        return {"features": ref.wav2vec2_features(holder["processor"], model, inputs["wav"]),
                "features_long": ref.wav2vec2_features(holder["processor"], model, inputs["wav_long"])}

    def run_impl(model, inputs):
        return {"features": model(mx.array(w2v.normalize(inputs["wav"]))[None]),
                "features_long": model(mx.array(w2v.normalize(inputs["wav_long"]))[None])}

    pairs = [Pair("feature_extractor.conv_layers.{i}", "feature_extractor.conv_layers.{i}", over=range(n_conv)),
             Pair("feature_projection", "feature_projection", layout="same"),
             Pair("encoder.pos_conv_embed", "encoder.pos_conv_embed", layout="same"),
             Pair("encoder.layers.{i}", "encoder.layers.{i}", over=range(16), layout="same")]
    return Spec(
        name=f"spark-wav2vec2-{config}",
        build_impl=lambda: w2v.load(folder),
        build_ref=build_ref,
        make_inputs=make_inputs, run_impl=run_impl, run_ref=run_ref, pairs=pairs,
        outputs={"features": Tol.floor(why=FLOOR_WHY), "features_long": Tol.floor(why=FLOOR_WHY)},
        description=f"wav2vec2 {config} (seeded {seed}) features: {samples} samples of {signal} -> "
                    f"(hidden_states[11] + [14] + [16]) / 3; and a {long_samples}-sample clip's (blocked conv front)",
    )
