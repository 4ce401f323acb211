"""Speaker-profile creator: audio (+ transcript or word times) -> OuteTTS v3 speaker profile (outetts' JSON).

`create_profile(path, codec, aligner, text)` (`profile`), aligners (`align`: ForcedAligner, WhisperAligner,
GivenWords), per-word features (`features`), the `voiceport profile` command (`cli`). Profiles load with
`load_speaker` (impl.outetts.speaker).
"""
from impl.outetts.speaker import load_speaker
from impl.speaker.align import AlignmentError, ForcedAligner, GivenWords, WhisperAligner, Word
from impl.speaker.profile import ProfileError, create_profile, profile_from_codes, save_profile, slice_words

__all__ = ["AlignmentError", "ForcedAligner", "GivenWords", "ProfileError", "WhisperAligner", "Word",
           "create_profile", "load_speaker", "profile_from_codes", "save_profile", "slice_words"]
