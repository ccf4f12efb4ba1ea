"""Balanced sampling: draw training samples so every class comes up equally often (with replacement)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-sample draw weights [N], normalised to sum to 1.

    `y` is [N] class indices: every class then has the same total weight (exactly uniform over classes).
    Or [N, C] multi-hot / soft targets: a sample is weighted by its rarest class (1 / that class's count),
    so rare labels are not drowned by the frequent ones they co-occur with (uniform only approximately).
    Samples with no label at all (index -1, or an all-zero row) form one more "class" of their own.
    """
    y = np.asarray(y)
    if y.ndim == 1:
        keys = y.astype(int)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        per_sample = 1.0 / counts[inverse]
    else:
        hot = np.asarray(y, dtype=float) > 0
        counts = hot.sum(axis=0)
        inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        per_sample = (hot * inv).max(axis=1)
        empty = ~hot.any(axis=1)
        if empty.any():
            per_sample[empty] = 1.0 / empty.sum()
    return per_sample / per_sample.sum()


def balanced_sampler(y: np.ndarray, seed: int = 0, num_samples: int | None = None) -> WeightedRandomSampler:
    """A seeded `WeightedRandomSampler` over `balanced_weights(y)`; one epoch = len(y) draws by default.

    The sampler's `generator` holds its state: save/restore `sampler.generator.get_state()` to resume.
    """
    generator = torch.Generator().manual_seed(int(seed))
    weights = torch.as_tensor(balanced_weights(y), dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=num_samples or len(weights), replacement=True,
                                 generator=generator)
