"""The answer parser: what counts as a label in generated text, and what is counted invalid."""

import pytest

from emotune.data.labels import load_label_set
from emotune.evaluate.decode import parse_label, parse_labels

RAVDESS = load_label_set("ravdess")
MELD = load_label_set("meld")
IEMOCAP4 = load_label_set("iemocap", "iemocap4")
IEMOCAP6 = load_label_set("iemocap", "iemocap6")
GOEMO = load_label_set("goemotions")
EKMAN = load_label_set("goemotions", "ekman")


@pytest.mark.parametrize("text,labels,expected", [
    ("angry", RAVDESS, "angry"),
    ("Angry.", RAVDESS, "angry"),
    ("  **SAD**  ", RAVDESS, "sad"),
    ("The speaker sounds fearful, maybe a little sad.", RAVDESS, "fearful"),  # first valid label
    ("fear", RAVDESS, "fearful"),  # label-set alias
    ("furious!", RAVDESS, "angry"),  # synonym table
    ("unhappy", RAVDESS, "sad"),  # whole words: "unhappy" is not "happy"
    ("happy-go-lucky", RAVDESS, "happy"),
    ("Happy", MELD, "joy"),  # same concept, this label set's name
    ("The emotion is happiness.", MELD, "joy"),
    ("excited", IEMOCAP4, "happy"),  # merged into happy in the 4-class subset
    ("excited", IEMOCAP6, "excited"),
    ("annoyed", GOEMO, "annoyance"),
    ("annoyed", EKMAN, "anger"),
    ("annoyed", RAVDESS, "angry"),  # the group's broader fallback
    ("No emotion.", RAVDESS, "neutral"),
    ("Other", load_label_set("iemocap"), "other"),
])
def test_valid_answers(text, labels, expected):
    assert parse_label(text, labels) == expected


@pytest.mark.parametrize("text,expected", [
    ("not angry", None),
    ("The speaker is not angry, they are sad.", "sad"),
    ("The speaker isn\u2019t happy; she is fearful", "fearful"),
    ("I don't think the speaker is angry", None),
    ("He doesn't seem particularly happy at all", None),
    ("no anger detected, neutral tone", "neutral"),
    ("sad rather than angry", "sad"),
    ("neither angry nor sad", None),
    ("without a doubt the speaker is angry", "angry"),  # not a negation
    ("not only sad but also angry", "sad"),
    ("Not sad. Angry.", "angry"),  # the full stop ends the negation's scope
])
def test_negation(text, expected):
    assert parse_label(text, RAVDESS) == expected


@pytest.mark.parametrize("text", [
    "", None, "I cannot tell from this clip.", "05", "xyzzy", "The emotion is unclear.",
    "on the other hand",  # "other" only counts as a whole answer
])
def test_invalid_answers_are_none(text):
    assert parse_label(text, RAVDESS) is None
    assert parse_label(text, load_label_set("iemocap")) is None


def test_label_outside_subset_is_not_an_answer():
    assert parse_label("frustrated", IEMOCAP4) is None
    assert parse_label("frustrated, or maybe angry", IEMOCAP4) == "angry"
    assert parse_label("frustrated", IEMOCAP6) == "frustrated"


def test_answer_marker_selects_final_answer():
    text = "The voice is calm at first but grows loud and tense. Answer: angry"
    assert parse_label(text, RAVDESS) == "angry"
    assert parse_label("Reasoning: sounds happy. Final answer: not sure", RAVDESS) is None


def test_parse_labels_multi():
    assert parse_labels("angry, frustrated", IEMOCAP6) == ["angry", "frustrated"]
    assert parse_labels("frustrated and angry and angry", IEMOCAP6) == ["angry", "frustrated"]  # class order, once
    assert parse_labels("love, admiration, but not anger", GOEMO) == ["admiration", "love"]
    assert parse_labels("gratitude; relief", GOEMO) == ["gratitude", "relief"]
    assert parse_labels("no idea", GOEMO) is None
    assert parse_labels("", GOEMO) is None
