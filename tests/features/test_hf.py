"""`hf:<model>` extractors on tiny randomly initialised models saved to a folder (no hub, no download)."""

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.store import ensure_features, extractor_info, load_features

from .conftest import make_manifest

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "am", "so", "happy", "sad", "today", "the", "door"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    tf = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("hf")
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    tf.BertModel(tf.BertConfig(vocab_size=len(VOCAB), **small)).save_pretrained(d / "text")
    tf.BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(d / "text")
    tf.Wav2Vec2Model(tf.Wav2Vec2Config(conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                                       num_conv_pos_embedding_groups=2, **small)).save_pretrained(d / "audio")
    tf.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(d / "audio")
    tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, **small)).save_pretrained(d / "vision")
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d / "vision")
    return d


@pytest.mark.slow
def test_hf_audio_vision_text(tiny_models, media_dir, tmp_path):
    samples = [Sample(id="a", dataset="synthetic", audio="tone.wav", video="clip.mp4", text="i am so happy today"),
               Sample(id="b", dataset="synthetic", audio="empty.wav", text="the door")]
    m = make_manifest(tmp_path / "m.jsonl", media_dir, samples)
    specs = {f"hf:{tiny_models / 'audio'}(pool=mean+std)": ("audio", (64,)),
             f"hf:{tiny_models / 'vision'}": ("face", (32,)),
             f"hf:{tiny_models / 'text'}": ("text", (32,))}
    cache = tmp_path / "cache"
    summary = ensure_features(m, list(specs), cache, progress=False)
    feats = load_features(m, list(specs), cache)
    for spec, (modality, shape) in specs.items():
        info = extractor_info(spec)
        assert (info["modality"], info["shape"]) == (modality, shape), spec
        assert all(v.shape == shape and np.all(np.isfinite(v)) for v in feats[spec].values())
    audio, vision, text = specs
    assert summary[audio]["done"] == 1 and summary[audio]["missing"] == {"empty file (0 bytes)": 1}
    assert summary[vision]["done"] == 1 and summary[vision]["missing"] == {"no video or image in sample": 1}
    assert summary[text]["done"] == 2 and not np.allclose(feats[text]["a"], feats[text]["b"])


def test_hf_key_follows_settings_and_weights(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_models / "text", folder)
    base = extractor_info(f"hf:{folder}")["key"]
    assert extractor_info(f"hf:{folder}(layer=1)")["key"] != base
    assert extractor_info(f"hf:{folder}(layer=1)")["spec"] == f"hf:{folder}(layer=1)"
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes() + b"")
    import os
    os.utime(folder / "model.safetensors", ns=(1, 1))  # same bytes, new mtime: treated as new weights
    from emotune.features.base import _INSTANCES
    _INSTANCES.clear()
    assert extractor_info(f"hf:{folder}")["key"] != base


def test_hf_unknown_model_says_what_to_do():
    with pytest.raises(EmotuneError, match="not a folder and not in the local Hugging Face cache"):
        extractor_info("hf:nobody/no-such-model-here")
