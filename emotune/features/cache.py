"""The feature cache: one folder per extractor key, holding append-only safetensors shards.

    <cache_dir>/<extractor key>/extractor.json            name, spec, version, settings, shape (for people)
    <cache_dir>/<extractor key>/shards/<dataset>/<time>-<pid>-<rand>.safetensors
    <cache_dir>/<extractor key>/crops/<hash>.png          face crops some extractors keep (fer: the peak frame)

A shard holds the results of a few dozen samples: one tensor per finished sample, plus a JSON index in
the safetensors metadata with, per sample, its key (dataset/id), the fingerprint of what it was computed
from (a hash of the file's bytes, or of the text), its status ("ok" or "missing: <reason>") and the
SHA-256 of its tensor. Shards are written to a temporary name and renamed into place, so a killed run
leaves whole shards or none; a shard whose bytes do not match its checksums is reported and, by
`ensure_features`, deleted so its samples are computed again. Nothing is ever unpickled.

Shards sit in one folder per dataset, so loading RAVDESS never reads the shards of a 50,000-sample text
corpus cached under the same extractor. Many small shards (one per chunk of every run) are merged into
a few large ones once a dataset folder holds more than COMPACT_AT of them.

A result is current when its sample key AND fingerprint match: an edited media file or transcript is a
cache miss. A changed setting is a different extractor key, i.e. a different folder; old folders stay.

Large arrays (Whisper encoder states, ~270 KB a clip) can be scanned with `arrays=False`: every checksum is
still verified, but each entry keeps only where its array lies (`Stored`), read again when it is used, so
a scan never holds a whole corpus of them in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.features.base import Missing, Output
from emotune.io import atomic_write_bytes

SHARD_FORMAT = "1"
COMPACT_AT = 64  # shard files of one dataset before they are merged
COMPACT_SIZE = 4096  # entries per merged shard
STALE_TMP_SECONDS = 3600  # a temp file this old belongs to a run that died, not to one still writing


@dataclasses.dataclass
class Entry:
    sample: str  # dataset/id
    fingerprint: str
    status: str  # "ok" or "missing: <reason>"
    value: np.ndarray | str | None = None
    crops: dict[str, Path] = dataclasses.field(default_factory=dict)
    shard: Optional[Path] = None
    crops_rel: dict[str, str] = dataclasses.field(default_factory=dict)  # as stored, relative to the key folder

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        return self.status.removeprefix("missing: ")


@dataclasses.dataclass(frozen=True)
class Stored:
    """Where a verified cached array lies: read by `load` when needed (plain strings, cheap to send to a worker)."""

    shard: str
    tensor: str
    sha256: str

    def load(self) -> np.ndarray:
        """The array; ShardError if its bytes changed, FileNotFoundError if its shard was merged away since."""
        from safetensors import safe_open

        with safe_open(self.shard, framework="numpy") as f:
            arr = f.get_tensor(self.tensor)
        if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != self.sha256:
            raise ShardError(f"data checksum mismatch in {self.shard}")
        return arr


@dataclasses.dataclass
class Record:
    """One result on its way into a shard."""

    sample: str
    fingerprint: str
    result: Output | Missing


class ShardIndex:
    """Every readable entry of one extractor key; for a (sample, fingerprint) the newest shard wins."""

    def __init__(self) -> None:
        self._by_sample: dict[str, dict[str, Entry]] = {}
        self.corrupt: list[tuple[Path, str]] = []
        self.files: list[Path] = []  # the shards the entries came from

    def add(self, entry: Entry) -> None:
        self._by_sample.setdefault(entry.sample, {})[entry.fingerprint] = entry

    def get(self, sample: str, fingerprint: str) -> Optional[Entry]:
        return self._by_sample.get(sample, {}).get(fingerprint)

    def entries(self):
        for by_fp in self._by_sample.values():
            yield from by_fp.values()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_sample.values())


class _Vanished(Exception):
    """A shard disappeared while being read (merged by a concurrent compaction)."""


class FeatureCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, key: str) -> Path:
        return self.root / key

    def write_info(self, key: str, info: dict) -> None:
        path = self.folder(key) / "extractor.json"
        if not path.exists():
            atomic_write_bytes(path, (json.dumps(info, indent=1, default=list) + "\n").encode())

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "extractor.json").exists()) if self.root.exists() else []

    # -- reading ------------------------------------------------------------------------------------
    def shard_files(self, key: str, datasets: Optional[set[str]] = None) -> list[Path]:
        """Shard files of `key` for these datasets (all when None), oldest first (names start with the time)."""
        top = self.folder(key) / "shards"
        if not top.exists():
            return []
        wanted = None if datasets is None else {dataset_dir(d) for d in datasets}
        files = []
        for p in top.iterdir():
            if p.is_dir() and (wanted is None or p.name in wanted):
                files += [q for q in p.iterdir() if q.is_file()]
            elif p.is_file():
                files.append(p)  # a shard outside any dataset folder may hold any dataset
        return sorted(files, key=lambda p: p.name)

    def scan(self, key: str, datasets: Optional[set[str]] = None, repair: bool = False, arrays: bool = True) -> ShardIndex:
        """Read and verify the shards of `key` for `datasets`. With `repair`, delete corrupt shards and stale
        temp files. A shard merged away mid-read by another process means reading again (its entries moved).
        With `arrays=False` array values are `Stored` references, not arrays (such an index cannot `compact`)."""
        for _ in range(5):
            try:
                return self._scan(key, datasets, repair, arrays)
            except _Vanished:
                continue
        return self._scan(key, datasets, repair, arrays, tolerate=True)

    def _scan(self, key: str, datasets: Optional[set[str]], repair: bool, arrays: bool = True,
              tolerate: bool = False) -> ShardIndex:
        index = ShardIndex()
        for path in self.shard_files(key, datasets):
            if path.name.startswith(".tmp-"):
                if repair and _age(path) > STALE_TMP_SECONDS:
                    path.unlink(missing_ok=True)
                continue
            if path.suffix != ".safetensors":
                continue
            try:
                entries = read_shard(path, self.folder(key), arrays)
            except FileNotFoundError:
                if tolerate:
                    continue
                raise _Vanished() from None
            except ShardError as exc:
                index.corrupt.append((path, str(exc)))
                if repair:
                    path.unlink(missing_ok=True)
                continue
            index.files.append(path)
            for e in entries:
                index.add(e)
        return index

    # -- writing ------------------------------------------------------------------------------------
    def write_shard(self, key: str, records: list[Record]) -> list[Path]:
        """Save results; one shard per dataset among the records. Face crops are written as PNGs first."""
        folder = self.folder(key)
        groups: dict[str, list[dict]] = {}
        for rec in records:
            if isinstance(rec.result, Missing):
                item = _item(rec.sample, rec.fingerprint, f"missing: {rec.result.reason}", None, {})
            else:
                crops = {k: _write_crop(folder, rec.sample, rec.fingerprint, k, img) for k, img in rec.result.crops.items()}
                item = _item(rec.sample, rec.fingerprint, "ok", rec.result.value, crops)
            groups.setdefault(dataset_of(rec.sample), []).append(item)
        return [self._write(key, ds, items) for ds, items in groups.items()]

    def compact(self, key: str, index: ShardIndex) -> int:
        """Merge the shards `index` was read from into a few large ones per dataset; returns files removed.

        The merged shards are written before the small ones are deleted, so a reader always finds every
        entry somewhere (and rereads if a file vanishes under it)."""
        loose = any(p.parent.name == "shards" for p in index.files)  # outside a dataset folder: move them in
        if len(index.files) <= COMPACT_AT and not loose:
            return 0
        if any(isinstance(e.value, Stored) for e in index.entries()):
            raise ValueError("compact needs an index scanned with its arrays")
        groups: dict[str, list[dict]] = {}
        for e in index.entries():
            groups.setdefault(dataset_of(e.sample), []).append(_item(e.sample, e.fingerprint, e.status, e.value, e.crops_rel))
        for ds, items in groups.items():
            for start in range(0, len(items), COMPACT_SIZE):
                self._write(key, ds, items[start: start + COMPACT_SIZE])
        for path in index.files:
            path.unlink(missing_ok=True)
        return len(index.files)

    def _write(self, key: str, dataset: str, items: list[dict]) -> Path:
        from safetensors.numpy import save

        tensors = {}
        entries = []
        for i, item in enumerate(items):
            arr = item.pop("array", None)
            if arr is not None:
                item["tensor"] = f"t{i}"
                tensors[item["tensor"]] = arr
            entries.append(item)
        blob = json.dumps(entries, ensure_ascii=False)
        meta = {"emotune_shard": SHARD_FORMAT, "entries": blob, "entries_sha256": hashlib.sha256(blob.encode()).hexdigest()}
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.safetensors"
        path = self.folder(key) / "shards" / dataset_dir(dataset) / name
        atomic_write_bytes(path, save(tensors, metadata=meta))
        return path


def dataset_of(sample_key: str) -> str:
    return sample_key.split("/", 1)[0]


def dataset_dir(dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset) or "_"


def _item(sample: str, fingerprint: str, status: str, value, crops: dict[str, str]) -> dict:
    """A shard index entry; the array to store rides along under "array" until the shard is written."""
    item = {"sample": sample, "fp": fingerprint, "status": status}
    if status == "ok":
        if isinstance(value, str):
            arr, item["kind"] = np.frombuffer(value.encode("utf-8"), dtype=np.uint8).copy(), "text"
        else:
            arr, item["kind"] = np.ascontiguousarray(value, dtype=np.float32), "array"
        item.update(sha256=hashlib.sha256(arr.tobytes()).hexdigest(), array=arr)
        if crops:
            item["crops"] = dict(crops)
    return item


class ShardError(Exception):
    pass


def read_shard(path: Path, folder: Path, arrays: bool = True) -> list[Entry]:
    """All entries of one shard, every checksum verified; ShardError says what is wrong. With `arrays=False`
    an array value is a `Stored` reference (text values are always read)."""
    from safetensors.numpy import load

    data = path.read_bytes()
    if len(data) < 8:
        raise ShardError("truncated (shorter than a safetensors header)")
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8: 8 + header_len])
        meta = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as exc:  # any parse failure means the bytes are not what we wrote
        raise ShardError(f"unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    if meta.get("emotune_shard") != SHARD_FORMAT:
        raise ShardError(f"not an emotune shard (format {meta.get('emotune_shard')!r})")
    blob = meta.get("entries", "")
    if hashlib.sha256(blob.encode()).hexdigest() != meta.get("entries_sha256"):
        raise ShardError("index checksum mismatch")
    entries = []
    for item in json.loads(blob):
        e = Entry(item["sample"], item["fp"], item["status"], shard=path)
        if e.ok:
            arr = tensors.get(item["tensor"])
            if arr is None or hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != item["sha256"]:
                raise ShardError(f"data checksum mismatch for {e.sample}")
            if item.get("kind") == "text":
                e.value = arr.tobytes().decode("utf-8")
            else:
                e.value = arr if arrays else Stored(str(path), item["tensor"], item["sha256"])
            e.crops_rel = dict(item.get("crops", {}))
            e.crops = {k: folder / v for k, v in e.crops_rel.items()}
        entries.append(e)
    return entries


def _write_crop(folder: Path, sample: str, fingerprint: str, kind: str, image: np.ndarray) -> str:
    import cv2

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode the {kind} crop of {sample} as PNG")
    digest = hashlib.sha1(f"{sample}\0{fingerprint}".encode()).hexdigest()[:20]
    rel = f"crops/{digest}-{kind}.png"
    atomic_write_bytes(folder / rel, png.tobytes())
    return rel


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
