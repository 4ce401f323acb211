"""Spark-TTS' BiCodec (audio tokenizer + decoder) in MLX: `load(bicodec_dir)`, `BiCodec.tokenize/detokenize`.

Modules: `model` (BiCodec, sanitize, strict load), `vocos` (ConvNeXt encoder and prenet), `quantize` (factorized VQ,
residual FSQ), `speaker` (ECAPA-TDNN, Perceiver, speaker encoder), `wave` (WaveGenerator on impl.dac's layers),
`mel` (torchaudio's MelSpectrogram), `config` (config.yaml reader), `wav2vec2` (the xlsr-53 features the semantic
path reads: `wav2vec2.load(folder)`, `wav2vec2.features(model, wav)`), `audio` (sparktts' load_audio with soxr,
volume normalisation, the 6 s reference clip), `cli` (`voiceport spark tokenize/detokenize`).
Seeded checkpoints: `impl.seeded.spark` (`seeded_bicodec`, `seeded_w2v`).
"""
from impl.spark.model import BiCodec, from_state_dict, load, sanitize

__all__ = ["BiCodec", "from_state_dict", "load", "sanitize"]
