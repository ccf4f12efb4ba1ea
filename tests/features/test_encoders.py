"""Whisper encoder pooling, ASR for samples without text, MiniLM on text or transcript (real models, offline)."""

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.features.base import Source, get_extractor
from emotune.features.store import ensure_features, extract_one, load_features, load_transcripts
from emotune.media.audio import load_audio
from tests.tolerance import tol, transformer_chain

from .conftest import make_manifest

CLIPS = ["Actor_01/03-01-05-02-01-01-01.flac", "Actor_02/03-01-03-02-02-01-02.flac"]


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.slow
def test_whisper_pools_only_the_real_frames(ravdess_root):
    sources = [Source.of_file(ravdess_root / c) for c in CLIPS]
    pooled, seq = get_extractor("whisper"), get_extractor("whisper_seq(k=4)")
    states = pooled.backend().encode(sources)
    for src, st in zip(sources, states):
        seconds = len(load_audio(src.path)) / 16000
        assert abs(len(st) - seconds / 0.02) <= 2 and st.shape[1] == 384  # one state per 20 ms of audio, no padding
    v = pooled.compute_batch(sources)
    s = seq.compute_batch(sources)
    for i, st in enumerate(states):
        assert v[i].value.shape == (768,) and s[i].value.shape == (4, 384)
        # fp32 sums over the clip's frames, in any order (worst case): scaled by the mean |state| (std: the std).
        on_mean = tol(np.float32, len(st), np.abs(st).mean(0).max(), bound="worst")
        on_std = tol(np.float32, len(st), st.std(0).max(), bound="worst")
        assert np.allclose(v[i].value[:384], st.mean(0), **on_mean) and np.allclose(v[i].value[384:], st.std(0), **on_std)
        sizes = [len(x) for x in np.array_split(st, 4)]
        assert np.allclose(np.average(s[i].value, axis=0, weights=sizes), st.mean(0), **on_mean)
    # A clip's features do not depend on which other clips share its batch.
    pooled.backend()._memo.clear()
    alone = pooled.compute_batch(sources[:1])[0].value
    # Batch of 1 vs 2: Whisper tiny's encoder (2 convolutions, 4 layers of width 384, 1,500 frames; fp32) in
    # other GEMM shapes, then the pooling.
    n = transformer_chain(384, 1536, 4, 1500, 64, front=80 * 3 + 384 * 3) + len(states[0])
    assert np.allclose(alone, v[0].value, **tol(np.float32, n, np.abs(v[0].value).max()))
    # The two clips differ in emotion and speaker: their vectors must differ too.
    assert _cos(v[0].value[:384], v[1].value[:384]) < 0.999


@pytest.mark.slow
def test_asr_transcribes_samples_without_text_and_minilm_uses_it(ravdess_root, tmp_path):
    statement = "Kids are talking by the door."
    samples = [Sample(id="no_text", dataset="ravdess", audio=CLIPS[0]),
               Sample(id="has_text", dataset="ravdess", audio=CLIPS[1], text="Dogs are sitting by the door.")]
    m = make_manifest(tmp_path / "m.jsonl", ravdess_root, samples, dataset="ravdess")
    cache = tmp_path / "cache"
    summary = ensure_features(m, ["asr", "minilm"], cache, progress=False)  # ASR runs only when named
    assert summary["asr"] == {"done": 1, "cached": 0, "missing": {"sample has a transcript": 1}, "modality": "audio",
                              "failed": []}
    assert summary["minilm"]["done"] == 2
    transcript = load_transcripts(m, cache)
    assert list(transcript) == ["no_text"] and "door" in transcript["no_text"].lower()
    emb = load_features(m, ["minilm"], cache)["minilm"]
    truth = extract_one("minilm", Sample(id="t", dataset="x", text=statement), tmp_path)
    assert emb["no_text"].shape == (384,) and _cos(emb["no_text"], truth) > 0.9
    again = ensure_features(m, ["asr", "minilm"], cache, progress=False)
    assert again["minilm"]["done"] == again["asr"]["done"] == 0


@pytest.mark.slow
def test_minilm_embeds_meaning(tmp_path):
    vec = lambda t: extract_one("minilm", Sample(id="t", dataset="x", text=t), tmp_path)
    happy, joyful, invoice = vec("I am so happy today!"), vec("I feel joyful and glad."), vec("The invoice is due on Friday.")
    assert _cos(happy, joyful) > _cos(happy, invoice) + 0.2
