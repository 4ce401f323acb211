"""Test doubles and data shared by parity/, tests/ and bench/: the tiny DAC config, the in-repo LibriVox clips.

Tests reach them through fixtures (`librivox`, `tiny_ckpt`), which parity/conftest.py and tests/conftest.py
re-export; a bench, outside pytest's fixtures, calls `load_librivox()`. A missing clip is an error that names the
file, never a skip.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest

# The 24 kHz speech DAC's strides and codebooks (hop 320, 2 x 1024), with tiny widths: fast on 2 cores.
TINY = dict(encoder_dim=8, encoder_rates=[2, 4, 5, 8], latent_dim=16, decoder_dim=16, decoder_rates=[8, 5, 4, 2],
            n_codebooks=2, codebook_size=1024, codebook_dim=8, sample_rate=24000)

# LibriVox, Sense and Sensibility ch. 1, 16 kHz mono (provenance: fixtures/data/README.md)
LIBRIVOX_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "librivox"
LIBRIVOX = ("0870", "0880", "0890")  # 7.1 s; 3.0 s, "he was not an ill disposed young man"; 5.3 s


@dataclass(frozen=True)
class Clip:
    """One clip: the wav path, its transcript, and pocketsphinx's word records {b, d, p, t} without `<sil>`."""

    name: str
    wav: str
    text: str
    words: List[dict]


def load_librivox(folder: Path = LIBRIVOX_DIR) -> Dict[str, Clip]:
    """{name: Clip} for every name in LIBRIVOX; FileNotFoundError naming the first missing file."""
    clips = {}
    for name in LIBRIVOX:
        stem = Path(folder) / f"sense_and_sensibility_01_austen_64kb-{name}"
        for ext in (".wav", ".txt", ".json"):
            if not stem.with_suffix(ext).is_file():
                raise FileNotFoundError(f"test data missing: {stem.with_suffix(ext)} (the LibriVox clips are "
                                        f"committed under fixtures/data/librivox, see fixtures/data/README.md)")
        words = json.loads(stem.with_suffix(".json").read_text())["w"]
        clips[name] = Clip(name, str(stem.with_suffix(".wav")), stem.with_suffix(".txt").read_text().strip(),
                           [r for r in words if r["t"] != "<sil>"])
    return clips


@pytest.fixture(scope="session")
def librivox() -> Dict[str, Clip]:
    """The in-repo LibriVox clips by name (LIBRIVOX); the test fails when one is missing."""
    try:
        return load_librivox()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    """A TINY DAC with the official package's own seeded init, saved by the package (.pth)."""
    from reference import dac as ref

    return str(ref.write_random_init_checkpoint(tmp_path_factory.mktemp("dac") / "tiny.pth", TINY, seed=0))
