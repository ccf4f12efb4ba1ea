"""ROUGE-L against a hand count, MiniLM cosine on real text, the clue-restatement baseline."""

from __future__ import annotations

import pytest

from emotune.evaluate.reasoning import clue_restatement, closeness, lcs_length, rouge_l, words


def test_rouge_l_by_hand():
    # candidate 6 words, reference 7; LCS "the man frowns he is angry" = 6 → P 1, R 6/7, F = 12/13
    cand, ref = "The man frowns; he is angry.", "the bald man frowns so he is angry"
    assert words(cand) == ["the", "man", "frowns", "he", "is", "angry"]
    assert lcs_length(words(cand), words(ref)) == 6
    assert rouge_l(cand, ref) == pytest.approx(2 * 1 * (6 / 8) / (1 + 6 / 8))
    assert rouge_l("", ref) == 0.0 and rouge_l(ref, ref) == 1.0


def test_minilm_cosine_ranks_a_paraphrase_above_an_unrelated_text():
    ref = "He frowns and raises his voice, so he is angry."
    out = closeness([ "He scowls and shouts: he is furious.", "The weather is sunny and the beach is quiet."], [ref, ref])
    cos = out["per_sample"]["minilm_cosine"]
    assert cos[0] > cos[1] + 0.2 and out["n"] == 2


def test_clue_restatement_only_restates():
    assert clue_restatement("Face: frowns. ", "angry") == "Face: frowns. So the emotion is angry."
