"""Where voiceport keeps what it generates once and reuses (seeded checkpoints, the BLAS binding, CUDA kernels)."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

ENV = "VOICEPORT_CACHE"


class CacheError(ValueError):
    """$VOICEPORT_CACHE (or the default cache folder) cannot hold the cache: a file, a device, not writable."""


def cache_root() -> Path:
    """$VOICEPORT_CACHE, or ~/.cache/voiceport when it is unset or empty."""
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "voiceport")


def check_cache(root: Optional[Path] = None) -> Path:
    """The cache folder, checked once at start: an existing folder this process can write, or a path whose nearest
    existing parent is one (the folder is created when first needed). CacheError (one line naming
    $VOICEPORT_CACHE, or the default folder) otherwise: a file, /dev/null, a read-only folder or file system."""
    from impl._io import file_kind, os_reason

    raw = os.environ.get(ENV)
    root = Path(root) if root is not None else cache_root()
    where = f"{ENV}={raw}" if raw else f"the cache folder {root}"
    fix = f" (set {ENV} to a writable folder)"
    probe = root
    try:
        while not os.path.lexists(probe) and probe.parent != probe:
            probe = probe.parent
        st = os.stat(probe)
    except OSError as e:  # a loop of links, a name too long, a dangling link
        raise CacheError(f"{where}: unusable ({os_reason(e)}){fix}") from None
    what = "" if probe == root else f"its parent {probe} "
    if not stat.S_ISDIR(st.st_mode):
        kind = file_kind(st.st_mode) or "a file"
        raise CacheError(f"{where}: {what}is {kind}, not a folder{fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CacheError(f"{where}: {what}is not writable{fix}")
    return root
