"""Speaker-profile features compared before rounding: impl.speaker.features.feature_values x 100 against outetts'
values x 100 (what `round` turns into a bucket, recorded by reference.speaker.raw_features), within k x the fp32
floor measured beside them: outetts on the float32 input (what it runs) against outetts on the same samples in
float64. A bucket comparison sees a raw error only when it moves a value across k + 0.5; these see any error
above the floor (energy and centroid: ~1e-7 relative; pitch: ~1e-4, the parabolic peak interpolation divides by
alpha - 2 beta + gamma, which amplifies last-bit autocorrelation differences)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.speaker import features as F
from parity import strategies
from parity.doubles import LIBRIVOX
from parity.specs.speaker import reference_words
from reference import speaker as ref

K = 10.0  # x the fp32 floor: both sides are fp32 roundings of one formula
EPS32 = float(np.finfo(np.float32).eps)


def raw_triple(x: np.ndarray, sr: int):
    """(impl, outetts fp32, outetts fp64) values x 100 per feature, for (1, L) float32 audio."""
    got = {k: v * 100 for k, v in F.feature_values(x, sr).items()}
    return got, ref.raw_features(x, sr), ref.raw_features(x.astype(np.float64), sr)


# pitch: outetts' own fp32 error on one value can be ~0 by luck while a last-bit difference elsewhere moves the
# parabolic peak interpolation (it divides by alpha - 2 beta + gamma): the pitch floor is at least 2e-5 relative
# (outetts' fp32-vs-fp64 pitch error reaches 1.2e-4 on LibriVox slices; impl-vs-fp64 1.8e-5 on a flat peak)
PITCH_REL = 2e-5


def floor_of(w32: float, w64: float, key: str = "") -> float:
    """The fp32 floor of one value: outetts' own fp32 error, at least 4 ulp of the value (pitch: PITCH_REL)."""
    return max(abs(w32 - w64), (PITCH_REL if key == "pitch" else 4 * EPS32) * abs(w64))


def assert_raw_within_floor(got, w32, w64, what: str, floors=None) -> None:
    for k in F.FEATURE_NAMES:
        floor = floors[k] if floors is not None else floor_of(w32[k], w64[k], k)
        err = abs(got[k] - w64[k])
        assert err <= K * floor, (f"{what} {k}: impl {got[k]!r} vs outetts {w32[k]!r} (fp64 {w64[k]!r}): "
                                  f"|impl - fp64| {err:.3g} > {K:g} x floor {floor:.3g}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=strategies.audio(sr=24000, min_samples=400, max_samples=24000, kinds=("silence", "tone", "noise", "dc",
                                                                             "clipped")),
       sr=st.sampled_from([24000, 16000]))
def test_speaker_features_raw_values_within_floor(x, sr):
    """energy / centroid / pitch x 100 before rounding, on the shared strategies' audio (silence, level steps,
    clipping, DC): within K x the per-value fp32 floor. Pitch is compared where outetts' fp32 and fp64 make the
    same voicing decisions (its mean moves by a whole frame's pitch otherwise: a decision at fp32 noise)."""
    x = x[None]
    got, w32, w64 = raw_triple(x, sr)
    if _voicing_flips(x[0], sr):
        got, w32, w64 = ({k: d[k] for k in ("energy", "spectral_centroid")} for d in (got, w32, w64))
        for k in got:
            assert abs(got[k] - w64[k]) <= K * floor_of(w32[k], w64[k]), k
        return
    assert_raw_within_floor(got, w32, w64, f"L={x.shape[1]} sr={sr}")


def _voicing_flips(x: np.ndarray, sr: int) -> bool:
    """True when outetts' pitch tracker votes differently in fp32 and fp64 on some frame (a tie at fp32 noise)."""
    import torch
    from outetts.version.v3.audio_processor import calculate_pitch

    if x.shape[0] < 400:
        return False
    a = calculate_pitch(torch.from_numpy(np.ascontiguousarray(x)), sr).numpy()
    b = calculate_pitch(torch.from_numpy(np.ascontiguousarray(x, np.float64)), sr).numpy()
    return not np.array_equal((a > 75) & (a < 600), (b > 75) & (b < 600))


@pytest.mark.parametrize("name", LIBRIVOX)
def test_speaker_features_raw_values_per_word_librivox(name, librivox):
    """Every word of a LibriVox clip (pocketsphinx times, the profile's slices) and the whole clip: impl x 100
    before rounding within K x the clip's fp32 floor per feature (the largest |fp32 - fp64| of outetts over its
    words, at least 4 ulp): a raw error of 2e-5 relative on energy or centroid fails here, while it would flip a
    bucket only rarely."""
    from impl.audio import resample

    x, sr = sf.read(librivox[name].wav, dtype="float32")
    x, sr = resample(x, sr, 24000), 24000  # as the profile measures: the 24 kHz un-normalised audio
    slices = [x] + [x[int(w["start"] * sr): int(w["end"] * sr)] for w in reference_words(librivox[name])]
    slices = [s for s in slices if s.shape[0] >= 400]
    triples = [raw_triple(s[None], sr) for s in slices]
    floors = {k: max(floor_of(w32[k], w64[k], k) for _, w32, w64 in triples) for k in F.FEATURE_NAMES}
    for i, (got, w32, w64) in enumerate(triples):
        assert_raw_within_floor(got, w32, w64, f"{name} slice {i}", floors)
    rel = {k: floors[k] / max(abs(t[2][k]) for t in triples) for k in F.FEATURE_NAMES}
    assert rel["energy"] < 2e-6 and rel["spectral_centroid"] < 2e-6, rel  # the floor is fp32's, not a bug's


def test_speaker_features_raw_catches_a_small_relative_error():
    """The comparison can fail: a 2e-5 relative error on energy (x 100 ~ 10: a bucket moves only if the value sits
    within 2e-4 of k + 0.5) exceeds K x the floor."""
    x = strategies.segment("tone", 12000, -6, 24000, 3).astype(np.float32)[None]
    got, w32, w64 = raw_triple(x, 24000)
    got["energy"] *= 1 + 2e-5
    with pytest.raises(AssertionError, match="energy"):
        assert_raw_within_floor(got, w32, w64, "perturbed")
