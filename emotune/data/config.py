"""The `data:` section of a recipe: which dataset, where it lives, which labels, which protocol."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from emotune.errors import check_ranges
from emotune.vocab import Protocol, Target


@dataclasses.dataclass
class DataConfig:
    dataset: str = "ravdess"  # adapter name (see `emotune prepare --help`)
    root: str = "ravdess_speech"  # absolute, relative to cwd, or relative to $EMOTUNE_DATA
    manifest: str = "runs/manifests/${dataset}.jsonl"  # written by prepare, read by every later stage
    label_set: Optional[str] = None  # defaults to the adapter's own label set
    subset: str = "all"  # a named subset of the label set (e.g. iemocap4)
    # reasoning: the LM learns to write the reasoning of `instructions` (emotune instruct) and then the label
    target: Target = "single"
    instructions: Optional[str] = None  # instruction JSONL whose reasoning records are the reasoning targets
    protocol: Protocol = "group_kfold"
    fold_file: Optional[str] = None  # protocol fold_file: a CSV `id,fold` or an EmoBox data/<dataset> folder
    folds: int = 6  # for group_kfold / stratified_kfold
    val_groups: int = 1  # groups carved from the training side for validation (never from test)
    val_fraction: float = 0.1  # used when there are no groups to carve from
    fold: int = -1  # which fold `emotune train` runs (index into the protocol's folds; -1 = last)
    # Quick ablations on big datasets: a seeded, label-stratified subsample of each side (0 = everything).
    # Tables made with these say so; headline results use the full splits.
    max_train: int = 0
    max_eval: int = 0  # validation and test sides
    # Validation side only (0 = max_eval): a model that validates every epoch (the LM) can select on a
    # stratified part of a large dev set while its test side stays whole.
    max_val: int = 0
    # Seed of the data draws: the validation groups (or ids) carved from each fold's training side and
    # the max_* subsamples (unset: the run's `seed`). Fix it to train other seeds of a model on the same
    # splits (seed averaging: `emotune ensemble`).
    split_seed: Optional[int] = None
    # Perturbed copies of the training clips (a manifest written by `emotune augment`): the copies of each
    # fold's training ids join its training side; validation and test stay original clips.
    augment: Optional[str] = None
    context_turns: int = 0  # preceding dialogue turns given to the model (MELD/IEMOCAP), 0 = utterance only
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # adapter-specific (e.g. label_field)

    def __post_init__(self) -> None:
        check_ranges(self, {"folds": ">=1", "val_groups": ">=0", "val_fraction": "(0..1)", "max_train": ">=0", "max_eval": ">=0", "max_val": ">=0", "context_turns": ">=0"})

    def manifest_path(self) -> str:
        return self.manifest.replace("${dataset}", self.dataset)
