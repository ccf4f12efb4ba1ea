"""Cross-corpus evaluation: a model of one corpus scored on another, on the classes the label sets share.

Two small corpora of real audio (synthesised tones whose pitch and loudness carry the emotion, as the
same cue would in speech), each a table with its own label set: A uses RAVDESS's names (calm, happy,
sad, angry), B the synthetic corpus's (neutral, happy, sad, angry, fearful). A model trained on A must be
scored on happy / sad / angry of B only, with B's neutral and fearful clips left out and counted.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from emotune.data.labels import load_label_set
from emotune.errors import EmotuneError
from emotune.experiments.cross_corpus import eval_cross, map_classes, parse_maps

# emotion -> (pitch Hz, amplitude): a cue egemaps reads directly
CUES = {"calm": (140, 0.05), "neutral": (140, 0.05), "happy": (320, 0.3), "sad": (110, 0.04), "angry": (220, 0.6),
        "fearful": (400, 0.1)}


def corpus(root, label_set, classes, speakers=4, per=4, seed=0):
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "clips").mkdir(parents=True)
    rows = ["id,label,audio,speaker"]
    t = np.arange(int(16000 * 1.0)) / 16000
    for spk in range(speakers):
        for c in classes:
            f0, amp = CUES[c]
            for i in range(per):
                f = f0 * (1 + 0.05 * rng.standard_normal()) * (1 + 0.03 * spk)
                wave = amp * np.sin(2 * np.pi * f * t) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)) + 0.003 * rng.standard_normal(len(t))
                name = f"{c}_{spk}_{i}"
                sf.write(root / "clips" / f"{name}.wav", wave.astype(np.float32), 16000)
                rows.append(f"{name},{c},clips/{name}.wav,s{spk}")
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    return root


def recipe(tmp, root, label_set, cache):
    r = {"name": "xc", "run_dir": str(tmp / "run"),
         "data": {"dataset": "table", "root": str(root), "manifest": str(tmp / f"{root.name}.jsonl"),
                  "protocol": "group_kfold", "folds": 2,
                  "options": {"file": "t.csv", "label": "label", "audio": "audio", "group": "speaker",
                              "label_set": label_set}},
         "features": {"cache_dir": str(cache), "extractors": ["egemaps"]},
         "model": {"kind": "baseline_lr", "inputs": ["egemaps"], "baseline": {"C_grid": [0.1, 1.0]}}}
    path = tmp / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    from emotune.data.prepare import prepare

    tmp = tmp_path_factory.mktemp("xc")
    a = corpus(tmp / "a", "ravdess", ["calm", "happy", "sad", "angry"], seed=1)
    b = corpus(tmp / "b", "synthetic", ["neutral", "happy", "sad", "angry", "fearful"], speakers=2, seed=2)
    opts = {"file": "t.csv", "label": "label", "audio": "audio", "group": "speaker"}
    prepare("table", b, tmp / "b.jsonl", {**opts, "label_set": "synthetic"}, log=lambda *x: None)
    return tmp, a, b


def test_classes_map_through_names_and_aliases_of_either_set():
    rav, mer, syn = load_label_set("ravdess"), load_label_set("mer"), load_label_set("synthetic")
    # MER2023 "surprise" is RAVDESS "surprised" (an alias); MER's "worried" has no RAVDESS counterpart
    assert map_classes(rav, mer) == {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad",
                                     "surprise": "surprised"}
    assert map_classes(syn, rav) == {n: n for n in ("neutral", "happy", "sad", "angry", "fearful")}
    assert map_classes(rav, mer, {"worried": "fearful"})["worried"] == "fearful"
    with pytest.raises(EmotuneError, match="'bored' is not a class of the other corpus"):
        map_classes(rav, mer, {"bored": "calm"})
    with pytest.raises(EmotuneError, match="expected OTHER=MODEL"):
        parse_maps(["worried"])


def test_lr_trained_on_one_corpus_is_scored_on_the_shared_classes_of_another(corpora):
    from emotune.experiments.cv import cv

    tmp, a, b = corpora
    cv(str(recipe(tmp, a, "ravdess", tmp / "cache")), [f"run_dir={tmp}/cv_a"])
    summary = eval_cross(str(tmp / "cv_a"), str(tmp / "b.jsonl"))
    assert summary["models"] == 2
    mapping = summary["mapping"]
    assert mapping["shared"] == ["happy", "sad", "angry"]  # in the model's class order; its calm is not scored
    assert mapping["model_not_scored"] == ["calm"]
    assert mapping["other_left_out"] == {"neutral": 8, "fearful": 8}  # B's clips with no class in A: counted
    assert summary["ua"]["mean"] > 0.8  # the cue carries over; chance is 1/3
    fold = sorted(p for p in (tmp / "cv_a").iterdir() if (p / "DONE").exists())[0]
    rows = [json.loads(x) for x in (fold / "eval_cross_b" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 * 4 and {r["gold"] for r in rows} == {"happy", "sad", "angry"}
    assert {r["pred"] for r in rows} <= {"happy", "sad", "angry"}


def test_too_few_shared_classes_is_refused_unless_mapped(corpora, tmp_path):
    from emotune.data.prepare import prepare
    from emotune.experiments.cv import cv

    tmp, a, b = corpora
    c = corpus(tmp_path / "c", "synthetic", ["neutral", "fearful"], speakers=2, seed=3)
    prepare("table", c, tmp_path / "c.jsonl", {"file": "t.csv", "label": "label", "audio": "audio",
                                               "label_set": "synthetic"}, log=lambda *x: None)
    cv(str(recipe(tmp, a, "ravdess", tmp / "cache")), [f"run_dir={tmp}/cv_a"])  # done above: skipped
    with pytest.raises(EmotuneError, match="share 0 class"):
        eval_cross(str(tmp / "cv_a"), str(tmp_path / "c.jsonl"))
    out = eval_cross(str(tmp / "cv_a"), str(tmp_path / "c.jsonl"), {"neutral": "calm", "fearful": "happy"})
    assert out["mapping"]["shared"] == ["calm", "happy"] and out["mapping"]["other_left_out"] == {}


def test_the_grid_runs_each_source_and_writes_one_table(corpora):
    from emotune.experiments.cross_corpus import grid

    tmp, a, b = corpora
    spec = {"out": str(tmp / "xc_grid"),
            "sources": {"a_lr": {"config": str(recipe(tmp, a, "ravdess", tmp / "cache")), "run_dir": str(tmp / "cv_a")}},
            "targets": {"b": str(tmp / "b.jsonl")}}
    (tmp / "grid.yaml").write_text(yaml.safe_dump(spec))
    table = grid(str(tmp / "grid.yaml")).read_text()
    assert "| a_lr | b | happy, sad, angry | neutral (8), fearful (8) |" in table
    rows = json.loads((tmp / "xc_grid" / "summary.json").read_text())["rows"]
    assert rows[0]["in_corpus_ua"] > 0.8 and rows[0]["models"] == 2
    (tmp / "bad.yaml").write_text(yaml.safe_dump({**spec, "pairs": [["a_lr", "c"]]}))
    with pytest.raises(EmotuneError, match=r"pair \[a_lr, c\] names an unknown"):
        grid(str(tmp / "bad.yaml"))


def test_another_manifest_of_the_same_file_name_does_not_overwrite(corpora, tmp_path):
    import shutil

    tmp, a, b = corpora
    (tmp_path / "x").mkdir()
    shutil.copy(tmp / "b.jsonl", tmp_path / "x" / "b.jsonl")  # same stem, another file
    eval_cross(str(tmp / "cv_a"), str(tmp / "b.jsonl"))
    with pytest.raises(EmotuneError, match="another manifest with the same file name"):
        eval_cross(str(tmp / "cv_a"), str(tmp_path / "x" / "b.jsonl"))
