"""Seed averaging (`emotune ensemble`): equal-weight mean of the members' probabilities on both sides."""

import json

import numpy as np
import pytest

from emotune.config import load_config, save_config
from emotune.errors import EmotuneError
from emotune.evaluate.writer import write_evaluation
from emotune.experiments.ensemble import ensemble

NAMES = ["happy", "sad"]
GOLD = [0, 0, 1, 1]


def fake_run(d, test_probs, val_probs, fold=None):
    """A finished run folder as `emotune train` leaves it, with the given class probabilities."""
    for split, probs in (("test", test_probs), ("val", val_probs)):
        m = write_evaluation(d / f"eval_{split}", [f"{split}{i}" for i in range(4)], NAMES, np.array(probs), gold=GOLD)
        (d / f"eval_{split}" / "metrics.json").write_text(json.dumps(m, default=float))
    (d / "fold.json").write_text(json.dumps(fold or {"name": "f0", "train": ["a"], "val": ["b"], "test": ["c"]}))
    save_config(load_config("configs/quickstart.yaml"), d / "config.yaml")
    (d / "DONE").write_text("")
    return d


def test_members_wrong_on_different_samples_average_to_the_right_answers(tmp_path):
    # Each member misreads one sample confidently-but-barely; the other member is sure of it.
    a = fake_run(tmp_path / "a", [[0.45, 0.55], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]], [[0.6, 0.4]] * 2 + [[0.4, 0.6]] * 2)
    b = fake_run(tmp_path / "b", [[0.9, 0.1], [0.9, 0.1], [0.55, 0.45], [0.1, 0.9]], [[0.6, 0.4]] * 2 + [[0.7, 0.3]] * 2)
    metrics = ensemble([str(a), str(b)], str(tmp_path / "ens"))
    assert json.loads((a / "eval_test" / "metrics.json").read_text())["wa"] == pytest.approx(0.75)
    assert json.loads((b / "eval_test" / "metrics.json").read_text())["wa"] == pytest.approx(0.75)
    assert metrics["wa"] == pytest.approx(1.0)
    rows = [json.loads(line) for line in (tmp_path / "ens" / "eval_test" / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["scores"]["happy"] == pytest.approx((0.45 + 0.9) / 2, abs=1e-6)
    # The validation side is averaged alike (sample 3: 0.6 vs 0.3 for sad → 0.45, happy wins: wrong).
    val = json.loads((tmp_path / "ens" / "eval_val" / "metrics.json").read_text())
    assert val["wa"] == pytest.approx(0.5)
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["members"] == [str(a), str(b)]


def test_cv_directories_are_averaged_fold_by_fold_with_a_summary(tmp_path, capsys):
    right, wrong = [[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 2, [[0.1, 0.9]] * 2 + [[0.9, 0.1]] * 2
    for cv, probs in (("cv_a", right), ("cv_b", right)):
        for k in range(2):
            fake_run(tmp_path / cv / f"fold{k}", probs, wrong if k else right, {"name": f"fold{k}", "test": [str(k)]})
    summary = ensemble([str(tmp_path / "cv_a"), str(tmp_path / "cv_b")], str(tmp_path / "ens"))
    assert summary["ua"]["per_fold"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert summary["validation"]["ua"]["per_fold"] == [pytest.approx(1.0), pytest.approx(0.0)]
    assert (tmp_path / "ens" / "summary.json").exists() and (tmp_path / "ens" / "fold1" / "DONE").exists()
    # What is printed is the validation figure the ensemble is judged on, never a test summary
    printed = capsys.readouterr().err
    assert "validation UA 0.500 ± 0.500" in printed and "test figures:" in printed
    assert "folds: WA" not in printed and "macro_f1" not in printed


def test_members_on_other_splits_are_refused(tmp_path):
    p = [[0.9, 0.1]] * 4
    a = fake_run(tmp_path / "a", p, p)
    b = fake_run(tmp_path / "b", p, p, {"name": "f0", "train": ["a", "z"], "val": ["b"], "test": ["c"]})
    with pytest.raises(EmotuneError, match="different splits"):
        ensemble([str(a), str(b)], str(tmp_path / "ens"))
    with pytest.raises(EmotuneError, match="at least two"):
        ensemble([str(a)], str(tmp_path / "ens"))


def test_a_member_refit_on_its_validation_side_is_refused(tmp_path):
    """Its validation scores are in-sample: averaging them would flatter the ensemble."""
    p = [[0.9, 0.1]] * 4
    a, b = fake_run(tmp_path / "a", p, p), fake_run(tmp_path / "b", p, p)
    (b / "history.json").write_text(json.dumps({"refit_on_validation": True}))
    with pytest.raises(EmotuneError, match="refit on its validation groups"):
        ensemble([str(a), str(b)], str(tmp_path / "ens"))


def test_members_all_trained_on_their_validation_side_are_averaged_on_test_only(tmp_path):
    """Fixed-schedule (or refit) members have no honest validation scores: the ensemble has none either."""
    a = fake_run(tmp_path / "a", [[0.45, 0.55], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]], [[0.9, 0.1]] * 4)
    b = fake_run(tmp_path / "b", [[0.9, 0.1], [0.9, 0.1], [0.55, 0.45], [0.1, 0.9]], [[0.9, 0.1]] * 4)
    for d in (a, b):
        (d / "history.json").write_text(json.dumps({"refit_on_validation": True, "fixed_schedule": True}))
    assert ensemble([str(a), str(b)], str(tmp_path / "ens"))["wa"] == pytest.approx(1.0)
    assert not (tmp_path / "ens" / "eval_val").exists()
    assert json.loads((tmp_path / "ens" / "history.json").read_text())["refit_on_validation"]
    # ... and such an ensemble is itself a member that trained on its validation side
    c = fake_run(tmp_path / "c", [[0.9, 0.1]] * 4, [[0.9, 0.1]] * 4)
    with pytest.raises(EmotuneError, match="refit on its validation groups"):
        ensemble([str(tmp_path / "ens"), str(c)], str(tmp_path / "ens_c"))


def test_an_ensemble_is_a_member_of_another_with_the_weight_of_one(tmp_path):
    """The seed average of one model beside a head, each weighing half: (mean(a, b) + c) / 2."""
    a = fake_run(tmp_path / "a", [[0.8, 0.2]] * 4, [[0.8, 0.2]] * 4)
    b = fake_run(tmp_path / "b", [[0.4, 0.6]] * 4, [[0.4, 0.6]] * 4)
    c = fake_run(tmp_path / "c", [[0.1, 0.9]] * 4, [[0.1, 0.9]] * 4)
    ensemble([str(a), str(b)], str(tmp_path / "ab"))
    ensemble([str(tmp_path / "ab"), str(c)], str(tmp_path / "ab_c"))
    rows = [json.loads(line) for line in (tmp_path / "ab_c" / "eval_test" / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["scores"]["happy"] == pytest.approx(((0.8 + 0.4) / 2 + 0.1) / 2, abs=1e-6)
    assert json.loads((tmp_path / "ab_c" / "ensemble.json").read_text())["members"] == [str(tmp_path / "ab"), str(c)]
