"""Contract: `DAC.encode` / `DAC.decode` as users call them (not the layers): codes exact against the official fp32
DAC, output lengths exact (320 T - 8 for the speech strides), decoded audio within the fp32 floor.

Real 24 kHz speech architecture (seeded weights 0) for codes and audio; a tiny config with the same strides for
lengths over many T and input lengths (lengths depend only on strides and paddings).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from parity.contracts import Contract, Section, exact_case, floor_case, floor_ref, section
from parity.doubles import TINY
from parity.spec import FLOOR_WHY

ENCODE = [("speech", 7001, 1), ("noise", 4801, 2), ("silence", 3333, 3), ("sweep", 12345, 4),
          ("speech", 24000 + 17, 5)]               # lengths not multiples of 320
DECODE_T = [1, 2, 7, 40]
TINY_T = list(range(1, 33)) + [75, 199, 500]       # decode lengths on the tiny config
TINY_N = [320, 321, 639, 1000, 3199, 4999, 5000]    # encode input lengths on the tiny config


def _codes(T: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, (1, 2, T)).astype(np.int32)


def _paths():
    from impl.seeded.dac import seeded_checkpoint

    return seeded_checkpoint("24khz_speech", 0), seeded_checkpoint(dict(TINY), 0)


def record(quick: bool) -> Dict[str, Any]:
    from parity.specs.dac import checkpoints, make_signal
    from reference import dac as ref
    from reference.dac import write_seeded_checkpoint

    _, pth = checkpoints("24khz_speech", 0)
    _, tiny_st = _paths()
    tiny_pth = tiny_st.with_suffix(".pth")
    if not tiny_pth.exists():
        write_seeded_checkpoint(tiny_pth, dict(TINY), 0)
    m32, m64 = ref.load(pth, "float32"), ref.load(pth, "float64")
    rec: Dict[str, Any] = {"encode": [], "decode": [], "tiny_decode": [], "tiny_encode": []}
    for kind, n, seed in ENCODE:
        rec["encode"].append({"kind": kind, "n": n, "seed": seed,
                              "codes": ref.encode(m32, make_signal(kind, 24000, n, seed)[None])})
    for T in DECODE_T:
        c = _codes(T, T)
        rec["decode"].append({"T": T, "audio": floor_ref(ref.decode(m32, c), ref.decode(m64, c))})
    t32, t64 = ref.load(tiny_pth, "float32"), ref.load(tiny_pth, "float64")
    for T in TINY_T:
        c = _codes(T, 1000 + T)
        rec["tiny_decode"].append({"T": T, "audio": floor_ref(ref.decode(t32, c), ref.decode(t64, c))})
    for n in TINY_N:
        rec["tiny_encode"].append({"n": n, "codes": ref.encode(t32, make_signal("noise", 24000, n, n)[None])})
    return rec


def check(rec: Dict[str, Any], quick: bool) -> Section:
    import mlx.core as mx

    from impl import dac
    from parity.specs.dac import make_signal

    st, tiny_st = _paths()
    model, tiny = dac.load(st), dac.load(tiny_st)
    cases = []
    for e in rec["encode"]:
        audio = make_signal(e["kind"], 24000, e["n"], e["seed"])[None]
        cases.append(exact_case(f"speech DAC.encode {e['kind']} n={e['n']}: codes",
                                np.array(model.encode(mx.array(audio))), e["codes"]))
    for d in rec["decode"]:
        got = np.array(model.decode(mx.array(_codes(d["T"], d["T"]))))
        cases.append(floor_case(f"speech DAC.decode T={d['T']}: audio ({320 * d['T'] - 8} samples)", got, d["audio"]))
    for d in rec["tiny_decode"]:
        got = np.array(tiny.decode(mx.array(_codes(d["T"], 1000 + d["T"]))))
        cases.append(floor_case(f"tiny DAC.decode T={d['T']}: length + audio", got, d["audio"]))
    for e in rec["tiny_encode"]:
        audio = make_signal("noise", 24000, e["n"], e["n"])[None]
        cases.append(exact_case(f"tiny DAC.encode n={e['n']}: codes", np.array(tiny.encode(mx.array(audio))),
                                e["codes"]))
    return section(
        "DAC encode/decode", "impl.dac DAC.encode codes (exact, vs torch fp32) and DAC.decode output length (exact) "
        "+ audio (floor), real 24 kHz speech architecture and a tiny config with its strides", cases,
        FLOOR_WHY + "; codes and lengths exact", "codes: mismatches; audio: max|impl - ref64|")


CONTRACT = Contract("dac-codec", record, check)
