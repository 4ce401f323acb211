"""Reference adapter: Spark-TTS' BiCodec as the official code ships it, loaded with its own loader.

Which code: `spark-tts-lib==0.2.1` (module `spark_tts_lib`, installed --no-deps), a repackaging of the official
`sparktts/` tree of SparkAudio/Spark-TTS at commit 2f1ea9082400547242641f5271b6f941c9f439d1 (2025-04-09; the
official repository has no setup.py, so it is not installable). tools/spark_ast_check.py proves the two are the same
code, module by module, on the AST (docstrings, comments, licence headers, formatting and import order aside):

    module                                     result
    models/audio_tokenizer.py                  same
    models/bicodec.py                          same definitions; unused import omegaconf.DictConfig dropped
    modules/blocks/layers.py                   same definitions; weight_norm from torch.nn.utils.parametrizations
    modules/blocks/samper.py                   same
    modules/blocks/vocos.py                    same definitions; weight_norm from torch.nn.utils.parametrizations
    modules/encoder_decoder/feat_decoder.py    same
    modules/encoder_decoder/feat_encoder.py    same
    modules/encoder_decoder/wave_generator.py  same
    modules/fsq/finite_scalar_quantization.py  same
    modules/fsq/residual_fsq.py                same definitions; adds `from math import ceil` (the official file
                                               calls ceil unimported, in a training-only helper)
    modules/speaker/ecapa_tdnn.py              same
    modules/speaker/perceiver_encoder.py       same
    modules/speaker/pooling_layers.py          same
    modules/speaker/speaker_encoder.py         same
    modules/vq/factorized_vector_quantize.py   same definitions; weight_norm from torch.nn.utils.parametrizations
    utils/__init__.py, utils/audio.py,
    utils/token_parser.py                      same
    utils/file.py                              same definitions; unused typing imports Set, Union dropped
    cli/SparkTTS.py -> SparkTTS.py             SparkTTS.__init__ differs (model_dir may be None or a str)
    package only                               __init__.py, utils/download.py (hub download; never called here)

The one difference on a numeric path is the weight norm API: both compute torch._weight_norm(v, g, 0); the
official hook-style one is folded once at load (`BiCodec.remove_weight_norm`), the parametrization is recomputed
each forward (the package's remove_weight_norm finds no hook and passes), and torch's load pre-hook maps the
checkpoint's `weight_g`/`weight_v` onto it. Loading the real-size seeded BiCodec with both trees gives bit-identical
semantic ids, global ids, x-/d-vectors and audio (`tools/spark_ast_check.py ... --numeric DIR`; recorded in
fixtures/spark/ast_check.json and source.json). tests/test_spark_ast_check.py re-checks the installed package
against the stored digest of the official tree on every run. So the package is used as shipped.

Eval mode, CPU, float32 or float64 (the parametrized weight norm then recomputes the weights in float64). Numpy in,
numpy out, impl's layouts (channels-last).
The whole pipeline (`SparkReference`): `SparkTTS` itself on a Spark-TTS folder (the package's SparkTTS.py, AST-equal
to cli/SparkTTS.py but for __init__'s model_dir default), its prompt methods and `inference`; the LLM is wrapped only
to record the ids `generate` returns (inference returns audio alone). `logits_processor` is the list transformers
builds for inference's generate call. Upstream quirks named once here: `BiCodec.load_from_checkpoint` loads with
`strict=False` and only prints missing/unexpected tensors (`load` turns that into an error); `tokenize` returns
(semantic, global) but `BiCodecTokenizer.tokenize` returns (global, semantic); global ids are (N, 1, 32).
Nothing here re-implements a layer.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Tuple, Union

import numpy as np

OFFICIAL_COMMIT = "2f1ea9082400547242641f5271b6f941c9f439d1"
PACKAGE = "spark-tts-lib==0.2.1"


def load(bicodec_dir: Union[str, Path], dtype: str = "float32"):
    """`BiCodec.load_from_checkpoint(bicodec_dir)` in eval mode and `dtype`; a checkpoint whose tensors differ from
    the model's is an error (upstream prints them and leaves those weights at their random init)."""
    import torch
    from spark_tts_lib.models.bicodec import BiCodec

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model = BiCodec.load_from_checkpoint(Path(bicodec_dir))
    bad = [line for line in printed.getvalue().splitlines() if line.startswith(("Missing tensor", "Unexpected"))]
    if bad:
        raise ValueError(f"{bicodec_dir}: checkpoint does not fit sparktts BiCodec: {'; '.join(bad[:5])}")
    return model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype).eval()


def _t(x: np.ndarray, model):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).to(next(model.parameters()).dtype)


def mel(model, ref_wav: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, frames, num_mels): `model.mel_transformer(ref_wav)`, channels-last."""
    import torch

    with torch.no_grad():
        return model.mel_transformer(_t(ref_wav, model)).transpose(1, 2).numpy()


def tokenize(model, feat: np.ndarray, ref_wav: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """wav2vec2 features (N, T, C) and the reference clip (N, L) -> (semantic (N, T), global (N, 1, token_num)),
    int32, through `BiCodec.tokenize`."""
    import torch

    with torch.no_grad():
        sem, glob = model.tokenize({"feat": _t(feat, model), "ref_wav": _t(ref_wav, model)})
    return sem.numpy().astype(np.int32), glob.numpy().astype(np.int32)


def detokenize(model, semantic: np.ndarray, global_ids: np.ndarray) -> np.ndarray:
    """(N, T), (N, 1, token_num) -> audio (N, T * 320) through `BiCodec.detokenize`."""
    import torch

    with torch.no_grad():
        wav = model.detokenize(torch.from_numpy(np.asarray(semantic).astype(np.int64)),
                               torch.from_numpy(np.asarray(global_ids).astype(np.int64)))
    return wav[:, 0].numpy()


def encoder(model, feat: np.ndarray) -> np.ndarray:
    """(N, T, C) -> z (N, T, out_channels): `model.encoder`."""
    import torch

    with torch.no_grad():
        return model.encoder(_t(feat, model).transpose(1, 2)).transpose(1, 2).numpy()


def speaker(model, mels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """mel (N, frames, num_mels) -> (x-vector, d-vector) through `SpeakerEncoder.forward`."""
    import torch

    with torch.no_grad():
        x, d = model.speaker_encoder(_t(mels, model))
    return x.numpy(), d.numpy()


def prenet(model, z_q: np.ndarray, d_vector: np.ndarray) -> np.ndarray:
    """z_q (N, T, C), d-vector (N, D) -> (N, T, out_channels): `model.prenet`."""
    import torch

    with torch.no_grad():
        return model.prenet(_t(z_q, model).transpose(1, 2), _t(d_vector, model)).transpose(1, 2).numpy()


def wave_generator(model, x: np.ndarray) -> np.ndarray:
    """(N, T, C) -> audio (N, T * 320): `model.decoder`."""
    import torch

    with torch.no_grad():
        return model.decoder(_t(x, model).transpose(1, 2))[:, 0].numpy()


# ------------------------------------------------------------------------------------------------- audio in

def load_audio(path: Union[str, Path], sample_rate: int = 16000, volume_normalize: bool = True) -> np.ndarray:
    """`sparktts.utils.audio.load_audio` as BiCodecTokenizer.process_audio calls it (soundfile, first channel,
    soxr VHQ resampling, volume normalisation), float64 as upstream returns it."""
    from spark_tts_lib.utils.audio import load_audio as _load

    return _load(str(path), sampling_rate=sample_rate, volume_normalize=volume_normalize)


def audio_volume_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    from spark_tts_lib.utils.audio import audio_volume_normalize as _norm

    return _norm(audio, coeff)


def ref_clip(wav: np.ndarray, sample_rate: int = 16000, ref_segment_duration: float = 6,
             latent_hop_length: int = 320) -> np.ndarray:
    """`BiCodecTokenizer.get_ref_clip` (the reference clip for the global tokens) with the Spark-TTS-0.5B config
    values; the method reads only `self.config`, so it runs here without the wav2vec2 model it would load."""
    from spark_tts_lib.models.audio_tokenizer import BiCodecTokenizer

    cfg = {"sample_rate": sample_rate, "ref_segment_duration": ref_segment_duration,
           "latent_hop_length": latent_hop_length}
    return BiCodecTokenizer.get_ref_clip(SimpleNamespace(config=cfg), wav)


# ------------------------------------------------------------------------------------------------- wav2vec2

def load_wav2vec2(folder: Union[str, Path], dtype: str = "float32"):
    """The official feature path's two objects, loaded as `BiCodecTokenizer._initialize_model` loads them:
    (Wav2Vec2FeatureExtractor, Wav2Vec2Model with output_hidden_states) from an HF folder, eval, `dtype`."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    processor = Wav2Vec2FeatureExtractor.from_pretrained(str(folder))
    model = Wav2Vec2Model.from_pretrained(str(folder))
    model.config.output_hidden_states = True
    return processor, model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype).eval()


def wav2vec2_features(processor, model, wav: np.ndarray) -> np.ndarray:
    """`BiCodecTokenizer.extract_wav2vec2_features(wav)` (the method reads only self.processor and
    self.feature_extractor): one clip (L,) -> (1, frames, hidden) = (hidden_states[11] + [14] + [16]) / 3."""
    import torch
    from spark_tts_lib.models.audio_tokenizer import BiCodecTokenizer

    holder = SimpleNamespace(processor=processor, feature_extractor=model)
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:  # the processor returns float32 input values; run the model in its dtype
        holder.feature_extractor = _CastInput(model, dtype)
    with torch.no_grad():
        return BiCodecTokenizer.extract_wav2vec2_features(holder, wav).numpy()


class _CastInput:
    """Calls the model with its input cast to `dtype` (for the float64 reference run); forwards `.device`."""

    def __init__(self, model, dtype):
        self.model, self.dtype, self.device = model, dtype, next(model.parameters()).device

    def __call__(self, x):
        return self.model(x.to(self.dtype))


# ------------------------------------------------------------------------------------------------- SparkTTS

@contextlib.contextmanager
def plain_transformers():
    """transformers as Spark-TTS runs it. `import outetts` (reference/outetts.py, imported by other tests of the same
    process) replaces `transformers.generation.utils.RepetitionPenaltyLogitsProcessor` with its own, which reads only
    the last 64 ids (outetts/models/hf_model.py); SparkTTS.inference never imports outetts: inside this block
    generate builds transformers' own processor (whole sequence). Restored on exit."""
    from transformers.generation import logits_process, utils

    saved = utils.RepetitionPenaltyLogitsProcessor
    utils.RepetitionPenaltyLogitsProcessor = logits_process.RepetitionPenaltyLogitsProcessor
    try:
        yield
    finally:
        utils.RepetitionPenaltyLogitsProcessor = saved


def logits_processor(temperature: float = 0.8, top_k: int = 50, top_p: float = 0.95, do_sample: bool = True):
    """transformers' LogitsProcessorList for SparkTTS.inference's generate call (do_sample, temperature, top_k,
    top_p; the folder's generation defaults otherwise: no repetition penalty, no min-p), built by transformers."""
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.utils import GenerationMixin

    class _Mixin(GenerationMixin):
        pass

    warpers = dict(temperature=temperature, top_k=top_k, top_p=top_p) if do_sample else {}
    cfg = GenerationConfig(do_sample=do_sample, **warpers)
    cfg._eos_token_tensor = None  # set by generate()'s _prepare_special_tokens; no EOS-dependent processor here
    with plain_transformers():
        return _Mixin()._get_logits_processor(generation_config=cfg, input_ids_seq_length=0, encoder_input_ids=None,
                                              prefix_allowed_tokens_fn=None, logits_processor=LogitsProcessorList(),
                                              device="cpu")


def call_processors(model, input_ids: np.ndarray, temperature: float = 0.8, top_k: int = 50, top_p: float = 0.95):
    """The LogitsProcessorList transformers' `generate` builds for SparkTTS.inference's call on `model` (the LLM as
    loaded by SparkTTS): the model's generation config (LLM/generation_config.json, else config.json's keys) merged
    under the call's do_sample/temperature/top_k/top_p/max_new_tokens, by generate's own steps."""
    import torch
    from transformers import LogitsProcessorList

    model = getattr(model, "model", model)  # through _Recording
    ids = torch.as_tensor(np.asarray(input_ids, np.int64))
    cfg, _ = model._prepare_generation_config(None, do_sample=True, temperature=temperature, top_k=top_k,
                                               top_p=top_p, max_new_tokens=3000)
    model._prepare_special_tokens(cfg, device="cpu")
    with plain_transformers():
        return model._get_logits_processor(generation_config=cfg, input_ids_seq_length=ids.shape[-1],
                                           encoder_input_ids=ids, prefix_allowed_tokens_fn=None,
                                           logits_processor=LogitsProcessorList(), device="cpu")


def process(logits: np.ndarray, **sampler) -> np.ndarray:
    """Processed scores (B, V) float32 for next-token `logits` (B, V) (no processor reads the ids)."""
    import torch

    procs = logits_processor(**sampler)
    B = np.asarray(logits).shape[0]
    with torch.no_grad():
        return procs(torch.zeros((B, 1), dtype=torch.long), torch.as_tensor(np.asarray(logits, np.float32)).clone()
                     ).numpy()


def probabilities(logits: np.ndarray, **sampler) -> np.ndarray:
    """The distribution transformers' `_sample` draws from: softmax of the processed scores."""
    import torch

    return torch.softmax(torch.as_tensor(process(logits, **sampler)), dim=-1).numpy()


def official_tokenizer(llm_dir: Union[str, Path]):
    """The LLM folder's tokenizer as SparkTTS loads it (`AutoTokenizer.from_pretrained(f"{model_dir}/LLM")`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(llm_dir))


def prompt_string(text: str, global_codes, semantic_codes=None, prompt_text: Optional[str] = None) -> str:
    """`SparkTTS.process_prompt`'s string for given BiCodec ids: the method runs on a holder whose audio_tokenizer
    answers `tokenize(path)` with them, shaped as BiCodecTokenizer returns them ((1, 1, 32) global, (1, T) semantic;
    T >= 2: upstream's `squeeze()` makes one id a 0-d tensor it cannot iterate)."""
    import torch
    from spark_tts_lib.SparkTTS import SparkTTS

    sem = np.asarray(semantic_codes if semantic_codes is not None else [0, 0], np.int64)
    tokenize = lambda _path: (torch.as_tensor(np.asarray(global_codes, np.int64))[None, None],  # noqa: E731
                              torch.as_tensor(sem)[None])
    holder = SimpleNamespace(audio_tokenizer=SimpleNamespace(tokenize=tokenize))
    return SparkTTS.process_prompt(holder, text, Path("prompt.wav"), prompt_text)[0]


def control_string(text: str, gender: str, pitch: str, speed: str) -> str:
    """`SparkTTS.process_prompt_control`'s string (the method reads nothing from self)."""
    from spark_tts_lib.SparkTTS import SparkTTS

    return SparkTTS.process_prompt_control(SimpleNamespace(), gender, pitch, speed, text)


def encode(tokenizer, prompt: str) -> List[int]:
    """The ids `SparkTTS.inference` feeds the LM for a prompt string: `tokenizer([prompt])`."""
    return [int(i) for i in tokenizer([prompt]).input_ids[0]]


class _Recording:
    """The LLM with `generate` recording its output ids (SparkTTS.inference returns only the audio); everything
    else forwarded."""

    def __init__(self, model):
        self.model, self.outputs = model, []

    def generate(self, **kw):
        with plain_transformers():  # whatever another test imported (outetts' penalty patch)
            out = self.model.generate(**kw)
        self.outputs.append([int(t) for t in out[0, kw["input_ids"].shape[1]:]])  # the new ids, as inference trims
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)


class SparkReference:
    """sparktts' `SparkTTS` on a Spark-TTS folder, as shipped (its own __init__: AutoTokenizer and
    AutoModelForCausalLM on LLM/, BiCodecTokenizer on the folder), on the CPU in float32."""

    def __init__(self, model_dir: Union[str, Path]):
        import torch
        from spark_tts_lib.SparkTTS import SparkTTS

        with contextlib.redirect_stdout(io.StringIO()):
            self.tts = SparkTTS(Path(model_dir), device=torch.device("cpu"))
        self.tts.model = _Recording(self.tts.model)
        self.tokenizer = self.tts.tokenizer

    def prompt_ids(self, text: str, prompt_audio: Union[str, Path, None] = None, prompt_text: Optional[str] = None,
                   gender: Optional[str] = None, pitch: Optional[str] = None, speed: Optional[str] = None):
        """(ids the official `inference` feeds the LM, global ids or None): `process_prompt_control` when gender is
        given, else `process_prompt`, encoded as inference encodes it (`tokenizer([prompt])`)."""
        if gender is not None:
            prompt, glob = self.tts.process_prompt_control(gender, pitch, speed, text), None
        else:
            prompt, glob = self.tts.process_prompt(text, Path(prompt_audio), prompt_text)
            glob = glob.numpy().reshape(-1)
        return encode(self.tokenizer, prompt), glob

    def inference(self, text: str, prompt_audio: Union[str, Path, None] = None, prompt_text: Optional[str] = None,
                  gender: Optional[str] = None, pitch: Optional[str] = None, speed: Optional[str] = None,
                  seed: int = 0, **sampling) -> Tuple[Union[np.ndarray, Exception], List[int]]:
        """(audio, new token ids) of `SparkTTS.inference` (max_new_tokens 3000, EOS included when reached); greedy
        is `top_k=1` (one candidate left: the draw is the argmax). When upstream fails after generating (a created
        voice without exactly 32 global ids: its detokenize cannot reshape them; no semantic ids at all), the
        exception replaces the audio and the generated ids are still returned."""
        import torch

        torch.manual_seed(seed)
        made = len(self.tts.model.outputs)
        try:
            with torch.no_grad():
                wav = self.tts.inference(text, prompt_speech_path=None if prompt_audio is None else Path(prompt_audio),
                                         prompt_text=prompt_text, gender=gender, pitch=pitch, speed=speed, **sampling)
            out: Union[np.ndarray, Exception] = np.asarray(wav, np.float32).reshape(-1)
        except Exception as e:  # noqa: BLE001 -- any failure after generate (torch, einx's shape solver) is upstream's
            if len(self.tts.model.outputs) == made:
                raise  # it failed before generating: not the decode of the generated ids
            out = e
        return out, self.tts.model.outputs.pop()
