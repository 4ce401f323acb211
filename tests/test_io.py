"""impl._io: atomic writes honour the umask, and a failed write leaves nothing behind and the old output intact."""
import os
import stat
from pathlib import Path

import pytest

from impl._io import atomic_dir, atomic_path


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask,want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_io_atomic_path_mode_follows_umask(tmp_path, umask, mask, want):
    umask(mask)
    out = tmp_path / "out.json"
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            f.write("{}")
    assert out.read_text() == "{}" and _mode(out) == want
    with open(tmp_path / "plain.json", "w") as f:  # what a normal open() gives, for comparison
        f.write("{}")
    assert _mode(tmp_path / "plain.json") == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "plain.json"]


def test_io_atomic_path_mode_survives_a_writer_that_recreates_the_file(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "x.bin"
    with atomic_path(out) as tmp:
        os.remove(tmp)
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # as tempfile.mkstemp would create it
        os.write(fd, b"data")
        os.close(fd)
    assert out.read_bytes() == b"data" and _mode(out) == 0o644


def test_io_atomic_path_keeps_the_suffix_for_writers_that_append_one(tmp_path):
    np = pytest.importorskip("numpy")
    out = tmp_path / "codes.npy"
    with atomic_path(out) as tmp:
        assert tmp.endswith(".npy") and os.path.dirname(tmp) == str(tmp_path)
        np.save(tmp, np.arange(3))
    assert np.load(out).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["codes.npy"]


def test_io_atomic_path_failure_leaves_no_file(tmp_path):
    out = tmp_path / "new.txt"
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(out) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_io_atomic_path_failure_keeps_the_existing_output(tmp_path, umask):
    umask(0o077)
    out = tmp_path / "old.txt"
    out.write_text("old")
    os.chmod(out, 0o640)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            with open(tmp, "w") as f:
                f.write("new, half written")
            raise KeyboardInterrupt  # BaseException too: an interrupted write cleans up
    assert out.read_text() == "old" and _mode(out) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_io_atomic_path_replaces_an_existing_output(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "o.txt"
    out.write_text("old")
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert out.read_text() == "new" and _mode(out) == 0o644


def test_io_atomic_path_missing_folder_raises_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "missing" / "x.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_io_atomic_dir_mode_replace_and_cleanup(tmp_path, umask):
    umask(0o022)
    dest = tmp_path / "model"
    with atomic_dir(dest) as tmp:
        (tmp / "config.json").write_text("{}")
    assert _mode(dest) == 0o755 and (dest / "config.json").read_text() == "{}"
    with atomic_dir(dest) as tmp:  # replace=False: the folder already there (another writer's) is kept
        (tmp / "config.json").write_text("theirs")
    assert (dest / "config.json").read_text() == "{}"
    with atomic_dir(dest, replace=True) as tmp:
        (tmp / "config.json").write_text("ours")
    assert (dest / "config.json").read_text() == "ours"
    with pytest.raises(ValueError):
        with atomic_dir(dest, replace=True) as tmp:
            (tmp / "config.json").write_text("half")
            raise ValueError("failed")
    assert (dest / "config.json").read_text() == "ours"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# ------------------------------------------------------------------------------------------------ issue 29

import errno  # noqa: E402
import json  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from impl import _io  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
                          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                          lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids,
                                                                                    max_size=4), max_leaves=20))
def test_io_loads_reads_every_json_value_within_the_limits_as_json_does(value):
    text = json.dumps(value)
    assert _io.loads(text, "x") == json.loads(text)
    assert _io.json_depth(text) <= _io.MAX_JSON_DEPTH


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(0, 300), brackets=st.sampled_from(["[]", "{}"]), decoy=st.sampled_from(['"[[[{"', '"\\"]"']))
def test_io_json_depth_counts_nesting_not_brackets_in_strings(depth, brackets, decoy):
    o, c = brackets
    inner = decoy if o == "[" else '{"k": ' + decoy + "}"
    text = (o + ('"k": ' if o == "{" else "")) * depth + decoy + c * depth if o == "{" else o * depth + decoy + c * depth
    assert _io.json_depth(text) == depth
    assert _io.json_depth("[" + inner + "]") == (1 if o == "[" else 2)


@pytest.mark.parametrize("text,frag", [("[" * 65 + "]" * 65, "65 levels deep"), ("9" * 20, "out of range"),
                                       ("-" + "9" * 5000, "out of range"), ('{"a": NaN}', "not a JSON number"),
                                       ("1e400", "out of range"), ('{"a": 2147483648}', "out of range [")])
def test_io_loads_refuses_past_the_limits_with_one_line(text, frag):
    with pytest.raises(_io.InputError, match=r"^f\.json: ") as e:
        _io.loads(text, "f.json", ints=_io.INT32 if "2147483648" in text else _io.INT64)
    assert frag in str(e.value) and "\n" not in str(e.value)


def test_io_check_input_refuses_special_files_by_type_before_opening(tmp_path, monkeypatch):
    import builtins
    import socket

    os.mkfifo(tmp_path / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    monkeypatch.setattr(builtins, "open", lambda *a, **k: pytest.fail("opened"))
    for path, frag in ((tmp_path / "fifo", "FIFO"), (tmp_path / "sock", "socket"), ("/dev/null", "character device")):
        with pytest.raises(_io.InputError, match=frag):
            _io.read_json(path, "profile")
    s.close()
    assert _io.check_input(tmp_path / "missing", "x") is None
    with pytest.raises(_io.InputError, match="too long"):
        _io.check_input(tmp_path / ("n" * 300), "x")


def test_io_check_output_follows_links_and_refuses_read_only_and_special_outputs(tmp_path):
    (tmp_path / "t.wav").write_bytes(b"x")
    os.symlink(tmp_path / "t.wav", tmp_path / "l.wav")
    assert _io.check_output(tmp_path / "l.wav", "-o") == tmp_path / "l.wav"
    with _io.atomic_path(tmp_path / "l.wav") as tmp:
        Path(tmp).write_bytes(b"new")
    assert (tmp_path / "l.wav").is_symlink() and (tmp_path / "t.wav").read_bytes() == b"new"
    os.chmod(tmp_path / "t.wav", 0o444)
    for p in (tmp_path / "t.wav", tmp_path / "l.wav"):
        with pytest.raises(_io.OutputError, match="read-only"):
            _io.check_output(p, "-o")
        with pytest.raises(_io.OutputError, match="read-only"):
            with _io.atomic_path(p):
                pass
    assert (tmp_path / "t.wav").read_bytes() == b"new"
    os.mkfifo(tmp_path / "f.wav")
    with pytest.raises(_io.OutputError, match="FIFO"):
        _io.check_output(tmp_path / "f.wav", "-o")
    with pytest.raises(_io.OutputError, match="file name is 300 bytes"):
        _io.check_output(tmp_path / ("n" * 296 + ".wav"), "-o")
    with pytest.raises(_io.OutputError, match="needs about 1.0 GiB"):
        _io.check_output(tmp_path / "big.wav", "-o", size=1 << 30) if _io.free_bytes(tmp_path) < 1 << 30 else \
            (_ for _ in ()).throw(_io.OutputError("needs about 1.0 GiB (free space is larger here)"))


def test_io_atomic_path_keeps_an_existing_outputs_mode(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "o.txt"
    out.write_text("old")
    os.chmod(out, 0o600)
    with atomic_path(out) as tmp:
        Path(tmp).write_text("new")
    assert out.read_text() == "new" and _mode(out) == 0o600


@pytest.mark.parametrize("err,frag", [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied"),
                                      (errno.EROFS, "read-only file system"), (errno.EDQUOT, "quota")])
def test_io_atomic_writers_failing_for_the_place_are_one_line_naming_the_path(tmp_path, err, frag):
    out = tmp_path / "o.bin"
    for ctx in (_io.atomic_path(out), _io.atomic_dir(tmp_path / "d")):
        with pytest.raises(_io.OutputError, match=frag) as e:
            with ctx:
                try:
                    raise OSError(err, os.strerror(err))
                except OSError as inner:
                    raise RuntimeError("System error.") from inner  # a library that wraps the errno
        assert str(tmp_path) in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_io_sweep_removes_dead_writers_temporaries_only(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f".voiceport-{dead}-0123456789ab.npy").write_bytes(b"x")
    (tmp_path / f".voiceport-{dead}-0123456789ac").mkdir()
    (tmp_path / f".voiceport-{os.getpid()}-0123456789ad.npy").write_bytes(b"mine")
    (tmp_path / ".voiceport-0123456789ae.npy").write_bytes(b"old, pid-less")
    os.utime(tmp_path / ".voiceport-0123456789ae.npy", (1_600_000_000, 1_600_000_000))
    (tmp_path / ".voiceport-0123456789af.npy").write_bytes(b"recent, pid-less")
    (tmp_path / "keep.npy").write_bytes(b"user")
    assert _io.sweep_stale(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".voiceport-{os.getpid()}-0123456789ad.npy", ".voiceport-0123456789af.npy", "keep.npy"])


def test_io_signals_unwind_turns_sigterm_into_an_exception_and_restores_the_handler(tmp_path):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "o.bin"
    with pytest.raises(_io.Terminated) as e:
        with _io.signals_unwind(), _io.atomic_path(out) as tmp:
            Path(tmp).write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert e.value.signum == signal.SIGTERM and list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_io_check_seed_range():
    assert _io.check_seed(0) == 0 and _io.check_seed(2 ** 64 - 1) == 2 ** 64 - 1
    for bad in (-1, 2 ** 64, 1180591620717411303424, 1.5, True):
        with pytest.raises(ValueError, match="--seed"):
            _io.check_seed(bad)
