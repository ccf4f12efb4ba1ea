"""The adapters on the real datasets (skip without EMOTUNE_DATA)."""

import json
import subprocess
import sys
from collections import Counter

from emotune.data.prepare import prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds


def test_ravdess(ravdess_root, tmp_path):
    out = tmp_path / "r.jsonl"
    prepare("ravdess", ravdess_root, out, log=lambda *_: None)
    m = read_manifest(out)
    assert len(m.samples) == 1440
    assert len({s.group for s in m.samples}) == 24
    counts = Counter(s.label for s in m.samples)
    assert counts["neutral"] == 96 and all(v == 192 for k, v in counts.items() if k != "neutral")
    folds = make_folds(m.samples, "group_kfold", folds=6)
    assert [len(f.test) for f in folds] == [240] * 6
    assert folds[-1].test_groups == ["actor21", "actor22", "actor23", "actor24"]
    assert all(m.media_path(s, "audio").exists() for s in m.samples[:5])


def test_meld(meld_root, tmp_path):
    out = tmp_path / "m.jsonl"
    prepare("meld", meld_root, out, log=lambda *_: None)
    m = read_manifest(out)
    splits = Counter(s.split for s in m.samples)
    assert (splits["train"], splits["dev"], splits["test"]) == (9989, 1109, 2610)
    assert len({s.label for s in m.samples}) == 7
    s = m.samples[0]
    assert {"dialogue", "turn", "speaker"} <= set(s.meta)
    (fold,) = make_folds(m.samples, "official")
    assert len(fold.test) == 2610


def test_goemotions(goemotions_root, tmp_path):
    out = tmp_path / "g.jsonl"
    prepare("goemotions", goemotions_root, out, log=lambda *_: None)
    m = read_manifest(out)
    splits = Counter(s.split for s in m.samples)
    assert (splits["train"], splits["dev"], splits["test"]) == (43410, 5426, 5427)
    multi = sum(len(s.labels) > 1 for s in m.samples) / len(m.samples)
    assert 0.12 < multi < 0.20
    assert all(s.label is None for s in m.samples if len(s.labels) > 1)


def test_cli_prepare_stats_splits(ravdess_root, tmp_path):
    out = tmp_path / "r.jsonl"
    run = lambda *a: subprocess.run([sys.executable, "-m", "emotune.cli", *a], capture_output=True, text=True)
    r = run("prepare", "ravdess", str(ravdess_root), "-o", str(out))
    assert r.returncode == 0, r.stderr
    r = run("data", "stats", str(out), "--json")
    assert json.loads(r.stdout)["samples"] == 1440
    r = run("splits", str(out), "--protocol", "group_kfold", "--folds", "6", "-o", str(tmp_path / "folds"))
    assert r.returncode == 0 and len(list((tmp_path / "folds").glob("*.json"))) == 6
