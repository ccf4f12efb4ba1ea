"""`model.lm.distill`: the LM's closed-set target mixes the gold label with a head's cross-fitted probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotune.errors import EmotuneError
from emotune.model.distill import splits, teacher_targets
from tests.model.test_emotion_lm import RAVDESS, make
from tests.model.tiny import make_tiny_lm, random_examples

SHAPES = {"egemaps": (88,), "whisper": (12,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _grouped(n=96, seed=0):
    ex = random_examples(n, RAVDESS, SHAPES, seed=seed)
    ex.groups = [f"actor{i % 12}" for i in range(n)]
    return ex


def test_cross_fitting_parts_hold_out_whole_speakers():
    ex = _grouped()
    parts, how = splits(ex, 5, seed=0)
    assert how == "grouped 5-fold on train" and len(parts) == 5
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(ex)))  # every sample held out once
    for held in parts:
        rest = np.setdiff1d(np.arange(len(ex)), held)
        assert not {ex.groups[i] for i in held} & {ex.groups[i] for i in rest}
    plain = random_examples(96, RAVDESS, SHAPES, seed=0)  # no groups: stratified by label
    parts, how = splits(plain, 4, seed=0)
    assert how == "stratified 4-fold on train"
    for held in parts:
        assert np.bincount(plain.y[held], minlength=len(RAVDESS)).min() >= 2


def test_each_samples_teacher_never_saw_it():
    from emotune.model.baseline_config import BaselineConfig
    from emotune.model.baseline_lr import LogisticBaseline

    train, val = _grouped(), random_examples(16, RAVDESS, SHAPES, seed=1)
    targets, info = teacher_targets("lr", 0.5, 4, RAVDESS, list(SHAPES), "none", 0, train, val)
    assert info["kind"] == "lr" and info["cross_fit"] == "grouped 4-fold on train" and 0 <= info["teacher_train_ua"] <= 1
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
    assert (targets[np.arange(len(train)), train.y] >= 0.5).all()  # the gold label keeps at least 1 - weight
    # Part 0's teacher, fitted on the other parts alone: its probabilities are exactly the mixed-in half.
    held = splits(train, 4, 0)[0][0]
    head = LogisticBaseline(RAVDESS, list(SHAPES), BaselineConfig(refit=False), "single", "none", 0)
    head.fit(train.subset(np.setdiff1d(np.arange(len(train)), held)), val)
    expected = 0.5 * np.eye(len(RAVDESS))[train.y[held]] + 0.5 * head.predict_proba(train.subset(held))
    np.testing.assert_allclose(targets[held], expected, atol=1e-5)
    # An in-sample teacher would differ: the cross-fitted one is less sure of the gold label on average.
    head.fit(train, val)
    in_sample = head.predict_proba(train)[np.arange(len(train)), train.y].mean()
    assert (targets[np.arange(len(train)), train.y].mean() - 0.5) * 2 < in_sample
    none, _ = teacher_targets("lr", 0.0, 4, RAVDESS, list(SHAPES), "none", 0, train, val)
    np.testing.assert_array_equal(none, np.eye(len(RAVDESS))[train.y])


def test_the_lm_trains_on_the_distilled_targets(tiny_dir, tmp_path):
    model = make(tiny_dir, shapes=SHAPES, lora=False, projector="linear", distill="lr", distill_folds=3)
    train, val = _grouped(48), random_examples(16, RAVDESS, SHAPES, seed=1)
    soft = np.full((len(train), len(RAVDESS)), 1 / len(RAVDESS), dtype=np.float32)
    batch = model.make_batch(train, [0, 5, 7], torch.Generator().manual_seed(0), soft_targets=soft)
    np.testing.assert_allclose(batch.targets.numpy(), soft[[0, 5, 7]])
    gold = model.make_batch(train, [0, 5, 7], torch.Generator().manual_seed(0))
    assert gold.targets.tolist() == train.y[[0, 5, 7]].tolist()
    assert torch.equal(batch.lm_targets, gold.lm_targets)  # the answer text stays the gold label
    history = model.fit(train, val, tmp_path)
    assert history["distill"]["kind"] == "lr" and history["distill"]["cross_fit"] == "grouped 3-fold on train"
    assert np.isfinite(history["history"][-1]["train_loss"])


def test_distill_refuses_what_it_cannot_teach(tiny_dir, tmp_path):
    with pytest.raises(EmotuneError, match="single-label"):
        make(tiny_dir, shapes=SHAPES, target="multi", distill="lr")
    with pytest.raises(EmotuneError, match="distill must be"):
        make(tiny_dir, shapes=SHAPES, distill="svm")
    with pytest.raises(EmotuneError, match="distill_folds"):
        make(tiny_dir, shapes=SHAPES, distill="lr", distill_folds=1)
    with pytest.raises(EmotuneError, match="distill_weight"):
        make(tiny_dir, shapes=SHAPES, distill="lr", distill_weight=1.5)
    model = make(tiny_dir, shapes=SHAPES, lora=False, projector="linear", distill="mlp")
    with pytest.raises(EmotuneError, match="validation side"):
        model.fit(_grouped(48), random_examples(16, RAVDESS, SHAPES).subset([]), tmp_path)


def test_refit_refuses_an_mlp_teacher(tmp_path):
    from emotune.config import load_config

    with pytest.raises(EmotuneError, match="distill=mlp"):
        load_config("configs/ravdess_lm_mixup.yaml", ["train.refit=true", "model.lm.distill=mlp"])
