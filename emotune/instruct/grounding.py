"""Is an LLM-written reason grounded in the clues it was given? One reason to reject it, or None.

The label check (parse.check_label) asks whether a reply names the right emotion; this asks whether what
it says about the clip is true of the measurements. Small endpoints fail here in ways that teach a model
to invent evidence: "speaks louder" for a clip measured quieter than the speaker's usual, a smile when no
face was seen, a quoted line the speaker never said, "the annotated emotion is sad" (echoing the hint
instead of reasoning), or a phrase looping until max_tokens. Rules, in the order they are tried:

- contradicts_loudness / contradicts_pitch / contradicts_rate: the reply claims the opposite direction of
  a cue measured at least one level away from the speaker's usual (z < -0.5 or > 0.5), even beside the
  right one ("speaks more quietly ... less quietly"); a cue measured "usual" constrains nothing;
- invented_visual: a facial or bodily cue (smile, frown, eyes, tears, body language, hands, "the picture
  shows") with no face clue and no image;
- misquotes_transcript: a quoted span of two or more words that is not in the transcript;
- reveals_label: the reply refers to the label it was told ("the annotated emotion", "the emotion is known
  to be", "I was asked ...");
- loops: a three-word phrase three times, or a six-word phrase twice (phrases of the caption excepted).

The word lists are deliberately plain: a rule that rejects a few good replies costs a retry, one that
lets invented evidence through costs the model.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Optional

from emotune.instruct.clues import Clues

HIGHER, LOWER = "higher", "lower"
# cue name -> (eGeMAPS feature, {direction: claim pattern})
CUES = {
    "loudness": ("loudness_sma3_amean", {
        HIGHER: r"\b(?:louder|more loudly|(?<!less )loud(?:ly)?|less quiet(?:ly)?|less soft(?:ly)?|"
                r"rais(?:e|es|ed|ing) (?:his|her|their|the) voice|shout\w*|yell\w*|increased volume|high(?:er)? volume)\b",
        LOWER: r"\b(?:(?<!less )quiet(?:er|ly)?|(?<!less )soft(?:er|ly)?|less loud(?:ly)?|whisper\w*|hushed|"
               r"low(?:er)? volume|barely audible|lower(?:s|ed|ing)? (?:his|her|their|the) voice)\b"}),
    "pitch": ("F0semitoneFrom27.5Hz_sma3nz_amean", {
        HIGHER: r"\b(?:high(?:er)?[- ]pitch(?:ed)?|higher pitch|rais(?:e|es|ed|ing) (?:his|her|their|the) pitch|"
                r"pitch (?:rises|rose|is higher|goes up|went up))\b",
        LOWER: r"\b(?:low(?:er)?[- ]pitch(?:ed)?|lower pitch|deep(?:er)? (?:voice|tone)|"
               r"pitch (?:drops|dropped|falls|fell|is lower|goes down|went down))\b"}),
    "rate": ("loudnessPeaksPerSec", {
        HIGHER: r"\b(?:fast(?:er)?|quick(?:er|ly)|rapid(?:ly)?|hurried(?:ly)?|rush(?:es|ed|ing)?|less slowly)\b",
        LOWER: r"\b(?:(?<!less )slow(?:er|ly)?|drawn[- ]out|unhurried)\b"}),
}
LEVEL = 0.5  # |z| below this is "usual" in captions.yaml's levels: no direction to contradict
# Visual evidence: a face, a body, a picture. Only a face clue (or an image's annotated expression) licenses it.
VISUAL = re.compile(r"\b(?:smil\w*|frown\w*|grin\w*|eyebrows?|brows?|facial|face|eyes|tears?|mouth|lips|scowl\w*|"
                    r"grimac\w*|wide-eyed|glar\w*|wink\w*|body language|gestur\w*|posture|hands?|shoulders|"
                    r"the (?:image|picture|photo|video) shows)\b", re.IGNORECASE)
REVEAL = re.compile(r"\b(?:annotated (?:emotion|label)|(?:given|provided|gold|true|correct) (?:label|emotion)|"
                    r"labell?ed (?:as|with)|the label (?:is|says)|the annotation|(?:emotion|feeling) is known to be|"
                    r"(?:i was|i am|i'm|we were|we are|i've been|i have been) (?:asked|told|given))\b",
                    re.IGNORECASE)
QUOTE = re.compile(r"[\"“”]([^\"“”]{3,}?)[\"“”]")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("’", "'"))


def _claims(text: str, patterns: dict[str, str]) -> set[str]:
    return {d for d, p in patterns.items() if re.search(p, text, re.IGNORECASE)}


def check_grounding(text: str, clues: Optional[Clues], transcript: str = "", caption: str = "") -> Optional[str]:
    """The first rule `text` breaks against its clues (see the module docstring), or None.

    A quote may come from the transcript or from the caption the LLM was shown (quoting a clue is fine).
    """
    if clues is not None and clues.prosody:
        for name, (feature, patterns) in CUES.items():
            z = clues.prosody.get(feature)
            if z is None or abs(z) < LEVEL:
                continue
            opposite = LOWER if z > 0 else HIGHER
            if opposite in _claims(text, patterns):  # also when it claims both: it contradicts itself
                return f"contradicts_{name}"
    # a face clue: the face extractor's probabilities, or an image's annotated facial expression / attributes
    seen = bool(clues is not None and (clues.face or clues.image))
    if not seen and VISUAL.search(text):
        return "invented_visual"
    sources = [" ".join(_words(t)) for t in (transcript or (clues.transcript if clues else ""), caption) if t]
    for quoted in QUOTE.findall(text):
        words = " ".join(_words(quoted))
        if len(words.split()) >= 2 and not any(f" {words} " in f" {src} " for src in sources):
            return "misquotes_transcript"
    if REVEAL.search(text):
        return "reveals_label"
    words = _words(text)
    short = Counter(tuple(words[i:i + 3]) for i in range(len(words) - 2))
    # a clue phrase restated twice ("compared with their own other recordings") is not a loop
    cap = _words(caption)
    quoted = {tuple(cap[i:i + 6]) for i in range(len(cap) - 5)}
    long = Counter(g for g in (tuple(words[i:i + 6]) for i in range(len(words) - 5)) if g not in quoted)
    if (short and max(short.values()) >= 3) or (long and max(long.values()) >= 2):
        return "loops"
    return None


GROUNDING_REASONS = ("contradicts_loudness", "contradicts_pitch", "contradicts_rate", "invented_visual",
                     "misquotes_transcript", "reveals_label", "loops")
