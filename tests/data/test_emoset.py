"""EmoSet adapter on a small tree in the published layout (split JSON lists, one annotation JSON per image)."""

import json

import pytest

from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds

IMAGES = {
    "train": [("amusement", 0, {"brightness": 0.61, "colorfulness": 0.42, "object": ["Person", "Balloon"],
                                "scene": "amusement_park", "facial_expression": "happy", "human_action": "laughing"}),
              ("awe", 1, {"brightness": 0.3, "colorfulness": 0.2, "object": ["Mountain"], "scene": "mountain"}),
              ("fear", 2, {"brightness": 0.1, "colorfulness": 0.05, "scene": "forest_path"}),
              ("sadness", 3, {"brightness": 0.2, "colorfulness": 0.1, "facial_expression": "sad"})],
    "val": [("anger", 4, {"brightness": 0.5, "colorfulness": 0.7})],
    "test": [("disgust", 5, {"brightness": 0.4, "colorfulness": 0.3}), ("excitement", 6, {"brightness": 0.8, "colorfulness": 0.9})],
}


def quiet(*_):
    pass


def write_emoset_tree(root):
    for split, items in IMAGES.items():
        entries = []
        for emotion, k, attrs in items:
            name = f"{emotion}_{k:05d}"
            image, annotation = f"image/{emotion}/{name}.jpg", f"annotation/{emotion}/{name}.json"
            for rel in (image, annotation):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / image).write_bytes(b"")
            (root / annotation).write_text(json.dumps({"name": name, "emotion": emotion, **attrs}))
            entries.append([emotion, image, annotation])
        (root / f"{split}.json").write_text(json.dumps(entries))  # the release writes each split on one line
    return root


@pytest.fixture
def tree(tmp_path):
    return write_emoset_tree(tmp_path / "EmoSet-118K")


def test_splits_images_and_attributes(tree, tmp_path):
    report = prepare("emoset", tree, tmp_path / "m.jsonl", log=quiet)
    assert report["written"] == 7
    m = read_manifest(tmp_path / "m.jsonl")
    s = m.by_id()
    a = s["amusement_00000"]
    assert a.label == "amusement" and a.split == "train" and a.image == "image/amusement/amusement_00000.jpg"
    assert a.meta["object"] == ["Person", "Balloon"] and a.meta["scene"] == "amusement_park"
    assert a.meta["facial_expression"] == "happy" and a.meta["human_action"] == "laughing"
    assert a.meta["brightness"] == 0.61 and a.meta["colorfulness"] == 0.42
    assert "facial_expression" not in s["awe_00001"].meta
    assert s["anger_00004"].split == "dev"
    (fold,) = make_folds(m.samples, "official")
    assert sorted(fold.test) == ["disgust_00005", "excitement_00006"] and fold.val == ["anger_00004"]


def test_polarity_subset(tree, tmp_path):
    prepare("emoset", tree, tmp_path / "m.jsonl", subset="polarity2", log=quiet)
    labels = {x.id: x.label for x in read_manifest(tmp_path / "m.jsonl").samples}
    assert labels["amusement_00000"] == "positive" and labels["fear_00002"] == "negative"


def test_annotation_disagreeing_with_split_file(tree, tmp_path):
    path = tree / "annotation/fear/fear_00002.json"
    path.write_text(json.dumps({"emotion": "awe"}))
    with pytest.raises(PrepareError, match=r"train.json:3: entry 3: .*emotion 'awe' differs"):
        prepare("emoset", tree, tmp_path / "m.jsonl", log=quiet)


def test_split_entry_escaping_the_root_is_refused(tree, tmp_path):
    entries = json.loads((tree / "test.json").read_text())
    entries[0][2] = "../../outside.json"
    (tree / "test.json").write_text(json.dumps(entries))
    report = prepare("emoset", tree, tmp_path / "m.jsonl", skip_invalid=True, log=quiet)
    assert report["written"] == 6
    assert "escapes the dataset root" in (tmp_path / "m.jsonl.invalid.txt").read_text()
