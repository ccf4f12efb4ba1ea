"""The CV summary of generate-mode folds is strict: an invalid answer is wrong in the means and the pooled figures."""

import json

import pytest

from emotune.evaluate.writer import write_evaluation
from emotune.experiments.cv import summarise

NAMES = ["happy", "sad"]


def test_pooled_and_mean_figures_count_invalid_answers_as_wrong(tmp_path):
    folds = []
    # fold a: 4 answers, one unparseable; fold b: all 4 right.
    for name, preds in (("a", ["happy", None, "sad", "sad"]), ("b", ["happy", "happy", "sad", "sad"])):
        d = tmp_path / name
        write_evaluation(d / "eval_test", [f"{name}{i}" for i in range(4)], NAMES, None,
                         gold=["happy", "happy", "sad", "sad"], raw_text=[str(p) for p in preds], preds=preds)
        folds.append(d)
    summary = summarise(folds, tmp_path / "cv")
    assert summary["wa"]["per_fold"] == [pytest.approx(0.75), pytest.approx(1.0)]
    assert summary["pooled"]["wa"] == pytest.approx(7 / 8)  # not 7/7: the invalid answer stays in
    assert summary["per_class_recall"]["happy"]["mean"] == pytest.approx(0.75)
    assert json.loads((tmp_path / "cv" / "summary.json").read_text())["pooled"]["ua"] == pytest.approx((3 / 4 + 1) / 2)
