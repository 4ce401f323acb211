"""Contract: outetts' chunked codec interface (`outetts/dac/interface.py` DacInterface) end to end with the MLX DAC.

encode: file -> mono -> torchaudio Resample to 24 kHz -> -18 LUFS -> 5 s windows -> codes, exact against outetts'
own DacInterface over the official DAC (fp32), on a LibriVox clip (16 kHz; the speaker-profile section encodes
all three through this interface) and 44.1 kHz stereo; decode: 2048-code
chunks with 15 ms fades and loudness normalisation, length exact and audio within the fp32 floor (outetts'
DacInterface in fp64 is the truth). Real 24 kHz speech architecture, except the 2100-code decode (two 2048-code
chunks: 28 s of audio), which runs on a tiny config with the same strides.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.contracts import Contract, Section, exact_case, floor_case, floor_ref, section
from parity.doubles import TINY, load_librivox
from parity.spec import FLOOR_WHY

DECODES = [("speech", 60, 16, 11), ("tiny", 2100, 2048, 13), ("tiny", 97, 16, 14)]
FILES = ("0880",)  # the speaker-profile section encodes all three clips through this interface


def stereo(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([tone, 0.5 * tone + 0.05 * rng.standard_normal(t.shape)]).astype(np.float32)


def _codes(T: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, (2, T)).astype(np.int64)


def _pths():
    from impl.seeded.dac import seeded_checkpoint
    from reference.dac import write_seeded_checkpoint

    out = {}
    for name, cfg in (("speech", "24khz_speech"), ("tiny", dict(TINY))):
        pth = seeded_checkpoint(cfg, 0).with_suffix(".pth")
        if not pth.exists():
            write_seeded_checkpoint(pth, cfg, 0)
        out[name] = str(pth)
    return out


def record(quick: bool) -> Dict[str, Any]:
    from reference.audio import OutettsDac

    pths = _pths()
    speech32 = OutettsDac(pths["speech"], "float32")
    clips = load_librivox()
    rec: Dict[str, Any] = {"files": [], "stereo": None, "decode": []}
    for name in FILES:
        rec["files"].append({"clip": name, "codes": speech32.encode_file(clips[name].wav)})
    rec["stereo"] = speech32.encode_audio(stereo(44100, 1.3, 3), 44100)
    dacs = {}
    for arch, T, chunk, seed in DECODES:
        if arch not in dacs:
            dacs[arch] = (OutettsDac(pths[arch], "float32"), OutettsDac(pths[arch], "float64"))
        c = _codes(T, seed)
        import torch

        r = [d.iface.decode(torch.from_numpy(c)[None], chunk_length=chunk)[0, 0].numpy() for d in dacs[arch]]
        rec["decode"].append({"arch": arch, "T": T, "chunk": chunk, "seed": seed, "audio": floor_ref(r[0], r[1])})
    return rec


def check(rec: Dict[str, Any], quick: bool) -> Section:
    from impl import dac
    from impl.dac.interface import DacInterface
    from impl.seeded.dac import seeded_checkpoint

    models = {"speech": dac.load(seeded_checkpoint("24khz_speech", 0)),
              "tiny": dac.load(seeded_checkpoint(dict(TINY), 0))}
    iface = DacInterface(models["speech"])
    clips = load_librivox()
    cases = []
    for f in rec["files"]:
        cases.append(exact_case(f"encode_file LibriVox {f['clip']} (16 kHz): codes",
                                iface.encode_file(clips[f["clip"]].wav), f["codes"]))
    cases.append(exact_case("encode_audio 44.1 kHz stereo 1.3 s: codes", iface.encode_audio(stereo(44100, 1.3, 3),
                                                                                            44100), rec["stereo"]))
    for d in rec["decode"]:
        it = DacInterface(models[d["arch"]], chunk_length=d["chunk"])
        got = it.decode(_codes(d["T"], d["seed"]))
        cases.append(floor_case(f"decode {d['arch']} T={d['T']} chunks of {d['chunk']}: length + audio", got,
                                d["audio"]))
    return section(
        "DAC chunked interface (outetts)", "impl.dac.interface.DacInterface (MLX DAC) vs outetts' DacInterface "
        "(official DAC): encode_file / encode_audio codes exact, chunked decode length exact and audio within the "
        "floor", cases, FLOOR_WHY + " (fp64: outetts' DacInterface with the DAC in float64); codes exact",
        "codes: mismatches; audio: max|impl - ref64|")


CONTRACT = Contract("dac-interface", record, check)
