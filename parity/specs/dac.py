"""Parity spec: impl.dac (MLX) vs the official descript-audio-codec DAC, every layer, on a seeded checkpoint.

Both trees share upstream's module names, so each pair maps a path to itself: the encoder's first conv, every
residual unit and block, the latent conv; every vector quantizer's in_proj / out_proj / output and the residual
quantizer; the decoder's first conv, every transposed conv, residual unit and block, the last conv and tanh.
The run is upstream's forward in eval mode: encoder -> quantizer -> decoder on the quantized latent. Outputs: the
codes (exact, vs the fp32 reference: the contract) and the audio (fp32 noise floor).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from parity.spec import FLOOR_WHY, Pair, Spec, Tol

SIGNALS = ("speech", "noise", "silence", "sweep")
# sense_and_sensibility_01_austen_64kb-0870.wav (LibriVox, public domain; via pocketsphinx 5.1.1 test data, as
# fixtures/data/librivox holds it), first 6 s, resampled to 24 kHz
# (impl.audio.resample), 16-bit FLAC.
SPEECH_CLIP = Path(__file__).resolve().parents[2] / "fixtures" / "data" / "speech-24k.flac"


def checkpoints(config: str = "24khz_speech", seed: int = 0):
    """(safetensors for impl, official .pth for the reference) holding the same seeded weights, cached."""
    from impl.seeded.dac import seeded_checkpoint
    from reference.dac import write_seeded_checkpoint

    st = seeded_checkpoint(config, seed)
    pth = st.with_suffix(".pth")
    if not pth.exists():
        write_seeded_checkpoint(pth, config, seed)
    return st, pth


def speech(sr: int, n: int, offset_s: float = 0.5) -> np.ndarray:
    """n samples of real speech at `sr`, mono float32, from the clip committed in the repo (SPEECH_CLIP: 6 s of
    LibriVox, public domain, so that fixture mode on a torch-free runner reads the same input as live parity)."""
    import soundfile as sf

    from impl.audio import resample

    a, file_sr = sf.read(str(SPEECH_CLIP), dtype="float32", always_2d=True)
    a = a.mean(axis=1)
    if file_sr != sr:
        a = resample(a, file_sr, sr)
    start = int(offset_s * sr) % len(a)
    a = np.tile(a, 1 + (start + n) // len(a))  # long requests wrap around
    return np.ascontiguousarray(a[start:start + n], dtype=np.float32)


def make_signal(kind: str, sr: int, n: int, seed: int) -> np.ndarray:
    """One of SIGNALS, n samples at sr, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if kind == "speech":
        return speech(sr, n, offset_s=0.5 + (seed % 7))
    if kind == "noise":
        return (0.1 * rng.standard_normal(n)).astype(np.float32)
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "sweep":  # 50 Hz -> sr/2 logarithmic sine sweep
        f0, f1 = 50.0, sr / 2
        T = max(n / sr, 1e-3)
        phase = 2 * np.pi * f0 * T / np.log(f1 / f0) * (np.exp(t / T * np.log(f1 / f0)) - 1)
        return (0.5 * np.sin(phase)).astype(np.float32)
    raise ValueError(f"unknown signal {kind!r}; known: {SIGNALS}")


def spec(config: str = "24khz_speech", seconds: float = 1.0, signal: str = "speech", seed: int = 0,
         samples: int = None) -> Spec:
    """DAC parity on `seconds` of `signal` (or exactly `samples` samples); `seed` seeds the weights."""
    import mlx.core as mx

    from impl import dac
    from impl.seeded.dac import seeded_checkpoint
    from reference import dac as ref

    kwargs = dac.resolve_config(config)
    st = seeded_checkpoint(config, seed)  # torch-free: fixture mode never builds the reference
    sr = kwargs["sample_rate"]
    n = samples or int(round(seconds * sr))

    def make_inputs(s: int) -> Dict[str, np.ndarray]:
        return {"audio": make_signal(signal, sr, n, s)[None]}

    def run_ref(model, inputs):
        import torch

        x = torch.from_numpy(inputs["audio"]).to(next(model.parameters()).dtype)[:, None, :]
        with torch.no_grad():
            z, codes = model.encode(x)[:2]
            audio = model.decode(z)[:, 0]
        return {"codes": codes.numpy().astype(np.int32), "audio": audio.numpy()}

    def run_impl(model, inputs):
        z = model.encoder(mx.array(inputs["audio"])[:, :, None])
        z_q, codes, _ = model.quantizer(z)
        return {"codes": codes, "audio": model.decoder(z_q)[:, :, 0]}

    n_enc = len(kwargs["encoder_rates"])
    n_dec = len(kwargs["decoder_rates"])
    enc_blocks = range(1, n_enc + 1)
    dec_blocks = range(1, n_dec + 1)
    pairs = [Pair("encoder.block.0", "encoder.block.0")]
    for u in range(3):  # residual units (dilations 1, 3, 9) inside each encoder block
        pairs.append(Pair(f"encoder.block.{{i}}.block.{u}", f"encoder.block.{{i}}.block.{u}", over=enc_blocks))
    pairs += [Pair("encoder.block.{i}.block.4", "encoder.block.{i}.block.4", over=enc_blocks),  # strided conv
              Pair("encoder.block.{i}", "encoder.block.{i}", over=enc_blocks),
              Pair(f"encoder.block.{n_enc + 2}", f"encoder.block.{n_enc + 2}")]                # latent conv
    q = "quantizer.quantizers.{i}"
    over_q = range(kwargs["n_codebooks"])
    pairs += [Pair(q + ".in_proj", q + ".in_proj", over=over_q),
              Pair(q + ".out_proj", q + ".out_proj", over=over_q),
              Pair(q, q, over=over_q),
              Pair("quantizer", "quantizer")]
    pairs.append(Pair("decoder.model.0", "decoder.model.0"))
    pairs.append(Pair("decoder.model.{i}.block.1", "decoder.model.{i}.block.1", over=dec_blocks))  # conv transpose
    for u in (2, 3, 4):
        pairs.append(Pair(f"decoder.model.{{i}}.block.{u}", f"decoder.model.{{i}}.block.{u}", over=dec_blocks))
    pairs += [Pair("decoder.model.{i}", "decoder.model.{i}", over=dec_blocks),
              Pair(f"decoder.model.{n_dec + 2}", f"decoder.model.{n_dec + 2}"),   # last conv
              Pair(f"decoder.model.{n_dec + 3}", f"decoder.model.{n_dec + 3}")]   # tanh
    return Spec(
        name=f"dac-{config}",
        build_impl=lambda: dac.load(st),
        build_ref=lambda dtype: ref.load(checkpoints(config, seed)[1], dtype),
        make_inputs=make_inputs,
        run_impl=run_impl,
        run_ref=run_ref,
        pairs=pairs,
        outputs={"codes": Tol.exact(), "audio": Tol.floor(why=FLOOR_WHY)},
        output_layout={"codes": "same", "audio": "same"},
        description=f"DAC {config} (seeded weights {seed}), {n} samples ({n / sr:.2f} s) of {signal}; "
                    f"upstream forward: encoder -> quantizer -> decoder on the quantized latent",
    )
