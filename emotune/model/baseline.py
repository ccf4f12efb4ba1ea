"""Classical heads on the cached features: logistic regression and a small MLP.

They answer the question a researcher asks first: does the LLM add anything over a plain classifier on
the same features and folds? Both read `Examples` and implement `EmotionModel`.

Input vector (`FeatureInput`): the named feature columns side by side. A (k, d) sequence feature is
pooled over its k rows (mean, or mean and std: `model.baseline.pool`): a classifier head has no use
for time order, which is what the emotion LM's sequence tokens are for. Each column is standardised
with statistics of the training samples that have it. A sample without a feature gets 0 there (the
training mean after standardisation) and a missing-indicator column of 1 for that input.

Targets: single (softmax), multi (one-vs-rest sigmoid) or soft (cross-entropy on vote distributions).
Imbalance (`train.imbalance`): class_weights, balanced_sampler or focal (MLP only: logistic regression
has no focal form; for it a balanced sampler is replaced by its expectation, per-sample weights).

Saved as `baseline.json` (settings, classes, chosen C, history) + `baseline.safetensors` (scaler and
weights): no pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from safetensors.numpy import load_file, save_file

from emotune.data.examples import Examples
from emotune.model.base import state_hash
from emotune.errors import EmotuneError
from emotune.evaluate.metrics import average_precision_per_label, classification_metrics
from emotune.model.baseline_config import BaselineConfig

TARGETS = ("single", "multi", "soft")
IMBALANCE = ("none", "class_weights", "balanced_sampler", "focal")
CONFIG_FILE = "baseline.json"
WEIGHTS_FILE = "baseline.safetensors"


# --------------------------------------------------------------------------------------------- inputs
def _pool(value: np.ndarray, pool: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        return arr
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 2 else arr
    if pool == "mean_std":
        return np.concatenate([arr.mean(axis=0), arr.std(axis=0)])
    return arr.mean(axis=0)


@dataclasses.dataclass
class FeatureInput:
    """How named feature columns become one standardised vector (fitted on training samples only)."""

    names: list[str]
    pool: str = "mean"
    dims: list[int] = dataclasses.field(default_factory=list)
    mean: Optional[np.ndarray] = None  # [D] over the concatenated pooled features
    std: Optional[np.ndarray] = None

    @property
    def width(self) -> int:
        return sum(self.dims) + len(self.names)  # features + one missing indicator per input

    def _column(self, ex: Examples, name: str) -> list:
        if name not in ex.features:
            have = ", ".join(sorted(ex.features)) or "none"
            raise EmotuneError(f"model input '{name}' was not loaded with the examples (loaded: {have}); "
                               f"run `emotune features` for it or fix model.inputs")
        return ex.features[name]

    def fit(self, ex: Examples) -> "FeatureInput":
        self.dims = []
        for name in self.names:
            first = next((v for v in self._column(ex, name) if v is not None), None)
            if first is None:
                raise EmotuneError(f"model input '{name}' is missing for every training sample")
            self.dims.append(len(_pool(first, self.pool)))
        raw, present = self._raw(ex)
        self.mean = np.zeros(sum(self.dims))
        self.std = np.ones(sum(self.dims))
        start = 0
        for k, d in enumerate(self.dims):
            rows = raw[present[:, k], start:start + d]
            self.mean[start:start + d] = rows.mean(axis=0)
            std = rows.std(axis=0)
            self.std[start:start + d] = np.where(std > 1e-8, std, 1.0)  # constant column: leave unscaled
            start += d
        return self

    def _raw(self, ex: Examples) -> tuple[np.ndarray, np.ndarray]:
        raw = np.zeros((len(ex), sum(self.dims)))
        present = np.zeros((len(ex), len(self.names)), dtype=bool)
        start = 0
        for k, (name, d) in enumerate(zip(self.names, self.dims)):
            for i, value in enumerate(self._column(ex, name)):
                if value is None:
                    continue
                vec = _pool(value, self.pool)
                if vec.shape != (d,):
                    raise EmotuneError(f"feature '{name}' of sample '{ex.ids[i]}' pools to {vec.shape[0]} values, "
                                       f"expected {d} (a stale cache or a different extractor setting?)")
                raw[i, start:start + d] = vec
                present[i, k] = True
            start += d
        return np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), present

    def transform(self, ex: Examples) -> np.ndarray:
        raw, present = self._raw(ex)
        X = (raw - self.mean) / self.std
        start = 0
        for k, d in enumerate(self.dims):
            X[~present[:, k], start:start + d] = 0.0
            start += d
        return np.concatenate([X, (~present).astype(np.float64)], axis=1).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"input.mean": np.asarray(self.mean, np.float64), "input.std": np.asarray(self.std, np.float64)}

    def to_json(self) -> dict:
        return {"names": self.names, "pool": self.pool, "dims": self.dims}

    @classmethod
    def from_saved(cls, meta: dict, arrays: dict) -> "FeatureInput":
        return cls(list(meta["names"]), meta["pool"], list(meta["dims"]), arrays["input.mean"], arrays["input.std"])


# -------------------------------------------------------------------------------------------- targets
def _targets(ex: Examples, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, keep): the rows of `ex` that carry a target of this kind."""
    if target == "single":
        return ex.y, ex.y >= 0
    if target == "multi":
        return ex.y_multi, np.ones(len(ex), dtype=bool)
    return ex.y_soft, ex.y_soft.sum(axis=1) > 0


def _hard_labels(ex: Examples) -> np.ndarray:
    """Class index per sample for UA: the single label, else the strongest soft vote, else -1."""
    soft_top = np.where(ex.y_soft.sum(axis=1) > 0, ex.y_soft.argmax(axis=1), -1)
    return np.where(ex.y >= 0, ex.y, soft_top)


def _selection_score(target: str, gold, probs: np.ndarray, names: list[str]) -> float:
    """What model selection maximises: UA (single / soft), mAP (multi)."""
    if target == "multi":
        ap = average_precision_per_label(gold, probs)
        return float(np.nanmean(ap)) if np.isfinite(ap).any() else 0.0
    return classification_metrics(gold, probs.argmax(axis=1), names)["ua"]


def _check_options(kind: str, target: str, imbalance: str) -> None:
    if target not in TARGETS:
        raise EmotuneError(f"target must be one of {', '.join(TARGETS)}, got '{target}'")
    if imbalance not in IMBALANCE:
        raise EmotuneError(f"train.imbalance must be one of {', '.join(IMBALANCE)}, got '{imbalance}'")
    if kind == "baseline_lr" and imbalance == "focal":
        raise EmotuneError("train.imbalance=focal needs a gradient-trained model (baseline_mlp or emotion_lm); "
                           "for baseline_lr use class_weights or balanced_sampler")


# ------------------------------------------------------------------------------------- shared plumbing
class _Baseline:
    kind = ""

    def __init__(self, label_names: list[str], inputs: list[str], cfg: BaselineConfig, target: str = "single",
                 imbalance: str = "none", seed: int = 0, focal_gamma: float = 2.0):
        _check_options(self.kind, target, imbalance)
        if not inputs:
            raise EmotuneError(f"{self.kind} needs at least one feature in model.inputs")
        self.label_names = list(label_names)
        self.inputs = list(inputs)
        self.cfg = cfg
        self.target = target
        self.imbalance = imbalance
        self.seed = int(seed)
        self.focal_gamma = float(focal_gamma)
        self.encoder = FeatureInput(self.inputs, cfg.pool)
        self.history: dict = {}

    def _training_side(self, train: Examples, val: Examples) -> tuple[Examples, np.ndarray]:
        """Check both sides' labels; keep the training samples that have a target of this kind."""
        self._check_labels(train, "training")
        self._check_labels(val, "validation")
        T, keep = _targets(train, self.target)
        train, T = train.subset(np.flatnonzero(keep)), T[keep]
        if len(train) == 0:
            raise EmotuneError(f"no training sample has a {self.target} target")
        return train, T

    def _check_labels(self, ex: Examples, what: str) -> None:
        if list(ex.label_names) != self.label_names:
            raise EmotuneError(f"{what} examples have labels {ex.label_names}, the model {self.label_names}")

    def _meta(self) -> dict:
        return {"kind": self.kind, "label_names": self.label_names, "inputs": self.inputs, "target": self.target,
                "imbalance": self.imbalance, "seed": self.seed, "focal_gamma": self.focal_gamma,
                "config": dataclasses.asdict(self.cfg), "input": self.encoder.to_json(), "history": self.history}

    def _write(self, out_dir: Path, arrays: dict[str, np.ndarray], extra: dict) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in {**self.encoder.arrays(), **arrays}.items()},
                  str(out_dir / WEIGHTS_FILE))
        (out_dir / CONFIG_FILE).write_text(json.dumps({**self._meta(), **extra}, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def _read(cls, out_dir: Path) -> tuple["_Baseline", dict, dict]:
        out_dir = Path(out_dir)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (out_dir / name).exists():
                raise EmotuneError(f"{out_dir}: no {name} (not a saved {cls.kind} model)")
        try:
            meta = json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))
            arrays = load_file(str(out_dir / WEIGHTS_FILE))
        except (json.JSONDecodeError, OSError, ValueError) as exc:
            raise EmotuneError(f"{out_dir}: unreadable saved model ({exc})") from None
        if meta.get("kind") != cls.kind:
            raise EmotuneError(f"{out_dir / CONFIG_FILE}: holds a {meta.get('kind')} model, not {cls.kind}")
        known = {f.name for f in dataclasses.fields(BaselineConfig)}
        cfg = BaselineConfig(**{k: v for k, v in meta["config"].items() if k in known})
        model = cls(meta["label_names"], meta["inputs"], cfg, meta["target"],
                    meta["imbalance"], meta["seed"], meta.get("focal_gamma", 2.0))
        model.encoder = FeatureInput.from_saved(meta["input"], arrays)
        model.history = meta.get("history", {})
        return model, meta, arrays


# ------------------------------------------------------------------------------ logistic regression
def _inner_splits(train: Examples, val: Examples, folds: int, seed: int):
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
        return _concat(train, val), [(np.arange(n), np.arange(n, n + len(val)))], "validation side"
    hard = _hard_labels(train)
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


class LogisticBaseline(_Baseline):
    """Standardised features → L2 logistic regression (scikit-learn, lbfgs), C chosen on training data.

    C comes from grouped inner cross-validation over the training groups when there are groups (else the
    validation side); the final fit uses the training side only, like the MLP and the LM, so the
    validation side stays unseen for multi-label thresholds.
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
        T_val, keep_val = _targets(val, self.target)
        val = val.subset(np.flatnonzero(keep_val))
        pool, splits, how = _inner_splits(train, val, self.cfg.inner_folds, self.seed)
        T_pool = np.concatenate([T, T_val[keep_val]]) if len(pool) > len(train) else T
        gold = T_pool if self.target == "multi" else _hard_labels(pool)
        C_cls = len(self.label_names)
        fold_scores: dict[float, list[float]] = {C: [] for C in self.cfg.C_grid}
        for tr, te in splits:
            # Standardisation stays inside the inner fold's fitting part, as in the outer protocol.
            inner = FeatureInput(self.inputs, self.cfg.pool).fit(pool.subset(tr))
            X_tr, X_te = inner.transform(pool.subset(tr)), inner.transform(pool.subset(te))
            for C in self.cfg.C_grid:
                W, b, _ = _fit_linear(X_tr, T_pool[tr], self.target, self.imbalance, C, C_cls, self.cfg.max_iter)
                probs = _linear_proba(X_te, W, b, self.target)
                fold_scores[C].append(_selection_score(self.target, gold[te], probs, self.label_names))
        scores = {C: float(np.mean(v)) for C, v in fold_scores.items()}
        best = max(self.cfg.C_grid, key=lambda c: (scores[c], -c))  # ties → stronger regularisation
        self.encoder.fit(train)
        self.W, self.b, converged = _fit_linear(self.encoder.transform(train), T, self.target, self.imbalance, best,
                                                C_cls, self.cfg.max_iter)
        metric = "map" if self.target == "multi" else "ua"
        self.history = {"C": best, "selection": how, "metric": metric,
                        f"inner_{metric}": {str(c): s for c, s in scores.items()},
                        "n_fit": len(train), "converged": bool(converged)}
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


def _concat(a: Examples, b: Examples) -> Examples:
    if len(b) == 0:
        return a
    names = sorted(set(a.features) | set(b.features))
    return Examples(
        ids=a.ids + b.ids, label_names=a.label_names,
        features={k: a.features.get(k, [None] * len(a)) + b.features.get(k, [None] * len(b)) for k in names},
        texts=a.texts + b.texts, context=a.context + b.context, y=np.concatenate([a.y, b.y]),
        y_multi=np.concatenate([a.y_multi, b.y_multi]), y_soft=np.concatenate([a.y_soft, b.y_soft]),
        groups=(list(a.groups) + list(b.groups)) if a.groups and b.groups else [],
    )


# ------------------------------------------------------------------------------------------------ MLP
def _mlp(width: int, hidden: int, dropout: float, n_classes: int):
    import torch.nn as nn

    if hidden <= 0:
        return nn.Sequential(nn.Linear(width, n_classes))
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


class MLPBaseline(_Baseline):
    """Standardised features → one hidden layer → classes; AdamW, early stopping on validation UA
    (mAP for multi-label), the best epoch's weights kept."""

    kind = "baseline_mlp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.net = None

    def _loss(self, T: np.ndarray):
        from emotune.train.losses import class_weights, make_loss

        weights = class_weights(T, len(self.label_names)) if self.imbalance == "class_weights" else None
        return make_loss("focal" if self.imbalance == "focal" else "ce", weights, self.focal_gamma, self.target)

    def fit(self, train: Examples, val: Examples, out_dir: Optional[Path] = None, run_hash: str = "") -> dict:
        import torch

        train, T = self._training_side(train, val)
        self.encoder.fit(train)
        X = torch.from_numpy(self.encoder.transform(train))
        Tt = torch.as_tensor(T, dtype=torch.long if self.target == "single" else torch.float32)
        val_gold = val.y_multi if self.target == "multi" else _hard_labels(val)
        has_val = len(val) > 0 and (self.target == "multi" or (val_gold >= 0).any())
        Xv = torch.from_numpy(self.encoder.transform(val)) if has_val else None
        loss_fn = self._loss(T)
        threads = torch.get_num_threads()
        # A head this small trains fastest on one thread (more only add synchronisation, and on a
        # shared machine oversubscription slows fits many times over); restored afterwards.
        torch.set_num_threads(1)
        try:
            net, history = self._train(X, Tt, Xv, val_gold, has_val, loss_fn, T)
        finally:
            torch.set_num_threads(threads)
        self.net = net.eval()
        self.history = history
        return history

    def _train(self, X, Tt, Xv, val_gold, has_val: bool, loss_fn, T: np.ndarray):
        import torch

        from emotune.train.sampling import balanced_sampler

        cfg = self.cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _mlp(X.shape[1], cfg.hidden, cfg.dropout, len(self.label_names))
            self.init_hash = state_hash(net)  # same seed → same start on every fold (checked by cv tests)
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            gen = torch.Generator().manual_seed(self.seed)
            sampler = balanced_sampler(T, seed=self.seed) if self.imbalance == "balanced_sampler" else None
            best, best_state, best_epoch, curve = -np.inf, None, 0, []
            for epoch in range(1, cfg.epochs + 1):
                net.train()
                order = torch.tensor(list(sampler)) if sampler is not None else torch.randperm(len(X), generator=gen)
                total = 0.0
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start:start + cfg.batch_size]
                    loss = loss_fn(net(X[idx]), Tt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                row = {"epoch": epoch, "loss": total / len(order)}
                if has_val:
                    row["val"] = _selection_score(self.target, val_gold, self._forward(net, Xv), self.label_names)
                    if row["val"] > best:
                        best, best_epoch = row["val"], epoch
                        best_state = copy.deepcopy(net.state_dict())
                    elif cfg.patience > 0 and epoch - best_epoch >= cfg.patience:
                        curve.append(row)
                        break
                curve.append(row)
        if best_state is not None:
            net.load_state_dict(best_state)
        metric = "map" if self.target == "multi" else "ua"
        return net, {"metric": metric, "best_epoch": best_epoch if has_val else len(curve),
                     f"best_val_{metric}": float(best) if has_val else None, "epochs_run": len(curve),
                     "early_stopping": bool(has_val), "curve": curve}

    def _forward(self, net, X) -> np.ndarray:
        import torch

        was_training = net.training
        net.eval()
        with torch.no_grad():
            z = net(X)
            p = torch.sigmoid(z) if self.target == "multi" else torch.softmax(z, dim=-1)
        net.train(was_training)
        return p.numpy()

    def predict_proba(self, ex: Examples) -> np.ndarray:
        import torch

        if self.net is None:
            raise EmotuneError("baseline_mlp: predict before fit/load")
        return self._forward(self.net, torch.from_numpy(self.encoder.transform(ex))).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        state = {f"mlp.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        self._write(out_dir, state, {})

    @classmethod
    def load(cls, out_dir: Path) -> "MLPBaseline":
        import torch

        model, meta, arrays = cls._read(out_dir)
        net = _mlp(model.encoder.width, model.cfg.hidden, model.cfg.dropout, len(model.label_names))
        net.load_state_dict({k[len("mlp."):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("mlp.")})
        model.net = net.eval()
        return model
