"""`model.kind: baseline_lr` — L2 logistic regression, its C chosen by inner CV on the training side."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.evaluate.metrics import selection_score
from emotune.model.baseline import Baseline
from emotune.model.head_input import FeatureInput


def inner_splits(train: Examples, val: Examples, folds: int, seed: int):
    """(pool, [(fit_idx, score_idx)], how): where C is chosen. Never the test side.

    Grouped k-fold over the training groups when every training sample has one (speaker-independent,
    like the outer protocol); else the validation side; else (stratified) k-fold over training samples.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    n = len(train)
    groups = train.groups
    if len(groups) == n and all(g is not None for g in groups) and len(set(groups)) >= 2:
        k = min(folds, len(set(groups)))
        return train, list(GroupKFold(n_splits=k).split(np.zeros(n), groups=groups)), f"grouped {k}-fold on train"
    if len(val) > 0:
        return train.concat(val), [(np.arange(n), np.arange(n, n + len(val)))], "validation side"
    hard = train.hard_labels()
    counts = np.bincount(hard[hard >= 0]) if (hard >= 0).any() else np.array([0])
    if (hard >= 0).all() and counts[counts > 0].min() >= folds:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return train, list(cv.split(np.zeros(n), hard)), f"stratified {folds}-fold on train"
    k = min(folds, n)
    return train, list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))), f"{k}-fold on train"


def _fit_linear(X: np.ndarray, T: np.ndarray, target: str, imbalance: str, C: float, n_classes: int,
                max_iter: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(W [C, D], b [C], converged) of an L2 logistic regression; absent classes get logit −inf."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from emotune.train.losses import class_weights
    from emotune.train.sampling import balanced_weights

    D = X.shape[1]
    W = np.zeros((n_classes, D))
    b = np.full(n_classes, -np.inf)
    converged = True

    def fit(Xf, yf, wf, balanced=False):
        nonlocal converged
        lr = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced" if balanced else None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            lr.fit(Xf, yf, sample_weight=wf)
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return lr

    # A balanced sampler's expected draw counts, as per-sample weights (logistic regression fits all data at once).
    drawn = balanced_weights(T) * len(T) if imbalance == "balanced_sampler" else np.ones(len(T))
    cw = class_weights(T, n_classes) if imbalance == "class_weights" else np.ones(n_classes)
    if target == "multi":
        for c in range(n_classes):
            col = (T[:, c] > 0.5).astype(int)
            if col.min() == col.max():  # one-valued column: a constant answer
                b[c] = np.inf if col[0] else -np.inf
                continue
            # Class weights of a one-vs-rest label balance its positives against its negatives.
            lr = fit(X, col, drawn, balanced=imbalance == "class_weights")
            W[c], b[c] = lr.coef_[0], lr.intercept_[0]
        return W, b, converged

    if target == "soft":
        # Soft cross-entropy = a weighted fit on one row per (sample, class with a vote), weight = vote.
        rows, cols = np.nonzero(T > 0)
        Xf, yf, w = X[rows], cols, T[rows, cols] * cw[cols] * drawn[rows]
    else:
        yf = T.astype(int)
        Xf, w = X, cw[yf] * drawn
    classes = np.unique(yf)
    if len(classes) == 1:
        b[classes[0]] = 0.0
        return W, b, converged
    lr = fit(Xf, yf, w)
    if len(classes) == 2:  # scikit-learn keeps one row for two classes: p(c1) = sigmoid(w·x + b)
        W[classes[1]], b[classes[1]], b[classes[0]] = lr.coef_[0], lr.intercept_[0], 0.0
    else:
        W[lr.classes_], b[lr.classes_] = lr.coef_, lr.intercept_
    return W, b, converged


def _linear_proba(X: np.ndarray, W: np.ndarray, b: np.ndarray, target: str) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        z = X.astype(np.float64) @ W.T + b
        if target == "multi":
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class LogisticBaseline(Baseline):
    """Standardised features → L2 logistic regression (scikit-learn, lbfgs), C chosen on training data.

    C comes from grouped inner cross-validation over the training groups when there are groups (else the
    validation side); the final fit then uses training + validation samples (`model.baseline.refit`),
    except for multi-label targets, whose thresholds are chosen on the validation side and so need it unseen.
    """

    kind = "baseline_lr"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.W: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None

    def fit(self, train: Examples, val: Examples, out_dir: Optional[Path] = None, run_hash: str = "") -> dict:
        from threadpoolctl import threadpool_limits

        # lbfgs on a few thousand rows is fastest on one BLAS thread; with several, a shared machine's
        # oversubscription made the same fits ~20x slower (measured: 10 s → 280 s for one RAVDESS fold).
        with threadpool_limits(limits=1):
            return self._fit(train, val)

    def _fit(self, train: Examples, val: Examples) -> dict:
        train, T = self._training_side(train, val)
        val = val.subset(np.flatnonzero(val.has_target(self.target)))
        pool, splits, how = inner_splits(train, val, self.cfg.inner_folds, self.seed)
        T_pool = np.concatenate([T, val.targets(self.target)]) if len(pool) > len(train) else T
        gold = T_pool if self.target == "multi" else pool.hard_labels()
        C_cls = len(self.label_names)
        fold_scores: dict[float, list[float]] = {C: [] for C in self.cfg.C_grid}
        for tr, te in splits:
            # Standardisation stays inside the inner fold's fitting part, as in the outer protocol.
            inner = FeatureInput(self.inputs, self.cfg.pool).fit(pool.subset(tr))
            X_tr, X_te = inner.transform(pool.subset(tr)), inner.transform(pool.subset(te))
            for C in self.cfg.C_grid:
                W, b, _ = _fit_linear(X_tr, T_pool[tr], self.target, self.imbalance, C, C_cls, self.cfg.max_iter)
                probs = _linear_proba(X_te, W, b, self.target)
                fold_scores[C].append(selection_score(self.target, gold[te], probs, self.label_names))
        scores = {C: float(np.mean(v)) for C, v in fold_scores.items()}
        best = max(self.cfg.C_grid, key=lambda c: (scores[c], -c))  # ties → stronger regularisation
        refit = self.cfg.refit and self.target != "multi" and len(val) > 0
        if refit:
            train, T = train.concat(val), np.concatenate([T, val.targets(self.target)])
        self.encoder.fit(train)
        self.W, self.b, converged = _fit_linear(self.encoder.transform(train), T, self.target, self.imbalance, best,
                                                C_cls, self.cfg.max_iter)
        metric = "map" if self.target == "multi" else "ua"
        self.history = {"C": best, "selection": how, "metric": metric,
                        f"inner_{metric}": {str(c): s for c, s in scores.items()},
                        "n_fit": len(train), "refit_on_validation": refit, "converged": bool(converged)}
        return self.history

    def predict_proba(self, ex: Examples) -> np.ndarray:
        if self.W is None:
            raise EmotuneError("baseline_lr: predict before fit/load")
        return _linear_proba(self.encoder.transform(ex), self.W, self.b, self.target).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        self._write(out_dir, {"lr.W": self.W, "lr.b": self.b}, {})

    @classmethod
    def load(cls, out_dir: Path) -> "LogisticBaseline":
        model, _, arrays = cls._read(out_dir)
        model.W, model.b = arrays["lr.W"], arrays["lr.b"]
        return model
