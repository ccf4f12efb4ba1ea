"""Reading LLM replies: answers and Q/A scripts in the layouts models really produce, and the label check."""

from __future__ import annotations

import pytest

from emotune.data.labels import load_label_set
from emotune.instruct.parse import Unusable, check_label, clean_answer, parse_qa


@pytest.mark.parametrize("reply, expected", [
    ("The speaker sounds angry: loud and fast.", "The speaker sounds angry: loud and fast."),
    ("Answer: The speaker sounds angry and tense.", "The speaker sounds angry and tense."),
    ("**Answer:** The voice is loud and sharp.", "The voice is loud and sharp."),
    ("A: Her voice trembles, which suggests fear.", "Her voice trembles, which suggests fear."),
    ('"She sounds calm and even."', "She sounds calm and even."),
    ("Assistant - He is clearly sad today.", "He is clearly sad today."),
    # a whole script where one answer was asked for: its first answer is taken
    ("Question: How does he feel?\nAnswer: He feels angry, his voice is loud.", "He feels angry, his voice is loud."),
])
def test_clean_answer_strips_decoration(reply, expected):
    assert clean_answer(reply) == expected


def test_clean_answer_trims_a_reply_cut_by_max_tokens():
    text = "The pitch is higher than usual. The speaker is probably afraid of something that"
    assert clean_answer(text, truncated=True) == "The pitch is higher than usual."
    # not cut: the text is kept as written
    assert clean_answer(text, truncated=False) == text


@pytest.mark.parametrize("reply, reason", [
    ("", "empty"), ("   \n ", "empty"), (None, "empty"), ("Answer:", "empty"),
    ("Angry.", "too_short"),
    ("I'm sorry, but I cannot help with that request.", "refusal"),
    ("I'm so sorry, " * 12, "degenerate"),
])
def test_clean_answer_rejects_unusable_replies(reply, reason):
    with pytest.raises(Unusable) as exc:
        clean_answer(reply)
    assert exc.value.reason == reason


@pytest.mark.parametrize("reply", [
    "Q: Is the speaker loud?\nA: Yes, much louder than usual.\nQ: Why is that?\nA: Because she is angry.",
    "Question: Is the speaker loud?\nAnswer: Yes, much louder than usual.\n\nQuestion: Why is that?\nAnswer: Because she is angry.",
    "**Q1:** Is the speaker loud?\n**A1:** Yes, much louder than usual.\n**Q2:** Why is that?\n**A2:** Because she is angry.",
    "1. Q: Is the speaker loud?\n   A: Yes, much louder than usual.\n2. Q: Why is that?\n   A: Because she is angry.",
    "User: Is the speaker loud?\nAssistant: Yes, much louder than usual.\nUser: Why is that?\nAssistant: Because she is angry.",
    '[{"question": "Is the speaker loud?", "answer": "Yes, much louder than usual."},'
    ' {"question": "Why is that?", "answer": "Because she is angry."}]',
    '{"conversations": [{"from": "human", "value": "Is the speaker loud?"}, {"from": "gpt", "value": "Yes, much louder than usual."},'
    ' {"from": "human", "value": "Why is that?"}, {"from": "gpt", "value": "Because she is angry."}]}',
    "Here is the conversation:\n\nQ: Is the speaker loud?\nA: Yes, much louder\nthan usual.\nQ: Why is that?\nA: Because she is angry.",
])
def test_parse_qa_reads_common_layouts(reply):
    pairs = parse_qa(reply, min_pairs=2)
    assert len(pairs) == 2
    assert pairs[0][0] == "Is the speaker loud?"
    assert pairs[0][1].replace("\n", " ") == "Yes, much louder than usual."
    assert pairs[1] == ("Why is that?", "Because she is angry.")


def test_parse_qa_keeps_complete_pairs_of_a_cut_reply():
    reply = "Q: Is the speaker loud?\nA: Yes, much louder than usual.\nQ: Why is that?\nA: Because"
    pairs = parse_qa(reply, min_pairs=1, truncated=True)
    assert pairs == [("Is the speaker loud?", "Yes, much louder than usual.")]
    with pytest.raises(Unusable):
        parse_qa(reply, min_pairs=2, truncated=True)


@pytest.mark.parametrize("reply, reason", [
    ("The speaker is angry because the voice is loud.", "no_qa_pairs"),
    ("Q: Is she loud?\nA: Yes, very much so.", "too_few_pairs"),
    ("", "empty"),
])
def test_parse_qa_rejects_replies_without_enough_pairs(reply, reason):
    with pytest.raises(Unusable) as exc:
        parse_qa(reply, min_pairs=2)
    assert exc.value.reason == reason


def test_label_check_uses_the_answer_parser():
    labels = load_label_set("ravdess")
    angry = "The loud, sharp voice and fast pace show that the speaker is furious."
    sad = "The quiet, low voice suggests the speaker is sad."
    neutral_words = "The pitch is higher than usual and the pace is fast."
    assert check_label([angry], "angry", labels, "contradiction") is None  # "furious" is read as angry
    assert check_label([sad], "angry", labels, "contradiction") == "contradicts_label"
    assert check_label([neutral_words, angry], "angry", labels, "contradiction") is None
    assert check_label([neutral_words], "angry", labels, "contradiction") is None
    assert check_label([neutral_words], "angry", labels, "match") == "label_not_stated"
    assert check_label(["She is not sad at all; she is angry."], "angry", labels, "contradiction") is None
    assert check_label([sad], "angry", labels, "off") is None
