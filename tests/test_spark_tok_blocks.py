"""wav2vec2's conv front in blocks (impl.spark.wav2vec2.FeatureEncoder: the first BLOCKED layers per block of at most
FRAMES output frames) and the whole tokenize on 6 s of real speech (the in-repo LibriVox clips, fixtures/data) against
the official features and ids. The 1 s parity runs (parity/test_spark.py) fit in one block; 6 s takes three (599
frames out of conv layer 5). Tolerances: the blocked front exact (the same operations on the same samples), the
features the parity spec's own (10x the measured fp32 floor), ids exact."""
import mlx.core as mx
import numpy as np
import pytest

from parity.harness import run_spec
from parity.specs import spark as spark_spec
from reference import spark as ref

SAMPLES = 6 * 16000


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As parity/test_spark.py: the tiny reference's ops are too small for torch's 2-thread pool on a busy host."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_spark_tok_blocks_conv_front_equals_whole():
    """The blocked conv front equals the layers run one after the other on the whole clip, bit for bit, at a length
    that takes several blocks (else this proves nothing) and whose last block is a partial one."""
    from impl.seeded.spark import seeded_w2v
    from impl.spark import wav2vec2 as w2v

    fe = w2v.load(seeded_w2v("tiny", 0)).feature_extractor
    x = mx.array(w2v.normalize(spark_spec.make_signal("speech", SAMPLES + 1234, 2)))[None, :, None]
    T = x.shape[1]
    for layer in fe.conv_layers[:fe.BLOCKED]:
        T = (T - layer.conv.weight.shape[1]) // layer.conv.stride + 1
    assert T > 2 * fe.FRAMES and T % fe.FRAMES, T
    whole = x
    for layer in fe.conv_layers:
        whole = layer(whole)
    got = fe(x)
    assert got.shape == whole.shape
    assert np.array_equal(np.array(got), np.array(whole)), float(mx.abs(got - whole).max())


def test_spark_tok_blocks_features_every_module():
    """transformers' Wav2Vec2Model vs impl on 6 s of speech: every module after the blocked conv layers (those run
    per block: a module tap sees one block) and the features within the spec's floor-derived bound."""
    from dataclasses import replace

    from impl.spark.wav2vec2 import FeatureEncoder

    spec = spark_spec.wav2vec2_spec("tiny", samples=SAMPLES, signal="speech")
    first = spec.pairs[0]
    assert first.impl == "feature_extractor.conv_layers.{i}"
    spec.pairs = [replace(first, over=range(FeatureEncoder.BLOCKED, 7))] + list(spec.pairs[1:])
    report = run_spec(spec, seed=0)
    assert report.ok, report.summary()
    assert report.first_divergence is None and report.first_isolated_divergence is None
    assert report.compared == (7 - FeatureEncoder.BLOCKED) + 1 + 1 + 16 + 2, report.summary()


def test_spark_tok_blocks_ids_equal_official():
    """6 s of speech: impl's features -> semantic and global ids equal to the official flow's."""
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
    assert np.array(sem).shape == rsem.shape == (1, (SAMPLES - 400) // 320 + 1)
    assert np.array_equal(np.array(sem), rsem), f"{int((np.array(sem) != rsem).sum())} semantic ids differ"
    assert np.array_equal(np.array(glob), rglob)
