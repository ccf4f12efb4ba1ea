"""A corpus with its own classes: a label-set file by relative path, stored in the manifest by content."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from emotune.data.labels import load_label_set
from emotune.data.prepare import prepare
from emotune.data.sample import read_manifest
from emotune.errors import EmotuneError


def _corpus(root):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = {"bored": "dull slow tired meh", "calm": "quiet peaceful still soft", "Angry": "furious shout rage mad"}
    rows = ["id,label,text,speaker"]
    for i in range(36):
        lab = list(words)[i % 3]
        rows.append(f"u{i},{lab},{' '.join(rng.permutation(words[lab].split()))},spk{i % 4}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    (root / "acted.yaml").write_text("labels: [bored, calm, angry]\naliases: {Angry: angry}\n")


def test_own_label_set_prepares_trains_and_survives_a_move(tmp_path, monkeypatch):
    import subprocess
    import sys

    project = tmp_path / "project"
    _corpus(project / "corpus")
    monkeypatch.chdir(project)
    monkeypatch.setenv("EMOTUNE_DATA", str(project))  # the root is then recorded relative to it
    opts = {"file": "meta.csv", "id": "id", "label": "label", "text": "text", "group": "speaker",
            "label_set": "corpus/acted.yaml"}  # relative to the working directory
    prepare("table", "corpus", project / "m.jsonl", opts, log=lambda *_: None)
    m = read_manifest(project / "m.jsonl")
    assert isinstance(m.label_set, dict) and m.label_set["labels"] == ["bored", "calm", "angry"]
    assert {s.label for s in m.samples} == {"bored", "calm", "angry"}  # "Angry" through the alias
    recipe = project / "r.yaml"
    recipe.write_text("name: own\nrun_dir: runs/own\ndata: {dataset: table, root: corpus, manifest: m.jsonl, "
                      "protocol: group_kfold, folds: 2}\nfeatures: {extractors: [minilm]}\n"
                      "model: {kind: baseline_lr, inputs: [minilm]}\n")
    # Move the whole project (and with it the label-set file's old place): the manifest still knows its labels.
    moved = tmp_path / "elsewhere"
    shutil.move(str(project), str(moved))
    os.remove(moved / "corpus" / "acted.yaml")
    monkeypatch.chdir(moved)
    assert str(project) not in (moved / "m.jsonl").read_text()  # nothing in the manifest names the old place
    env = {**os.environ, "EMOTUNE_DATA": str(moved)}
    out = subprocess.run([sys.executable, "-m", "emotune.cli", "--quiet", "cv", "r.yaml"], capture_output=True, text=True,
                         timeout=600, cwd=moved, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((moved / "runs" / "own" / "summary.json").read_text())
    assert summary["labels"] == ["bored", "calm", "angry"] and summary["ua"]["mean"] > 0.5


def test_label_set_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: []\n")
    with pytest.raises(EmotuneError, match="bad.yaml: a label set needs"):
        load_label_set(str(bad))
    with pytest.raises(EmotuneError, match="label set file not found"):
        load_label_set(str(tmp_path / "missing.yaml"))
    with pytest.raises(EmotuneError, match="or a path to your own"):
        load_label_set("no_such_builtin")
    dup = tmp_path / "dup.yml"
    dup.write_text("labels: [a, a]\n")
    with pytest.raises(EmotuneError, match="listed twice"):
        load_label_set(str(dup))
