"""`emotune features` and `features --check` exit non-zero when samples lack their media, naming how many and which.

The real command (`python -m emotune.cli`) on a manifest made on the spot; one of its wav files is deleted.
"""

import json
import subprocess
import sys

import numpy as np

from emotune.data.sample import Sample

from .conftest import make_manifest


def emotune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emotune.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def tones(root, n):
    import soundfile as sf

    root.mkdir(parents=True)
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    for i in range(n):
        tone = 0.3 * np.sin(2 * np.pi * (150 + 40 * i + 30 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        sf.write(root / f"c{i}.wav", tone.astype(np.float32), sr)
    # A sample with no audio at all is not a failure: it simply has nothing for an audio extractor.
    return [Sample(id=f"c{i}", dataset="synthetic", audio=f"c{i}.wav") for i in range(n)] + \
        [Sample(id="words", dataset="synthetic", text="only text")]


def test_deleted_media_makes_features_and_check_exit_nonzero(tmp_path):
    root = tmp_path / "data"
    m = make_manifest(tmp_path / "m.jsonl", root, tones(root, 4))
    cache = tmp_path / "cache"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  manifest: {m.path}\nfeatures:\n  extractors: [egemaps]\n  cache_dir: {cache}\n")

    r = emotune("features", recipe, "--quiet")
    assert r.returncode == 0, r.stderr  # all present: success
    r = emotune("features", recipe, "--check")
    assert r.returncode == 0, r.stdout + r.stderr

    # Deleted after extraction: --check sees it without extracting anything.
    (root / "c2.wav").unlink()
    gone = str(root / "c2.wav")
    r = emotune("features", recipe, "--check")
    assert r.returncode == 1 and "1 sample(s)" in r.stderr and f"{gone} (file not found)" in r.stderr, r.stderr

    (root / "c3.wav").unlink()
    r = emotune("features", recipe, "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "2 sample(s)" in r.stderr and f"{gone} (file not found)" in r.stderr, r.stderr
    assert r.stderr.index(gone) < r.stderr.index(str(root / "c3.wav"))  # in manifest order: the first path first
    # The same with flags instead of a recipe, and as JSON: the failures are listed there too.
    r = emotune("features", "--manifest", m.path, "--extractors", "egemaps", "--cache-dir", cache, "--json", "--quiet")
    assert r.returncode == 1
    assert [f["path"] for f in json.loads(r.stdout)["egemaps"]["failed"]] == [gone, str(root / "c3.wav")]
    r = emotune("features", recipe, "--check", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["egemaps"]["present"] == 2 and "2 sample(s)" in r.stderr


def test_many_failures_show_the_first_few_and_a_count(tmp_path):
    root = tmp_path / "data"
    m = make_manifest(tmp_path / "m.jsonl", root, tones(root, 8))
    for i in range(8):
        (root / f"c{i}.wav").unlink()
    r = emotune("features", "--manifest", m.path, "--extractors", "egemaps", "--cache-dir", tmp_path / "c", "--quiet")
    assert r.returncode == 1 and "8 sample(s)" in r.stderr and "and 3 more" in r.stderr
    assert str(root / "c0.wav") in r.stderr and str(root / "c7.wav") not in r.stderr
