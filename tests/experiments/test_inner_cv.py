"""Inner parts for train.inner_folds: whole groups, every sample once, a split that depends on the groups only."""

import numpy as np
import pytest

from emotune.errors import EmotuneError
from emotune.experiments.inner_cv import inner_parts


def test_parts_hold_whole_groups_and_every_sample_once():
    groups = [f"actor{i % 20:02d}" for i in range(1200)]  # RAVDESS-like: 20 training actors, 60 clips each
    parts = inner_parts(groups, 4)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1200))
    owners = [{groups[i] for i in p} for p in parts]
    assert [len(o) for o in owners] == [5, 5, 5, 5]
    assert all(not a & b for j, a in enumerate(owners) for b in owners[j + 1:])
    # a function of the groups alone: the order samples arrive in does not move a speaker to another part
    shuffled = np.random.default_rng(1).permutation(1200)
    again = inner_parts([groups[i] for i in shuffled], 4)
    assert sorted(sorted({groups[shuffled[i]] for i in p}) for p in again) == sorted(sorted(o) for o in owners)


def test_samples_without_a_group_are_their_own_and_too_few_groups_are_refused():
    parts = inner_parts([None] * 7, 3)
    assert sorted(len(p) for p in parts) == [2, 2, 3]
    with pytest.raises(EmotuneError, match="2 group"):
        inner_parts(["a", "b", "a"], 3)
