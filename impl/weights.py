"""The strict weight check every loader runs before `load_weights(..., strict=True)`.

MLX's strict load stops at the first bad key and does not compare shapes; upstream loaders (descript-audio-codec's
`load_state_dict(strict=False)`, transformers' `from_pretrained`) skip or random-init what does not fit. Here one
error names every missing, unexpected and mis-shaped tensor at once.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

from mlx.utils import tree_flatten


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: names every missing, unexpected and mis-shaped key."""


def check_weights(model: Any, weights: Dict[str, Any], where: str, notes: Sequence[str] = ()) -> None:
    """Raise one CheckpointError unless `weights` (name -> array, after sanitize) has exactly the model's
    parameter names and shapes.

    Args:
        model: an mlx.nn.Module.
        weights: sanitized tensors (numpy or mx arrays).
        where: what is loaded, for the message (usually the checkpoint path).
        notes: model-specific findings to report first (e.g. a config that disagrees with the tensors).
    """
    want = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    misshaped = sorted(f"{k}: checkpoint {list(got[k])} != model {list(want[k])}"
                       for k in set(want) & set(got) if got[k] != want[k])
    problems = list(notes)
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            problems.append(f"{len(keys)} {what}: " + ", ".join(keys))
    if problems:
        raise CheckpointError(f"{where}: checkpoint does not fit the {type(model).__name__} model:\n  "
                              + "\n  ".join(problems))
