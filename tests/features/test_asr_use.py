"""ASR runs only for a model that reads text, and `emotune features` never adds it unasked."""

import json
import subprocess
import sys

import numpy as np
import pytest

from emotune.config import load_config
from emotune.data.sample import Sample
from emotune.features.cache import FeatureCache
from emotune.features.text_use import model_reads_text

from .conftest import make_manifest


def _feature_names(*overrides):
    from emotune.experiments.run import feature_names

    return feature_names(load_config(None, list(overrides)))


LM = ("model.kind=emotion_lm", "model.inputs=[egemaps]", "features.extractors=[egemaps,asr]")


@pytest.mark.parametrize("overrides, reads", [
    (LM + ("model.lm.prompts=[no_transcript]",), False),  # the prompt never shows a transcript
    (LM + ("model.lm.prompts=[default]",), True),
    (LM + ("model.lm.prompts=[no_transcript]", "model.lm.eval_prompts=[terse]"), True),  # evaluation shows it
    (("model.kind=baseline_lr", "model.inputs=[egemaps]", "features.extractors=[egemaps,asr]"), False),
    (("model.kind=baseline_lr", "model.inputs=[minilm]", "features.extractors=[minilm]"), True),  # falls back to ASR
    (("model.kind=baseline_lr", "model.inputs=[minilm(asr_fallback=false)]"), False),
])
def test_asr_is_an_input_only_when_the_model_reads_text(overrides, reads):
    assert ("asr" in _feature_names(*overrides)) is reads
    assert model_reads_text(load_config(None, list(overrides))) is reads


def test_a_prompt_showing_text_still_needs_asr_asked_for():
    assert "asr" not in _feature_names("model.kind=emotion_lm", "model.inputs=[egemaps]", "features.extractors=[egemaps]")


def _tones(root, n=3):
    import soundfile as sf

    root.mkdir(parents=True)
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    for i in range(n):
        sf.write(root / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (160 + 50 * i) * t)).astype(np.float32), sr)
    return [Sample(id=f"c{i}", dataset="synthetic", label="happy", audio=f"c{i}.wav") for i in range(n)]


def _asr_folders(cache):
    return [k for k in FeatureCache(cache).keys() if k.startswith("asr-")]


def test_training_inputs_of_a_prompt_without_text_run_no_asr(tmp_path):
    from emotune.experiments.run import load_inputs

    m = make_manifest(tmp_path / "m.jsonl", tmp_path / "data", _tones(tmp_path / "data"))
    cache = tmp_path / "cache"
    cfg = load_config(None, [*LM, "model.lm.prompts=[no_transcript]", f"features.cache_dir={cache}"])
    feats, transcripts = load_inputs(cfg, m)
    assert sorted(feats["egemaps"]) == ["c0", "c1", "c2"] and transcripts == {}
    assert _asr_folders(cache) == []  # not run, not even planned


def test_features_without_asr_in_the_list_never_writes_asr(tmp_path):
    m = make_manifest(tmp_path / "m.jsonl", tmp_path / "data", _tones(tmp_path / "data"))
    cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "emotune.cli", "features", "--manifest", str(m.path), "--extractors",
                        "egemaps,minilm", "--cache-dir", str(cache), "--json", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert sorted(summary) == ["egemaps", "minilm"] and _asr_folders(cache) == []
    # MiniLM embeds the samples' own text; without transcripts asked for, clips without text are counted.
    assert summary["minilm"]["missing"] == {"no text and no ASR transcript": 3} and summary["minilm"]["failed"] == []
