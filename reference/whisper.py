"""Reference adapter: openai-whisper 20250625 (the ASR outetts' v3 `create_speaker_from_whisper` runs, through
`outetts/whisper/transcribe.py` transcribe_once_word_level: `whisper.load_model(name)` then
`model.transcribe(audio, word_timestamps=True, language=None)`).

The checkpoint is impl.seeded.whisper's weights in the official `.pt` format. Upstream quirk, named once here:
`whisper.load_model(path)` of a local file sets no alignment heads (only a model *name* gets its
`_ALIGNMENT_HEADS` dump), so a local checkpoint times words with the default heads (every head of the last half
of the decoder layers). `load(path)` sets the dump stored in our checkpoint, as `load_model("tiny")` does for
the released file; `load(path, heads=False)` keeps upstream's behaviour for a path (what outetts gets).
CPU, float32 (openai-whisper's `transcribe` falls back to fp32 on CPU by itself).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np


def write_seeded_checkpoint(path: Union[str, Path], dims: Dict[str, int], seed: int, heads: Union[str, bytes] = "tiny"
                            ) -> Path:
    """impl.seeded.whisper's weights as openai-whisper's `.pt`: {"dims", "model_state_dict"} (the model's own
    state_dict with the seeded parameters; `encoder.positional_embedding` is its computed buffer) plus
    "alignment_heads" (a base85 dump, or None for the default heads)."""
    import torch
    import whisper

    from impl._io import atomic_path
    from impl.seeded.whisper import TINY_ALIGNMENT_HEADS, seeded_state_dict

    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    state = model.state_dict()
    seeded = seeded_state_dict(dims, seed)
    params = {k for k, _ in model.named_parameters()}
    if params != set(seeded):
        raise ValueError(f"seeded whisper keys differ from whisper.model.Whisper: missing {sorted(params - set(seeded))[:5]}"
                         f", unexpected {sorted(set(seeded) - params)[:5]}")
    for k, v in seeded.items():
        if tuple(state[k].shape) != v.shape:
            raise ValueError(f"{k}: seeded shape {v.shape} != whisper's {tuple(state[k].shape)}")
        state[k] = torch.from_numpy(v)
    dump = TINY_ALIGNMENT_HEADS if heads == "tiny" else None if heads == "default" else heads
    with atomic_path(path) as tmp:
        torch.save({"dims": dict(dims), "model_state_dict": state, "alignment_heads": dump}, tmp)
    return Path(path)


def seeded_checkpoint(dims: Dict[str, int] = None, seed: int = 0) -> Path:
    """The seeded `.pt` for (dims, seed), written once into impl.seeded.cache_dir() and reused."""
    from impl.seeded import cache_dir
    from impl.seeded.whisper import GENERATOR_VERSION, TINY_DIMS

    dims = TINY_DIMS if dims is None else dims
    key = hashlib.sha256(json.dumps([dims, seed, GENERATOR_VERSION], sort_keys=True).encode()).hexdigest()[:12]
    dest = cache_dir() / f"whisper-{'tiny' if dims == TINY_DIMS else 'custom'}-s{seed}-{key}.pt"
    if not dest.exists():
        write_seeded_checkpoint(dest, dims, seed)
    return dest


def load(path: Union[str, Path], heads: bool = True):
    """`whisper.load_model(path, device="cpu")`, eval; `heads`: set the checkpoint's alignment-head dump (as
    load_model does for a named model), else upstream's default heads for a path."""
    import torch
    import whisper

    model = whisper.load_model(str(path), device="cpu")
    dump = torch.load(str(path), map_location="cpu", weights_only=True).get("alignment_heads")
    if heads and dump is not None:
        model.set_alignment_heads(dump)
    return model.eval()


def transcribe(model, audio: np.ndarray, **options) -> Dict[str, Any]:
    """`model.transcribe(audio (16 kHz float32 mono), **options)` on CPU in float32 (fp16=False: what openai-whisper
    switches to on CPU anyway, without its warning)."""
    import whisper

    return whisper.transcribe(model, np.asarray(audio, dtype=np.float32), **dict(options, fp16=False))


def tokenizer(model, language: str = "en", task: str = "transcribe"):
    import whisper

    return whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                           language=language, task=task)


def log_mel(audio: np.ndarray, n_mels: int, n_frames: int = 3000):
    """openai-whisper's log-mel of 16 kHz audio, padded/trimmed to `n_frames` (n_mels, n_frames) as transcribe
    feeds find_alignment."""
    import whisper

    mel = whisper.audio.log_mel_spectrogram(np.asarray(audio, dtype=np.float32), n_mels, padding=whisper.audio.N_SAMPLES)
    return whisper.audio.pad_or_trim(mel, n_frames)


def find_alignment(model, tok, text_tokens: Sequence[int], mel, num_frames: int, medfilt_width: int = 7,
                   qk_scale: float = 1.0, cross_qk: Optional[list] = None) -> List[Dict[str, Any]]:
    """`whisper.timing.find_alignment` (cross-attention DTW over the alignment heads) -> [{word, tokens, start, end,
    probability}]. `cross_qk`: a list that receives each decoder block's cross-attention qk (n_head, T, 1500),
    float32 numpy, recorded by forward hooks on `decoder.blocks.{i}.cross_attn` (as find_alignment's own hooks)."""
    import torch
    from whisper.timing import find_alignment as official

    hooks = []
    if cross_qk is not None:
        cross_qk[:] = [None] * len(model.decoder.blocks)
        for i, block in enumerate(model.decoder.blocks):
            hooks.append(block.cross_attn.register_forward_hook(
                lambda _, ins, outs, i=i: cross_qk.__setitem__(i, outs[-1][0].float().numpy())))
    try:
        with torch.no_grad():
            words = official(model, tok, list(text_tokens), mel, num_frames, medfilt_width=medfilt_width,
                             qk_scale=qk_scale)
    finally:
        for h in hooks:
            h.remove()
    return [dict(word=w.word, tokens=list(w.tokens), start=float(w.start), end=float(w.end),
                 probability=float(w.probability)) for w in words]


def heads(model) -> List[Tuple[int, int]]:
    """The model's alignment heads as [(layer, head)] (a sparse buffer upstream)."""
    return [tuple(map(int, lh)) for lh in model.alignment_heads.indices().T.tolist()]
