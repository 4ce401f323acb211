"""Input and output checks, atomic writes and the one JSON reader: what every command runs before its work.

Inputs. `check_input(path, what)` refuses, by type and before any open, what would hang or mislead a reader: a
FIFO (open() blocks until a writer comes), a character or block device (/dev/null reads as an empty file,
/dev/zero never ends), a socket; and a path the kernel refuses (a name or path too long, a loop of links, a file
used as a folder, no permission). `read_json(path, what)` reads one JSON document within limits (size, nesting
depth, integers that fit int64, finite numbers): deeply nested or huge-integer JSON is one InputError line, never
a RecursionError or OverflowError later.

Outputs. `check_output(path, option, ...)` is what every command runs before its work: the extension, the folder
(exists, writable), the name (not longer than the file system allows), an existing file (replaced only if it is a
regular, writable file) and, given the size, the free space. Policy for links and read-only files (the CLI's help
says the same): an output path that is a symbolic link is followed (its target is replaced, the link is kept); an
existing read-only output (no owner write bit, e.g. 0444) is refused, never replaced.

Atomic writes. `atomic_path(path)` yields a fresh temporary name in the destination's folder for any writer that
takes a file name (soundfile, np.save, safetensors, tokenizers, json); on success the file is renamed onto `path`,
on any error (or signal: the CLI turns SIGTERM into an exception) it is removed and an existing `path` is left
untouched. `atomic_dir(path)` does the same for a folder. A file system error of the writer (no space left, no
permission, a name too long, a read-only file system) becomes one OutputError naming the path. Temporary names
carry the writer's pid (`.voiceport-<pid>-<hex>`): one left by a killed process is removed by the next write into
the same folder (its pid is gone), never one of a live process.

Mode: `tempfile.mkstemp` creates 0o600 files, so a file renamed from it ignores the umask. The temporary file is
created here with `os.open(..., 0o666)`, which the kernel masks with the umask exactly as `open(path, "w")` does;
an existing output keeps its own mode (as `open(path, "w")` keeps it). The mode is set again before the rename (a
writer that recreates the file cannot change it). No `os.umask()` round trip, which would briefly change the umask
of every thread.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import signal
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Tuple, Type, Union

PREFIX = ".voiceport-"  # temporary names: hidden, and recognisable if a killed process leaves one
STALE_SECONDS = 3600  # a temporary name without a pid (older voiceport) is stale after this long
MAX_JSON_BYTES = 256 << 20  # the largest JSON impl reads (a tokenizer.json is ~10 MB, a profile ~100 kB)
MAX_JSON_DEPTH = 64  # nesting levels (a profile has 4, whisper's result 4, an HF config 3)
INT64 = (-(2 ** 63), 2 ** 63 - 1)
INT32 = (-(2 ** 31), 2 ** 31 - 1)  # a model config's integers (sizes, ids, counts)
FREE_MARGIN = 1 << 20  # bytes kept free beyond a known output size

PathLike = Union[str, os.PathLike]


class InputError(ValueError):
    """An input that cannot be read as asked: a special file (FIFO, device, socket), a path the system refuses, a
    JSON document beyond the limits or not valid."""


class OutputError(ValueError):
    """An output path that cannot be written: wrong extension, a directory, a missing or read-only folder, a name
    too long, a read-only or special existing file, too little free space; or a write that failed (disk full)."""


# ------------------------------------------------------------------------------------------------ inputs

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> Optional[str]:
    """"a FIFO (named pipe)", "a character device", ... for a special file's st_mode; None for a file or folder."""
    return next((name for test, name in _KINDS if test(mode)), None)


def os_reason(e: OSError) -> str:
    """An OSError as the system's words, without the path (the caller names it): 'File name too long'."""
    return e.strerror or os.strerror(e.errno) if e.errno else str(e)


def check_input(path: PathLike, what: str, error: Type[ValueError] = InputError) -> Optional[os.stat_result]:
    """The stat of an input path (links followed), or None when nothing is there (the caller says "no such ...").

    Raises `error` (one line naming the path and `what`, e.g. "speaker profile") for an empty path, a special file
    (FIFO, device, socket: refused by type, never opened), a dangling link, and a path the system refuses (name
    or path too long, a loop of links, a file used as a folder, no permission).
    """
    p = os.fspath(path)
    if not p:
        raise error(f"empty path given for the {what}")
    if "\0" in str(p):
        raise error(f"{p!r}: a path with a NUL character")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise error(f"{p}: a symbolic link to {os.readlink(p)}, which does not exist") from None
        return None
    except OSError as e:  # ENAMETOOLONG, ELOOP, ENOTDIR, EACCES
        raise error(f"{_short(p)}: cannot read the {what} ({os_reason(e)})") from None
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise error(f"{p}: is {kind}, not a {what} file (give a regular file)")
    return st


def _short(p: str, limit: int = 120) -> str:
    """A path for a message: very long ones (ENAMETOOLONG) shortened in the middle."""
    return p if len(p) <= limit else f"{p[:50]}...{p[-50:]} ({len(p)} characters)"


def read_bytes(path: PathLike, what: str, limit: int, error: Type[ValueError] = InputError) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. OSError as open() raises it (FileNotFoundError,
    IsADirectoryError, PermissionError: the caller words those); `error` for a special file, a path the system
    refuses to stat, or a file over the limit."""
    st = check_input(path, what, error)
    if st is None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", os.fspath(path))
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
    if st.st_size > limit:
        raise error(f"{path}: the {what} is {st.st_size:,} bytes; the limit is {limit:,}")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while read
        raise error(f"{path}: the {what} is over the limit of {limit:,} bytes")
    return data


# ------------------------------------------------------------------------------------------------ JSON

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class _Refused(ValueError):
    pass


def json_depth(text: Union[str, bytes]) -> int:
    """How deep arrays and objects nest in a JSON text (0 for a scalar); strings are skipped."""
    import numpy as np

    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    b = np.array(bytearray(_STRING.sub(b"", raw)), np.uint8)  # a copy (no view of the bytes object)
    step = np.isin(b, (0x5B, 0x7B)).astype(np.int64) - np.isin(b, (0x5D, 0x7D))
    return int(np.cumsum(step).max(initial=0))


def _int_parser(lo: int, hi: int):
    def parse(s: str) -> int:
        if len(s.lstrip("-")) > 19:  # past int64, and before int() meets Python's 4300-digit limit
            raise _Refused(f"the integer {s[:24]}{'...' if len(s) > 24 else ''} ({len(s.lstrip('-'))} digits) is "
                           f"out of range [{lo}, {hi}]")
        v = int(s)
        if not lo <= v <= hi:
            raise _Refused(f"the integer {s} is out of range [{lo}, {hi}]")
        return v

    return parse


def _parse_float(s: str) -> float:
    v = float(s)
    if v in (float("inf"), float("-inf")):
        raise _Refused(f"the number {s[:24]} is out of range (not a finite float)")
    return v


def _parse_constant(s: str):
    raise _Refused(f"{s} is not a JSON number")


def loads(text: Union[str, bytes], where: str, error: Type[ValueError] = InputError,
          max_depth: int = MAX_JSON_DEPTH, ints: Tuple[int, int] = INT64) -> Any:
    """json.loads within the limits: nesting depth, integers in `ints`, finite numbers; `error` starts with
    `where` (when not empty)."""
    at = f"{where}: " if where else ""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise error(f"{at}not a JSON file (not UTF-8 text: {e.reason} at byte {e.start})") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise error(f"{at}JSON nested {depth} levels deep; the limit is {max_depth}")
    try:
        return json.loads(text, parse_int=_int_parser(*ints), parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except json.JSONDecodeError as e:
        raise error(f"{at}not a JSON file ({e.msg}: line {e.lineno} column {e.colno})") from None
    except _Refused as e:
        raise error(f"{at}{e}") from None
    except (RecursionError, ValueError, OverflowError) as e:  # belt and braces: the limits above cover them
        raise error(f"{at}not a readable JSON file ({reason(e)})") from None


def read_json(path: PathLike, what: str, error: Type[ValueError] = InputError, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH, ints: Tuple[int, int] = INT64) -> Any:
    """One JSON document from a regular file, within the limits (size, depth, integers in `ints`, finite numbers).

    Raises OSError as open() would (FileNotFoundError, IsADirectoryError, PermissionError: the caller words them),
    `error` (one line naming the path) for everything else: a special file (refused before opening), too big, not UTF-8, not JSON, too
    deep, a number out of range.
    """
    return loads(read_bytes(path, what, max_bytes, error), str(path), error, max_depth, ints)


def json_int(value: Any, where: str, lo: int, hi: int, error: Type[ValueError] = InputError) -> int:
    """`value` as an int in [lo, hi] (a JSON bool is not an int), else `error` naming `where`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{where} must be an integer, got {value!r}"[:200])
    if not lo <= value <= hi:
        raise error(f"{where} = {value} is out of range [{lo}, {hi}]")
    return value


def int_option(lo: int, hi: int):
    """An argparse `type=` for an integer option in [lo, hi]: argparse's own one-line error otherwise."""
    import argparse

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{s} is out of range [{lo}, {hi}]")
        return v

    parse.__name__ = "int"
    return parse


SEED_RANGE = (0, 2 ** 64 - 1)  # mx.random.key takes an unsigned 64-bit seed


def check_seed(seed: Any, option: str = "--seed", error: Type[ValueError] = ValueError) -> int:
    """A sampling seed in [0, 2**64 - 1] (what mx.random.key accepts), else one `error` line naming `option`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise error(f"{option} {seed!r}: the seed must be an integer")
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise error(f"{option} {seed}: the seed must be an integer >= 0 and < 2**64")
    return seed


# ------------------------------------------------------------------------------------------------ outputs

def _name_max(folder: str) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _path_max(folder: str) -> int:
    try:
        return os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def free_bytes(folder: PathLike) -> Optional[int]:
    """Bytes an unprivileged writer may still use in `folder`'s file system, or None when unknown."""
    try:
        v = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return v.f_bavail * v.f_frsize


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2 ** 30 else f"{n / 2**30:,.2f} GiB"


def is_read_only(st: os.stat_result) -> bool:
    """No owner write bit: refused as an output even as root (who could replace it)."""
    return not st.st_mode & stat.S_IWUSR


def check_output(path: PathLike, option: str, suffixes: Sequence[str] = (), kind: str = "file",
                 size: Optional[int] = None) -> Path:
    """The output checks every command runs before any work; returns `path` as a Path.

    Refused (OutputError naming `option` and `path`): an extension not in `suffixes` (any when empty; `kind`
    names the file in that message: "unknown audio extension"), a path that is a directory, a file name or path
    longer than the file system allows, a folder that does not exist or that this process cannot write (os.access
    W_OK: the temporary file of atomic_path is created there), an existing output that is read-only (0444) or a
    special file (FIFO, device, socket), and, when `size` (bytes) is known, a file system with less free space.
    A symbolic link is followed: its target is checked here and replaced by atomic_path (the link is kept).
    An existing regular file is fine: it is replaced atomically.
    """
    raw = os.fspath(path)
    out = Path(raw)
    where = f"{option} {_short(raw)}"
    if not raw:
        raise OutputError(f"{option}: empty path")
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(f"{where}: unknown {kind} extension {out.suffix!r} (use {' or '.join(suffixes)})")
    try:
        target = Path(os.path.realpath(raw))  # a link is followed: its target is what gets written
        folder = target.parent
        name_max = _name_max(str(folder)) if folder.is_dir() else 255
        for part in (out.name, target.name):
            if len(os.fsencode(part)) > name_max:
                raise OutputError(f"{where}: the file name is {len(os.fsencode(part))} bytes; this file system "
                                  f"allows {name_max}")
        path_max = _path_max(str(folder)) if folder.is_dir() else 4096
        if len(os.fsencode(str(target))) >= path_max:
            raise OutputError(f"{where}: the path is too long ({len(os.fsencode(str(target)))} bytes; the limit is "
                              f"{path_max})")
        if target.is_dir():
            raise OutputError(f"{where}: is a directory (give a file name inside it)")
        if not folder.is_dir():
            raise OutputError(f"{where}: folder {folder} " + ("is a file, not a folder" if folder.exists() else
                                                              "does not exist"))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{where}: folder {folder} is not writable")
        if os.path.lexists(target):
            st = os.stat(target)
            special = file_kind(st.st_mode)
            if special is not None:
                raise OutputError(f"{where}: is {special}, not a regular file: not replaced")
            if is_read_only(st):
                raise OutputError(f"{where}: the existing file is read-only (mode {stat.S_IMODE(st.st_mode):04o}): "
                                  "not replaced (make it writable, or choose another name)")
    except OSError as e:  # a name too long, a loop of links, a file used as a folder
        raise OutputError(f"{where}: cannot write here ({os_reason(e)})") from None
    if size is not None:
        free = free_bytes(folder)
        if free is not None and free < size + FREE_MARGIN:
            raise OutputError(f"{where}: needs about {_mib(size)}; {folder} has {_mib(free)} free")
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


# ------------------------------------------------------------------------------------------------ atomic writes

# errno of a write that failed for the place, not the data: reported as one line naming the path
WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system", errno.ENAMETOOLONG: "file name too long",
                errno.EFBIG: "file too large for this file system", errno.EIO: "input/output error"}


def write_problem(e: BaseException, folder: PathLike) -> Optional[str]:
    """Why a writer failed, when the cause is the place it wrote to: an OSError of WRITE_ERRNOS anywhere in the
    exception's chain, or (libraries that hide errno: libsndfile says "System error.") a file system left with
    under 1 MiB free. None otherwise."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
            return WRITE_ERRNOS[e.errno]
        e = e.__cause__ or e.__context__
    free = free_bytes(folder)
    if free is not None and free < FREE_MARGIN:
        return f"no space left on device ({_mib(free)} free)"
    return None


def _fresh_name(folder: Path, suffix: str) -> Path:
    return folder / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (alive), or not a pid: keep it
    return True


def is_stale(name: str, mtime: float, now: Optional[float] = None) -> bool:
    """A temporary name (PREFIX...) left by a process that is gone: `.voiceport-<pid>-<hex>` whose pid is not
    running; an older `.voiceport-<hex>` name after STALE_SECONDS."""
    if not name.startswith(PREFIX):
        return False
    head = name[len(PREFIX):].split("-", 1)
    if len(head) == 2 and head[0].isdigit():
        return head[0] != str(os.getpid()) and not _pid_alive(int(head[0]))
    return (now if now is not None else time.time()) - mtime > STALE_SECONDS


def sweep_stale(folder: PathLike) -> int:
    """Remove the temporary files and folders that killed voiceport processes left in `folder`; returns how many.
    Never raises (a folder that cannot be listed or an entry that cannot be removed is left)."""
    n = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            if is_stale(entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
                _remove(Path(entry.path))
                n += 1
        except OSError:
            continue
    return n


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM held back while a temporary file is removed (a second Ctrl-C would leave it); main thread."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _place_error(path: Path, e: OSError) -> OutputError:
    return OutputError(f"{_short(str(path))}: cannot write ({WRITE_ERRNOS.get(e.errno) or os_reason(e)})")


@contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """`with atomic_path(out) as tmp: writer(tmp)`: tmp sits in out's folder and keeps out's suffix (np.save and
    mx.save_safetensors append theirs otherwise); renamed onto out when the block ends, with the mode of the file
    it replaces, or 0o666 & ~umask for a new one.

    A symbolic link `out` is followed (its target is replaced; the link is kept). Raises OutputError, before the
    block runs, for a read-only or special existing file and a folder where the temporary file cannot be made;
    after, for a writer that failed for lack of space or permission (the temporary file removed, `out` as it was).
    """
    path = Path(os.path.realpath(os.fspath(path)))  # follow a link: write its target
    folder = path.parent
    mode = None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _place_error(path, e) from None
    if st is not None:
        kind = file_kind(st.st_mode)
        if kind is not None or stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{path}: is {kind or 'a directory'}, not a regular file: not replaced")
        if is_read_only(st):
            raise OutputError(f"{path}: the existing file is read-only (mode {stat.S_IMODE(st.st_mode):04o}): "
                              "not replaced")
        mode = stat.S_IMODE(st.st_mode)
    sweep_stale(folder)
    while True:
        tmp = _fresh_name(folder, path.suffix)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies here
            break
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise
        except OSError as e:
            raise _place_error(path, e) from None
    try:
        if mode is None:
            mode = stat.S_IMODE(os.stat(tmp).st_mode)
        yield str(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        problem = write_problem(e, folder) if isinstance(e, Exception) else None  # before the space is freed
        with _signals_held():
            _remove(tmp)
        if problem is not None and not isinstance(e, OutputError):
            raise OutputError(f"{_short(str(path))}: cannot write ({problem})") from e
        raise


@contextmanager
def atomic_dir(path: PathLike, replace: bool = False) -> Iterator[Path]:
    """`with atomic_dir(dest) as tmp: write files into tmp`: a new folder beside dest, renamed onto dest at the end.

    If dest exists by then: `replace=True` removes it first; `replace=False` keeps it (another process wrote the
    same cached artefact first) and drops ours. On any error or signal the temporary folder is removed; a writer
    that failed for lack of space or permission raises OutputError naming dest.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _place_error(path, e) from None
    sweep_stale(path.parent)
    while True:
        tmp = _fresh_name(path.parent.resolve(), "")
        try:
            tmp.mkdir()  # 0o777 & ~umask, as os.makedirs gives; tempfile.mkdtemp would give 0o700
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise _place_error(path, e) from None
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
    except BaseException as e:
        problem = write_problem(e, path.parent) if isinstance(e, Exception) else None
        with _signals_held():
            _remove(tmp)
        if problem is not None and not isinstance(e, OutputError):
            raise OutputError(f"{_short(str(path))}: cannot write ({problem})") from e
        raise


# ------------------------------------------------------------------------------------------------ signals

class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) as an exception: unwinds like Ctrl-C, so every atomic write removes its temporary file."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated while the block runs (SIGINT already raises KeyboardInterrupt), so a
    killed command cleans its temporary files as an interrupted one does. Main thread only; elsewhere a no-op."""
    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    try:
        for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if s is not None:
                old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
