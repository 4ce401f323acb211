"""OuteTTS v3 speaker profiles: create one from audio (+ transcript or word times), load, validate and save it.

`profile`: the v3 JSON schema (`validate_speaker`, `load_speaker`, `SpeakerError`), `create_profile(path, codec,
aligner, text)` and `save_profile`; aligners (`align`: ForcedAligner, WhisperAligner, GivenWords); per-word
features (`features`); the `voiceport profile` command (`cli`).
"""
from impl.speaker.align import AlignmentError, ForcedAligner, GivenWords, WhisperAligner, Word
from impl.speaker.profile import (ProfileError, SpeakerError, create_profile, load_speaker, profile_from_codes,
                                  save_profile, slice_words, validate_speaker)

__all__ = ["AlignmentError", "ForcedAligner", "GivenWords", "ProfileError", "SpeakerError", "WhisperAligner",
           "Word", "create_profile", "load_speaker", "profile_from_codes", "save_profile", "slice_words",
           "validate_speaker"]
