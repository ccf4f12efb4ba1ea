"""Images in one folder per class — the form EmoSet, FI, Emotion6, CK+ and FER2013 are passed around in.

    <root>/<class>/<name>.jpg                      every image in split "train" (use a fold protocol), or
    <root>/<split>/<class>/<name>.jpg              split folders train / val|dev / test (official protocol)

`--option label_set=NAME` (required) says what the folder names mean; a folder that is not a label
or alias of that set is a problem naming the folder, never a silent new class. Images are checked
where they are read (feature extraction): an empty, truncated or undecodable file is reported there
with its path and left out of that extractor only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional

from emotune.data.labels import LabelSet, load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row
from emotune.errors import EmotuneError
from emotune.media.kinds import MEDIA_EXT

LABEL_SET = None  # the user's: --option label_set=NAME
OPTIONS = ("label_set", "trust_pickle")
SPLIT_DIRS = {"train": "train", "training": "train", "val": "dev", "valid": "dev", "validation": "dev", "dev": "dev",
              "test": "test"}


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MEDIA_EXT["image"] and p.is_file())


def walk(root: Path, labels: LabelSet, dataset: str,
         split_of: Optional[Callable[[Path, Optional[str]], Optional[str]]] = None) -> Iterator[Row | Problem]:
    """One Row per image of every class folder (under split folders when the root has them)."""
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    by_split = [d for d in subdirs if d.name.lower() in SPLIT_DIRS]
    tops = [(d, SPLIT_DIRS[d.name.lower()]) for d in by_split] if by_split else [(root, None)]
    found = False
    for top, split in tops:
        for class_dir in sorted(d for d in top.iterdir() if d.is_dir()):
            label = labels.canonical(class_dir.name)
            if label is None:
                yield Problem(str(class_dir), None, f"folder '{class_dir.name}' is not a label of label set "
                                                    f"{labels.name} ({', '.join(labels.full)})")
                continue
            for path in images_under(class_dir):
                found = True
                rel = path.relative_to(root).as_posix()
                sample_split = split_of(path, split) if split_of else (split or "train")
                if sample_split is None:
                    yield Problem(str(path), None, "cannot tell this image's split from its name")
                    continue
                # ids: the path without its suffix, so equal file names in two class folders stay distinct
                yield Row(Sample(id=rel.rsplit(".", 1)[0].replace("/", "__"), dataset=dataset, label=label,
                                 labels=[label], image=rel, split=sample_split), str(path))
    if not found:
        yield Problem(str(root), None, "no images found (expected <class>/<image> or <split>/<class>/<image>; "
                                       f"extensions {', '.join(sorted(MEDIA_EXT['image']))})")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown image_folder option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    if not options.get("label_set"):
        raise EmotuneError("image_folder needs --option label_set=NAME: the label set the class folder names belong to")
    yield from walk(root, load_label_set(options["label_set"]), "image_folder")
