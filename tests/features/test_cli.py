"""`emotune features`: from a recipe or flags, a summary table, --check coverage, --list, one-line errors."""

import json
import subprocess
import sys

from emotune.data.sample import Sample

from .conftest import make_manifest


def emotune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emotune.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_features_verb_from_flags_and_recipe(media_dir, tmp_path):
    samples = [Sample(id="t", dataset="synthetic", audio="tone.wav"), Sample(id="e", dataset="synthetic", audio="empty.wav")]
    m = make_manifest(tmp_path / "m.jsonl", media_dir, samples)
    cache = tmp_path / "cache"

    r = emotune("features", "--check", "--manifest", m.path, "--extractors", "egemaps", "--cache-dir", cache)
    assert r.returncode == 1 and "egemaps" in r.stdout  # nothing extracted yet: exit 1 for scripts

    r = emotune("features", "--manifest", m.path, "--extractors", "egemaps", "--cache-dir", cache, "--quiet")
    # The empty file is recorded as missing and the run goes on, but the exit status says a sample failed.
    assert r.returncode == 1 and "1 sample(s)" in r.stderr and "empty.wav (empty file (0 bytes))" in r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("egemaps"))
    assert row.split()[:5] == ["egemaps", "audio", "1", "0", "1"] and "empty file (0 bytes)" in row

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  manifest: {m.path}\nfeatures:\n  extractors: [logmel]\n  cache_dir: {cache}\n")
    r = emotune("features", recipe, "features.extractors=[egemaps]", "--json", "--quiet")
    assert json.loads(r.stdout)["egemaps"] == {"done": 0, "cached": 1, "missing": {"empty file (0 bytes)": 1}, "modality": "audio",
                                               "failed": [{"path": str(media_dir / "empty.wav"), "reason": "empty file (0 bytes)"}]}

    r = emotune("features", recipe, "features.extractors=[egemaps]", "--check", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["egemaps"]["present"] == 1


def test_features_list_and_errors(tmp_path):
    r = emotune("features", "--list")
    assert r.returncode == 0
    assert any(line.startswith("whisper_seq") and "(8, 384)" in line for line in r.stdout.splitlines())
    r = emotune("features", "--manifest", tmp_path / "nope.jsonl")
    assert r.returncode == 2 and r.stderr.startswith("error: manifest not found") and "Traceback" not in r.stderr
    (tmp_path / "m.jsonl").write_text('{"emotune_manifest": 1, "dataset": "x", "root": ".", "label_set": "ravdess"}\n')
    r = emotune("features", "--manifest", tmp_path / "m.jsonl", "--extractors", "egemaps,wav2vec")
    assert r.returncode == 2 and "unknown extractor 'wav2vec'" in r.stderr
    assert emotune("features", "--help").stdout.count("--extractors") >= 1
