"""How named feature columns become the one standardised vector a classifier head reads.

A (k, d) sequence feature is pooled over its k rows (mean, or mean and std: `model.baseline.pool`): a
head has no use for time order, which is what the emotion LM's sequence tokens are for. Each column is
standardised with statistics of the training samples that have it. A sample without a feature gets 0
there (the training mean after standardisation) and a missing-indicator column of 1 for that input.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError


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
