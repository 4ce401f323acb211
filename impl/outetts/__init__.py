"""OuteTTS 1.0 (v3 interface) in MLX: tokenizer, prompt ids, sampler, generation, `voiceport tts`.

Ports outetts 0.4.4 (`version/v3/`, `version/interface.py`, `models/hf_model.py`, `models/config.py`,
`utils/chunking.py`); the LM is `impl.llama`, the codec `impl.dac`. Modules:
  tokens     the v3 special tokens          tokenizer  tokenizer.json through `tokenizers`
  text       normalisation, chunking        prompt     prompt token ids
  sampler    repetition penalty, temperature, top-k/p, min-p
  generate   load(), the TTS pipeline, codes parsing, streaming audio (the decode loop, config and chunk plan
             are `impl.runtime`'s, shared with Spark-TTS)
Speaker profiles (load, validate, create) are `impl.speaker`; the seeded model folders and the generated v3
tokenizer are `impl.seeded.outetts`.
"""
