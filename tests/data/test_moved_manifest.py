"""A manifest records its dataset root as given (absolute, or relative to EMOTUNE_DATA), so it can be moved.

The dataset is made on the spot: a `table` corpus of three short wav files under a fresh EMOTUNE_DATA.
The commands run as a user runs them (`python -m emotune.cli`, in other working directories).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotune.data.sample import read_manifest
from emotune.errors import EmotuneError

TABLE = ["--option", "file=metadata.csv", "--option", "id=clip", "--option", "audio=path", "--option", "label=emotion",
         "--option", "media_dir=clips", "--option", "label_set=ravdess"]


def emotune(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "emotune.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env)


def make_corpus(folder: Path) -> Path:
    import soundfile as sf

    (folder / "clips").mkdir(parents=True)
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    rows = []
    for i, (f0, label) in enumerate([(140, "happy"), (200, "sad"), (260, "angry")]):
        tone = 0.3 * np.sin(2 * np.pi * (f0 + 30 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        sf.write(folder / "clips" / f"c{i}.wav", tone.astype(np.float32), sr)
        rows.append(f"c{i},c{i}.wav,{label}\n")
    (folder / "metadata.csv").write_text("clip,path,emotion\n" + "".join(rows))
    return folder


@pytest.fixture
def setup(tmp_path):
    """(EMOTUNE_DATA holding tiny/, an environment for the commands, a manifest prepared from 'tiny' and moved)."""
    home = tmp_path / "datasets"
    make_corpus(home / "tiny")
    env = {**os.environ, "EMOTUNE_DATA": str(home), "EMOTUNE_CACHE": str(tmp_path / "cache")}
    first = tmp_path / "project"
    first.mkdir()
    r = emotune("prepare", "table", "tiny", "-o", "runs/m.jsonl", *TABLE, cwd=first, env=env)
    assert r.returncode == 0, r.stderr
    header = json.loads((first / "runs" / "m.jsonl").read_text().splitlines()[0])
    # Recorded as given, relative to EMOTUNE_DATA: not relative to the manifest nor to the working directory.
    assert header["root"] == "tiny" and header["root_base"] == "EMOTUNE_DATA" and header["emotune_manifest"] == 2
    moved = tmp_path / "elsewhere" / "deeper" / "m.jsonl"
    moved.parent.mkdir(parents=True)
    shutil.copy(first / "runs" / "m.jsonl", moved)
    shutil.rmtree(first)
    other_cwd = tmp_path / "another_cwd"
    other_cwd.mkdir()
    return home, env, moved, other_cwd


def test_moved_manifest_still_finds_its_media_and_extracts(setup, monkeypatch):
    home, env, moved, other_cwd = setup
    r = emotune("features", "--manifest", moved, "--extractors", "egemaps", "--json", "--quiet", cwd=other_cwd, env=env)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["egemaps"]
    assert summary["done"] == 3 and summary["missing"] == {} and summary["failed"] == []

    monkeypatch.setenv("EMOTUNE_DATA", str(home))
    monkeypatch.chdir(other_cwd)
    m = read_manifest(moved)
    assert m.root == home / "tiny"
    assert all(m.media_path(s, "audio").is_file() for s in m.samples)


def test_moved_manifest_without_emotune_data_is_one_clear_line(setup, tmp_path):
    home, env, moved, other_cwd = setup
    unset = {k: v for k, v in env.items() if k != "EMOTUNE_DATA"}
    r = emotune("features", "--manifest", moved, "--extractors", "egemaps", "--quiet", cwd=other_cwd, env=unset)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(moved) in r.stderr and "'tiny'" in r.stderr and "EMOTUNE_DATA" in r.stderr and "not set" in r.stderr

    wrong = tmp_path / "not_the_datasets"
    wrong.mkdir()
    r = emotune("features", "--manifest", moved, "--extractors", "egemaps", "--quiet", cwd=other_cwd,
                env={**env, "EMOTUNE_DATA": str(wrong)})
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(moved) in r.stderr and str(wrong / "tiny") in r.stderr and f"EMOTUNE_DATA={wrong}" in r.stderr

    # Reading the labels and splits needs no media: only using the root does.
    r = emotune("data", "stats", moved, "--json", cwd=other_cwd, env=unset)
    assert r.returncode == 0, r.stderr


def test_a_root_given_absolute_or_under_the_working_directory_is_recorded_absolute(tmp_path, monkeypatch):
    from emotune.data.prepare import prepare

    corpus = make_corpus(tmp_path / "here" / "tiny")
    monkeypatch.delenv("EMOTUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "here")
    opts = dict(o.split("=", 1) for o in TABLE[1::2])
    prepare("table", "tiny", tmp_path / "m1.jsonl", opts, log=lambda *_: None)
    prepare("table", corpus, tmp_path / "m2.jsonl", opts, log=lambda *_: None)
    for name in ("m1.jsonl", "m2.jsonl"):
        header = json.loads((tmp_path / name).read_text().splitlines()[0])
        assert header["root"] == str(corpus) and "root_base" not in header
    monkeypatch.chdir(tmp_path)
    assert read_manifest(tmp_path / "m1.jsonl").root == corpus


def test_version_1_manifests_still_load(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "data" / "tiny")
    sample = '{"id": "c0", "dataset": "table", "label": "happy", "audio": "clips/c0.wav"}\n'
    old = tmp_path / "runs" / "manifests" / "old.jsonl"
    old.parent.mkdir(parents=True)
    # Written by earlier versions: a relative root is relative to the manifest's own folder.
    old.write_text('{"emotune_manifest": 1, "dataset": "table", "root": "../../data/tiny", "label_set": "ravdess", '
                   '"subset": "all"}\n' + sample)
    absolute = tmp_path / "abs.jsonl"
    absolute.write_text(json.dumps({"emotune_manifest": 1, "dataset": "table", "root": str(corpus),
                                    "label_set": "ravdess", "subset": "all"}) + "\n" + sample)
    monkeypatch.delenv("EMOTUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "data")  # the working directory does not matter
    for path in (old, Path(os.path.relpath(old)), absolute):
        m = read_manifest(path)
        assert m.media_path(m.samples[0], "audio").resolve() == (corpus / "clips" / "c0.wav").resolve()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"emotune_manifest": 2, "dataset": "table", "root": "tiny", "root_base": "HOME", '
                   '"label_set": "ravdess"}\n' + sample)
    with pytest.raises(EmotuneError, match="unknown root_base 'HOME'"):
        read_manifest(bad)
