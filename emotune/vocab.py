"""Every closed vocabulary of a recipe, declared once.

The config schema types its keys with these `Literal`s (so a wrong value stops at load time naming the
key), the CLI takes its choices from the same tuples, and the library checks against them: a new
protocol, target or model kind is added here and nowhere else. (Media kinds and file extensions are a
table of their own, in emotune/media/kinds.py.)
"""

from __future__ import annotations

from typing import Literal, get_args

# What a model learns to produce: one label, a set of labels, a vote distribution, or a reasoning text
# that ends in the label (scored on the label).
Target = Literal["single", "multi", "soft", "reasoning"]
# How samples are split into folds: by group (speaker/session), one group out, the dataset's own
# train/dev/test, stratified by label when there are no groups, a fold list read from a file
# (data.fold_file), or a published benchmark's partition shipped with emotune (EmoBox).
Protocol = Literal["group_kfold", "logo", "official", "stratified_kfold", "fold_file", "emobox"]
# Remedies for unbalanced classes (focal needs a gradient-trained model).
Imbalance = Literal["none", "class_weights", "balanced_sampler", "focal"]
# late_fusion: trained runs read together (`emotune combine`), never trained itself.
ModelKind = Literal["baseline_lr", "baseline_mlp", "emotion_lm", "late_fusion"]

TARGETS: tuple[str, ...] = get_args(Target)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
GROUPED_PROTOCOLS = ("logo", "group_kfold")  # folds split by group: a group on both sides is a leak
FILE_PROTOCOLS = ("fold_file", "emobox")  # folds read from a file: groups checked whenever samples have them
IMBALANCES: tuple[str, ...] = get_args(Imbalance)
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
