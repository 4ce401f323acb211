"""`voiceport info`: what this installation runs on (versions, device, MLX backend, BLAS, cache), and the start-up
check of voiceport's environment variables that every command runs first.

Environment variables (read once, at start, by `check_environment`):
  VOICEPORT_CACHE          the cache folder (default ~/.cache/voiceport): must be a folder this process can write,
                           or creatable; anything else is an error.
  VOICEPORT_CONV           native | gemm (the convolution path, impl/ops.py); anything else is an error.
  VOICEPORT_BLAS           auto | rename | 0 | a library file exporting cblas_sgemm (impl/accel/blas.py); a value
                           that cannot give the fast BLAS is a warning naming why (MLX's bundled BLAS still works).
  VOICEPORT_KERNEL_WARMUP  0 | 1 (CUDA kernel warm-up, impl/accel/cuda.py); anything else is an error.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

CONV_VALUES = ("native", "gemm")
BLAS_MODES = ("auto", "rename", "0")
WARMUP_VALUES = ("0", "1")


class EnvironmentValueError(ValueError):
    """A voiceport environment variable with a value it cannot use."""


def _shown(value: str) -> str:
    return repr(value) if not value.isprintable() or len(value) > 80 else value


def check_environment(environ: Optional[Dict[str, str]] = None) -> List[str]:
    """Validate voiceport's environment variables once; returns warnings (one line each), raises
    EnvironmentValueError (one line naming the variable) for a value no command can run with."""
    from impl._cache import check_cache

    env = os.environ if environ is None else environ
    conv = env.get("VOICEPORT_CONV") or ""
    if conv and conv not in CONV_VALUES:
        raise EnvironmentValueError(f"VOICEPORT_CONV={_shown(conv)}: expected {' or '.join(CONV_VALUES)} "
                                    "(or unset: by device)")
    warm = env.get("VOICEPORT_KERNEL_WARMUP")
    if warm is not None and warm not in WARMUP_VALUES:
        raise EnvironmentValueError(f"VOICEPORT_KERNEL_WARMUP={_shown(warm)}: expected 0 or 1")
    check_cache()
    warnings = []
    why = blas_request_problem(env.get("VOICEPORT_BLAS"))
    if why:
        warnings.append(why)
    return warnings


def blas_request_problem(value: Optional[str]) -> Optional[str]:
    """Why VOICEPORT_BLAS=value cannot give a fast BLAS, before anything is loaded; None when it may."""
    if value is None or value in BLAS_MODES or not sys.platform.startswith("linux"):
        return None
    from impl._io import check_input

    if value == "":
        return "VOICEPORT_BLAS is empty: expected auto, rename, 0 or a library file; MLX's bundled BLAS is used"
    try:
        st = check_input(value, "BLAS library")
    except ValueError as e:
        return f"VOICEPORT_BLAS: {e}; MLX's bundled BLAS is used (several times slower)"
    if st is None or not os.path.isfile(value):
        return (f"VOICEPORT_BLAS={_shown(value)}: not auto, rename, 0 or an existing library file; MLX's bundled "
                "BLAS is used (several times slower)")
    return None


def blas_warning(environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """After `enable_fast_blas()`: a warning line when a fast BLAS was wanted on Linux (VOICEPORT_BLAS unset, auto,
    rename or a library) and MLX's bundled one is in use; None otherwise (or when blas_request_problem already
    said why)."""
    from impl.accel.blas import blas_info

    env = os.environ if environ is None else environ
    value = env.get("VOICEPORT_BLAS")
    if not sys.platform.startswith("linux") or value == "0" or blas_request_problem(value):
        return None
    info = blas_info()
    if info["blas"] != "mlx-bundled" or info["reason"] == "not attempted":
        return None
    return f"the fast BLAS is not in use, MLX's bundled BLAS is (several times slower): {info['reason']}"


# ------------------------------------------------------------------------------------------------ voiceport info

PACKAGES = (("mlx", "mlx"), ("numpy", "numpy"), ("safetensors", "safetensors"), ("soundfile", "soundfile"),
            ("tokenizers", "tokenizers"), ("ftfy", "ftfy  [tts]"), ("pocketsphinx", "pocketsphinx  [profile]"),
            ("soxr", "soxr  [spark]"), ("MeCab", "mecab-python3  [ja]"), ("mlx_whisper", "mlx-whisper"))


def versions() -> List[Tuple[str, str]]:
    """(package, version or 'not installed') for voiceport, Python and the packages it may use."""
    from importlib import metadata

    from impl import __version__

    rows = [("voiceport", __version__), ("python", sys.version.split()[0])]
    dist = {"MeCab": "mecab-python3", "mlx_whisper": "mlx-whisper"}
    for module, label in PACKAGES:
        try:
            v = metadata.version(dist.get(module, module))
        except metadata.PackageNotFoundError:
            v = "not installed" if importlib.util.find_spec(module) is None else "installed (version unknown)"
        rows.append((label, v))
    return rows


def device() -> Dict[str, str]:
    """MLX's default device and the backends this MLX build has."""
    import mlx.core as mx

    backends = ["cpu"]
    try:
        if mx.metal.is_available():
            backends.append("metal")
    except (AttributeError, RuntimeError):
        pass
    try:
        if hasattr(mx, "cuda") and mx.cuda.is_available():
            backends.append("cuda")
    except (AttributeError, RuntimeError):
        pass
    return {"device": str(mx.default_device()), "backends": ", ".join(backends)}


def folder_size(root: Path) -> Tuple[int, int]:
    """(bytes, files) under root, links not followed; (0, 0) for a missing folder."""
    total = files = 0
    for base, _, names in os.walk(root, onerror=lambda e: None):
        for n in names:
            try:
                total += os.lstat(os.path.join(base, n)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def _size(n: int) -> str:
    for unit, k in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k:
            return f"{n / (1 << k):.1f} {unit}"
    return f"{n} B"


def report() -> List[str]:
    """The lines `voiceport info` prints."""
    from impl._cache import cache_root
    from impl.accel.blas import blas_info

    lines = ["versions:"] + [f"  {k:<26} {v}" for k, v in versions()]
    d = device()
    lines += [f"device: {d['device']} (MLX backends: {d['backends']})"]
    try:
        from impl.ops import path as conv_path

        lines.append(f"convolution path: {conv_path()} (VOICEPORT_CONV={os.environ.get('VOICEPORT_CONV') or 'unset'})")
    except ValueError as e:
        lines.append(f"convolution path: {e}")
    b = blas_info()
    lines.append(f"BLAS: {b['blas']}" + (f" at {b['path']}" if b["path"] else "") + f" ({b['reason']})")
    root = cache_root()
    total, files = folder_size(root)
    lines.append(f"cache: {root} ({_size(total)} in {files} files; VOICEPORT_CACHE="
                 f"{os.environ.get('VOICEPORT_CACHE') or 'unset'})")
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
            n, f = folder_size(sub) if sub.is_dir() else (sub.lstat().st_size, 1)
            lines.append(f"  {sub.name:<26} {_size(n)}")
    return lines


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Versions, device, MLX backend, BLAS path, convolution path, and the cache's location and size. "
                     "Environment variables read at start: VOICEPORT_CACHE (cache folder), VOICEPORT_CONV "
                     "(native|gemm), VOICEPORT_BLAS (auto|rename|0|library file), VOICEPORT_KERNEL_WARMUP (0|1).")
    p.add_argument("--json", action="store_true", help="print the same facts as one JSON object")


def facts() -> Dict[str, object]:
    """What `voiceport info --json` prints: versions, device, backends, conv path, BLAS, cache."""
    from impl._cache import cache_root
    from impl.accel.blas import blas_info

    root = cache_root()
    total, files = folder_size(root)
    try:
        from impl.ops import path as conv_path

        conv = conv_path()
    except ValueError as e:
        conv = str(e)
    return {"versions": dict(versions()), **device(), "conv": conv, "blas": blas_info(),
            "cache": {"path": str(root), "bytes": total, "files": files}}


def run(args) -> int:
    if args.json:
        import json

        print(json.dumps(facts(), indent=2))
    else:
        print("\n".join(report()))
    return 0
