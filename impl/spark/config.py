"""BiCodec's `config.yaml`, read without a YAML library (impl's run-time deps stay numpy + safetensors + mlx).

The official file is read by OmegaConf (PyYAML + its own float rule): block mappings by indentation, `key: value`
scalars (int, float, bool, null, strings, quoted or not), flow lists `[1, 1]` and block lists of scalars. That
subset is what `read_yaml` reads; anything else is a ConfigError naming the file and line (e.g. anchors, multi-line
strings).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union


class ConfigError(ValueError):
    """A config.yaml that cannot be read or does not describe a BiCodec."""


_INT = re.compile(r"[-+]?\d+")
# OmegaConf's float resolver (wider than PyYAML's: "1e-3" is a float there, so here)
_FLOAT = re.compile(r"[-+]?(\d[\d_]*)?(\.[\d_]*)?([eE][-+]?\d+)?")
_SPECIAL = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


def _scalar(text: str, where: str) -> Any:
    t = text.strip()
    if t in ("null", "Null", "NULL", "~", ""):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [] if not inner else [_scalar(x, where) for x in inner.split(",")]
    if t[0] in "{&*!|>[]":
        raise ConfigError(f"{where}: unsupported YAML {t!r}")
    if _INT.fullmatch(t):
        return int(t)
    if t.lower() in _SPECIAL:
        return _SPECIAL[t.lower()]
    if _FLOAT.fullmatch(t) and any(c.isdigit() for c in t) and ("." in t or "e" in t.lower()):
        return float(t.replace("_", ""))
    return t


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse_yaml(text: str, name: str = "config.yaml") -> Dict[str, Any]:
    """The YAML subset above -> nested dicts/lists."""
    lines: List[Tuple[int, int, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"{name}:{n}: tab in indentation")
        line = _strip_comment(raw)
        if line.strip() in ("", "---"):
            continue
        lines.append((n, len(line) - len(line.lstrip(" ")), line.strip()))
    root: Dict[str, Any] = {}
    stack: List[list] = [[None, root]]  # [indent, container]; the root's indent is its first line's
    pending = None  # (indent, parent, key): a key with no value, whose block may follow
    for n, ind, s in lines:
        where = f"{name}:{n}"
        if pending is not None:
            p_ind, parent, key = pending
            pending = None
            if ind > p_ind:
                parent[key] = [] if s.startswith("- ") or s == "-" else {}
                stack.append([ind, parent[key]])
        while len(stack) > 1 and ind < stack[-1][0]:
            stack.pop()
        if stack[-1][0] is None:
            stack[-1][0] = ind
        if ind != stack[-1][0]:
            raise ConfigError(f"{where}: bad indentation")
        container = stack[-1][1]
        if s.startswith("- ") or s == "-":
            if not isinstance(container, list):
                raise ConfigError(f"{where}: list item outside a list")
            container.append(_scalar(s[1:], where))
            continue
        key, sep, rest = s.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise ConfigError(f"{where}: expected 'key: value', got {s!r}")
        if not isinstance(container, dict):
            raise ConfigError(f"{where}: mapping key inside a list")
        key = key.strip().strip("'\"")
        if rest.strip() == "":
            container[key] = None
            pending = (ind, container, key)
        else:
            container[key] = _scalar(rest, where)
    return root


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a config.yaml (the subset above); ConfigError names the file on any problem."""
    from impl._io import read_bytes

    path = Path(path)
    try:
        text = read_bytes(path, "config.yaml", 1 << 20, ConfigError).decode("utf-8")  # a FIFO refused unopened
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return parse_yaml(text, str(path))


SECTIONS = ("mel_params", "encoder", "decoder", "quantizer", "speaker_encoder", "prenet")


def bicodec_config(cfg: Dict[str, Any], where: str = "config.yaml") -> Dict[str, Dict[str, Any]]:
    """The `audio_tokenizer` section of a BiCodec config.yaml, checked for the sections the model needs."""
    t = cfg.get("audio_tokenizer") if isinstance(cfg, dict) else None
    if not isinstance(t, dict):
        raise ConfigError(f"{where}: no 'audio_tokenizer' mapping (not a BiCodec config.yaml)")
    missing = [s for s in SECTIONS if not isinstance(t.get(s), dict)]
    if missing:
        raise ConfigError(f"{where}: audio_tokenizer lacks {', '.join(missing)}")
    for part in ("encoder", "prenet", "postnet"):
        ratios = (t.get(part) or {}).get("sample_ratios", [1, 1])
        if any(int(r) != 1 for r in ratios):
            raise ConfigError(f"{where}: {part}.sample_ratios {ratios}: only ratio 1 (no resampling stage) is ported; "
                              "Spark-TTS-0.5B's BiCodec uses [1, 1]")
    return t
