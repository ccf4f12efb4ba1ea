"""Clues to captions: speaker-relative prosody, face and image attributes in words; pools and records."""

from __future__ import annotations

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.instruct import clues
from emotune.instruct.templates import first_human_turn, load_prompts, pick, pick_distinct

LOUD = "loudness_sma3_amean"
PITCH = "F0semitoneFrom27.5Hz_sma3nz_amean"


@pytest.fixture(scope="module")
def prompts():
    return load_prompts()


def _egemaps(loudness: float, pitch: float) -> np.ndarray:
    names = clues.egemaps_names()
    v = np.zeros(len(names), dtype=np.float32)
    v[names.index(LOUD)] = loudness
    v[names.index(PITCH)] = pitch
    return v


def test_prosody_is_relative_to_the_speakers_own_baseline():
    # Speaker A is loud by nature, speaker B quiet; each one's loudest clip is "louder than usual" for them,
    # although A's quietest clip is louder than B's loudest.
    samples, feats = [], {}
    for spk, base in (("A", 10.0), ("B", 1.0)):
        for k in range(10):
            s = Sample(id=f"{spk}{k}", dataset="t", group=spk)
            samples.append(s)
            feats[s.id] = _egemaps(base + 0.1 * k, 30.0)
    z = clues.prosody_zscores(samples, feats, [LOUD, PITCH], baseline="group", min_baseline=8)
    assert z["A9"][0][LOUD] > 1.0 and z["B9"][0][LOUD] > 1.0
    assert z["A0"][0][LOUD] < -1.0 and z["B0"][0][LOUD] < -1.0
    assert z["A0"][1] == "group"
    assert z["A0"][0][PITCH] == 0.0  # no spread: no difference to describe
    # Against the whole dataset instead, every clip of A is loud and every clip of B quiet.
    zd = clues.prosody_zscores(samples, feats, [LOUD], baseline="dataset")
    assert zd["A0"][0][LOUD] > 0.5 > -0.5 > zd["B9"][0][LOUD] and zd["A0"][1] == "dataset"
    # A speaker with fewer recordings than min_baseline falls back to the dataset.
    zs = clues.prosody_zscores(samples, feats, [LOUD], baseline="group", min_baseline=11)
    assert zs["A0"][1] == "dataset"


def test_caption_words(prompts):
    cap = prompts["captions"]
    c = clues.Clues(gender="female", transcript='Dogs are "sitting" by the door.',
                    prosody={f["feature"]: 0.0 for f in cap["prosody_cues"]} | {LOUD: 1.4, PITCH: -0.7},
                    reference="group", face={"angry": 0.62, "neutral": 0.2, "sad": 0.18, "happy": 0.0, "fear": 0.0,
                                             "disgust": 0.0, "surprise": 0.0})
    text = clues.caption(c, cap)
    assert text.startswith("The speaker is a woman. They say: \"Dogs are 'sitting' by the door.\"")
    assert "Compared with their own other recordings, they speak much more loudly and with a lower pitch." in text
    assert "the face looks angry (62%), with a hint of neutral (20%)" in text
    assert "annotated emotion" not in text
    assert 'The annotated emotion is "angry".' in clues.caption(c, cap, label="angry")
    calm = clues.Clues(prosody={f["feature"]: 0.1 for f in cap["prosody_cues"]}, reference="dataset")
    assert clues.caption(calm, cap) == ("Their loudness, pitch, intonation and pace are close to "
                                        "the other speakers in the data.")


def test_caption_of_an_image_from_emoset_attributes(prompts):
    image = Sample(id="amusement_00001", dataset="emoset", image="image/amusement/amusement_00001.jpg", label="amusement",
                   meta={"scene": "amusement_park", "object": ["person", "balloon"], "brightness": 0.8,
                         "colorfulness": 0.1, "facial_expression": "happy", "human_action": "laughing"})
    found = clues.gather([image], {}, {}, prompts["captions"])
    text = clues.caption(found[image.id], prompts["captions"])
    assert text == ("The image shows an amusement park scene. Visible objects: person, balloon. "
                    "The picture is bright and muted. A person in it shows happy. Someone is laughing.")


def test_face_probabilities_come_from_the_peak_frame():
    from emotune.features.face import FACE_DIM, FER_LABELS

    value = np.zeros(3 * FACE_DIM, dtype=np.float32)
    value[0] = 0.9  # mean pooling says angry
    value[2 * FACE_DIM + FER_LABELS.index("surprise")] = 0.7  # the peak frame says surprise
    probs = clues.peak_face_probs(value)
    assert max(probs, key=probs.get) == "surprise"


def test_template_choices_depend_only_on_seed_and_record(prompts):
    pool = prompts["categorical"]["questions"]["default"]
    a = [pick(pool, 0, f"id{k}/categorical", "question") for k in range(40)]
    assert a == [pick(pool, 0, f"id{k}/categorical", "question") for k in range(40)]
    assert len(set(a)) > 1  # and they vary across records
    two = pick_distinct(["x", "y", "z"], 2, 0, "r", "simple")
    assert len(set(two)) == 2
    assert len(pick_distinct(["x"], 3, 0, "r", "simple")) == 3


def test_first_human_turn_has_media_tokens_transcript_and_question(prompts):
    s = Sample(id="x", dataset="ravdess", audio="Actor_01/x.flac", text="Kids are talking by the door.")
    turn = first_human_turn(s, "How does the speaker feel?", prompts["turns"], include_transcript=True)
    assert turn == '<audio>\nThe person says: "Kids are talking by the door."\nHow does the speaker feel?'
    assert first_human_turn(s, "Q?", prompts["turns"], include_transcript=False) == "<audio>\nQ?"


@pytest.mark.data
def test_real_prosody_separates_angry_from_sad(actor01):
    """On one RAVDESS actor, strong anger is louder than the actor's baseline and sadness quieter."""
    from emotune.data.sample import read_manifest
    from emotune.features.store import load_features

    m = read_manifest(actor01["manifest"])
    feats = load_features(m, ["egemaps"], actor01["cache"])["egemaps"]
    assert len(feats) == 60
    z = clues.prosody_zscores(m.samples, feats, [LOUD], baseline="group")
    mean = lambda emo: np.mean([z[s.id][0][LOUD] for s in m.samples if s.label == emo and s.meta["intensity"] == "strong"])
    assert mean("angry") > 0.5 and mean("sad") < 0.0
