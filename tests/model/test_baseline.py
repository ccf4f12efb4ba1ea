"""Logistic-regression and MLP baselines on synthetic Examples: they learn, match scikit-learn, handle
missing and sequence features, every target and imbalance option, and save/load without pickle."""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.evaluate.metrics import classification_metrics, selection_score
from emotune.model.baseline_lr import LogisticBaseline
from emotune.model.baseline_mlp import MLPBaseline
from emotune.model.baseline_config import BaselineConfig
from tests.tolerance import approx_abs, network_chain, tol
from emotune.train.config import train_defaults

NAMES = ["neutral", "happy", "sad", "angry"]
PRIORS = np.array([0.55, 0.25, 0.15, 0.05])
CENTERS = np.random.default_rng(99).normal(size=(4, 12)) * 1.2


def make(n, seed, missing=0.0, groups=True, seq=True):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=PRIORS)
    a = [CENTERS[c] + rng.normal(size=12) * 1.5 + 5.0 for c in y]
    feats = {"a": a}
    if seq:  # a (k, 4) sequence of varying length; its mean carries the class
        s = [CENTERS[c, :4] + rng.normal(size=(int(rng.integers(2, 6)), 4)) for c in y]
        feats["seq"] = [None if rng.random() < missing else v for v in s]
    onehot = np.eye(4, dtype=np.float32)[y]
    return Examples([f"{seed}-{i}" for i in range(n)], NAMES, feats, [""] * n, [[]] * n, y, onehot, onehot.copy(),
                    [f"spk{seed}-{i % 8}" for i in range(n)] if groups else [])


@pytest.fixture(scope="module")
def data():
    return make(300, 1, missing=0.15), make(80, 2, missing=0.15), make(200, 3, missing=0.15)


def ua(model, ex):
    return classification_metrics(ex.y, model.predict_proba(ex).argmax(1), NAMES)["ua"]


FAST = BaselineConfig(C_grid=[0.01, 0.1, 1.0], inner_folds=3)
FAST_TRAIN = dataclasses.replace(train_defaults("baseline_mlp"), epochs=60, patience=10)


def test_lr_equals_sklearn_pipeline_when_nothing_is_missing():
    train, val, test = make(300, 1, groups=False, seq=False), make(80, 2, groups=False, seq=False), make(100, 3, seq=False)
    m = LogisticBaseline(NAMES, ["a"], FAST)
    h = m.fit(train, val, None)
    assert h["selection"] == "validation side" and h["C"] in FAST.C_grid
    # C chosen on the validation side, then refit on training + validation samples
    assert h["refit_on_validation"] and h["n_fit"] == len(train) + len(val)
    X = np.stack(train.features["a"] + val.features["a"])
    scaler = StandardScaler().fit(X)
    ref = LogisticRegression(C=h["C"], max_iter=FAST.max_iter).fit(scaler.transform(X), np.concatenate([train.y, val.y]))
    expected = ref.predict_proba(scaler.transform(np.stack(test.features["a"])))
    # Not rounding: two lbfgs runs (float32 vs float64 inputs) each stop within sklearn's gradient tolerance (1e-4).
    np.testing.assert_allclose(m.predict_proba(test), expected, atol=2e-4)


def test_lr_learns_with_grouped_inner_cv_and_missing_sequences(data):
    train, val, test = data
    m = LogisticBaseline(NAMES, ["a", "seq"], FAST)
    h = m.fit(train, val, None)
    assert h["selection"].startswith("grouped 3-fold") and h["converged"]
    assert set(h["inner_ua"]) == {str(c) for c in FAST.C_grid}
    assert ua(m, test) > 0.6  # chance is 0.25
    # Standardisation statistics come from the samples of the final fit: training + validation (refit).
    assert h["n_fit"] == len(train) + len(val)
    X = np.stack(train.features["a"] + val.features["a"])  # a float64 mean, summed in any order (worst-case bound)
    np.testing.assert_allclose(m.encoder.mean[:12], X.mean(0),
                               **tol(np.float64, len(X), np.abs(X).mean(0).max(), bound="worst"))
    # A sample without any feature still gets a finite distribution (zeros + missing indicators).
    empty = test.subset([0])
    empty.features = {k: [None] for k in empty.features}
    p = m.predict_proba(empty)
    # 4 fp32 probabilities (cast from float64), summed: 8 roundings.
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1, abs=approx_abs(np.float32, 2 * 4))


def test_missing_indicator_columns(data):
    train, _, _ = data
    m = LogisticBaseline(NAMES, ["a", "seq"], FAST)
    m.encoder.fit(train)
    X = m.encoder.transform(train)
    assert X.shape[1] == 12 + 4 + 2
    missing = ~train.present("seq")
    np.testing.assert_array_equal(X[:, -1], missing.astype(np.float32))
    assert (X[missing, 12:16] == 0).all() and (X[:, -2] == 0).all()


def test_sequence_is_mean_pooled_or_mean_std(data):
    train, _, _ = data
    pooled = Examples(train.ids, NAMES, {"seq": [None if v is None else v.mean(0) for v in train.features["seq"]]},
                      train.texts, train.context, train.y, train.y_multi, train.y_soft, train.groups)
    a = LogisticBaseline(NAMES, ["seq"], FAST)
    b = LogisticBaseline(NAMES, ["seq"], FAST)
    a.encoder.fit(train)
    b.encoder.fit(pooled)
    ref = b.encoder.transform(pooled)  # the same float64 pooling and scaling, rounded once to float32
    np.testing.assert_allclose(a.encoder.transform(train), ref, **tol(np.float32, 2, np.abs(ref).max(), bound="worst"))
    c = LogisticBaseline(NAMES, ["seq"], BaselineConfig(pool="mean_std"))
    assert c.encoder.fit(train).width == 8 + 1


def test_lr_soft_one_hot_equals_single_and_class_weights_help_the_rare_class(data):
    train, val, test = data
    single = LogisticBaseline(NAMES, ["a", "seq"], FAST)
    single.fit(train, val, None)
    soft = LogisticBaseline(NAMES, ["a", "seq"], FAST, target="soft")
    soft.fit(train, val, None)
    # Not rounding: two lbfgs problems with the same optimum, each solved to sklearn's gradient tolerance (1e-4).
    np.testing.assert_allclose(single.predict_proba(test), soft.predict_proba(test), atol=1e-4)
    # Harder data (noisier, one fixed C): weighting must move decisions towards the rare class.
    hard = [make(n, s) for n, s in ((300, 11), (80, 12), (400, 13))]
    for ex in hard:
        ex.features["a"] = [v + np.random.default_rng(0).normal(size=12) * 3 for v in ex.features["a"]]
    fixed = BaselineConfig(C_grid=[1.0])
    plain = LogisticBaseline(NAMES, ["a"], fixed)
    weighted = LogisticBaseline(NAMES, ["a"], fixed, imbalance="class_weights")
    rare = {}
    for name, m in (("plain", plain), ("weighted", weighted)):
        m.fit(hard[0], hard[1], None)
        pred = m.predict_proba(hard[2]).argmax(1)
        rare[name] = ((pred == 3).sum(), classification_metrics(hard[2].y, pred, NAMES)["per_class"]["angry"]["recall"])
    assert rare["weighted"][0] > rare["plain"][0] and rare["weighted"][1] > rare["plain"][1]


def test_refit_can_be_turned_off_and_the_choice_of_C_does_not_change(data):
    train, val, test = data
    on = LogisticBaseline(NAMES, ["a", "seq"], FAST).fit(train, val, None)
    off_model = LogisticBaseline(NAMES, ["a", "seq"], dataclasses.replace(FAST, refit=False))
    off = off_model.fit(train, val, None)
    assert off["C"] == on["C"] and off["inner_ua"] == on["inner_ua"]  # chosen on training groups either way
    assert off["n_fit"] == len(train) and not off["refit_on_validation"]
    np.testing.assert_allclose(off_model.encoder.mean[:12], np.stack(train.features["a"]).mean(0), rtol=1e-6)


def test_lr_multi_label_gives_independent_scores(data):
    train, val, test = data
    m = LogisticBaseline(NAMES, ["a", "seq"], FAST, target="multi", imbalance="class_weights")
    h = m.fit(train, val, None)
    # multi-label thresholds are chosen on the validation side, so it stays out of the fit
    assert h["n_fit"] == len(train) and not h["refit_on_validation"]
    p = m.predict_proba(test)
    assert p.shape == (len(test), 4) and h["metric"] == "map"
    assert not np.allclose(p.sum(1), 1.0)
    assert ua(m, test) > 0.6


@pytest.mark.parametrize("target,imbalance", [("single", "focal"), ("single", "balanced_sampler"),
                                              ("soft", "class_weights"), ("multi", "none")])
def test_mlp_learns_every_target_and_imbalance(data, target, imbalance):
    train, val, test = data
    m = MLPBaseline(NAMES, ["a", "seq"], FAST, target=target, imbalance=imbalance, seed=1, train=FAST_TRAIN)
    h = m.fit(train, val, None)
    assert h["early_stopping"] and 1 <= h["best_epoch"] <= h["epochs_run"] <= FAST_TRAIN.epochs
    assert h["best_epoch"] < h["epochs_run"], "early stopping should have run past the best epoch here"
    assert ua(m, test) > 0.6
    # The kept weights are the best validation epoch's: the fitted model, scored on validation now,
    # gives exactly the best epoch's figure (the last epoch's weights would give the last row's).
    best = h[f"best_val_{h['metric']}"]
    assert best == pytest.approx(max(r["val"] for r in h["curve"]))
    gold = val.y_multi if target == "multi" else val.hard_labels()
    assert selection_score(target, gold, m.predict_proba(val), NAMES) == pytest.approx(best, abs=1e-6)


def test_mlp_is_seeded(data):
    train, val, test = data
    runs = [MLPBaseline(NAMES, ["a"], FAST, seed=s, train=FAST_TRAIN) for s in (0, 0, 1)]
    probs = []
    for m in runs:
        m.fit(train, val, None)
        probs.append(m.predict_proba(test))
    np.testing.assert_array_equal(probs[0], probs[1])
    assert not np.array_equal(probs[0], probs[2])


def test_mlp_seed_averaging_averages_the_members_and_round_trips(data, tmp_path):
    train, val, test = data
    one = [MLPBaseline(NAMES, ["a"], FAST, seed=s, train=FAST_TRAIN) for s in (4, 5)]
    for m in one:
        m.fit(train, val, None)
    pair = MLPBaseline(NAMES, ["a"], dataclasses.replace(FAST, seeds=2), seed=4, train=FAST_TRAIN)
    h = pair.fit(train, val, None)
    # Member k is exactly the single net of seed 4 + k; the ensemble is their mean.
    np.testing.assert_array_equal(pair.predict_proba(test), np.mean([m.predict_proba(test) for m in one], axis=0).astype(np.float32))
    assert h["seeds"] == [4, 5] and [len(c["curve"]) for c in h["members"]] == [len(m.history["curve"]) for m in one]
    assert h["best_val_ua"] == pytest.approx(selection_score("single", val.hard_labels(), pair.predict_proba(val), NAMES))
    assert pair.init_hash == one[0].init_hash  # the first member starts where a one-net run does
    pair.save(tmp_path)
    np.testing.assert_array_equal(MLPBaseline.load(tmp_path).predict_proba(test), pair.predict_proba(test))
    with pytest.raises(EmotuneError, match="seeds"):
        BaselineConfig(seeds=0)


@pytest.mark.parametrize("cls,target", [(LogisticBaseline, "single"), (LogisticBaseline, "multi"),
                                        (MLPBaseline, "single"), (MLPBaseline, "multi")])
def test_save_load_round_trip_without_pickle(data, tmp_path, cls, target):
    train, val, test = data
    m = cls(NAMES, ["a", "seq"], FAST, target=target, imbalance="class_weights", seed=3)
    m.fit(train, val, tmp_path)
    m.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json", "baseline.safetensors"]
    back = cls.load(tmp_path)
    # The same forward from reloaded weights: a float64 dot over the inputs (LR) or the fp32 MLP; probabilities <= 1.
    n = back.encoder.width if cls is LogisticBaseline else network_chain(back.nets[0])
    np.testing.assert_allclose(back.predict_proba(test), m.predict_proba(test), **tol(np.float32, n))
    meta = json.loads((tmp_path / "baseline.json").read_text())
    assert meta["kind"] == cls.kind and meta["target"] == target and meta["imbalance"] == "class_weights"
    other = MLPBaseline if cls is LogisticBaseline else LogisticBaseline
    with pytest.raises(EmotuneError, match="not"):
        other.load(tmp_path)


def test_bad_options_and_inputs_are_one_line_errors(data):
    train, val, _ = data
    with pytest.raises(EmotuneError, match="focal"):
        LogisticBaseline(NAMES, ["a"], FAST, imbalance="focal")
    with pytest.raises(EmotuneError, match="imbalance"):
        MLPBaseline(NAMES, ["a"], FAST, imbalance="oversample")
    with pytest.raises(EmotuneError, match="'whisper' was not loaded"):
        LogisticBaseline(NAMES, ["whisper"], FAST).fit(train, val, None)
    with pytest.raises(EmotuneError, match="no baseline.json"):
        LogisticBaseline.load(train.ids[0])
