"""IEMOCAP adapter on a small tree written in the release's own formats (EmoEvaluation, transcriptions, wav, avi)."""

import os
import pickle
from collections import Counter

import pytest

from emotune.data.prepare import prepare
from emotune.data.sample import Sample, read_manifest
from emotune.data.splits import LeakError, check_fold, make_folds
from emotune.errors import EmotuneError

LEGEND = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

# Session 1, dialog Ses01F_impro01: one turn per case the adapter must get right.
# (turn suffix, summary code, [C- evaluator lines])
SESSION1 = [
    ("F000", "neu", ["C-E2:\tNeutral;\t()", "C-E3:\tNeutral;\t()", "C-E4:\tNeutral;\t()", "C-F1:\tNeutral;\t(curious)"]),
    ("M000", "hap", ["C-E1:\tHappiness;\t()", "C-E3:\tHappiness; Excited;\t()", "C-E4:\tNeutral;\t()"]),
    ("F001", "exc", ["C-E1:\tExcited;\t()", "C-E2:\tExcited;\t()", "C-E3:\tHappiness;\t()"]),
    ("M001", "sad", ["C-E1:\tSadness;\t()", "C-E2:\tSadness;\t()", "C-E3:\tNeutral;\t()"]),
    # split votes: E1 names two categories, so its one vote counts half for each
    ("F002", "ang", ["C-E1:\tFrustration; Anger;\t()", "C-E2:\tAnger;\t()", "C-E3:\tAnger;\t()", "C-M1:\tSadness;\t()"]),
    ("M002", "fru", ["C-E1:\tFrustration;\t()", "C-E2:\tFrustration; Anger;\t()", "C-E4:\tAnger;\t()"]),
    ("F003", "xxx", ["C-E1:\tAnger;\t()", "C-E2:\tSadness;\t()", "C-E3:\tFrustration;\t()"]),
    ("M003", "oth", ["C-E1:\tOther:nervous;\t()", "C-E2:\tOther;\t(anxious)", "C-E3:\tFear;\t()"]),
]


def block(start, turn, code, evaluators, vad="[2.5000, 3.0000, 3.0000]"):
    dims = ["A-E3:\tval 3; act 2; dom  2;\t()", "A-E4:\tval 2; act 3; dom  3;\t(mildly aggravated, attitude)"]
    return f"[{start:.4f} - {start + 1.5:.4f}]\t{turn}\t{code}\t{vad}\n" + "\n".join(evaluators + dims) + "\n\n"


def write_iemocap_tree(root, sessions=5, video=True):
    """SessionN/dialog/{EmoEvaluation,transcriptions,avi/DivX}, SessionN/sentences/wav/<dialog>/<turn>.wav."""
    for n in range(1, sessions + 1):
        dialog = f"Ses0{n}F_impro01"
        turns = SESSION1 if n == 1 else [("F000", "neu", SESSION1[0][2][:3]), ("M000", "ang", SESSION1[4][2][1:3])]
        sess = root / f"Session{n}"
        for d in ("dialog/EmoEvaluation/Categorical", "dialog/transcriptions", "dialog/avi/DivX", f"sentences/wav/{dialog}"):
            (sess / d).mkdir(parents=True, exist_ok=True)
        evaluation, transcript = LEGEND, ""
        for i, (suffix, code, evaluators) in enumerate(turns):
            turn = f"{dialog}_{suffix}"
            start = 6.29 + 4 * i
            evaluation += block(start, turn, code, evaluators)
            transcript += f"{turn} [{start:08.4f}-{start + 1.5:08.4f}]: line {i} of {dialog}.\n"
            (sess / f"sentences/wav/{dialog}/{turn}.wav").write_bytes(b"")
        (sess / f"dialog/EmoEvaluation/{dialog}.txt").write_text(evaluation)
        # per-evaluator files live in subfolders and must not be read as dialogues
        (sess / f"dialog/EmoEvaluation/Categorical/{dialog}_e1_cat.txt").write_text(f"{dialog}_F000 :Neutral state; ()\n")
        (sess / f"dialog/transcriptions/{dialog}.txt").write_text(transcript)
        if video:
            (sess / f"dialog/avi/DivX/{dialog}.avi").write_bytes(b"")
    return root


def quiet(*_):
    pass


@pytest.fixture
def tree(tmp_path):
    return write_iemocap_tree(tmp_path / "IEMOCAP_full_release")


def test_majority_soft_and_multi_labels(tree, tmp_path):
    report = prepare("iemocap", tree, tmp_path / "m.jsonl", log=quiet)
    assert report["written"] == 8 + 4 * 2
    s = read_manifest(tmp_path / "m.jsonl").by_id()

    neu = s["Ses01F_impro01_F000"]
    assert neu.label == "neutral" and neu.labels == ["neutral"] and neu.soft == {"neutral": 1.0}
    assert neu.meta["self_evaluation"] == ["neutral"]  # C-F1 is the actor's own rating, not a vote
    assert neu.text == "line 0 of Ses01F_impro01."
    assert neu.audio == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert neu.video == "Session1/dialog/avi/DivX/Ses01F_impro01.avi"
    assert neu.group == "Session1" and neu.meta["speaker"] == "Ses01F" and neu.meta["start"] == pytest.approx(6.29)
    assert (neu.meta["valence"], neu.meta["activation"], neu.meta["dominance"]) == (2.5, 3.0, 3.0)

    ang = s["Ses01F_impro01_F002"]
    assert ang.label == "angry"
    assert ang.soft == pytest.approx({"angry": 2.5 / 3, "frustrated": 0.5 / 3})
    assert ang.labels == ["angry"]  # frustrated was named by one evaluator only
    assert "M1" not in ang.meta["votes"]

    fru = s["Ses01F_impro01_M002"]
    assert fru.label == "frustrated" and fru.labels == ["angry", "frustrated"]
    assert fru.soft == pytest.approx({"angry": 0.5, "frustrated": 0.5})

    xxx = s["Ses01F_impro01_F003"]  # no agreement: no label, but the votes are kept
    assert xxx.label is None and xxx.labels == []
    assert xxx.soft == pytest.approx({"sad": 1 / 3, "angry": 1 / 3, "frustrated": 1 / 3})

    oth = s["Ses01F_impro01_M003"]
    assert oth.label == "other" and oth.labels == ["other"] and oth.soft == pytest.approx({"other": 2 / 3, "fearful": 1 / 3})
    assert [s[f"Ses01F_impro01_{t}"].meta["turn"] for t in ("F000", "M000", "F001")] == [0, 1, 2]


def test_any_evaluator_counts_with_multi_min_votes_1(tree, tmp_path):
    prepare("iemocap", tree, tmp_path / "m.jsonl", options={"multi_min_votes": 1}, log=quiet)
    s = read_manifest(tmp_path / "m.jsonl").by_id()
    assert s["Ses01F_impro01_F002"].labels == ["angry", "frustrated"]
    assert s["Ses01F_impro01_F003"].labels == ["sad", "angry", "frustrated"]


def test_four_class_merges_excited_and_drops_the_rest_with_a_count(tree, tmp_path):
    logged = []
    report = prepare("iemocap", tree, tmp_path / "m4.jsonl", subset="iemocap4", log=logged.append)
    m = read_manifest(tmp_path / "m4.jsonl")
    assert m.subset == "iemocap4"
    assert Counter(x.label for x in m.samples) == {"neutral": 5, "happy": 2, "sad": 1, "angry": 5}
    assert report["dropped_by_label"] == {"frustrated": 1, "(no label)": 1, "other": 1}
    assert any("dropped 3 sample(s)" in line for line in logged)
    s = m.by_id()
    assert s["Ses01F_impro01_F001"].label == "happy"  # exc merged into happy
    assert s["Ses01F_impro01_F001"].soft == {"happy": 1.0}
    assert s["Ses01F_impro01_M000"].soft == pytest.approx({"neutral": 1 / 3, "happy": 2 / 3})
    assert s["Ses01F_impro01_F002"].soft == {"angry": 1.0}  # frustrated's share falls outside the subset


def test_leave_one_session_out_has_five_disjoint_folds(tree, tmp_path):
    prepare("iemocap", tree, tmp_path / "m.jsonl", log=quiet)
    samples = read_manifest(tmp_path / "m.jsonl").samples
    folds = make_folds(samples, "logo")
    assert [f.test_groups for f in folds] == [[f"Session{n}"] for n in range(1, 6)]
    group = {x.id: x.group for x in samples}
    for f in folds:
        test_sessions = {group[i] for i in f.test}
        assert test_sessions == set(f.test_groups)
        assert not test_sessions & {group[i] for i in f.train + f.val}
        assert len(f.train) + len(f.val) + len(f.test) == len(samples)
    assert sorted(i for f in folds for i in f.test) == sorted(group)


def test_video_is_optional(tmp_path):
    root = write_iemocap_tree(tmp_path / "r", sessions=1, video=False)
    prepare("iemocap", root, tmp_path / "m.jsonl", log=quiet)
    assert all(x.video is None for x in read_manifest(tmp_path / "m.jsonl").samples)


def fork_entries():
    return [
        {"id": "Ses01F_impro01_F000", "emotion": "neu", "emo_evo": [["Neutral"], ["Neutral"], ["Sadness"]],
         "transcription": "Excuse me.", "audio_path": "feats/audio/Ses01F_impro01_F000.npy",
         "video_path": "feats/video/Ses01F_impro01_F000.npy"},
        {"id": "Ses05M_script01_1_M010", "emotion": "xxx", "emo_evo": ["C-E1:\tAnger;\t()", "C-E2:\tFrustration; Anger;\t()"],
         "transcription": "No."},
    ]


def test_pickle_is_refused_without_trust(tmp_path):
    (tmp_path / "iemocap.pkl").write_bytes(pickle.dumps(fork_entries()))
    with pytest.raises(EmotuneError, match="refusing to read a pickle.*--trust-pickle"):
        prepare("iemocap", tmp_path, tmp_path / "m.jsonl", log=quiet)
    assert not (tmp_path / "m.jsonl").exists()


def test_pickle_is_read_with_trust(tmp_path):
    (tmp_path / "iemocap.pkl").write_bytes(pickle.dumps(fork_entries()))
    prepare("iemocap", tmp_path, tmp_path / "m.jsonl", options={"trust_pickle": True}, log=quiet)
    s = read_manifest(tmp_path / "m.jsonl").by_id()
    a, b = s["Ses01F_impro01_F000"], s["Ses05M_script01_1_M010"]
    assert a.label == "neutral" and a.group == "Session1" and a.text == "Excuse me."
    assert a.soft == pytest.approx({"neutral": 2 / 3, "sad": 1 / 3}) and a.labels == ["neutral"]
    assert a.meta["features"]["audio_path"] == "feats/audio/Ses01F_impro01_F000.npy"
    assert b.label is None and b.group == "Session5" and b.labels == ["angry"]


class Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_trusted_pickle_still_rebuilds_no_callables(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "iemocap.pkl").write_bytes(pickle.dumps([Hostile(str(marker))]))
    with pytest.raises(EmotuneError, match="does not unpickle"):
        prepare("iemocap", tmp_path, tmp_path / "m.jsonl", options={"trust_pickle": True}, log=quiet)
    assert not marker.exists()
    assert not os.path.exists(tmp_path / "m.jsonl")


def test_two_sessions_carve_validation_from_the_training_session_only():
    samples = [Sample(id=f"Ses0{g}F_impro01_F{k:03d}", dataset="iemocap", label=["neutral", "angry"][k % 2],
                      text="x", group=f"Session{g}") for g in (1, 2) for k in range(10)]
    group = {x.id: x.group for x in samples}
    folds = make_folds(samples, "logo", val_fraction=0.2)  # one training session: nothing to hold out whole, so ids are carved
    for f in folds:
        assert len(f.val) == 2 and {group[i] for i in f.val} <= {group[i] for i in f.train}
        assert not {group[i] for i in f.train + f.val} & set(f.test_groups)
    folds[0].val.append(folds[0].test.pop())
    with pytest.raises(LeakError, match="in both val and test"):
        check_fold(folds[0], group)
