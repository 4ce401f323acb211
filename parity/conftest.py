"""parity/ fixtures: the in-repo LibriVox clips and a tiny official DAC checkpoint (defined in parity/doubles.py,
shared with tests/conftest.py)."""
from parity.doubles import librivox, tiny_ckpt  # noqa: F401
