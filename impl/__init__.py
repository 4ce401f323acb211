"""voiceport: MLX port of the OuteTTS 1.0 stack (DAC 24 kHz codec, OuteTTS v3 LM, speaker profiles)."""

__version__ = "0.1.0"
