"""The generic table adapter: column mapping from options, CSV / TSV / JSONL, unlabelled rows, real MER2023 examples."""

import json
from pathlib import Path

import pytest

from emotune.config import load_config
from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds
from emotune.errors import EmotuneError

MAPPING = {"file": "clips.csv", "id": "clip", "video": "path", "audio": "path", "label": "emotion", "text": "subtitle",
           "split": "part", "group": "speaker", "media_dir": "media", "label_set": "mer"}


def quiet(*_):
    pass


def write_csv(root, rows, header="clip,path,emotion,subtitle,part,speaker,fps", name="clips.csv", sep=","):
    (root / "media").mkdir(parents=True, exist_ok=True)
    for r in rows:
        (root / "media" / r.split(sep)[1]).write_bytes(b"")
    (root / name).write_text(header.replace(",", sep) + "\n" + "".join(r + "\n" for r in rows))
    return root


ROWS = ["c1,c1.mp4,Happiness,Hello there.,train,s1,25", "c2,c2.mp4,angry,,train,s2,30", "c3,c3.mp4,,Who?,Test,s1,25",
        'c4,c4.mp4,sad,"Well, no.",test,s3,25']


def test_column_mapping(tmp_path):
    root = write_csv(tmp_path, ROWS)
    report = prepare("table", root, tmp_path / "m.jsonl", options=MAPPING, log=quiet)
    assert report["written"] == 3 and report["skipped"] == {"no label (--option unlabelled=keep keeps such rows with label null)": 1}
    s = read_manifest(tmp_path / "m.jsonl").by_id()
    c1 = s["c1"]
    assert c1.label == "happy" and c1.labels == ["happy"]  # canonicalised through the label set's aliases
    assert c1.video == c1.audio == "media/c1.mp4" and c1.text == "Hello there."
    assert c1.split == "train" and c1.group == "s1" and c1.meta == {"fps": "25"}
    assert s["c4"].text == "Well, no." and s["c4"].split == "test"


def test_unlabelled_rows_kept_on_request(tmp_path):
    root = write_csv(tmp_path, ROWS)
    prepare("table", root, tmp_path / "m.jsonl", options={**MAPPING, "unlabelled": "keep"}, log=quiet)
    m = read_manifest(tmp_path / "m.jsonl")
    c3 = m.by_id()["c3"]
    assert c3.label is None and c3.labels == [] and c3.split == "test"
    (fold,) = make_folds(m.samples, "official")
    assert sorted(fold.test) == ["c3", "c4"]


def test_multi_label_column_tsv(tmp_path):
    rows = ["c1\tc1.wav\thappy;surprise\tx", "c2\tc2.wav\tsad\ty"]
    root = write_csv(tmp_path, rows, header="clip,path,emotions,subtitle", name="t.tsv", sep="\t")
    opts = {"file": "t.tsv", "id": "clip", "audio": "path", "labels": "emotions", "label_sep": ";", "text": "subtitle",
            "media_dir": "media", "label_set": "mer"}
    prepare("table", root, tmp_path / "m.jsonl", options=opts, log=quiet)
    s = read_manifest(tmp_path / "m.jsonl").by_id()
    assert s["c1"].labels == ["happy", "surprise"] and s["c1"].label is None  # order of the label set
    assert s["c2"].labels == ["sad"] and s["c2"].label == "sad" and s["c2"].video is None


def test_jsonl_with_list_labels(tmp_path):
    lines = [{"id": "a", "text": "so glad", "labels": ["happy"], "score": 0.9}, {"id": "b", "text": "hm", "labels": []}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    prepare("table", tmp_path, tmp_path / "m.jsonl", options={"text": "text", "labels": "labels", "label_set": "mer",
                                                            "unlabelled": "keep"}, log=quiet)
    s = read_manifest(tmp_path / "m.jsonl").by_id()
    assert s["a"].label == "happy" and s["a"].meta == {"score": 0.9} and s["b"].labels == []


def test_option_mistakes_are_named(tmp_path):
    root = write_csv(tmp_path, ROWS)
    with pytest.raises(EmotuneError, match="unknown table option.*lable"):
        prepare("table", root, tmp_path / "m.jsonl", options={**MAPPING, "lable": "emotion"}, log=quiet)
    with pytest.raises(EmotuneError, match="needs a label set"):
        prepare("table", root, tmp_path / "m.jsonl", options={k: v for k, v in MAPPING.items() if k != "label_set"}, log=quiet)
    with pytest.raises(PrepareError, match=r"clips.csv:1: missing column 'mood' \(option label\)"):
        prepare("table", root, tmp_path / "m.jsonl", options={**MAPPING, "label": "mood"}, log=quiet)


def test_real_mer2023_examples(mer_root, tmp_path):
    opts = {"file": "metadata.csv", "id": "file", "id_stem": True, "video": "file", "audio": "file",
            "label": "label_from_docs", "text": "english_subtitle_from_app_py", "label_set": "mer"}
    report = prepare("table", mer_root, tmp_path / "m.jsonl", options=opts, log=quiet)
    assert report["written"] == 4 and sum(report["skipped"].values()) == 12
    labels = {x.id: x.label for x in read_manifest(tmp_path / "m.jsonl").samples}
    assert labels == {"sample_00000167": "happy", "sample_00000338": "sad", "sample_00000669": "angry",
                      "sample_00000727": "surprise"}


def test_recipe_prepares_all_sixteen_clips(mer_root, tmp_path):
    cfg = load_config(Path(__file__).parents[2] / "configs" / "mer2023_examples.yaml")
    assert cfg.data.dataset == "table"
    # what `ensure_manifest` does with a recipe: the data options, plus the recipe's label set
    prepare(cfg.data.dataset, mer_root, tmp_path / "m.jsonl", {**cfg.data.options, "label_set": cfg.data.label_set}, log=quiet)
    m = read_manifest(tmp_path / "m.jsonl")
    assert len(m.samples) == 16 and sum(x.label is not None for x in m.samples) == 4
    assert sum(bool(x.text) for x in m.samples) == 9
    s = m.by_id()["sample_00000338"]
    assert s.video == s.audio == "sample_00000338.mp4" and m.media_path(s, "video").exists()
    assert s.text.startswith("Oh no") and s.meta["duration_s"] == "4.560000"


def test_absolute_media_paths_are_kept_and_read(tmp_path):
    """Media outside the table's folder, named by absolute path: accepted, kept absolute, and extracted."""
    import numpy as np
    import soundfile as sf

    from emotune.features.store import ensure_features, load_features

    elsewhere = tmp_path / "other_disk" / "clips"
    elsewhere.mkdir(parents=True)
    t = np.arange(16000) / 16000
    for name, f0 in (("a.wav", 180.0), ("b.wav", 260.0)):
        sf.write(elsewhere / name, 0.3 * np.sin(2 * np.pi * f0 * t), 16000)
    root = tmp_path / "table"
    root.mkdir()
    (root / "t.csv").write_text(f"id,label,audio\na,happy,{elsewhere / 'a.wav'}\nb,sad,{elsewhere / 'b.wav'}\n")
    prepare("table", root, tmp_path / "m.jsonl", {"label_set": "ravdess", "label": "label", "audio": "audio",
                                                  "media_dir": "media"}, log=quiet)
    m = read_manifest(tmp_path / "m.jsonl")
    a = m.by_id()["a"]
    assert a.audio == str(elsewhere / "a.wav")  # media_dir applies to relative paths only
    assert m.media_path(a, "audio") == elsewhere / "a.wav"
    ensure_features(m, ["egemaps"], tmp_path / "cache", progress=False)
    feats = load_features(m, ["egemaps"], tmp_path / "cache")["egemaps"]
    assert set(feats) == {"a", "b"} and not np.allclose(feats["a"], feats["b"])
