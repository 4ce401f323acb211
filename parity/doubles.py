"""Test doubles and data shared by parity/, tests/ and bench/: the tiny DAC config, the in-repo LibriVox clips.

Tests reach them through fixtures (`librivox`, `tiny_ckpt`), which parity/conftest.py and tests/conftest.py
re-export; a bench, outside pytest's fixtures, calls `load_librivox()`. A missing clip is an error that names the
file, never a skip.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

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


# ------------------------------------------------------------------------------------- bad-input catalogues
# Shared by tests/test_bad_inputs.py and tests/test_spark_cli.py: a case builds its inputs in its own folder, runs
# the real entry point, and the folder must be unchanged afterwards (an earlier output kept byte for byte).

OLD = b"an earlier output: must survive a failed run\n"
OLD_MTIME = 1_600_000_000  # an old mtime: a rewrite of the existing output would change it


@dataclass
class CaseFolder:
    """A case builder's own empty folder (`d`) and pytest's monkeypatch; catalogues add their shared inputs."""

    d: Path
    monkeypatch: pytest.MonkeyPatch

    def file(self, name: str, data=b"") -> str:
        p = self.d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(p)

    def folder(self, name: str) -> str:
        (self.d / name).mkdir()
        return str(self.d / name)

    def cut(self, src: Path, name: str, keep: float = 0.5) -> str:
        """The first `keep` of `src`'s bytes (a truncated download)."""
        b = Path(src).read_bytes()
        return self.file(name, b[: int(len(b) * keep)])

    def read_only(self, name: str) -> str:
        """A folder the output checks must find not writable. Tests may run as root, where chmod does not stop a
        write, so `os.access(folder, W_OK)` is answered False for this folder by a monkeypatch; the folder is
        really writable, so a command that skipped the check would write into it and the snapshot would differ."""
        folder = self.d / name
        folder.mkdir()
        real = os.access

        def access(path, mode, *a, **k):
            if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
                return False
            return real(path, mode, *a, **k)

        self.monkeypatch.setattr(os, "access", access)
        return str(folder)


def write_tiny_outetts(d: Path) -> Path:
    """A tiny seeded OuteTTS model folder `d/model`, a tiny DAC `d/dac.safetensors` and a synthetic speaker profile
    `d/speaker.json` (the CLI and API tests' inputs); returns d."""
    import json

    from impl.seeded.dac import write_seeded_safetensors
    from impl.seeded.outetts import TINY_LM_CONFIG, write_model_dir
    from impl.seeded.speaker import synthetic_speaker

    write_model_dir(d / "model", TINY_LM_CONFIG)
    write_seeded_safetensors(d / "dac.safetensors", TINY, seed=0)
    (d / "speaker.json").write_text(json.dumps(synthetic_speaker()))
    return d


def keep_earlier_output(out) -> None:
    """Put an earlier output (OLD, mtime OLD_MTIME) where a case's command would write, if its folder exists."""
    if out is not None and Path(out).parent.is_dir() and not Path(out).exists():
        Path(out).write_bytes(OLD)
        os.utime(out, (OLD_MTIME, OLD_MTIME))


def snapshot(folder: Path) -> dict:
    """Every entry under `folder`: path -> (kind, bytes, mtime_ns) (folders: kind only)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = ("dir",)
        for name in files:
            p = os.path.join(root, name)
            data = Path(p).read_bytes()  # io.open: untouched by a case's patch of builtins.open
            out[os.path.relpath(p, folder)] = ("file", data, os.stat(p).st_mtime_ns)
    return out


def run_cli(argv: List[str], capsys) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr) of `impl.cli.main(argv)`; argparse's SystemExit gives its code."""
    from impl.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str, where: str, progress: int = 0) -> str:
    """The one `<where>: error: ...` line that ends `err`, after exactly `progress` "[i/n]" progress lines; no
    traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 + progress, f"{len(lines)} lines on stderr, expected {1 + progress}:\n{err}"
    assert all(line.startswith("[") for line in lines[:-1]), err
    assert lines[-1].startswith(f"{where}: error: "), lines[-1]
    return lines[-1]


def assert_refused(argv: List[str], out, d: Path, capsys, where: str, frags, progress: int = 0) -> None:
    """Run `argv` through the CLI with an earlier output at `out`: exit 2, one error line holding every fragment,
    and the case folder `d` unchanged (nothing written, nothing left)."""
    keep_earlier_output(out)
    before = snapshot(d)
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2, err
    line = error_line(err, where, progress)
    for frag in frags:
        assert frag in line, f"{frag!r} not in {line!r}"
    assert snapshot(d) == before, "the failed run changed its folder (an output, a temporary file left)"
