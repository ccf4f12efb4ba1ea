"""The dialogue-context prompt shows the preceding turns of the same dialogue only, as `Speaker: text`,
never a later turn, another dialogue or split, or any turn's label."""

import pytest

from emotune.data.examples import build_examples
from emotune.data.labels import load_label_set
from emotune.data.sample import Sample
from emotune.model.prompt import PromptRenderer, load_templates
from tests.model.tiny import make_tiny_lm

TURNS = [("Ross", "We were on a break", "anger"), ("Rachel", "Oh really now", "disgust"),
         ("Ross", "Yes we were", "sadness"), ("Rachel", "Get out of here", "anger"), ("Ross", "Fine then", "neutral")]


def dialogue(split: str, dia: str) -> list[Sample]:
    return [Sample(id=f"{split}_{dia}_{k}", dataset="meld", label=label, text=text, split=split, group=dia,
                   meta={"dialogue": dia, "turn": k, "speaker": who}) for k, (who, text, label) in enumerate(TURNS)]


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(make_tiny_lm(tmp_path_factory.mktemp("lm")))
    return PromptRenderer(tok, load_label_set("meld").names, ["minilm"], multi=False, max_text_chars=600)


def context_block(text: str) -> str:
    head = "Earlier in the conversation:\n"
    if head not in text:
        return ""
    return text.split(head, 1)[1].split("The person says:", 1)[0]


def test_context_is_the_preceding_turns_of_the_same_dialogue(renderer):
    # A second dialogue with the same id in another split, and another dialogue in the same split.
    samples = dialogue("train", "7") + dialogue("test", "7") + dialogue("train", "8")
    samples[-1].text = "Unrelated words"
    labels = load_label_set("meld")
    ex = build_examples(samples, [s.id for s in samples], labels, {}, context_turns=2)
    t = load_templates(["default"])[0]
    by_id = {i: k for k, i in enumerate(ex.ids)}

    k = by_id["train_7_3"]
    text = renderer.text(t, {}, ex.texts[k], tuple(ex.context[k]))
    block = context_block(text)
    assert block.strip().splitlines() == ["Rachel: Oh really now", "Ross: Yes we were"]  # the 2 before, oldest first
    assert "We were on a break" not in block and "Fine then" not in text  # not older than 2, never later
    assert 'The person says: "Get out of here"' in text
    assert not any(name in block.lower() for name in labels.names)  # no turn carries its label

    first = by_id["test_7_0"]
    assert ex.context[first] == [] and context_block(renderer.text(t, {}, ex.texts[first], ())) == ""
    assert ex.context[by_id["test_7_1"]] == ["Ross: We were on a break"]  # its own split's turn 0
    assert "Unrelated words" not in "".join(c for cs in ex.context for c in cs if cs)  # last turn is never context


def test_a_text_is_cut_to_max_text_tokens_after_max_text_chars(tmp_path):
    """Characters do not bound tokens (Braille-pattern art is ~2-3 tokens a character): the token limit does."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(make_tiny_lm(tmp_path / "lm"))
    art = "For your kindness I give a platinum " + "⣤⣶⣶⡶⠦⠴⠶⠶⠶⠶⡶⠶⠦⠶ ⠀⣿⣀⣀⣀⣀⠀⢀⣤⠄" * 30
    short = "We were on a break"
    free = PromptRenderer(tok, load_label_set("meld").names, ["minilm"], multi=False, max_text_chars=600)
    capped = PromptRenderer(tok, load_label_set("meld").names, ["minilm"], multi=False, max_text_chars=600,
                            max_text_tokens=16)
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    assert n(free.cut(art)) > 100  # 600 characters, far more than 16 tokens
    # Re-encoding the cut text in its prompt may merge or split a token at the cut and the ellipsis: a bound, not an exact count.
    assert n(capped.cut(art)) <= 16 + 3 and capped.cut(art).endswith("…")
    assert capped.cut(art).startswith("For your kindness")
    assert capped.cut(short) == free.cut(short) == short  # a text within both limits is untouched
