"""Seeded artefacts: random weights at the real architectures in the official on-disk formats, the generated v3
tokenizer, synthetic speaker profiles. No model hub is reachable where voiceport is built and tested; these stand
in for the real files and go through the real loaders.

Modules (one per model stem):
  llama    HF Llama checkpoints (config.json + safetensors, sharded or not), HF `_init_weights` statistics
  dac      DAC state dicts in descript-audio-codec's key layout, written as safetensors
  outetts  the v3 tokenizer (byte-level BPE + the v3 special tokens) and the OuteTTS model folder (LM + tokenizer)
  speaker  v3 profiles with seeded codes and features (no audio)
Every tensor has its own RNG stream keyed by (seed, crc32(name)): regeneration is byte-identical and order-free.

The embedded defaults the commands use when no checkpoint is given, generated once into $VOICEPORT_CACHE:
`default_model()` (OuteTTS 1.0 1B folder, bf16) and `default_codec()` (DAC 24 kHz speech, .safetensors).
"""
from __future__ import annotations

from pathlib import Path

from impl._cache import cache_root


def cache_dir(name: str = "checkpoints") -> Path:
    """$VOICEPORT_CACHE/<name> (default ~/.cache/voiceport/<name>), created."""
    d = cache_root() / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_model() -> Path:
    """The embedded OuteTTS 1.0 model folder: the 1B architecture with seeded weights (bf16) + the v3 tokenizer."""
    from impl.seeded.outetts import default_model_dir

    return default_model_dir()


def default_codec() -> Path:
    """The embedded DAC checkpoint: the 24 kHz speech codec (OuteTTS 1.0's) with seeded weights, safetensors."""
    from impl.seeded.dac import seeded_checkpoint

    return seeded_checkpoint("24khz_speech", seed=0)
