"""MER2023 text only: the label table + subtitles, three test sets as three folds of one training side."""

from __future__ import annotations

from collections import Counter

import pytest

from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds


def _release(root, labels: list[str], texts: list[str]):
    root.mkdir(parents=True, exist_ok=True)
    (root / "label-6way.csv").write_text("name,split,emo,val\n" + "\n".join(labels) + "\n")
    (root / "transcription-engchi-polish.csv").write_text("name,chinese,english\r\n" + "\r\n".join(texts) + "\r\n",
                                                         encoding="utf-8")
    return root


def test_three_test_sets_three_folds_and_empty_subtitles_counted(tmp_path):
    splits = ["train"] * 12 + ["test1", "test2", "test3"]
    emos = ["neutral", "angry", "happy", "sad", "worried", "surprise"] * 3
    labels = [f"s{i},{sp},{emos[i]},{i / 10}" for i, sp in enumerate(splits)]
    texts = [f's{i},中文,"Sentence {i}, with a comma."' for i in range(len(splits))]
    texts[3] = "s3,中文,"  # no English subtitle
    root = _release(tmp_path / "mer", labels, texts)
    logged = []
    prepare("mer2023_text", root, tmp_path / "m.jsonl", log=logged.append)
    m = read_manifest(tmp_path / "m.jsonl")
    assert len(m.samples) == 14 and any("skipped 1 row(s): no english subtitle" in x for x in logged)
    assert Counter(s.split for s in m.samples) == {"train": 11, "test1": 1, "test2": 1, "test3": 1}
    s0 = m.samples[0]
    assert s0.text == "Sentence 0, with a comma." and s0.meta["valence"] == 0.0 and s0.label == "neutral"
    folds = make_folds(m.samples, "official", val_fraction=0.2)
    assert [f.name for f in folds] == ["official_test1", "official_test2", "official_test3"]
    assert all(f.train == folds[0].train and f.val == folds[0].val for f in folds)  # one training side
    assert [f.test for f in folds] == [["s12"], ["s13"], ["s14"]]


def test_bad_rows_name_the_file_line_and_clip(tmp_path):
    root = _release(tmp_path / "mer", ["a,train,bored,0", "b,test9,sad,0", "c,train,sad,0"],
                    ["a,x,A", "b,x,B"])
    with pytest.raises(PrepareError) as info:
        prepare("mer2023_text", root, tmp_path / "m.jsonl", log=lambda *_: None)
    problems = [str(p) for p in info.value.problems]
    assert any("label-6way.csv" in p and ":2" in p and "a: unknown label 'bored'" in p for p in problems)
    assert any("b: unknown split 'test9'" in p for p in problems)
    assert any("c: not in transcription-engchi-polish.csv" in p for p in problems)


def test_real_label_table(tmp_path):
    from tests.conftest import data_dir

    root = data_dir("mer_annotations") / "mer2023_labels"
    prepare("mer2023_text", root, tmp_path / "m.jsonl", log=lambda *_: None)
    m = read_manifest(tmp_path / "m.jsonl")
    assert len(m.samples) == 4813  # 5,030 clips, 217 without an English subtitle
    assert Counter(s.split for s in m.samples) == {"train": 3210, "test1": 393, "test2": 391, "test3": 819}
