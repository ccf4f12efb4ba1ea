import pytest

from emotune.data.labels import available, load_label_set
from emotune.errors import EmotuneError


def test_sizes():
    sizes = {n: len(load_label_set(n)) for n in available()}
    assert sizes["ravdess"] == 8 and sizes["meld"] == 7 and sizes["goemotions"] == 28
    assert sizes["mer"] == 6 and sizes["merr"] == 9 and sizes["emoset"] == 8
    assert len(load_label_set("iemocap", "iemocap4")) == 4 and len(load_label_set("iemocap", "iemocap6")) == 6
    assert len(load_label_set("goemotions", "ekman")) == 7


def test_iemocap4_merges_excited_into_happy():
    ls = load_label_set("iemocap", "iemocap4")
    assert ls.canonical("exc") == "excited" and ls.to_subset("excited") == "happy"
    assert ls.to_subset("frustrated") is None
    assert ls.map_soft({"excited": 0.5, "frustrated": 0.25, "happy": 0.25}) == {"happy": 1.0}


def test_goemotions_ekman_multi():
    ls = load_label_set("goemotions", "ekman")
    assert ls.map_many(["annoyance", "anger", "joy", "neutral"]) == ["anger", "joy", "neutral"]
    assert ls.canonical("27") == "neutral"


def test_every_alias_targets_a_label():
    for n in available():
        ls = load_label_set(n)
        assert all(v in ls.full for v in ls.aliases.values())


def test_unknown_subset():
    with pytest.raises(EmotuneError, match="no subset"):
        load_label_set("ravdess", "nope")


def test_acted_corpora_sets_read_their_own_codes():
    """The built-in sets of common acted corpora, each with its release's codes as aliases."""
    assert load_label_set("emodb").canonical("L") == "bored" and load_label_set("emodb").canonical("A") == "fearful"
    assert load_label_set("crema_d").canonical("DIS") == "disgust"
    assert load_label_set("tess").canonical("ps") == "surprised"
    assert load_label_set("savee").canonical("sa") == "sad" and load_label_set("savee").canonical("su") == "surprised"
    assert load_label_set("ckplus").canonical("2") == "contempt"
    assert load_label_set("affectnet").canonical("7") == "contempt" and len(load_label_set("affectnet", "basic7")) == 7
    # one spelling of each emotion across sets, so cross-corpus evaluation matches them by name
    from emotune.experiments.cross_corpus import map_classes

    shared = map_classes(load_label_set("ravdess"), load_label_set("emodb"))
    assert shared == {n: n for n in ("neutral", "angry", "disgust", "fearful", "happy", "sad")}  # bored has no match
