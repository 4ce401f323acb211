"""Reference adapter: outetts 0.4.4's own speaker-profile code (`version/v3/audio_processor.py`), on given words.

outetts' v3 `create_speaker` always transcribes with whisper (`create_speaker_from_whisper`), normalises the text
(`text_normalizations`) and then calls `create_speaker_from_dict` with whisper's words; `create_speaker` below
does the same with the words we give in place of whisper's, so both sides start from the same alignment.
`save_speaker` / `load_speaker` are `InterfaceHF`'s own methods on a stand-in holding only the config they read.

Upstream quirk: `DacInterface.load_audio` reads with `torchaudio.load` (needs torchcodec, absent here): on our
own instance only it is replaced by the soundfile reader + the official `convert_audio_tensor`
(reference.audio.OutettsDac.load_audio). `import outetts` happens lazily, here only.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import numpy as np


def processor(checkpoint: str):
    """outetts' AudioProcessor on a local DAC checkpoint, CPU float32 (its __init__ needs a full model config:
    the three attributes its methods use are set)."""
    from outetts.version.v3.audio_processor import AudioProcessor, Features

    from reference.audio import OutettsDac

    dac = OutettsDac(checkpoint)
    proc = AudioProcessor.__new__(AudioProcessor)
    proc.device = dac.iface.device
    proc.features = Features("cpu")
    proc.audio_codec = dac.iface
    dac.iface.load_audio = lambda f: dac.load_audio(f)  # instance attribute on our own object only
    return proc


def create_speaker(audio_path: str, checkpoint, words: List[Dict[str, Any]], text: str, proc=None,
                   raw: Optional[List[List[float]]] = None,
                   seen: Optional[List[tuple]] = None) -> Dict[str, Any]:
    """Profile dict from outetts' own code: audio file + DAC checkpoint + [{'word','start','end'}] + text, as
    create_speaker_from_whisper builds it after transcription (plus interface_version, as InterfaceHF adds).

    raw: a list that receives, per `extract_audio_features` call (global first, then each word), the values
    `Features.scale_values` rounds (value x 100, before `round`): how close each bucket lies to a rounding edge;
    seen (with raw): receives the (audio, sample rate) of each of those calls, in the same order."""
    from outetts.utils.preprocessing import text_normalizations

    proc = proc or processor(str(checkpoint))
    if raw is not None:
        proc = _recording(proc, raw, seen)
    with open(audio_path, "rb") as f:
        data = {"audio": {"bytes": f.read()}, "text": text_normalizations(text),
                "words": [{"word": w["word"].strip(), "start": float(w["start"]), "end": float(w["end"])}
                          for w in words]}
    speaker = proc.create_speaker_from_dict(data)
    speaker["interface_version"] = 3
    return speaker


def _recording(proc, raw: List[List[float]], seen: Optional[List[tuple]] = None):
    """A shallow copy of `proc` whose own Features instance records the unrounded bucket values into `raw`, and with
    `seen` the (audio as a float32 array, sample rate) of each call (instance attributes on our copy only;
    outetts' classes are untouched)."""
    import copy

    from outetts.version.v3.audio_processor import Features

    feats = Features("cpu")
    official_extract = feats.extract_audio_features

    def scale(value: float) -> int:
        raw[-1].append(float(value) * 100)
        return round(value * 100)

    def extract(audio, sr):
        raw.append([])
        if seen is not None:
            seen.append((audio.detach().cpu().numpy().copy(), sr))
        return official_extract(audio, sr)

    feats.scale_values, feats.extract_audio_features = scale, extract
    out = copy.copy(proc)
    out.features = feats
    return out


def raw_features(audio: np.ndarray, sr: int) -> Dict[str, float]:
    """outetts' per-feature values before bucketing (value x 100, what `round` turns into the bucket), on (1, L)."""
    import torch

    raw: List[List[float]] = []
    proc = _recording(type("P", (), {})(), raw)
    out = proc.features.extract_audio_features(torch.from_numpy(np.ascontiguousarray(audio)), sr)
    return dict(zip(out, raw[0])) if raw[0] else {k: float(v) for k, v in out.items()}


def features(audio: np.ndarray, sr: int) -> Dict[str, int]:
    """outetts' Features.extract_audio_features on a (1, L) float32 array."""
    import torch
    from outetts.version.v3.audio_processor import Features

    return Features("cpu").extract_audio_features(torch.from_numpy(np.ascontiguousarray(audio)), sr)


def _interface():
    from outetts.models.info import InterfaceVersion

    return SimpleNamespace(config=SimpleNamespace(interface_version=InterfaceVersion.V3))


def save_speaker(speaker: Dict[str, Any], path: str) -> None:
    """outetts' InterfaceHF.save_speaker."""
    from outetts.version.interface import InterfaceHF

    InterfaceHF.save_speaker(_interface(), speaker, str(path))


def load_speaker(path: str) -> Dict[str, Any]:
    """outetts' InterfaceHF.load_speaker (refuses a version mismatch)."""
    from outetts.version.interface import InterfaceHF

    return InterfaceHF.load_speaker(_interface(), str(path))
