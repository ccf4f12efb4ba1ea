"""The grounding filter of `emotune instruct`, on real replies and on the cases each rule must not over-reach.

`data/grounding_replies.jsonl` holds replies the built-in endpoint (SmolLM2-135M-Instruct through
`emotune serve`) wrote for `emotune instruct configs/instruct_ravdess.yaml instruct.kinds=[reasoning]
instruct.groups=[actor01,actor02]` on 2026-11-26, with the clues each was written from (the speaker-relative
eGeMAPS z-scores, the transcript and the caption): one per rejection reason, and three it accepted.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from emotune.data.labels import load_label_set
from emotune.data.sample import Sample
from emotune.instruct.clues import Clues
from emotune.instruct.config import InstructRecipe
from emotune.instruct.grounding import GROUNDING_REASONS, check_grounding
from emotune.instruct.llm_client import Reply
from emotune.instruct.parse import check_label
from emotune.instruct.records import Filtered, Job, LLMWriter
from emotune.instruct.templates import load_prompts

REPLIES = [json.loads(x) for x in (Path(__file__).parent / "data" / "grounding_replies.jsonl").read_text().splitlines()]
LOUD, PITCH, RATE = "loudness_sma3_amean", "F0semitoneFrom27.5Hz_sma3nz_amean", "loudnessPeaksPerSec"


def clues_of(row) -> Clues:
    return Clues(transcript=row["transcript"], prosody=row["prosody"], reference="group")


def judge(row):
    return (check_label([row["reply"]], row["label"], load_label_set("ravdess"), "contradiction")
            or check_grounding(row["reply"], clues_of(row), row["transcript"], row["caption"]))


@pytest.mark.parametrize("row", REPLIES, ids=[f"{r['reason']}-{r['sample_id']}" for r in REPLIES])
def test_real_replies_get_the_reason_they_earned(row):
    assert judge(row) == row["reason"]


def test_every_rule_has_a_real_reply_that_breaks_it():
    assert set(GROUNDING_REASONS) <= {r["reason"] for r in REPLIES}
    assert Counter(r["reason"] is None for r in REPLIES)[True] == 3


QUIET = Clues(transcript="Kids are talking by the door.", prosody={LOUD: -1.2, PITCH: 0.1, RATE: 0.7})


@pytest.mark.parametrize("text, reason", [
    ("They speak much more softly than usual.", None),  # the measured direction
    ("They speak less loudly than usual.", None),  # a negated claim of the other direction
    ("Their voice is raised; they are almost shouting.", "contradicts_loudness"),
    ("They speak less quietly and faster.", "contradicts_loudness"),  # "less quietly" = louder
    ("Their pitch is higher than usual.", None),  # pitch measured usual (z 0.1): no direction to contradict
    ("They speak slowly and deliberately.", "contradicts_rate"),
    ("They speak faster than usual.", None),
])
def test_directions_follow_the_measured_cue(text, reason):
    assert check_grounding(text, QUIET) == reason


def test_visual_cues_need_a_face_clue():
    text = "Her smile and raised eyebrows show it."
    assert check_grounding(text, QUIET) == "invented_visual"
    seen = Clues(transcript="Kids are talking by the door.", face={"happy": 0.8, "neutral": 0.2})
    assert check_grounding(text, seen) is None


def test_quotes_must_come_from_the_transcript_or_the_caption():
    caption = 'They say: "Kids are talking by the door." Compared with their own other recordings, they speak more quietly.'
    assert check_grounding('They say "kids are talking by the door" softly.', QUIET, caption=caption) is None
    assert check_grounding('The caption says they speak "more quietly".', QUIET, caption=caption) is None
    assert check_grounding('They mutter "get out of here" softly.', QUIET, caption=caption) == "misquotes_transcript"


def test_a_caption_phrase_restated_is_not_a_loop():
    caption = "Compared with their own other recordings, they speak more quietly."
    text = ("Compared with their own other recordings, they speak softly. Compared with their own other recordings, "
            "their pace is quick.")
    assert check_grounding(text, QUIET, caption=caption) is None
    assert check_grounding(text.replace("Compared with their own other", "Next to the many other"), QUIET,
                           caption=caption) == "loops"


class OneReply:
    """An endpoint that answers every request with the same text."""

    model = "fixed"

    def __init__(self, text):
        self.text = text

    async def chat(self, messages, max_tokens, temperature, top_p):
        return Reply(self.text, "stop", 10, 10)


def test_instruct_filters_an_ungrounded_reply_and_the_switch_turns_it_off():
    row = next(r for r in REPLIES if r["reason"] == "contradicts_loudness")
    sample = Sample(id=row["sample_id"], dataset="ravdess", label=row["label"], text=row["transcript"])
    job = Job(f"{sample.id}/reasoning", "reasoning", sample, row["label"], row["caption"], clues_of(row))
    cfg, prompts, labels = InstructRecipe(), load_prompts(None), load_label_set("ravdess")
    with pytest.raises(Filtered) as f:
        asyncio.run(LLMWriter(OneReply(row["reply"]), cfg, prompts, labels, Counter()).reasoning(job))
    assert f.value.reason == "contradicts_loudness" and f.value.texts == [row["reply"]]
    cfg.instruct.grounding = False
    record = asyncio.run(LLMWriter(OneReply(row["reply"]), cfg, prompts, labels, Counter()).reasoning(job))
    assert record["conversations"][-1]["value"] == row["reply"]
