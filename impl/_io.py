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
from typing import Iterator, Sequence, Union

PREFIX = ".voiceport-"  # temporary names: hidden, and recognisable if a killed process leaves one


class OutputError(ValueError):
    """An output path that cannot be written: wrong extension, a directory, a missing or read-only folder."""


def check_output(path: Union[str, os.PathLike], option: str, suffixes: Sequence[str] = (), kind: str = "file"
                 ) -> Path:
    """The output checks every command runs before any work; returns `path` as a Path.

    Refused (OutputError naming `option` and `path`): an extension not in `suffixes` (any when empty; `kind`
    names the file in that message: "unknown audio extension"), a path
    that is a directory, a folder that does not exist or that this process cannot write (os.access W_OK: the
    temporary file of atomic_path is created there). An existing file is fine: it is replaced atomically.
    """
    out = Path(path)
    where = f"{option} {os.fspath(path)}"
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(f"{where}: unknown {kind} extension {out.suffix!r} (use {' or '.join(suffixes)})")
    if out.is_dir():
        raise OutputError(f"{where}: is a directory (give a file name inside it)")
    folder = out.parent.resolve()
    if not folder.is_dir():
        raise OutputError(f"{where}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: folder {folder} is not writable")
    return out


def reason(e: BaseException, limit: int = 160) -> str:
    """A library's exception as one short line for an error message: its type and the first line of its text, cut
    at the first sentence when longer than `limit` (torch's zip reader appends a paragraph of advice)."""
    lines = str(e).strip().splitlines()
    msg = lines[0].strip() if lines else ""
    if len(msg) > limit:
        end = msg.find(". ")
        msg = msg[:end] if 0 < end < limit else msg[: limit - 3].rstrip() + "..."
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


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
