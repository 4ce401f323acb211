"""Where voiceport keeps what it generates once and reuses (seeded checkpoints, the BLAS binding)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$VOICEPORT_CACHE, or ~/.cache/voiceport when it is unset or empty."""
    return Path(os.environ.get("VOICEPORT_CACHE") or Path.home() / ".cache" / "voiceport")
