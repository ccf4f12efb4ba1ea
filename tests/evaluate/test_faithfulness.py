"""The hallucination rate: hand cases per kind of assertion, scene text asserting nothing, the report's shape,
and on real MERR data the reference reasoning against its own clues vs a neighbour's clues."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emotune.evaluate.faithfulness import Clues, assertions, check, faithfulness, normalise

MERR_CLUES = ('Face: Brow Lowerer; Lid Tightener. Action units at the peak frame: AU04, AU07. '
              'Voice: his tone sounds negative. Words: "Brother Wang, let me come."')
CAPTION = ('The speaker is a woman. They say: "Kids are talking by the door" Compared with their own other '
           'recordings, they speak more loudly, with a higher pitch. At its most expressive moment, the face '
           'looks happy (0.62).')


def verdict(text: str, clues: str) -> dict[str, list[tuple[str, str]]]:
    r = check(text, clues)
    return {k: [(a.kind, a.key) for a in v] for k, v in r.items()}


def test_action_units_codes_and_facs_names():
    clues = "Face: Brow Lowerer. Action units at the peak frame: AU04."
    assert verdict("He shows a lip corner puller.", clues) == {"supported": [], "unsupported": [("au", "AU12")]}
    assert verdict("AU4 is active, a brow lowerer.", clues)["supported"] == [("au", "AU04"), ("au", "AU04")]
    assert verdict("AU 12 fires.", clues)["unsupported"] == [("au", "AU12")]
    # a FACS name in the clues supports its code in the text, and the other way round
    assert verdict("AU04 and AU07 fire.", "Face: Brow Lowerer; Lid Tightener.")["unsupported"] == []
    assert verdict("a lid tightener", "Action units at the peak frame: AU06, AU07.")["unsupported"] == []


def test_face_movements_meet_their_clues_through_au_codes():
    clues = "Face: Brow Lowerer. Action units at the peak frame: AU04."
    for text in ("a lowered brow", "furrowed brows", "her eyebrows are lowered", "he frowns",
                 "a slight decrease in his eyebrows"):
        assert verdict(text, clues) == {"supported": [("face", assertions(text)[0].key)], "unsupported": []}, text
    for text, key in (("raised eyebrows", "brow raise"), ("a wide smile", "smile"), ("eyes widened", "eye open"),
                      ("pursed lips", "lips press"), ("with her eyes closed", "eye close")):
        assert verdict(text, clues) == {"supported": [], "unsupported": [("face", key)]}, text
    # MERR's own paraphrases of one AU meet: "Lower the brow" (clue) and "a furrowed brow" (text) are AU04
    assert check("a furrowed brow", "Face: Lower the brow.")["unsupported"] == []
    # the word itself in the clues supports it, whatever its AU ("Indentation when smiling" is AU14)
    assert check("her smile", "Face: Indentation when smiling.")["unsupported"] == []
    # an emotune caption's FER class supports the movements of that emotion, and no others
    assert check("she is smiling", CAPTION)["unsupported"] == []
    assert [a.key for a in check("she frowns", CAPTION)["unsupported"]] == ["frown"]


def test_tone_groups():
    assert verdict("He speaks in a cheerful tone.", MERR_CLUES)["unsupported"] == [("tone", "positive")]
    assert verdict("He speaks in a sad tone.", MERR_CLUES)["supported"] == [("tone", "negative")]
    assert verdict("His tone and intonation are negative.", MERR_CLUES) == {
        "supported": [("tone", "negative")], "unsupported": []}
    # "bitter" is both negative and angry: supported by a negative clue
    assert check("a fearful and bitter tone", MERR_CLUES)["supported"][0].key == "angry|negative"
    assert [a.key for a in check("a fearful and bitter tone", MERR_CLUES)["unsupported"]] == ["fearful"]
    # a clue that names no emotion supports the neutral group only
    none = "Voice: does not speak with any of the emotions listed."
    assert verdict("a calm, matter-of-fact tone", none)["unsupported"] == []
    assert verdict("she speaks angrily", none)["unsupported"] == [("tone", "angry")]
    # negation asserts nothing; an emotion inference is no tone
    assert assertions("Her tone is not cheerful, without an angry tone.") == []
    assert assertions("He seems angry and sad.") == []
    # the prosody words of emotune's captions; the face sentence's "happy" is no voice clue
    assert verdict("She speaks loudly with a high-pitched voice.", CAPTION)["unsupported"] == []
    assert verdict("a quiet voice and a lower pitch", CAPTION)["unsupported"] == [("tone", "quiet"),
                                                                                   ("tone", "low_pitch")]
    assert verdict("a happy tone", CAPTION)["unsupported"] == [("tone", "positive")]


def test_quotes():
    assert verdict('He says, "let me come!"', MERR_CLUES)["supported"] == [("quote", "let me come")]
    assert verdict('He says “Brother Wang, let me come.”', MERR_CLUES)["supported"] == [
        ("quote", "brother wang let me come")]
    assert verdict('He says "I will go alone."', MERR_CLUES)["unsupported"] == [("quote", "i will go alone")]
    assert verdict('"me co"', MERR_CLUES)["unsupported"] == [("quote", "me co")]  # whole words only
    assert normalise("We don't have 50,000 yuan!") == normalise("We dont have 50000 yuan")
    # a quoted word asserts no face or tone of its own
    assert [a.kind for a in assertions('She says "I smile in a happy tone".')] == ["quote"]


def test_scene_description_asserts_nothing():
    for text in ("A man wearing a surgical mask sits in an office.",
                 "In the video, a bald middle-aged man in a white shirt stands in a dimly lit kitchen.",
                 "A young woman with long hair and glasses holds a phone near a window; her eyes look at the camera.",
                 "The scene shows a crowded street at night with bright lights."):
        assert assertions(text) == [], text


def test_report_shape_and_examples():
    texts = ['A lowered brow and a cheerful tone; he says "let me come".', "A man sits in an office.",
             'He smiles and says "I will go".']
    out = faithfulness(texts, [MERR_CLUES] * 3, examples=1)
    assert (out["assertions"], out["unsupported"]) == (5, 3)  # brow, tone, quote; smile, quote
    assert out["hallucination_rate"] == pytest.approx(0.6)
    assert out["by_kind"]["face"] == {"assertions": 2, "unsupported": 1, "rate": 0.5}
    assert out["by_kind"]["au"] == {"assertions": 0, "unsupported": 0, "rate": None}
    assert out["samples_with_any"] == 2
    assert out["per_sample"][1] == {"assertions": 0, "unsupported": []}
    assert out["per_sample"][0]["unsupported"] == [["tone", "cheerful tone"]]
    assert out["examples"] == [{"index": 0, "unsupported": [["tone", "cheerful tone"]], "text": texts[0]}]
    assert faithfulness(["A man sits."], ["Voice: normal."])["hallucination_rate"] is None
    with pytest.raises(ValueError):
        faithfulness(["a"], [])
    assert Clues(MERR_CLUES).tones == {"negative"} and Clues(MERR_CLUES).aus == {"AU04", "AU07"}


def _merr_file() -> Path:
    home = os.environ.get("EMOTUNE_DATA")
    root = Path(home) if home else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    path = root / "mer_annotations" / "merr_fine_grained.clean.json"
    if not path.exists():
        pytest.skip(f"needs real data: {path} not found (set EMOTUNE_DATA to the folder holding mer_annotations/)")
    return path


def test_reference_reasoning_is_faithful_to_its_own_clues_not_a_neighbours():
    from emotune.data.sources.merr import clue_text

    entries = list(json.loads(_merr_file().read_text(encoding="utf-8")).values())[:300]
    texts = [e["smp_reason_caption"] for e in entries]
    clues = [clue_text(e) for e in entries]
    own = faithfulness(texts, clues)
    shifted = faithfulness(texts, clues[1:] + clues[:1])
    print(f"own clues: {own['hallucination_rate']:.3f}, shifted clues: {shifted['hallucination_rate']:.3f}",
          {k: v["rate"] for k, v in own["by_kind"].items()})
    assert own["assertions"] > 600  # the references do assert things of every kind
    assert all(v["assertions"] > 50 for v in own["by_kind"].values())
    assert own["hallucination_rate"] < 0.08
    assert shifted["hallucination_rate"] > 0.4
    for kind in ("au", "face", "tone", "quote"):
        assert own["by_kind"][kind]["rate"] < shifted["by_kind"][kind]["rate"] / 3, kind


def test_predict_flags_what_an_explanation_invents():
    from emotune.serve.predict import unsupported_claims

    claims = unsupported_claims('He smiles and speaks in a cheerful tone: "I got it".', 'Words: "I got it!"')
    assert {c["kind"] for c in claims} == {"face", "tone"}  # the words were given; face and tone were not
