"""Seeded whisper checkpoints (the ASR of `voiceport profile create` without --text) at the real `tiny` dims.

`seeded_state_dict(dims, seed)` gives numpy tensors named and shaped as openai-whisper's `Whisper(dims)`
parameters (`whisper/model.py`: `blocks.{i}.mlp.0`, Conv1d (out, in, k), no `encoder.positional_embedding`: that
is a buffer the model computes). The same values are written:
- as an mlx-whisper model folder here (`write_mlx_folder`: config.json + weights.safetensors, the layout of
  mlx-examples `whisper/convert.py` that `mlx_whisper.load_models.load_model` reads: `mlp.0`/`mlp.2` ->
  `mlp1`/`mlp2`, conv weights (out, k, in), `alignment_heads` as (n, 2) [layer, head] indices);
- as openai-whisper's `.pt` by `reference.whisper.write_seeded_checkpoint` ({"dims", "model_state_dict"}, what
  `whisper.load_model(path)` reads; the alignment-head dump rides along as "alignment_heads").

Alignment heads: openai-whisper keeps them out of the checkpoint, as a base85(gzip(bool (n_text_layer,
n_text_head))) dump per model name (`whisper/__init__.py` _ALIGNMENT_HEADS); `tiny`'s is copied below.
`whisper.load_model(path)` of a file sets none (the default: every head of the last half of the decoder
layers), which is what outetts' `create_speaker_from_whisper` gets for a local checkpoint: `heads="default"`
writes that set into the MLX folder, `heads="tiny"` the named model's.

Init statistics: torch's defaults for `Whisper(dims)` (Linear and Conv1d U(+-1/sqrt(fan_in)), LayerNorm 1/0)
except the token embedding, N(0, 0.03) instead of nn.Embedding's N(0, 1): it is also the output layer (logits =
x @ W.T), and at N(0, 1) the logits' spread (~20) makes greedy decoding repeat one token whatever the audio;
at 0.03 the decoded tokens depend on the audio and include timestamps (measured on the LibriVox clips). The
decoder's `positional_embedding` (torch.empty upstream) N(0, 0.02).
Every tensor has its own RNG stream keyed by (seed, crc32(name)).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from impl._io import atomic_dir, atomic_path
from impl.seeded import cache_dir

GENERATOR_VERSION = 3

# openai-whisper 20250625 whisper/__init__.py _ALIGNMENT_HEADS["tiny"] (the same bytes in mlx-examples convert.py)
TINY_ALIGNMENT_HEADS = b"ABzY8bu8Lr0{>%RKn9Fp%m@SkK7Kt=7ytkO"

# openai-whisper `tiny` (ModelDimensions of the released tiny.pt): multilingual vocabulary
TINY_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4, n_vocab=51865,
                 n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)


def heads_mask(dims: Dict[str, int], heads: Union[str, bytes] = "tiny") -> np.ndarray:
    """bool (n_text_layer, n_text_head): "default" = openai-whisper's without a dump (the last half of the
    layers), "tiny" or a base85 dump = `Whisper.set_alignment_heads`' decoding."""
    L, H = dims["n_text_layer"], dims["n_text_head"]
    if isinstance(heads, str) and heads == "default":
        mask = np.zeros((L, H), bool)
        mask[L // 2:] = True
        return mask
    dump = TINY_ALIGNMENT_HEADS if heads == "tiny" else heads
    return np.array(list(gzip.decompress(base64.b85decode(dump))), dtype=np.uint8).astype(bool).reshape(L, H)


def param_shapes(dims: Dict[str, int]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """openai-whisper parameter name -> (shape, kind), in `Whisper(dims).named_parameters()` order."""
    out: Dict[str, Tuple[Tuple[int, ...], str]] = {}

    def linear(name, n_in, n_out, bias=True):
        out[f"{name}.weight"] = ((n_out, n_in), f"u{n_in}")
        if bias:
            out[f"{name}.bias"] = ((n_out,), f"u{n_in}")

    def ln(name, n):
        out[f"{name}.weight"] = ((n,), "one")
        out[f"{name}.bias"] = ((n,), "zero")

    def block(name, n, cross):
        for att in ("attn", "cross_attn") if cross else ("attn",):
            linear(f"{name}.{att}.query", n, n)
            linear(f"{name}.{att}.key", n, n, bias=False)
            linear(f"{name}.{att}.value", n, n)
            linear(f"{name}.{att}.out", n, n)
            ln(f"{name}.{att}_ln", n)
        linear(f"{name}.mlp.0", n, 4 * n)
        linear(f"{name}.mlp.2", 4 * n, n)
        ln(f"{name}.mlp_ln", n)

    M, A, T = dims["n_mels"], dims["n_audio_state"], dims["n_text_state"]
    out["encoder.conv1.weight"] = ((A, M, 3), f"u{M * 3}")
    out["encoder.conv1.bias"] = ((A,), f"u{M * 3}")
    out["encoder.conv2.weight"] = ((A, A, 3), f"u{A * 3}")
    out["encoder.conv2.bias"] = ((A,), f"u{A * 3}")
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", A, cross=False)
    ln("encoder.ln_post", A)
    out["decoder.token_embedding.weight"] = ((dims["n_vocab"], T), "embedding")
    out["decoder.positional_embedding"] = ((dims["n_text_ctx"], T), "pos")
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", T, cross=True)
    ln("decoder.ln", T)
    return out


def _tensor(name: str, shape: Tuple[int, ...], kind: str, seed: int) -> np.ndarray:
    if kind == "one":
        return np.ones(shape, np.float32)
    if kind == "zero":
        return np.zeros(shape, np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind == "embedding":
        return (0.03 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if kind == "pos":
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    bound = 1.0 / np.sqrt(int(kind[1:]))  # torch Linear/Conv1d reset_parameters: U(-1/sqrt(fan_in), +)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def seeded_state_dict(dims: Dict[str, int] = TINY_DIMS, seed: int = 0) -> Dict[str, np.ndarray]:
    """openai-whisper-layout parameters (numpy float32) of a seeded random whisper at `dims`."""
    return {k: _tensor(k, shape, kind, seed) for k, (shape, kind) in param_shapes(dims).items()}


def to_mlx(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """openai-whisper parameter names/layouts -> mlx-whisper's (mlx-examples whisper/convert.py `convert` and
    `torch_to_mlx`'s convert_rblock)."""
    out = {}
    for k, v in state.items():
        k = k.replace(".mlp.0.", ".mlp1.").replace(".mlp.2.", ".mlp2.")
        if k.endswith(("conv1.weight", "conv2.weight")):
            v = np.ascontiguousarray(v.transpose(0, 2, 1))  # torch Conv1d (out, in, k) -> MLX (out, k, in)
        out[k] = v
    return out


def write_mlx_folder(path: Union[str, Path], dims: Dict[str, int] = TINY_DIMS, seed: int = 0,
                     heads: Union[str, bytes] = "tiny") -> Path:
    """The seeded whisper as an mlx-whisper folder (config.json with model_type "whisper" + weights.safetensors,
    float32), each file atomically."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = to_mlx(seeded_state_dict(dims, seed))
    # MLX keeps `alignment_heads` among the parameters (an mx.array attribute), so convert.py saves it
    weights["alignment_heads"] = np.ascontiguousarray(np.transpose(np.nonzero(heads_mask(dims, heads))), np.int64)
    # (a transposed view would be written as its untransposed buffer: safetensors.numpy saves raw memory)
    with atomic_path(path / "weights.safetensors") as tmp:
        save_file(weights, tmp)
    with atomic_path(path / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(dict(dims, model_type="whisper"), indent=4))
    return path


def seeded_mlx_folder(dims: Dict[str, int] = TINY_DIMS, seed: int = 0, heads: Union[str, bytes] = "tiny"
                      ) -> Path:
    """The seeded mlx-whisper folder for (dims, seed, heads), written once into cache_dir() and reused."""
    key = hashlib.sha256(json.dumps([dims, seed, heads if isinstance(heads, str) else heads.decode(),
                                     GENERATOR_VERSION], sort_keys=True).encode()).hexdigest()[:12]
    name = "tiny" if dims == TINY_DIMS else "custom"
    dest = cache_dir() / f"whisper-{name}-s{seed}-{key}-mlx"
    if not (dest / "config.json").exists():
        with atomic_dir(dest) as tmp:
            write_mlx_folder(tmp, dims, seed, heads)
    return dest
