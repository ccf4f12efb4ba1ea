"""Published partitions: fold lists read from a file, so emotune's figures can sit beside a benchmark's.

Two layouts are read:
- a CSV with a header `id,fold`: each row puts one sample in the test side of one fold; the training side
  of a fold is every other listed sample;
- the EmoBox layout, a folder `<dataset>/fold_<k>/<dataset>_{train,valid,test}_fold_<k>.jsonl` whose
  records carry `key` = `<dataset>-<original id>` (the prefix is removed, leaving emotune's id).

`protocol: emobox` reads the EmoBox partitions shipped in emotune/data/partitions/emobox/ (see its
README for the source commit and licence).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Optional

from emotune.errors import EmotuneError

PARTITIONS = Path(__file__).parent / "partitions"


@dataclasses.dataclass
class FoldList:
    """One fold as a file gives it: test ids always; train/val only when the file says (EmoBox)."""
    name: str
    test: list[str]
    train: Optional[list[str]] = None
    val: Optional[list[str]] = None

    def listed(self) -> set[str]:
        return set(self.test) | set(self.train or ()) | set(self.val or ())


def builtin_partition(benchmark: str, dataset: str) -> Path:
    path = PARTITIONS / benchmark / f"{dataset}.csv"
    if not path.exists():
        have = sorted(p.stem for p in (PARTITIONS / benchmark).glob("*.csv"))
        raise EmotuneError(f"protocol {benchmark}: no {benchmark} partition is shipped for dataset '{dataset}' "
                           f"(shipped: {', '.join(have)}); give your own with protocol=fold_file data.fold_file=FILE")
    return path


def read_fold_file(path: str | Path) -> list[FoldList]:
    path = Path(path)
    if not path.exists():
        raise EmotuneError(f"fold file not found: {path}")
    folds = _read_emobox(path) if path.is_dir() else _read_csv(path)
    if not folds:
        raise EmotuneError(f"{path}: no folds in this file")
    return folds


def fold_name(value: str) -> str:
    return f"fold{value}" if value.isdigit() else value


def _read_csv(path: Path) -> list[FoldList]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"id", "fold"} <= set(reader.fieldnames):
            raise EmotuneError(f"{path}: a fold file is a CSV with the columns id,fold (found {reader.fieldnames})")
        fold_of: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            sid, fold = (row["id"] or "").strip(), (row["fold"] or "").strip()
            if not sid or not fold:
                raise EmotuneError(f"{path}, line {line}: empty id or fold")
            if sid in fold_of and fold_of[sid] != fold:
                raise EmotuneError(f"{path}, line {line}: id {sid} is in fold {fold_of[sid]} and in fold {fold}")
            fold_of[sid] = fold
    by_fold: dict[str, list[str]] = {}
    for sid, fold in fold_of.items():
        by_fold.setdefault(fold, []).append(sid)
    from emotune.data.splits import natural_key

    return [FoldList(fold_name(k), v) for k, v in sorted(by_fold.items(), key=lambda kv: natural_key(kv[0]))]


def _keys(path: Path) -> list[str]:
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key, dataset = rec["key"], rec.get("dataset", "")
        except (json.JSONDecodeError, KeyError, TypeError):
            raise EmotuneError(f"{path}, line {line_no}: not an EmoBox record (a JSON object with a 'key')") from None
        prefix = f"{dataset}-"
        out.append(key[len(prefix):] if dataset and key.startswith(prefix) else key)
    return out


def _read_emobox(root: Path) -> list[FoldList]:
    folds = []
    dirs = sorted((d for d in root.iterdir() if re.fullmatch(r"fold_\d+", d.name)), key=lambda d: int(d.name[5:]))
    if not dirs:
        raise EmotuneError(f"{root}: no fold_<k> folders (the EmoBox layout is data/<dataset>/fold_<k>/...)")
    for d in dirs:
        k = d.name[5:]
        side = {name: next(iter(sorted(d.glob(f"*_{name}_fold_{k}.jsonl"))), None) for name in ("train", "valid", "test")}
        if side["test"] is None:
            raise EmotuneError(f"{d}: no *_test_fold_{k}.jsonl")
        folds.append(FoldList(f"fold{k}", _keys(side["test"]),
                              _keys(side["train"]) if side["train"] else None,
                              _keys(side["valid"]) if side["valid"] else None))
    return folds


def write_fold_csv(folds: list[FoldList], path: Path) -> None:
    """The test-side assignment as `id,fold` (how the EmoBox partitions are shipped)."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "fold"])
        for fl in folds:
            for sid in fl.test:
                w.writerow([sid, fl.name.removeprefix("fold")])
