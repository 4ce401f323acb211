"""Atomic writes: every file and folder impl writes appears whole or not at all, with the mode open() would give.

`atomic_path(path)` yields a fresh temporary name in the destination's folder for any writer that takes a file
name (soundfile, np.save, safetensors, tokenizers, json); on success the file is renamed onto `path`, on any
error it is removed and an existing `path` is left untouched. `atomic_dir(path)` does the same for a folder.

Mode: `tempfile.mkstemp` creates 0o600 files, so a file renamed from it ignores the umask. The temporary file is
created here with `os.open(..., 0o666)`, which the kernel masks with the umask exactly as `open(path, "w")` does;
that mode is read back right away and set again before the rename (a writer that recreates the file cannot change
it). No `os.umask()` round trip, which would briefly change the umask of every thread.
"""
from __future__ import annotations

import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PREFIX = ".voiceport-"  # temporary names: hidden, and recognisable if a killed process leaves one


def _fresh_name(folder: Path, suffix: str) -> Path:
    return folder / f"{PREFIX}{secrets.token_hex(6)}{suffix}"


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


@contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[str]:
    """`with atomic_path(out) as tmp: writer(tmp)`: tmp sits in out's folder and keeps out's suffix (np.save and
    mx.save_safetensors append theirs otherwise); renamed onto out with mode 0o666 & ~umask when the block ends."""
    path = Path(path)
    folder = path.parent.resolve()
    while True:
        tmp = _fresh_name(folder, path.suffix)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies here
            break
        except FileExistsError:
            continue
    try:
        mode = stat.S_IMODE(os.stat(tmp).st_mode)
        yield str(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_dir(path: Union[str, os.PathLike], replace: bool = False) -> Iterator[Path]:
    """`with atomic_dir(dest) as tmp: write files into tmp`: a new folder beside dest, renamed onto dest at the end.

    If dest exists by then: `replace=True` removes it first; `replace=False` keeps it (another process wrote the
    same cached artefact first) and drops ours. On any error the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _fresh_name(path.parent.resolve(), "")
        try:
            tmp.mkdir()  # 0o777 & ~umask, as os.makedirs gives; tempfile.mkdtemp would give 0o700
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        if replace and path.exists():
            _remove(path)
        try:
            os.replace(tmp, path)
        except OSError:
            if replace or not path.is_dir():
                raise
            _remove(tmp)  # another writer won the race: keep theirs
    except BaseException:
        _remove(tmp)
        raise
