"""Clues → a coarse caption in words, from features already in the cache (MERR's first step).

A sample's clues are what the extractors measured, put in terms an LLM can reason with:

- prosody: eGeMAPS loudness, pitch, pitch range, syllable rate and harmonics-to-noise ratio, each as a
  z-score against the SPEAKER'S OWN recordings (the sample's group), because "loud" means nothing until
  compared with how this person usually speaks; a speaker with too few recordings is compared with the
  whole dataset, and the caption says so;
- facial expression: the FER2013 class probabilities of the most expressive frame;
- the transcript (the dataset's, or the cached Whisper ASR);
- for images, the EmoSet attributes in the sample's meta (scene, objects, brightness, ...).

The words are data (`prompts/captions.yaml`); this module only measures and fills the templates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from typing import Optional

import numpy as np

from emotune.data.sample import Sample
from emotune.errors import EmotuneError

EGEMAPS = "egemaps"
FER = "fer"
ASR = "asr"


@functools.lru_cache(maxsize=1)
def egemaps_names() -> tuple[str, ...]:
    """Column names of the 88-d eGeMAPSv02 functionals vector, in openSMILE's order (the cache's order)."""
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    return tuple(smile.feature_names)


@dataclasses.dataclass
class Clues:
    gender: Optional[str] = None
    transcript: str = ""
    prosody: Optional[dict[str, float]] = None  # eGeMAPS feature name -> z-score against the baseline
    reference: Optional[str] = None  # "group" (the speaker's own recordings) or "dataset"
    face: Optional[dict[str, float]] = None  # FER class -> probability on the peak frame
    image: dict = dataclasses.field(default_factory=dict)  # EmoSet attributes

    def is_empty(self) -> bool:
        return not (self.transcript or self.prosody or self.face or self.image)


def prosody_zscores(samples: list[Sample], egemaps: dict[str, np.ndarray], features: list[str], baseline: str = "group",
                    min_baseline: int = 8) -> dict[str, tuple[dict[str, float], str]]:
    """Sample id -> ({feature: z}, reference) for every sample with eGeMAPS.

    The mean and spread come from all samples of the same group that have eGeMAPS (the speaker's own
    recordings, this one included), or from the whole set when the group has fewer than `min_baseline`.
    """
    names = egemaps_names()
    missing = [f for f in features if f not in names]
    if missing:
        raise EmotuneError(f"captions.yaml: prosody cue feature(s) {', '.join(missing)} are not eGeMAPSv02 functionals")
    cols = [names.index(f) for f in features]
    have = [s for s in samples if s.id in egemaps]
    if not have:
        return {}
    matrix = {s.id: np.asarray(egemaps[s.id], dtype=np.float64)[cols] for s in have}
    everyone = np.stack(list(matrix.values()))
    stats_all = (everyone.mean(0), everyone.std(0))
    by_group: dict[Optional[str], list[str]] = defaultdict(list)
    for s in have:
        by_group[s.group].append(s.id)
    out = {}
    for group, ids in by_group.items():
        if baseline == "group" and group is not None and len(ids) >= min_baseline:
            block = np.stack([matrix[i] for i in ids])
            mean, std, ref = block.mean(0), block.std(0), "group"
        else:
            (mean, std), ref = stats_all, "dataset"
        for i in ids:
            z = np.where(std > 1e-9, (matrix[i] - mean) / np.where(std > 1e-9, std, 1.0), 0.0)
            out[i] = ({f: float(v) for f, v in zip(features, z)}, ref)
    return out


def peak_face_probs(value: np.ndarray) -> dict[str, float]:
    """FER2013 class probabilities of the peak frame, read from the face extractor's pooled vector."""
    from emotune.features.face import FACE_DIM, FER_LABELS

    value = np.asarray(value).reshape(-1)
    start = 2 * FACE_DIM  # layout: [mean | max | peak], each FACE_DIM long, probabilities first
    if value.size != 3 * FACE_DIM:
        raise EmotuneError(f"fer feature has {value.size} values, expected {3 * FACE_DIM}")
    probs = value[start: start + len(FER_LABELS)]
    return {name: float(p) for name, p in zip(FER_LABELS, probs)}


IMAGE_ATTRIBUTES = ("scene", "object", "brightness", "colorfulness", "facial_expression", "human_action")


def gather(samples: list[Sample], feats: dict[str, dict[str, np.ndarray]], transcripts: dict[str, str],
           captions: dict, baseline: str = "group", min_baseline: int = 8) -> dict[str, Clues]:
    """Clues of every sample in `samples`; `feats` holds the cached arrays of the clue features.

    `samples` should include every recording of the selected speakers (not only the selected ones),
    so each speaker's baseline is computed from all their recordings.
    """
    cue_features = [c["feature"] for c in captions.get("prosody_cues", [])]
    zs = prosody_zscores(samples, feats.get(EGEMAPS, {}), cue_features, baseline, min_baseline) if EGEMAPS in feats else {}
    faces = feats.get(FER, {})
    out = {}
    for s in samples:
        c = Clues(gender=s.meta.get("gender") if isinstance(s.meta.get("gender"), str) else None,
                  transcript=(s.text or transcripts.get(s.id, "")).strip())
        if s.id in zs:
            c.prosody, c.reference = zs[s.id]
        if s.id in faces:
            c.face = peak_face_probs(faces[s.id])
        c.image = {k: s.meta[k] for k in IMAGE_ATTRIBUTES if s.meta.get(k) not in (None, "", [])}
        out[s.id] = c
    return out


def _level(z: float, levels: list[dict]) -> str:
    for lv in levels:
        if "below" not in lv or z < lv["below"]:
            return lv["name"]
    return levels[-1]["name"]


def _third(value, words: list[str]) -> Optional[str]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value) if value else None
    return words[min(len(words) - 1, max(0, int(v * len(words))))]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def caption(clues: Clues, captions: dict, label: Optional[str] = None) -> str:
    """The coarse caption: one sentence per available clue, in the order of the templates."""
    t = captions["sentences"]
    parts: list[str] = []
    if clues.gender:
        who = captions.get("gender_words", {}).get(clues.gender, clues.gender)
        parts.append(t["speaker"].format(article=_article(who), gender=who))
    if clues.transcript:
        parts.append(t["transcript"].format(text=clues.transcript.replace('"', "'")))
    if clues.prosody:
        reference = t["reference_group"] if clues.reference == "group" else t["reference_dataset"]
        cues = []
        for cue in captions["prosody_cues"]:
            level = _level(clues.prosody[cue["feature"]], captions["levels"])
            phrase = cue["phrases"].get(level)
            if phrase:
                cues.append(phrase)
        if cues:
            joined = cues[0] if len(cues) == 1 else ", ".join(cues[:-1]) + " and " + cues[-1]
            parts.append(t["prosody"].format(reference=reference, cues=joined))
        else:
            parts.append(t["prosody_usual"].format(reference=reference))
    if clues.face:
        words = captions["face_words"]
        ranked = sorted(clues.face.items(), key=lambda kv: -kv[1])
        (c1, p1), (c2, p2) = ranked[0], ranked[1]
        if p2 >= captions.get("face_second_min", 0.15):
            parts.append(t["face_two"].format(main=words.get(c1, c1), main_p=f"{p1:.0%}", second=words.get(c2, c2),
                                              second_p=f"{p2:.0%}"))
        else:
            parts.append(t["face"].format(main=words.get(c1, c1), main_p=f"{p1:.0%}"))
    img = clues.image
    if img.get("scene"):
        scene = str(img["scene"]).replace("_", " ")
        parts.append(t["scene"].format(article=_article(scene), scene=scene))
    if img.get("object"):
        objects = img["object"] if isinstance(img["object"], list) else [img["object"]]
        parts.append(t["objects"].format(objects=", ".join(str(o).replace("_", " ") for o in objects)))
    if img.get("brightness") is not None and img.get("colorfulness") is not None:
        parts.append(t["look"].format(brightness=_third(img["brightness"], captions["brightness_words"]),
                                      colorfulness=_third(img["colorfulness"], captions["colorfulness_words"])))
    for key in ("facial_expression", "human_action"):
        if img.get(key):
            parts.append(t[key].format(**{key: str(img[key]).replace("_", " ")}))
    if label is not None:
        parts.append(t["label"].format(label=label))
    return " ".join(parts)
