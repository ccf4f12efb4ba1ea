"""FER2013 (Goodfellow et al. 2013) in its image-folder release: 35,887 48x48 grayscale faces, 7 classes.

    train/<class>/Training_<n>.jpg                       28,709
    test/<class>/{PublicTest,PrivateTest}_<n>.jpg        3,589 + 3,589

The official split is the file-name prefix (the original `Usage` column): Training → train,
PublicTest → dev (model selection), PrivateTest → test (the figure to report). The folder an image
sits in is ignored for the split: only the prefix is the record. Sample ids are the path without the
suffix (train__neutral__Training_52789098): two file names occur in two class folders as different images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem
from emotune.data.sources import Row
from emotune.data.sources.image_folder import walk
from emotune.errors import EmotuneError

LABEL_SET = "fer2013"
OPTIONS = ("label_set", "trust_pickle")
USAGE = {"Training": "train", "PublicTest": "dev", "PrivateTest": "test"}


def split_of(path: Path, _folder_split: Optional[str]) -> Optional[str]:
    return USAGE.get(path.stem.split("_", 1)[0])


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown fer2013 option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    for item in walk(root, load_label_set(options.get("label_set") or LABEL_SET), "fer2013", split_of):
        if isinstance(item, Row):
            # The id keeps the folders: two file names of the release occur in two class folders
            # (different images), so Training_<n> alone is not unique.
            item.sample.meta = {"usage": Path(item.sample.image).stem.split("_", 1)[0]}
        yield item
