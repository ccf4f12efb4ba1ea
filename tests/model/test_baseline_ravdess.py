"""Logistic regression on real cached RAVDESS features reproduces the classical figures.

Reference, measured independently on this kind of machine (standardised features, LR, C chosen on
training data only, RAVDESS 8-class, speaker-independent folds of 4 actors): eGeMAPS UA 0.51 over the
6 folds; eGeMAPS + Whisper-tiny mean+std 0.73 ± 0.05 over the folds, 0.71 with actors 21-24 held out.

Needs the real data (EMOTUNE_DATA) and the features in the user's cache:
    emotune features --manifest <ravdess manifest> --extractors egemaps,whisper
Skips, saying which, when either is absent; it never extracts (that takes many minutes).
"""

from pathlib import Path

import numpy as np
import pytest

from emotune.data.examples import build_examples
from emotune.data.labels import load_label_set
from emotune.data.prepare import prepare
from emotune.data.sample import read_manifest
from emotune.data.splits import make_folds
from emotune.evaluate.metrics import classification_metrics
from emotune.model.baseline_lr import LogisticBaseline
from emotune.model.baseline_config import BaselineConfig

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory):
    from tests.conftest import data_dir

    root = data_dir("ravdess_speech")
    out = tmp_path_factory.mktemp("ravdess") / "ravdess.jsonl"
    prepare("ravdess", root, out, log=lambda *_: None)
    manifest = read_manifest(out)
    return manifest, load_label_set("ravdess"), make_folds(manifest.samples, "group_kfold", folds=6, val_groups=0)


def cached(manifest, names):
    """The features of every clip from the user's feature cache, or skip."""
    from emotune.features.store import default_cache_dir, load_features

    # A test session may point EMOTUNE_CACHE at a fresh folder; the user's own cache is the default one.
    for folder in dict.fromkeys([default_cache_dir(), Path.home() / ".cache" / "emotune" / "features"]):
        feats = load_features(manifest, names, folder)
        if all(len(feats[n]) == len(manifest.samples) for n in names):
            return feats
    pytest.skip(f"needs {', '.join(names)} features of all {len(manifest.samples)} RAVDESS clips in the feature "
                f"cache (run `emotune features --extractors {','.join(names)}` on the RAVDESS manifest)")


def fold_ua(manifest, labels, fold, feats, inputs, cfg):
    names = list(labels.names)
    train, val, test = (build_examples(manifest.samples, ids, labels, feats) for ids in (fold.train, fold.val, fold.test))
    model = LogisticBaseline(names, inputs, cfg)
    model.fit(train, val, None)
    return classification_metrics(test.y, model.predict_proba(test).argmax(1), names)["ua"]


def test_egemaps_six_folds(ravdess):
    manifest, labels, folds = ravdess
    feats = cached(manifest, ["egemaps"])
    uas = [fold_ua(manifest, labels, f, feats, ["egemaps"], BaselineConfig()) for f in folds]
    spread = max(np.std(uas), 0.03)
    assert abs(np.mean(uas) - 0.51) <= spread, f"UA per fold {np.round(uas, 3)}"


def test_egemaps_and_whisper_actors_21_to_24(ravdess):
    manifest, labels, folds = ravdess
    feats = cached(manifest, ["egemaps", "whisper"])
    fold = folds[-1]
    assert fold.test_groups == ["actor21", "actor22", "actor23", "actor24"]
    ua = fold_ua(manifest, labels, fold, feats, ["egemaps", "whisper"], BaselineConfig())
    assert abs(ua - 0.71) <= 0.05, f"UA {ua:.3f}"
