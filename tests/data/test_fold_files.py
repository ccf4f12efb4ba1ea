"""Published partitions: fold lists from a CSV or the EmoBox layout, and the shipped EmoBox folds.

The RAVDESS and IEMOCAP fixtures are release trees built from the shipped partition's own ids, so the
test proves that emotune's adapters produce those ids and that `--protocol emobox` then gives EmoBox's
test folds one for one.
"""

import csv
import json
from collections import Counter

import pytest

from emotune.data.fold_files import PARTITIONS
from emotune.data.prepare import prepare
from emotune.data.sample import Sample, read_manifest
from emotune.data.splits import LeakError, make_folds
from emotune.errors import EmotuneError
from tests.data.test_iemocap import LEGEND, block


def shipped(dataset):
    with (PARTITIONS / "emobox" / f"{dataset}.csv").open() as f:
        rows = list(csv.DictReader(f))
    folds = {}
    for r in rows:
        folds.setdefault(f"fold{r['fold']}", set()).add(r["id"])
    return folds


def quiet(*_):
    pass


def test_ravdess_emobox_folds_from_a_release_tree(tmp_path):
    folds = shipped("ravdess")
    root = tmp_path / "ravdess"
    for ids in folds.values():
        for sid in ids:
            d = root / f"Actor_{sid[-2:]}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{sid}.wav").write_bytes(b"")
    prepare("ravdess", root, tmp_path / "m.jsonl", log=quiet, check_media=False)
    m = read_manifest(tmp_path / "m.jsonl")
    assert len(m.samples) == 1440
    out = make_folds(m.samples, "emobox", dataset=m.dataset, log=quiet)
    assert [f.name for f in out] == [f"fold{k}" for k in range(1, 7)]
    for f in out:
        assert set(f.test) == folds[f.name]
        assert len(f.test_groups) == 4  # four whole actors per fold
        assert not set(f.train) & set(f.test) and not set(f.val) & set(f.test)
        assert len(f.train) + len(f.val) + len(f.test) == 1440
        val_actors = {sid[-2:] for sid in f.val}
        assert len(val_actors) == 1 and not val_actors & {sid[-2:] for sid in f.train}  # a whole actor
    # not emotune's contiguous folds: EmoBox's fold 1 is actors 1, 11, 20, 21
    assert out[0].test_groups == ["actor01", "actor11", "actor20", "actor21"]


def test_iemocap_emobox_folds_are_the_five_sessions(tmp_path):
    folds = shipped("iemocap")
    root = tmp_path / "IEMOCAP_full_release"
    by_dialog = {}
    for ids in folds.values():
        for turn in ids:
            by_dialog.setdefault(turn.rsplit("_", 1)[0], []).append(turn)
    codes = ["neu", "hap", "exc", "ang", "sad"]
    for dialog, turns in by_dialog.items():
        sess = root / f"Session{int(dialog[3:5])}"
        (sess / "dialog/EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (sess / "dialog/transcriptions").mkdir(parents=True, exist_ok=True)
        text = LEGEND + "".join(block(4.0 * i, t, codes[i % 5], ["C-E1:\tNeutral;\t()"]) for i, t in enumerate(turns))
        (sess / f"dialog/EmoEvaluation/{dialog}.txt").write_text(text)
        (sess / f"dialog/transcriptions/{dialog}.txt").write_text("")
        # a turn outside the 4-class set: in the release, not in EmoBox's lists
        extra = LEGEND + block(0.0, f"{dialog}_X999", "fru", ["C-E1:\tFrustration;\t()"])
        (sess / f"dialog/EmoEvaluation/{dialog}.txt").write_text(text + extra)
    prepare("iemocap", root, tmp_path / "all.jsonl", log=quiet, check_media=False)
    prepare("iemocap", root, tmp_path / "m4.jsonl", {"label_set": "iemocap"}, log=quiet, check_media=False,
            subset="iemocap4")
    m4 = read_manifest(tmp_path / "m4.jsonl")
    assert len(m4.samples) == 5531
    out = make_folds(m4.samples, "emobox", dataset="iemocap", log=quiet)
    assert [len(f.test) for f in out] == [1085, 1023, 1151, 1031, 1241]
    for k, f in enumerate(out, start=1):
        assert set(f.test) == folds[f"fold{k}"] and f.test_groups == [f"Session{k}"]
        assert {s[:5] for s in f.val} <= {f"Ses0{j}" for j in range(1, 6)} - {f"Ses0{k}"}
    # The full manifest also holds the frustrated turns: they are left out, and said so.
    said = []
    out_all = make_folds(read_manifest(tmp_path / "all.jsonl").samples, "emobox", dataset="iemocap", log=said.append)
    assert [set(f.test) for f in out_all] == [set(f.test) for f in out]
    assert any("in no fold of this file" in line and "left out" in line for line in said)


def write_emobox(root, dataset, folds):
    """EmoBox's layout: data/<dataset>/fold_<k>/<dataset>_{train,valid,test}_fold_<k>.jsonl."""
    for k, sides in folds.items():
        d = root / dataset / f"fold_{k}"
        d.mkdir(parents=True)
        for side, ids in sides.items():
            lines = [json.dumps({"key": f"{dataset}-{i}", "dataset": dataset, "emo": "Happy"}) for i in ids]
            (d / f"{dataset}_{side}_fold_{k}.jsonl").write_text("\n".join(lines) + "\n")
    return root / dataset


def samples(n_groups=4, per_group=5):
    labels = ["happy", "sad"]
    return [Sample(id=f"g{g}_{i}", dataset="toy", label=labels[i % 2], labels=[labels[i % 2]], group=f"g{g}")
            for g in range(n_groups) for i in range(per_group)]


def test_emobox_layout_with_a_valid_list(tmp_path):
    s = samples()
    ids = [x.id for x in s]
    root = write_emobox(tmp_path, "toy", {1: {"train": ids[:10], "valid": ids[10:15], "test": ids[15:]}})
    (f,) = make_folds(s, "fold_file", fold_file=str(root), log=quiet)
    assert f.name == "fold1" and f.test == ids[15:] and f.val == ids[10:15] and f.train == ids[:10]


def write_csv(path, rows):
    path.write_text("id,fold\n" + "".join(f"{i},{k}\n" for i, k in rows))
    return path


def test_csv_fold_file_carves_validation_from_the_training_groups(tmp_path):
    s = samples()
    path = write_csv(tmp_path / "folds.csv", [(x.id, int(x.group[1]) // 2 + 1) for x in s])
    out = make_folds(s, "fold_file", fold_file=str(path), log=quiet)
    assert [f.name for f in out] == ["fold1", "fold2"]
    assert out[0].test_groups == ["g0", "g1"] and out[1].test_groups == ["g2", "g3"]
    for f in out:
        assert len({x.split("_")[0] for x in f.val}) == 1 and len(f.train) == 5


def test_unlisted_and_absent_ids_are_counted_not_silent(tmp_path):
    s = samples()
    rows = [(x.id, 1 if x.group in ("g0", "g1") else 2) for x in s if x.group != "g3"] + [("ghost", 2)]
    said = []
    out = make_folds(s, "fold_file", fold_file=str(write_csv(tmp_path / "f.csv", rows)), log=said.append)
    assert all("g3_0" not in f.train + f.val + f.test for f in out)
    assert any("1 id(s) are not in the manifest (e.g. ghost)" in line for line in said)
    assert any("5 sample(s) of the manifest are in no fold" in line for line in said)


@pytest.mark.parametrize("text, message", [
    ("sample,part\na,1\n", "columns id,fold"),
    ("id,fold\ng0_0,1\ng0_0,2\n", "is in fold 1 and in fold 2"),
    ("id,fold\ng0_0,\n", "line 2: empty id or fold"),
    ("id,fold\nother_0,1\n", "none of its 1 ids is in the manifest"),
])
def test_bad_fold_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(EmotuneError, match=message) as e:
        make_folds(samples(), "fold_file", fold_file=str(path), log=quiet)
    assert "bad.csv" in str(e.value)


def test_a_fold_file_splitting_a_speaker_is_a_leak(tmp_path):
    s = samples()
    rows = [(x.id, 1 if x.id.endswith("_0") else 2) for x in s]  # every speaker on both sides
    with pytest.raises(LeakError, match="in both"):
        make_folds(s, "fold_file", fold_file=str(write_csv(tmp_path / "f.csv", rows)), log=quiet)


def test_emobox_names_the_shipped_datasets_when_it_has_none(tmp_path):
    with pytest.raises(EmotuneError, match="no emobox partition is shipped for dataset 'toy'.*iemocap, ravdess"):
        make_folds(samples(), "emobox", log=quiet)
    with pytest.raises(EmotuneError, match="needs data.fold_file"):
        make_folds(samples(), "fold_file", log=quiet)


def test_shipped_partitions_cover_each_utterance_once():
    for dataset, n, k in (("ravdess", 1440, 6), ("iemocap", 5531, 5)):
        folds = shipped(dataset)
        assert len(folds) == k and sum(len(v) for v in folds.values()) == n
        assert len(set().union(*folds.values())) == n
    assert Counter(len(v) for v in shipped("ravdess").values()) == {240: 6}
