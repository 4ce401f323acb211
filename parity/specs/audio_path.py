"""Contract: outetts' audio path numerics. Resampling: impl.audio.resample vs `torchaudio.transforms.Resample`
(what outetts' convert_audio_tensor runs; fp32) with `torchaudio.functional.resample` on float64 input as the
truth; loudness: impl.audio.loudness_normalize vs outetts' `process_audio_tensor` (pyloudnorm, -18 LUFS, -1 dB
peak) on float32 input, the same on float64 input as the truth. Lengths exact, values within the fp32 floor; on
signals that reach both BS.1770 gates (digital silence and a level step) the measured integrated loudness itself is
compared too, exactly (pyloudnorm's float64 operations in its order)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.contracts import Case, Contract, Section, floor_case, floor_ref, section
from parity.doubles import LIBRIVOX
from parity.spec import FLOOR_WHY

RESAMPLE = [(16000, 24000, 9001, 1), (44100, 24000, 12000, 2), (48000, 24000, 4801, 1), (8000, 24000, 777, 1),
            (22050, 24000, 5000, 2), (24000, 16000, 6000, 1), (8050, 24000, 3001, 1), (11025, 48000, 1500, 2),
            (32000, 24000, 1, 1), (44100, 24000, 240854, 1)]  # the last: torchaudio's float32 ceil (131077)


def _resample_input(orig: int, n: int, channels: int, seed: int) -> np.ndarray:
    x = np.random.default_rng([orig, n, seed]).uniform(-1, 1, (channels, n)).astype(np.float32)
    return x[0] if channels == 1 else x


def _signals() -> Dict[str, np.ndarray]:
    """24 kHz signals for loudness: real speech (the committed 24 kHz clip) and edge cases."""
    from parity.specs.dac import speech

    rng = np.random.default_rng(0)
    t = np.arange(48000, dtype=np.float32) / 24000
    spiky = (0.01 * rng.standard_normal(24000)).astype(np.float32)
    spiky[12000] = 0.5
    return {
        "speech 3 s": speech(24000, 72000, 0.0), "speech 1.5 s": speech(24000, 36000, 3.0),
        "noise": (0.05 * rng.standard_normal(30000)).astype(np.float32),
        "short (< one 400 ms block)": (0.5 * rng.standard_normal(3000)).astype(np.float32),
        "loud sine": (0.99 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "spiky (-1 dB peak limit)": spiky,
        "quiet burst": np.concatenate([np.zeros(20000, np.float32), (1e-3 * rng.standard_normal(5000))
                                       .astype(np.float32)]),
    }


def _gated() -> Dict[str, np.ndarray]:
    """24 kHz float32 signals whose 400 ms blocks meet both BS.1770 gates: digital silence (below the -70 LUFS
    absolute gate) with a level step whose quieter part lies near the -10 LU relative gate, so the relative
    threshold is computed from the absolutely-gated blocks and then decides blocks (parity.strategies.gates_reached
    checks each). Their integrated loudness is compared as a value: the -1 dB peak limiter after normalisation can
    hide it in the output."""
    from parity import strategies as S
    from parity.specs.dac import speech

    sr = 24000
    quiet_speech = speech(sr, sr, 1.0)
    quiet_speech = quiet_speech / np.max(np.abs(quiet_speech)) * 10 ** (-18 / 20)
    return {
        "noise -6 dB, noise -16 dB, 1 s silence": np.concatenate(
            [S.segment("noise", sr, -6, sr, 1), S.segment("noise", sr, -16, sr, 2), np.zeros(sr)]),
        "1 s silence, speech, speech at -18 dB peak": np.concatenate(
            [np.zeros(sr), speech(sr, sr, 0.0), quiet_speech]),
        "tone -3 dB, 0.5 s silence, tone -14 dB, 0.5 s silence": np.concatenate(
            [S.segment("tone", sr, -3, sr, 3), np.zeros(sr // 2), S.segment("tone", sr, -14, sr, 4), np.zeros(sr // 2)]),
    }


def gated_signals(check: bool = False) -> Dict[str, np.ndarray]:
    """`_gated` as float32; with `check`, each one checked to reach both gates (when recording, and in
    parity/test_audio.py: the check uses scipy, which the torch-free replay need not load)."""
    out = {name: np.asarray(x, np.float32) for name, x in _gated().items()}
    if check:
        from parity.strategies import gates_reached

        for name, x in out.items():
            below, near = gates_reached(x, 24000)
            if not (below > 0 and near > 0):
                raise AssertionError(f"audio-path signal {name!r} misses a gate: {below} blocks < -70 LUFS, {near} "
                                     "near -10 LU")
    return out


def record(quick: bool) -> Dict[str, Any]:
    from parity.doubles import load_librivox
    from reference import audio as ref

    rec: Dict[str, Any] = {"resample": [], "librivox": [], "loudness": []}
    for orig, new, n, ch in RESAMPLE:
        x = _resample_input(orig, n, ch, 0)
        rec["resample"].append(floor_ref(ref.resample_transform(x, orig, new),
                                         ref.resample_functional(x.astype(np.float64), orig, new)))
    clips = load_librivox()
    import soundfile as sf

    for name in LIBRIVOX:
        x, sr = sf.read(clips[name].wav, dtype="float32")
        rec["librivox"].append(floor_ref(ref.resample_transform(x, sr, 24000),
                                         ref.resample_functional(x.astype(np.float64), sr, 24000)))
    for name, x in _signals().items():
        rec["loudness"].append(floor_ref(ref.process_audio_tensor(x), ref.process_audio_tensor(x.astype(np.float64))))
    rec["gated"] = [{"lufs": np.float64(ref.integrated_loudness(x, 24000)),
                     "out": floor_ref(ref.process_audio_tensor(x), ref.process_audio_tensor(x.astype(np.float64)))}
                    for x in gated_signals(check=True).values()]
    return rec


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl import audio
    from parity.doubles import load_librivox

    cases = []
    for (orig, new, n, ch), r in zip(RESAMPLE, rec["resample"]):
        got = audio.resample(_resample_input(orig, n, ch, 0), orig, new)
        cases.append(floor_case(f"resample {orig} -> {new} Hz, {ch} ch x {n}", got, r))
    clips = load_librivox()
    for name, r in zip(LIBRIVOX, rec["librivox"]):
        x, sr = audio.load_audio(clips[name].wav)
        cases.append(floor_case(f"resample LibriVox {name} {sr} -> 24000 Hz", audio.resample(x, sr, 24000), r))
    for (name, x), r in zip(_signals().items(), rec["loudness"]):
        cases.append(floor_case(f"loudness_normalize {name}", audio.loudness_normalize(x, 24000), r))
    for (name, x), r in zip(gated_signals().items(), rec.get("gated", [])):
        got, want = audio.integrated_loudness(x, 24000), float(r["lufs"])
        cases.append(Case(f"integrated_loudness {name} (both gates)", abs(got - want), 0.0, got == want, "exact",
                          "" if got == want else f"{got!r} LUFS != pyloudnorm {want!r} (the same float64 operations)"))
        cases.append(floor_case(f"loudness_normalize {name}", audio.loudness_normalize(x, 24000), r["out"]))
    return section("audio path", "impl.audio.resample vs torchaudio Resample, impl.audio.loudness_normalize vs "
                   "outetts' process_audio_tensor (-18 LUFS, -1 dB peak): lengths exact, values within the floor",
                   cases, FLOOR_WHY + " (truth: torchaudio / outetts on float64 input)", "max|impl - ref64|")


CONTRACT = Contract("audio-path", record, check, version=2)  # 2: + signals reaching both loudness gates
