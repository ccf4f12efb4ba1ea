"""MER2023 / MERR adapter on a small tree in the published formats (annotation txt, transcript CSV, MERR JSON, .npy)."""

import json

import numpy as np
import pytest

from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds

TRAIN = [("sample_00000001", 120, "happy", 2.5), ("sample_00000002", 64, "angry", -3.0),
         ("sample_00000003", 90, "worried", -1.0), ("samplenew_00000004", 77, "neutral", 0.0)]
TEST = [("sample_00000005", 51, "sad", -2.25), ("sample_00000006", 150, "surprise", 1.0)]


def quiet(*_):
    pass


def write_mer_tree(root, train=TRAIN, test=TEST, videos=True):
    root.mkdir(parents=True)
    (root / "train_label.txt").write_text("name n_frames label valence\n" +
                                          "".join(f"{n} {f} {l} {v}\n" for n, f, l, v in train))
    (root / "test3_label.txt").write_text("".join(f"{n}\t{f}\t{l}\t{v}\n" for n, f, l, v in test))
    names = [n for n, *_ in train + test]
    (root / "transcription.csv").write_text("name,sentence\n" + "".join(f'{n},"Words of {n}, said."\n' for n in names))
    (root / "MERR_fine_grained.json").write_text(json.dumps(
        {"sample_00000001": {"caption": "A woman smiles.", "smp_reason_caption": "She smiles, so she is happy.",
                             "AU_list": ["AU06", "AU12"]}}))
    (root / "README.txt").write_text("not an annotation file\n")
    for folder in ("mae_340_UTT", "HL-UTT"):
        (root / folder).mkdir()
        for n in names[:3]:
            np.save(root / folder / f"{n}.npy", np.zeros(4, dtype=np.float32))
    if videos:
        (root / "video").mkdir()
        for n in names:
            (root / "video" / f"{n}.mp4").write_bytes(b"")
    return root


def test_labels_splits_text_merr_and_features(tmp_path):
    root = write_mer_tree(tmp_path / "mer")
    report = prepare("mer", root, tmp_path / "m.jsonl", log=quiet)
    assert report["written"] == 6 and report["invalid"] == 0
    m = read_manifest(tmp_path / "m.jsonl")
    s = m.by_id()
    a = s["sample_00000001"]
    assert a.label == "happy" and a.split == "train" and a.group is None
    assert a.video == a.audio == "video/sample_00000001.mp4"
    assert a.text == "Words of sample_00000001, said."
    assert a.meta["n_frames"] == 120 and a.meta["valence"] == 2.5
    assert a.meta["caption"] == "A woman smiles." and a.meta["smp_reason_caption"].startswith("She smiles")
    assert a.meta["merr"] == {"AU_list": ["AU06", "AU12"]}
    assert a.meta["features"] == {"mae_340_UTT": "mae_340_UTT/sample_00000001.npy", "HL-UTT": "HL-UTT/sample_00000001.npy"}
    assert "features" not in s["sample_00000006"].meta
    assert s["sample_00000005"].split == "test" and s["sample_00000005"].meta["valence"] == -2.25
    (fold,) = make_folds(m.samples, "official")
    assert sorted(fold.test) == ["sample_00000005", "sample_00000006"]
    assert len(fold.train) + len(fold.val) == 4


def test_merr_nine_classes_need_label_set_merr(tmp_path):
    root = write_mer_tree(tmp_path / "mer", train=TRAIN + [("sample_00000007", 33, "doubt", 0.5)])
    with pytest.raises(PrepareError, match=r"train_label.txt:6: unknown label 'doubt'"):
        prepare("mer", root, tmp_path / "m.jsonl", log=quiet)
    prepare("mer", root, tmp_path / "m.jsonl", options={"label_set": "merr"}, log=quiet)
    m = read_manifest(tmp_path / "m.jsonl")
    assert m.label_set == "merr" and m.by_id()["sample_00000007"].label == "doubt"


def test_split_files_named_by_options(tmp_path):
    root = write_mer_tree(tmp_path / "mer")
    (root / "train_label.txt").rename(root / "a.txt")
    (root / "test3_label.txt").rename(root / "b.txt")
    prepare("mer", root, tmp_path / "m.jsonl", options={"train": "a.txt", "test": "b.txt"}, log=quiet)
    splits = {x.id: x.split for x in read_manifest(tmp_path / "m.jsonl").samples}
    assert splits["sample_00000001"] == "train" and splits["sample_00000006"] == "test"


def test_features_only_copy_has_no_video(tmp_path):
    root = write_mer_tree(tmp_path / "mer", videos=False)
    prepare("mer", root, tmp_path / "m.jsonl", log=quiet)
    assert all(x.video is None and x.audio is None for x in read_manifest(tmp_path / "m.jsonl").samples)


def test_missing_clip_is_named_with_its_annotation_line(tmp_path):
    root = write_mer_tree(tmp_path / "mer")
    (root / "video" / "sample_00000002.mp4").unlink()
    with pytest.raises(PrepareError, match=r"train_label.txt:3: sample 'sample_00000002': audio file not found: .*sample_00000002.mp4"):
        prepare("mer", root, tmp_path / "m.jsonl", log=quiet)
    report = prepare("mer", root, tmp_path / "m.jsonl", skip_invalid=True, log=quiet)
    assert report["written"] == 5 and report["invalid"] == 2  # its video and its audio track
