"""The strict weight check every loader runs before `load_weights(..., strict=True)`, and the HF folder reader.

MLX's strict load stops at the first bad key and does not compare shapes; upstream loaders (descript-audio-codec's
`load_state_dict(strict=False)`, transformers' `from_pretrained`) skip or random-init what does not fit. Here one
error names every missing, unexpected and mis-shaped tensor at once.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import mlx.core as mx
from mlx.utils import tree_flatten

from impl._io import INT32, INT64, reason
from impl._io import read_json as _read_json

SHOWN = 6  # keys named per kind; the message is one line, a wrong config can mismatch hundreds


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unreadable, or not fitting the model (names the bad keys)."""


def _name(key: str) -> str:
    """A tensor name as written, or its repr when it holds a control character (it would break the line)."""
    return key if key.isprintable() else repr(key)


def _keys(keys: Sequence[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(map(_name, keys[:SHOWN])) + more


def check_weights(model: Any, weights: Dict[str, Any], where: str, notes: Sequence[str] = (),
                  want: Optional[Mapping[str, Tuple[int, ...]]] = None, name: Optional[str] = None) -> None:
    """Raise one CheckpointError (one line) unless `weights` has exactly the expected names and shapes.

    Args:
        model: an mlx.nn.Module; its parameters are the expected names and shapes unless `want` is given.
        weights: tensors (numpy or mx arrays), after sanitize, or in the checkpoint's own key space with `want`.
        where: what is loaded, for the message (usually the checkpoint path).
        notes: model-specific findings to report first (e.g. a config that disagrees with the tensors).
        want: expected name -> shape, when the check runs on the checkpoint's keys (so the message names the
            file's tensors and shapes, e.g. DAC's `weight_g`/`weight_v` before weight norm is folded).
        name: the model's name in the message (default: its class name).
    """
    if want is None:
        want = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    misshaped = sorted(f"{_name(k)}: checkpoint {list(got[k])} != model {list(want[k])}"
                       for k in set(want) & set(got) if got[k] != tuple(want[k]))
    problems = list(notes)
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            problems.append(f"{len(keys)} {what}: " + _keys(keys))
    if problems:
        raise CheckpointError(f"{where}: checkpoint does not fit the {name or type(model).__name__} model: "
                              + "; ".join(problems))


# ------------------------------------------------------------------------------------------------- HF folders

def read_json(file: Path, what: str = "model config", ints: Tuple[int, int] = INT32) -> Any:
    """A JSON file's value (impl._io.read_json's limits; integers within `ints`: a model config's fit int32, a
    shard index's byte counts need int64); CheckpointError naming the file when it cannot be read or parsed, or
    is a special file (refused before opening)."""
    try:
        return _read_json(file, what, CheckpointError, ints=ints)
    except OSError as e:  # IsADirectoryError, FileNotFoundError, PermissionError
        raise CheckpointError(f"{file}: not a readable JSON file ({reason(e)})") from None


def load_safetensors(file: Path) -> Dict[str, Any]:
    """A safetensors file's tensors (MLX arrays); CheckpointError naming the file when MLX cannot read it."""
    from impl._io import check_input

    check_input(file, "safetensors checkpoint", CheckpointError)  # a FIFO would block MLX's reader
    try:
        return dict(mx.load(str(file), format="safetensors"))
    except (RuntimeError, ValueError, OSError) as e:  # MLX's reader: "invalid data offsets ... incomplete download"
        raise CheckpointError(f"{file}: not a readable safetensors file ({reason(e)})") from None


def read_hf_config(path: Path) -> Tuple[Path, Dict[str, Any]]:
    """(path/config.json, its dict): FileNotFoundError or CheckpointError naming the file."""
    config_path = path / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no config.json in {path}")
    return config_path, read_json(config_path)


def read_hf_weights(path: Path) -> Dict[str, Any]:
    """An HF folder's tensors: model.safetensors, or the shards model.safetensors.index.json names (all of them)."""
    index = path / "model.safetensors.index.json"
    single = path / "model.safetensors"
    if single.exists():
        return load_safetensors(single)
    if index.exists():
        data = read_json(index, "shard index", ints=INT64)  # total_size: bytes
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: no 'weight_map' of tensor name -> shard file")
        weights: Dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = path / shard
            if not shard_path.exists():
                raise FileNotFoundError(f"{index} names shard {shard!r}, which is missing in {path}")
            weights.update(load_safetensors(shard_path))
        absent = sorted(set(weight_map) - set(weights))
        if absent:
            raise CheckpointError(f"{index}: keys listed but absent from their shards: {absent}")
        return weights
    found = sorted(os.path.basename(p) for p in glob.glob(str(path / "*.safetensors")))
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {path} "
                            f"(safetensors files there: {found or 'none'})")
