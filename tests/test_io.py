"""impl._io: atomic writes honour the umask, and a failed write leaves nothing behind and the old output intact."""
import os
import stat

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
