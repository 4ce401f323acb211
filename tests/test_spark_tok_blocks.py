"""The CPU's blocked wav2vec2 paths (impl.spark.wav2vec2 on impl.ops' gemm path) against the official features and
ids, at lengths that take them: the conv front in blocks of 256 frames out of layer 5 on two streams (> 2.6 s of
audio), each encoder layer split in two halves of frames on two streams (>= 128 frames, 2.6 s), the positional conv per group on
one OpenBLAS thread. The 1 s parity runs (parity/test_spark.py) stay on the whole-array path; these lengths did not
run there. Tolerances: the parity spec's own (10x the measured fp32 floor), ids exact."""
import mlx.core as mx
import numpy as np
import pytest

from impl import ops
from parity.harness import run_spec
from parity.specs import spark as spark_spec
from reference import spark as ref


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As parity/test_spark.py: the tiny reference's ops are too small for torch's 2-thread pool on a busy host."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SAMPLES = 6 * 16000  # 299 frames (halves of 149 and 150); 599 frames out of conv layer 5 (3 blocks of <= 256)


def test_spark_tok_blocks_take_the_blocked_paths():
    """The length used below does reach the blocked paths (else the tests below prove nothing new)."""
    from impl.seeded.spark import seeded_w2v
    from impl.spark import wav2vec2 as w2v

    model = w2v.load(seeded_w2v("tiny", 0))
    fe = model.feature_extractor
    T = SAMPLES
    for layer in fe.conv_layers[:fe.CHUNKED]:
        T = (T - layer.conv.weight.shape[1]) // layer.conv.stride + 1
    assert ops.path() == "gemm" and T > fe.FRAMES
    feats = w2v.features(model, np.zeros(SAMPLES))
    assert feats.shape[1] >= 2 * model.encoder.layers[0].ROWS and model._streams is not None


def test_spark_tok_blocks_features_every_module():
    """transformers' Wav2Vec2Model vs impl on 6 s of speech: every module after the blocked conv layers (those run
    per block: a module tap sees one block) and the features within the spec's floor-derived bound, propagated
    through the blocked paths (the harness's isolated run calls each module on the whole array)."""
    from dataclasses import replace

    from impl.spark.wav2vec2 import FeatureEncoder

    spec = spark_spec.wav2vec2_spec("tiny", samples=SAMPLES, signal="speech")
    first = spec.pairs[0]
    assert first.impl == "feature_extractor.conv_layers.{i}"
    spec.pairs = [replace(first, over=range(FeatureEncoder.CHUNKED, 7))] + list(spec.pairs[1:])
    report = run_spec(spec, seed=0)
    assert report.ok, report.summary()
    assert report.first_divergence is None and report.first_isolated_divergence is None
    assert report.compared == (7 - FeatureEncoder.CHUNKED) + 1 + 1 + 16 + 1, report.summary()


def test_spark_tok_blocks_ids_equal_official():
    """6 s of speech: impl's features (blocked paths) -> semantic ids equal to the official flow's."""
    from impl import spark
    from impl.seeded.spark import seeded_w2v
    from impl.spark import audio as impl_audio
    from impl.spark import wav2vec2 as w2v

    folder = seeded_w2v("tiny", 0)
    processor, ref_w2v = ref.load_wav2vec2(folder)
    wav = ref.audio_volume_normalize(spark_spec.make_signal("speech", SAMPLES, 4).astype(np.float64))
    clip = impl_audio.ref_clip(wav)
    codec = spark_spec.checkpoint("tiny", 0)
    feat = w2v.features(w2v.load(folder), wav)
    sem, glob = spark.load(codec).tokenize(feat, mx.array(clip.astype(np.float32))[None])
    rsem, rglob = ref.tokenize(ref.load(codec, "float32"), ref.wav2vec2_features(processor, ref_w2v, wav),
                               clip[None].astype(np.float32))
    assert np.array_equal(np.array(sem), rsem), f"{int((np.array(sem) != rsem).sum())} semantic ids differ"
    assert np.array_equal(np.array(glob), rglob)
