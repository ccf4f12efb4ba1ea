"""Split protocols that cannot leak: folds are lists of ids, checked for id and group overlap.

- logo:             leave one group out (IEMOCAP: one fold per session)
- group_kfold:      k folds of contiguous groups in natural order (RAVDESS: actors 1-4, 5-8, ...)
- official:         the dataset's own train/dev/test (MELD, GoEmotions, MER)
- stratified_kfold: for a dataset with nothing else; folds keep the label proportions
- fold_file:        a published partition read from a file (data.fold_file; emotune/data/fold_files.py)
- emobox:           the EmoBox benchmark's partition of this dataset, shipped with emotune

Validation is always carved from the training side (whole groups when there are groups), never from
the test fold.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Optional

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.vocab import FILE_PROTOCOLS, GROUPED_PROTOCOLS, PROTOCOLS



@dataclasses.dataclass
class Fold:
    name: str
    train: list[str]
    val: list[str]
    test: list[str]
    test_groups: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> "Fold":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


class LeakError(EmotuneError):
    pass


def natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def _groups(samples: list[Sample]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        if s.group is None:
            raise EmotuneError(f"sample '{s.id}' has no group; this protocol splits by group")
        out[s.group].append(s.id)
    return dict(sorted(out.items(), key=lambda kv: natural_key(kv[0])))


def _carve_val_groups(train_groups: list[str], n: int, seed: int, fold_index: int) -> list[str]:
    if n <= 0 or len(train_groups) <= n:
        return []
    rng = random.Random(seed * 1009 + fold_index)
    return sorted(rng.sample(train_groups, n), key=natural_key)


def _carve_val_ids(ids: list[str], labels: dict[str, Optional[str]], fraction: float, seed: int) -> list[str]:
    """Stratified by label where possible: a fraction of each label's ids."""
    rng = random.Random(seed)
    by_label: dict[Optional[str], list[str]] = defaultdict(list)
    for i in ids:
        by_label[labels.get(i)].append(i)
    val = []
    for _, members in sorted(by_label.items(), key=lambda kv: str(kv[0])):
        members = sorted(members)
        rng.shuffle(members)
        val += members[: int(round(len(members) * fraction))]
    return sorted(val)


def leak_groups(samples: list[Sample], protocol: str) -> Optional[dict[str, Optional[str]]]:
    """id → group where a group on two sides of a fold is a leak: grouped protocols, and fold files over
    samples that all have a group (a published partition is checked like emotune's own)."""
    grouped = protocol in GROUPED_PROTOCOLS or (protocol in FILE_PROTOCOLS and all(s.group for s in samples))
    return {s.id: s.group for s in samples} if grouped else None


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def make_folds(samples: list[Sample], protocol: str, folds: int = 6, val_groups: int = 1,
               val_fraction: float = 0.1, seed: int = 0, fold_file: Optional[str] = None,
               dataset: Optional[str] = None, log=_stderr) -> list[Fold]:
    if protocol not in PROTOCOLS:
        raise EmotuneError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
    labels = {s.id: s.label or (s.labels[0] if s.labels else None) for s in samples}
    group_of = {s.id: s.group for s in samples}
    out: list[Fold] = []
    if protocol in FILE_PROTOCOLS:
        out = _folds_from_file(samples, protocol, fold_file, dataset, val_groups, val_fraction, seed, labels, log)
    elif protocol in GROUPED_PROTOCOLS:
        groups = _groups(samples)
        names = list(groups)
        if protocol == "logo":
            chunks = [[g] for g in names]
        else:
            if folds < 2 or folds > len(names):
                raise EmotuneError(f"group_kfold needs 2..{len(names)} folds for {len(names)} groups, got {folds}")
            size, extra = divmod(len(names), folds)
            chunks, start = [], 0
            for k in range(folds):
                end = start + size + (1 if k < extra else 0)
                chunks.append(names[start:end])
                start = end
        for k, test_groups in enumerate(chunks):
            rest = [g for g in names if g not in test_groups]
            vgroups = _carve_val_groups(rest, val_groups, seed, k)
            train = [i for g in rest if g not in vgroups for i in groups[g]]
            val = [i for g in vgroups for i in groups[g]]
            test = [i for g in test_groups for i in groups[g]]
            if not val:  # too few groups to hold one out: carve ids, still only from the training side
                val = _carve_val_ids(train, labels, val_fraction, seed + k)
                train = [i for i in train if i not in set(val)]
            label = "-".join([test_groups[0], test_groups[-1]]) if len(test_groups) > 1 else test_groups[0]
            out.append(Fold(f"fold{k}_{label}", train, val, test, list(test_groups)))
    elif protocol == "official":
        by_split: dict[str, list[str]] = defaultdict(list)
        for s in samples:
            by_split[(s.split or "").lower()].append(s.id)
        train = by_split.get("train", [])
        val = by_split.get("dev", []) or by_split.get("val", []) or by_split.get("validation", [])
        # One test split ("test"), or several ("test1", "test2", ...: MER2023), each its own fold.
        tests = {k: v for k, v in sorted(by_split.items()) if re.fullmatch(r"test\w*", k)}
        if not train or not tests:
            raise EmotuneError(f"official protocol needs samples with split train and test; found splits {sorted(by_split)}")
        if not val:
            val = _carve_val_ids(train, labels, val_fraction, seed)
            train = [i for i in train if i not in set(val)]
        for name, test in tests.items():
            out.append(Fold("official" if list(tests) == ["test"] else f"official_{name}", train, val, test))
    else:  # stratified_kfold
        rng = random.Random(seed)
        by_label: dict[Optional[str], list[str]] = defaultdict(list)
        for s in samples:
            by_label[labels[s.id]].append(s.id)
        assign: dict[str, int] = {}
        offset = 0
        for _, members in sorted(by_label.items(), key=lambda kv: str(kv[0])):
            members = sorted(members)
            rng.shuffle(members)
            for j, i in enumerate(members):
                assign[i] = (j + offset) % folds
            offset += len(members)
        for k in range(folds):
            test = [s.id for s in samples if assign[s.id] == k]
            rest = [s.id for s in samples if assign[s.id] != k]
            val = _carve_val_ids(rest, labels, val_fraction, seed + k)
            vs = set(val)
            out.append(Fold(f"fold{k}", [i for i in rest if i not in vs], val, test))
    checked = leak_groups(samples, protocol)
    for f in out:
        check_fold(f, checked)
    return out


def _folds_from_file(samples, protocol, fold_file, dataset, val_groups, val_fraction, seed, labels, log) -> list[Fold]:
    """Test sides as the file lists them; the training side is the file's (EmoBox) or every other listed
    sample; validation is carved from the training side exactly as the other protocols do."""
    from emotune.data.fold_files import builtin_partition, read_fold_file

    if protocol == "emobox":
        dataset = dataset or (samples[0].dataset if samples else None)
        path = builtin_partition("emobox", str(dataset))
    elif not fold_file:
        raise EmotuneError("protocol fold_file needs data.fold_file (a CSV id,fold or an EmoBox data/<dataset> folder)")
    else:
        path = Path(fold_file)
    lists = read_fold_file(path)
    have = {s.id: s for s in samples}
    listed = set().union(*(fl.listed() for fl in lists))
    if not listed & set(have):
        raise EmotuneError(f"{path}: none of its {len(listed)} ids is in the manifest (file ids look like "
                           f"'{sorted(listed)[0]}', manifest ids like '{next(iter(have), '?')}')")
    absent = sorted(listed - set(have), key=natural_key)
    if absent:
        log(f"{path}: {len(absent)} id(s) are not in the manifest (e.g. {absent[0]}); the folds hold the rest")
    unlisted = sorted(set(have) - listed, key=natural_key)
    if unlisted:
        log(f"{path}: {len(unlisted)} sample(s) of the manifest are in no fold of this file (e.g. {unlisted[0]}): left out")
    order = [s.id for s in samples if s.id in listed]  # manifest order, so runs are reproducible
    out = []
    for k, fl in enumerate(lists):
        test_set = set(fl.test)
        test = [i for i in order if i in test_set]
        if not test:
            raise EmotuneError(f"{path}: {fl.name} has no test sample in the manifest")
        train_set = set(fl.train) if fl.train is not None else set(order) - test_set - set(fl.val or ())
        train = [i for i in order if i in train_set]
        if fl.val is not None:
            val = [i for i in order if i in set(fl.val)]
        else:
            groups = all(have[i].group for i in train)
            train_groups = sorted({have[i].group for i in train}, key=natural_key) if groups else []
            vgroups = set(_carve_val_groups(train_groups, val_groups, seed, k))
            val = [i for i in train if have[i].group in vgroups]
            if not val:  # too few groups (or none): a stratified slice of the training ids
                val = _carve_val_ids(train, labels, val_fraction, seed + k)
        train = [i for i in train if i not in set(val)]
        test_groups = sorted({have[i].group for i in test if have[i].group}, key=natural_key)
        out.append(Fold(fl.name, train, val, test, test_groups))
    return out


def check_fold(fold: Fold, group_of: Optional[dict[str, Optional[str]]] = None) -> None:
    """Fail loudly if an id (or, for group protocols, a group) is on two sides of a fold.

    One exception, by design: with too few groups to hold one out, validation is a slice of the training
    groups' ids, so train and val then share groups (all of val's) - never with test.
    """
    sides = {"train": set(fold.train), "val": set(fold.val), "test": set(fold.test)}
    for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
        both = sides[a] & sides[b]
        if both:
            raise LeakError(f"{fold.name}: {len(both)} id(s) in both {a} and {b}, e.g. {sorted(both)[0]}")
        if group_of is not None:
            ga = {group_of[i] for i in sides[a]}
            gb = {group_of[i] for i in sides[b]}
            shared = ga & gb
            if shared and not (a == "train" and b == "val" and gb <= ga):
                raise LeakError(f"{fold.name}: group(s) {sorted(shared)[:3]} in both {a} and {b}")


def write_folds(folds: list[Fold], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in folds:
        p = out_dir / f"{f.name}.json"
        p.write_text(f.to_json(), encoding="utf-8")
        paths.append(p)
    return paths
