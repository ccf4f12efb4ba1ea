"""`whisper(layer=k)`: Whisper's inner layers from the CTranslate2 weights, run in torch."""

import struct

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.base import get_extractor
from emotune.features.store import ensure_features, load_features
from emotune.features.whisper import WINDOW_FRAMES, WhisperBackend, bundled_model
from emotune.features.whisper_layers import TorchWhisperEncoder, read_encoder_weights
from emotune.media.audio import SAMPLE_RATE

from .conftest import make_manifest
from .test_whisper_states import _padded


@pytest.fixture(scope="module")
def window():
    """One encoder window (80 x 3,000 log-mel) of a padded tone, as the extractor builds it."""
    backend = WhisperBackend.get("", "float32")
    mel = backend.model.feature_extractor(_padded(1.2, 0.5, 230.0))
    return np.pad(mel, ((0, 0), (0, WINDOW_FRAMES - mel.shape[1])))[None].astype(np.float32)


@pytest.fixture(scope="module")
def torch_encoder():
    return TorchWhisperEncoder(bundled_model())


def test_torch_encoder_matches_ctranslate2_output(window, torch_encoder):
    from faster_whisper.transcribe import get_ctranslate2_storage

    ct2 = np.asarray(WhisperBackend.get("", "float32").model.model.encode(get_ctranslate2_storage(window)))
    ours = torch_encoder.encoder_output(window)
    assert ours.shape == ct2.shape == (1, 1500, 384)
    # Same weights, same graph: only float summation order differs (states reach ~10 in magnitude).
    assert np.abs(ours - ct2).max() < 2e-3
    assert torch_encoder.n_layers == 4 and torch_encoder.heads == 6


def test_layers_are_the_residual_stream_and_differ(window, torch_encoder):
    states = [torch_encoder.states(window, k) for k in range(4)]
    assert all(s.shape == (1, 1500, 384) for s in states)
    for a, b in zip(states, states[1:]):  # every block changes the stream
        assert np.abs(a - b).mean() > 1e-2
    with pytest.raises(EmotuneError, match=r"blocks 0\.\.3"):
        torch_encoder.states(window, 4)


def test_layer_setting_keeps_old_cache_keys():
    # Added after caches existed: the default must not move any key, or every cached Whisper feature is redone.
    assert get_extractor("whisper").key == "whisper-v1-ad236fd98126"
    assert get_extractor("whisper_states").key == "whisper_states-v1-e6fdec104d5d"
    assert get_extractor("whisper_seq(k=4)").key == "whisper_seq-v1-61eb19dae51b"
    layered = get_extractor("whisper(layer=2)")
    assert layered.spec == "whisper(layer=2)" and layered.upstream() == "whisper_states(layer=2)"
    assert layered.key != get_extractor("whisper").key
    with pytest.raises(EmotuneError, match="layer must be -1"):
        get_extractor("whisper(layer=-2)")


@pytest.mark.slow
def test_layer_feature_end_to_end(tmp_path, torch_encoder):
    import soundfile as sf

    root = tmp_path / "media"
    root.mkdir()
    sf.write(root / "a.wav", _padded(1.0, 0.5, 200.0), SAMPLE_RATE)
    manifest = make_manifest(tmp_path / "m.jsonl", root, [Sample(id="a", dataset="synthetic", label="neutral", audio="a.wav")])
    cache = tmp_path / "cache"
    ensure_features(manifest, ["whisper(layer=2)", "whisper"], cache, progress=False)
    feats = load_features(manifest, ["whisper(layer=2)", "whisper"], cache)
    mid, out = feats["whisper(layer=2)"]["a"], feats["whisper"]["a"]
    assert mid.shape == out.shape == (768,)
    # The pooled feature is mean + std of the layer's states over the clip's real frames (2 s -> 100 states).
    audio, _ = sf.read(root / "a.wav", dtype="float32")  # as written (16-bit), not the float tone
    mel = WhisperBackend.get("", "float32").model.feature_extractor(audio)
    real = int(np.ceil(mel.shape[1] / 2))
    window = np.pad(mel, ((0, 0), (0, WINDOW_FRAMES - mel.shape[1])))[None].astype(np.float32)
    states = torch_encoder.states(window, 2)[0, :real]
    np.testing.assert_allclose(mid, np.concatenate([states.mean(0), states.std(0)]), rtol=1e-4, atol=1e-4)
    assert np.abs(mid - out).mean() > 1e-2


def _model_bin(path, version=6, variables=()):
    """A CTranslate2 model.bin holding the given (name, float32 array) variables."""
    def s(text):
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    blob = struct.pack("<I", version) + s("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, arr in variables:
        arr = np.asarray(arr, np.float32)
        blob += s(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        blob += struct.pack("<BI", 0, arr.nbytes) + arr.tobytes()
    path.write_bytes(blob)
    return path


def test_unreadable_model_bin_is_a_clear_error(tmp_path):
    good = _model_bin(tmp_path / "cut.bin", variables=[("encoder/conv1/weight", np.ones((2, 80, 3)))])
    good.write_bytes(good.read_bytes()[:-100])  # cut short inside the weights
    with pytest.raises(EmotuneError, match="cut.bin: not a readable CTranslate2 model.bin"):
        read_encoder_weights(good)
    with pytest.raises(EmotuneError, match="format 3 is too old"):
        read_encoder_weights(_model_bin(tmp_path / "old.bin", version=3))
    with pytest.raises(EmotuneError, match=r"not a Whisper model.*|no encoder/conv1"):
        read_encoder_weights(_model_bin(tmp_path / "other.bin", variables=[("encoder/foo", np.zeros(3))]))
    got = read_encoder_weights(_model_bin(tmp_path / "w.bin", variables=[
        ("encoder/conv1/weight", np.ones((2, 80, 3))), ("encoder/conv2/weight", np.ones((2, 2, 3))),
        ("encoder/position_encodings/encodings", np.zeros((4, 2))), ("encoder/layer_norm/gamma", np.ones(2)),
        ("decoder/skipped", np.ones(5))]))
    assert set(got) == {"conv1/weight", "conv2/weight", "position_encodings/encodings", "layer_norm/gamma"}
    assert got["conv1/weight"].shape == (2, 80, 3) and got["conv1/weight"].dtype == np.float32
