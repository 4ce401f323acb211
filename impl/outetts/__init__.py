"""OuteTTS 1.0 (v3 interface) in MLX: tokenizer, prompt ids, sampler, generation, `voiceport tts`.

Ports outetts 0.4.4 (`version/v3/`, `version/interface.py`, `models/hf_model.py`, `models/config.py`,
`utils/chunking.py`); the LM is `impl.llama`, the codec `impl.dac`. Modules:
  tokens     the v3 special tokens          tokenizer  tokenizer.json (tokenizers) + a generated v3 tokenizer
  text       normalisation, chunking        speaker    v3 profile JSON load / validate
  prompt     prompt token ids               sampler    repetition penalty, temperature, top-k/p, min-p
  generate   generation loop, codes parsing, streaming audio
"""
