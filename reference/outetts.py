"""Reference adapter over the official `outetts` 0.4.4 package (v3 interface) and transformers 4.52.3.

Thin: outetts' own prompt processor, text normalisation, chunker, its patched transformers repetition penalty
(windowed, 64 tokens) and transformers' own logits-processor list and `generate` loop. Nothing re-implemented.

`import outetts` patches transformers globally (hf_model.py replaces `RepetitionPenaltyLogitsProcessor`), so it
is imported here lazily, inside functions; tests that use this module live in parity/test_outetts_*.py.

Upstream quirks named here once:
- `PromptProcessor.get_completion_prompt` appends the speaker separator to the caller's last word (mutation);
  we pass it a deep copy on every call.
- `InterfaceHF.__init__` loads the DAC codec (from the hub); the token-level verbs below do not need it, so
  `interface()` builds the interface object without running that constructor and sets the two parts the token
  path uses (`prompt_processor`, `model`).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def _outetts():
    import outetts  # noqa: F401 -- applies outetts' transformers patch
    import outetts.models.hf_model  # noqa: F401 -- the patch lives here

    return outetts


def sampler_defaults() -> Dict[str, Any]:
    """outetts' SamplerConfig defaults (temperature, repetition_penalty, repetition_range, top_k, top_p, min_p)."""
    _outetts()
    from dataclasses import asdict

    from outetts.models.config import SamplerConfig

    return asdict(SamplerConfig())


class PromptReference:
    """outetts' v3 PromptProcessor over a tokenizer folder."""

    def __init__(self, tokenizer_path: str):
        _outetts()
        from outetts.version.v3.prompt_processor import PromptProcessor

        self.processor = PromptProcessor(str(tokenizer_path))
        self.tokenizer = self.processor.tokenizer

    def normalize(self, text: str) -> str:
        return self.processor.text_normalizations(text)

    def prompt(self, text: str, speaker: Optional[dict] = None) -> str:
        return self.processor.get_completion_prompt(text, copy.deepcopy(speaker))

    def prompt_ids(self, text: str, speaker: Optional[dict] = None) -> List[int]:
        """What InterfaceHF.prepare_prompt feeds the model, as a list."""
        return self.tokenizer.encode(self.prompt(text, speaker), add_special_tokens=False)

    def extract_codes(self, tokens: Sequence[int]) -> List[List[int]]:
        return self.processor.extract_audio_from_tokens(list(tokens))


def chunk_text(text: str) -> List[str]:
    _outetts()
    from outetts.utils.chunking import chunk_text as official

    return official(text)


def logits_processor(temperature: float = 0.4, repetition_penalty: float = 1.1, top_k: int = 40,
                     top_p: float = 0.9, min_p: float = 0.05, do_sample: bool = True):
    """transformers' LogitsProcessorList for outetts' HF sampling call, built by transformers itself."""
    _outetts()
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.utils import GenerationMixin

    class _Mixin(GenerationMixin):
        pass

    warpers = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p) if do_sample else {}
    cfg = GenerationConfig(do_sample=do_sample, repetition_penalty=repetition_penalty, **warpers)
    cfg._eos_token_tensor = None  # set by generate()'s _prepare_special_tokens; no EOS-dependent processor here
    return _Mixin()._get_logits_processor(generation_config=cfg, input_ids_seq_length=0, encoder_input_ids=None,
                                          prefix_allowed_tokens_fn=None, logits_processor=LogitsProcessorList(),
                                          device="cpu")


def process(logits: np.ndarray, input_ids: np.ndarray, **sampler: Any) -> np.ndarray:
    """Processed scores (B, V) float32 for next-token `logits` (B, V) after `input_ids` (B, L)."""
    import torch

    procs = logits_processor(**sampler)
    with torch.no_grad():
        scores = procs(torch.as_tensor(np.asarray(input_ids, np.int64)),
                       torch.as_tensor(np.asarray(logits, np.float32)).clone())
    return scores.numpy()


def probabilities(logits: np.ndarray, input_ids: np.ndarray, **sampler: Any) -> np.ndarray:
    """The distribution transformers samples from: softmax of the processed scores (as `_sample` does)."""
    import torch

    scores = torch.as_tensor(process(logits, input_ids, **sampler))
    return torch.softmax(scores, dim=-1).numpy()


class GenerationReference:
    """outetts' HF backend on a model folder (HF checkpoint + tokenizer files): HFModel + InterfaceHF's loops."""

    def __init__(self, model_dir: str):
        _outetts()
        import torch
        from outetts.models.hf_model import HFModel
        from outetts.version.interface import InterfaceHF
        from outetts.version.v3.prompt_processor import PromptProcessor

        self.interface = object.__new__(InterfaceHF)  # no DAC: see the module docstring
        self.interface.prompt_processor = PromptProcessor(str(model_dir))
        self.interface.model = HFModel(str(model_dir), device="cpu", dtype=torch.float32)

    def generate_tokens(self, text: str, speaker: Optional[dict], max_length: int, temperature: float = 0.0,
                        repetition_penalty: float = 1.1, top_k: int = 40, top_p: float = 0.9, min_p: float = 0.05,
                        **gen: Any) -> List[int]:
        """InterfaceHF.chunk_generation (outetts' default generation type): new tokens of all chunks."""
        from outetts.models.config import GenerationConfig, SamplerConfig
        from outetts.models.info import GenerationType

        cfg = GenerationConfig(text=text, speaker=copy.deepcopy(speaker), generation_type=GenerationType.CHUNKED,
                               sampler_config=SamplerConfig(temperature=temperature,
                                                            repetition_penalty=repetition_penalty,
                                                            top_k=top_k, top_p=top_p, min_p=min_p),
                               max_length=max_length, additional_gen_config=dict(gen))
        return [int(t) for t in self.interface.chunk_generation(cfg)]

    def extract_codes(self, tokens: Sequence[int]) -> List[List[int]]:
        return self.interface.prompt_processor.extract_audio_from_tokens(list(tokens))

    def get_audio(self, tokens: Sequence[int], dac_checkpoint: str, dtype: str = "float32") -> Optional[np.ndarray]:
        """InterfaceHF.get_audio (extract_audio_from_tokens -> DacInterface.decode: 2048-code chunks, fades,
        loudness) with outetts' DacInterface on a local DAC checkpoint in `dtype`; None when outetts finds no codes
        (what `InterfaceHF.generate` then returns as audio)."""
        from reference.audio import OutettsDac

        codecs = self.__dict__.setdefault("_codecs", {})
        if (str(dac_checkpoint), dtype) not in codecs:
            codecs[(str(dac_checkpoint), dtype)] = OutettsDac(dac_checkpoint, dtype).iface
        self.interface.audio_codec = codecs[(str(dac_checkpoint), dtype)]
        out = self.interface.get_audio([int(t) for t in tokens])
        return None if out is None else out[0, 0].numpy()
