"""Perturbed copies of a corpus's audio, for training only (`emotune augment`, `data.augment`).

Speed perturbation is the usual remedy for small speech-emotion corpora: each clip is resampled by a factor
(0.9 = 10% slower and lower, 1.1 = faster and higher), so the speaker's pitch and rate vary while the words
and the emotion stay. The copies are written once, as audio files beside their own manifest, and go through
the feature extractors like any clip (cached once, reused by every fold).

A copy names its source in `meta.augment_of`. A run with `data.augment` adds the copies of its *training*
ids to the training side only; validation and test read original clips, and the folds themselves (made from
the main manifest) are the same as without augmentation, so results compare fold for fold.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Optional

from emotune.data.sample import Manifest, Sample, read_manifest, write_manifest
from emotune.errors import EmotuneError

AUGMENT_OF = "augment_of"


def copy_id(sample_id: str, factor: float) -> str:
    return f"{sample_id}~speed{factor:g}"


def speed_perturb(audio, factor: float, sample_rate: int):
    """The clip played `factor` times faster (pitch alike): read as if recorded at sample_rate*factor."""
    from emotune.media.audio import resample

    return resample(audio, int(round(sample_rate * factor)), sample_rate)


def augment_manifest(manifest: Manifest, factors: list[float], out: Path, audio_dir: Optional[Path] = None,
                     log: Callable[[str], None] = print) -> int:
    """Write a speed-perturbed copy of every audio clip of `manifest` per factor, and their manifest at `out`.

    Copies already written (a resumed run) are kept; the manifest is written last, atomically."""
    import soundfile as sf

    from emotune.media.audio import SAMPLE_RATE, load_audio

    bad = [f for f in factors if not 0.5 <= f <= 2.0 or f == 1.0]
    if bad or not factors:
        raise EmotuneError(f"speed factors must lie in 0.5..2.0 and differ from 1 (got {factors})")
    out = Path(out)
    audio_dir = Path(audio_dir) if audio_dir else out.with_name(out.stem + "_audio")
    audio_dir.mkdir(parents=True, exist_ok=True)
    with_audio = [s for s in manifest.samples if s.audio]
    if not with_audio:
        raise EmotuneError(f"{manifest.path}: no sample has audio to perturb")
    copies = []
    for n, s in enumerate(with_audio, 1):
        targets = [(f, audio_dir / f"{copy_id(s.id, f)}.flac") for f in factors]
        todo = [(f, p) for f, p in targets if not p.exists()]
        if todo:
            audio = load_audio(manifest.media_path(s, "audio"))  # a bad file stops here, named by the reader
            for f, p in todo:
                tmp = p.with_name(p.name + ".tmp.flac")
                sf.write(str(tmp), speed_perturb(audio, f, SAMPLE_RATE), SAMPLE_RATE)
                os.replace(tmp, p)
        for f, p in targets:
            copies.append(dataclasses.replace(s, id=copy_id(s.id, f), audio=p.name, video=None,
                                              meta={**s.meta, AUGMENT_OF: s.id, "speed": f}))
        if n % 200 == 0 or n == len(with_audio):
            log(f"augment: {n}/{len(with_audio)} clips")
    return write_manifest(out, manifest.dataset, audio_dir, manifest.label_set, manifest.subset, copies)


def read_copies(path: str | Path, main: Manifest) -> Manifest:
    """The augmentation manifest of `data.augment`, checked against the run's own manifest."""
    aug = read_manifest(path)
    ids = {s.id for s in main.samples}
    if aug.dataset != main.dataset:
        raise EmotuneError(f"{path}: copies of dataset '{aug.dataset}', but the run's manifest is '{main.dataset}'")
    for s in aug.samples:
        source = s.meta.get(AUGMENT_OF)
        if source is None:
            raise EmotuneError(f"{path}: sample {s.id} has no meta.{AUGMENT_OF} (not written by `emotune augment`)")
        if source not in ids:
            raise EmotuneError(f"{path}: sample {s.id} is a copy of '{source}', which the run's manifest "
                               f"{main.path} does not hold (made from another manifest?)")
        if s.id in ids:
            raise EmotuneError(f"{path}: copy id {s.id} is also an id of the run's manifest")
    return aug


def copies_of(train_ids: list[str], aug: Manifest) -> list[str]:
    """The ids of the copies of `train_ids`, in the training side's order."""
    by_source: dict[str, list[str]] = {}
    for s in aug.samples:
        by_source.setdefault(s.meta[AUGMENT_OF], []).append(s.id)
    return [c for i in train_ids for c in by_source.get(i, ())]
