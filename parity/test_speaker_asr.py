"""ASR mode (`voiceport profile create AUDIO --whisper-model DIR`): impl's backend, mlx-whisper 0.4.3 as
impl.speaker.align.WhisperAligner runs it (float32), vs openai-whisper 20250625, the ASR of outetts' v3
create_speaker_from_whisper, on ONE seeded checkpoint at the real `tiny` dims written in both formats
(impl.seeded.whisper: the mlx-whisper folder; reference.whisper: the official .pt).

Random weights transcribe garbage; equality is what is tested:
- word timestamps given the same tokens: `timing.find_alignment` on both sides (cross-attention DTW over the
  alignment heads, median filter 7). A word boundary is a DTW frame index x 0.02 s, so the times must be equal
  exactly; they could differ only where the DTW takes a near-tie that the two sides' attention weights (not
  bit-equal: two frameworks) decide differently. Such steps are counted (`_near_ties`) and reported, not
  absorbed by a tolerance;
- greedy tokens on real speech (temperature 0, the decode options transcribe derives from outetts' call,
  `word_timestamps=True, language=None` -> language "en" given here so no detection pass runs), timestamps
  included: equal. mlx-whisper 0.4.3's own ApplyTimestampRules is not openai-whisper's
  (`test_speaker_asr_timestamp_rules_differ` pins that); impl decodes with `TimestampRules`, openai-whisper's
  rule (`test_speaker_asr_timestamp_rules_equal_openai`).
"""
from __future__ import annotations

import numpy as np
import pytest

import mlx.core as mx

from impl.seeded.whisper import TINY_DIMS, heads_mask, seeded_mlx_folder, seeded_state_dict, to_mlx
from reference import whisper as RW

U32 = 2.0 ** -24
FRAME_S = 0.02  # find_alignment: time index / TOKENS_PER_SECOND (50 per second)


@pytest.fixture(scope="module")
def models():
    from mlx_whisper.load_models import load_model

    return RW.load(RW.seeded_checkpoint()), load_model(str(seeded_mlx_folder()), mx.float32)


def _audio(clip):
    import soundfile as sf

    x, sr = sf.read(clip.wav, dtype="float32")  # 16 kHz 16-bit mono: what whisper.load_audio's ffmpeg gives too
    assert sr == 16000 and x.ndim == 1
    return x


def _mlx_side(g, x):
    import mlx_whisper.audio as MA
    from mlx_whisper.tokenizer import get_tokenizer

    tok = get_tokenizer(g.is_multilingual, num_languages=g.num_languages, language="en", task="transcribe")
    mel = MA.pad_or_trim(MA.log_mel_spectrogram(x, g.dims.n_mels, padding=MA.N_SAMPLES), MA.N_FRAMES, axis=-2)
    return tok, mel


def test_speaker_asr_seeded_formats_hold_the_same_weights(models):
    """The .pt and the MLX folder are the same weights under each loader's names (convert.py's mapping)."""
    m, g = models
    from mlx.utils import tree_flatten

    seeded = seeded_state_dict(TINY_DIMS, 0)
    ref = {k: v.numpy() for k, v in m.state_dict().items()}
    assert set(ref) == set(seeded) | {"encoder.positional_embedding"}
    for k, v in seeded.items():
        assert np.array_equal(ref[k], v), k
    got = {k: np.array(v) for k, v in tree_flatten(g.parameters())}
    want = to_mlx(seeded)
    assert set(got) == set(want) | {"alignment_heads"}
    for k, v in want.items():
        assert np.array_equal(got[k], v), k
    assert got["alignment_heads"].tolist() == [list(h) for h in RW.heads(m)]
    assert RW.heads(m) == [tuple(h) for h in np.argwhere(heads_mask(TINY_DIMS, "tiny"))] == [
        (2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5)]  # openai-whisper's `tiny` dump


def _dtw_matrix(qk: list, heads, n_sot: int, num_frames: int, medfilt, xp=np) -> np.ndarray:
    """find_alignment's DTW input (both sides run these steps): alignment-head qk -> softmax over frames ->
    standardise over tokens -> median filter (width 7) -> mean over heads -> text rows. float64 here: only the
    difference between the sides is used."""
    w = np.stack([np.asarray(qk[l])[h, :, : num_frames // 2] for l, h in heads]).astype(np.float64)
    w = np.exp(w - w.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    w = (w - w.mean(-2, keepdims=True)) / w.std(-2, keepdims=True)
    w = medfilt(w.astype(np.float32), 7).astype(np.float64)
    return w.mean(0)[n_sot:-1]


def _near_ties(a: np.ndarray, b: np.ndarray) -> int:
    """DTW steps on a's optimal path whose decision b could take the other way.

    dtw_cpu's cost C[i, j] = x[i-1, j-1] + min(C[i-1, j-1], C[i-1, j], C[i, j-1]) over x = -matrix. Both sides'
    costs at (i, j) are sums of at most i + j entries, so they differ by at most (i + j)(d + u|C|max) with d =
    max|a - b| and u the float32 cost's rounding; a step is a near-tie when its chosen predecessor beats the
    runner-up by no more than twice that."""
    x = -a
    N, M = x.shape
    C = np.full((N + 1, M + 1), np.inf)
    C[0, 0] = 0.0
    for i in range(1, N + 1):
        for j in range(1, M + 1):
            C[i, j] = x[i - 1, j - 1] + min(C[i - 1, j - 1], C[i - 1, j], C[i, j - 1])
    d = float(np.max(np.abs(a - b)))
    big = float(np.max(np.abs(C[np.isfinite(C)])))
    ties, i, j = 0, N, M
    while i > 0 and j > 0:
        prev = sorted([(C[i - 1, j - 1], (i - 1, j - 1)), (C[i - 1, j], (i - 1, j)), (C[i, j - 1], (i, j - 1))])
        if prev[1][0] - prev[0][0] <= 2 * (i + j) * (d + U32 * big):
            ties += 1
        i, j = prev[0][1]
    return ties


def _alignments(models, clip, tokens):
    import mlx_whisper.timing as MT
    import torch
    import whisper.timing as WT

    m, g = models
    x = _audio(clip)
    num_frames = x.shape[-1] // 160  # transcribe's segment_size for a clip under 30 s
    qk_ref: list = []
    ref = RW.find_alignment(m, RW.tokenizer(m), tokens, RW.log_mel(x, m.dims.n_mels), num_frames, cross_qk=qk_ref)
    tok, mel = _mlx_side(g, x)
    got = MT.find_alignment(g, tok, tokens, mel, num_frames)  # what mlx_whisper.transcribe's add_word_timestamps runs
    # the ties: both sides' DTW inputs from their own cross-attention (the same heads, the same steps)
    seq = list(tok.sot_sequence) + [tok.no_timestamps] + list(tokens) + [tok.eot]  # find_alignment's
    _, qk = g.forward_with_cross_qk(mel[None], mx.array([seq]))
    heads = RW.heads(m)
    n_sot = len(tok.sot_sequence)
    a = _dtw_matrix(qk_ref, heads, n_sot, num_frames, lambda w, k: WT.median_filter(torch.from_numpy(w), k).numpy())
    b = _dtw_matrix([np.array(q[0]) for q in qk], heads, n_sot, num_frames, MT.median_filter)
    return ref, got, _near_ties(a, b), float(np.max(np.abs(a - b)))


def _assert_same_words(ref, got, ties, d, what):
    assert [w["word"] for w in ref] == [w.word for w in got], what
    assert [w["tokens"] for w in ref] == [list(w.tokens) for w in got], what
    bad = [(r["word"], (r["start"], r["end"]), (float(w.start), float(w.end))) for r, w in zip(ref, got)
           if (r["start"], r["end"]) != (float(w.start), float(w.end))]
    print(f"{what}: {len(ref)} words, times equal {len(ref) - len(bad)}/{len(ref)}; DTW near-ties on the path: "
          f"{ties} (max |matrix difference| {d:.2g})")
    assert not bad, f"{what}: word times differ (near-ties on the DTW path: {ties}): {bad[:4]}"
    for w in ref:  # frame indices x 0.02 s
        for t in (w["start"], w["end"]):
            assert abs(t / FRAME_S - round(t / FRAME_S)) < 1e-9


def test_speaker_asr_word_times_given_transcript_tokens(models, librivox):
    """The clip's own transcript as the given tokens (real words, varied tokens): word times exactly equal."""
    m, _ = models
    clip = librivox["0870"]
    tokens = RW.tokenizer(m).encode(" " + clip.text)
    ref, got, ties, d = _alignments(models, clip, tokens)
    _assert_same_words(ref, got, ties, d, "0870 transcript")
    assert len(ref) == len(clip.text.split())


def test_speaker_asr_greedy_tokens_and_their_word_times(models, librivox):
    """Greedy decode on real speech with timestamps (temperature 0, the options transcribe derives from outetts'
    call): impl's decode (`whisper_decode`, openai-whisper's timestamp rules) gives openai-whisper's tokens; then
    the word times of the decoded text tokens, exactly equal."""
    import mlx_whisper.decoding as MD
    import whisper

    from impl.speaker.align import whisper_decode

    m, g = models
    clip = librivox["0890"]
    x = _audio(clip)
    opts = dict(language="en", task="transcribe", temperature=0.0, sample_len=32, fp16=False)
    ref = whisper.decode(m, RW.log_mel(x, m.dims.n_mels), whisper.DecodingOptions(**opts))
    _, mel = _mlx_side(g, x)
    got = whisper_decode(g, mel, MD.DecodingOptions(**opts))
    assert list(got.tokens) == list(ref.tokens), (got.tokens, ref.tokens)
    eot = RW.tokenizer(m).eot
    assert len(set(ref.tokens)) >= 8 and sum(t > eot for t in ref.tokens) >= 8, ref.tokens  # text and timestamps
    ref_w, got_w, ties, d = _alignments(models, clip, [t for t in ref.tokens if t < eot])
    _assert_same_words(ref_w, got_w, ties, d, "0890 greedy")


def test_speaker_asr_timestamp_rules_equal_openai():
    """impl.speaker.align.TimestampRules vs openai-whisper's ApplyTimestampRules, one decoding step each, over the
    states the rules distinguish (first step, after text, after one timestamp, after a pair, a late segment,
    forced timestamps): the same masked logits, exactly (masks and a copy; the forcing decision compares float32
    log-probabilities, on Gaussian logits far from a tie)."""
    import mlx_whisper.tokenizer as MTok
    import torch
    import whisper

    from impl.speaker.align import TimestampRules

    tok = whisper.tokenizer.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    mtok = MTok.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    tb, n, sot = tok.timestamp_begin, TINY_DIMS["n_vocab"], list(tok.sot_sequence)
    begin = len(sot)
    states = [[], [tb], [tb, 440], [tb, 440, tb + 25], [tb, 440, tb + 25, tb + 25], [tb + 3, 440, 500],
              [tb + 10, 440, tb + 40, tb + 40, 9, 10], [tb + 1, 440, tb + 2, tb + 2, 9, tb + 7]]
    rng = np.random.default_rng(0)
    compared = 0
    for state in states:
        for boost in (0.0, 12.0):  # 12: timestamps likely enough to force them
            logits = rng.standard_normal((2, n)).astype(np.float32)
            logits[:, tb:] += np.float32(boost)
            seqs = [sot + state, sot + state[:-1] + [9]] if state else [sot, sot]  # row 2: ends in text
            ref = torch.from_numpy(logits.copy())
            whisper.decoding.ApplyTimestampRules(tok, begin, 50).apply(ref, torch.tensor(seqs))
            got = np.array(TimestampRules(mtok, begin, 50).apply(mx.array(logits), mx.array(seqs)))
            np.testing.assert_array_equal(got, ref.numpy(), err_msg=f"state {state}, boost {boost}")
            compared += 1
    assert compared == 2 * len(states)


def test_speaker_asr_timestamp_rules_differ():
    """mlx-whisper 0.4.3's ApplyTimestampRules vs openai-whisper's on one step (no model): after a text token and
    a timestamp pair (`<|0.00|> a <|0.50|>`), openai-whisper masks timestamps before <|0.50|> (by token value);
    mlx-whisper masks by position. This pins the documented difference impl works around (TimestampRules); when
    it fails, upstream changed and impl's rule can go."""
    import mlx_whisper.decoding as MD
    import mlx_whisper.tokenizer as MTok
    import torch
    import whisper

    tok = whisper.tokenizer.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    tb, n = tok.timestamp_begin, TINY_DIMS["n_vocab"]
    begin = len(tok.sot_sequence)
    seq = list(tok.sot_sequence) + [tb, 440, tb + 25]  # <|0.00|> " a"(any text) <|0.50|>
    logits = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
    ref = torch.from_numpy(logits.copy())
    whisper.decoding.ApplyTimestampRules(tok, begin, 50).apply(ref, torch.tensor([seq]))
    mtok = MTok.get_tokenizer(True, num_languages=99, language="en", task="transcribe")
    got = np.array(MD.ApplyTimestampRules(mtok, begin, 50).apply(mx.array(logits), mx.array([seq])))
    ref = ref.numpy()
    assert np.all(np.isinf(ref[0, tb:tb + 25])) and np.isfinite(ref[0, tb + 25])  # openai: from <|0.50|> on
    assert not np.array_equal(np.isinf(got), np.isinf(ref))  # mlx-whisper 0.4.3: a different set


def test_speaker_asr_impl_runs_float32():
    """impl passes fp16=False: mlx_whisper.transcribe would otherwise load the model in float16 (its default),
    while openai-whisper on CPU runs float32."""
    from impl.speaker.align import WhisperAligner

    a = WhisperAligner(str(seeded_mlx_folder()))
    assert a.options["fp16"] is False and a.options["word_timestamps"] is True


@pytest.mark.slow
def test_speaker_asr_transcribe_words_equal_openai(models, librivox):
    """End to end through transcribe (seek loop, segments, word timestamps): impl.speaker.align.WhisperAligner vs
    openai-whisper's `transcribe(word_timestamps=True)` on LibriVox 0880, greedy (temperature 0: the default
    fallback to temperatures 0.2..1 samples, and random weights always fall back) and sample_len 32 to bound the
    garbage segments: the same text and the same words with the same times, exactly."""
    from impl.speaker.align import WhisperAligner

    m, _ = models
    clip = librivox["0880"]
    x = _audio(clip)
    opts = dict(temperature=0.0, sample_len=32, language="en")
    ref = RW.transcribe(m, x, word_timestamps=True, **opts)
    aligner = WhisperAligner(str(seeded_mlx_folder()), **opts)
    got = aligner.align(x, 16000)
    want = [(w["word"].strip(), float(w["start"]), float(w["end"])) for s in ref["segments"] for w in s["words"]]
    assert aligner.text == ref["text"]
    assert [(w.word, w.start, w.end) for w in got] == want
    assert len(want) >= 5
