"""The strict weight check every loader runs before `load_weights(..., strict=True)`.

MLX's strict load stops at the first bad key and does not compare shapes; upstream loaders (descript-audio-codec's
`load_state_dict(strict=False)`, transformers' `from_pretrained`) skip or random-init what does not fit. Here one
error names every missing, unexpected and mis-shaped tensor at once.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from mlx.utils import tree_flatten

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
