"""The official ARO / SugarCrepe scoring rules on hand-checked score matrices."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from benchmark.evaluate import aro, sugarcrepe
from benchmark.evaluate.choice import choice_accuracy, choice_correct
from benchmark.text import trigrams
from benchmark.text.penn_tags import ADJECTIVE_TAGS, NOUN_TAGS


def test_positive_must_beat_every_negative_strictly():
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # right
            [0.5, 0.5, 0.1],  # tie with a negative: wrong
            [0.3, 0.1, 0.4],  # one negative higher: wrong
            [0.2, 0.1, 0.1],  # right
        ]
    )
    assert choice_correct(scores).tolist() == [True, False, False, True]
    assert choice_accuracy(scores) == 0.5


def test_order_tasks_count_ties_as_right():
    # ARO's COCO/Flickr-Order take argmax over [true, perturbed...]: a tie picks index 0.
    scores = np.array([[0.5, 0.5, 0.1], [0.4, 0.5, 0.1]])
    assert choice_correct(scores, ties="right").tolist() == [True, False]
    assert np.argmax(scores, axis=1).tolist() == [0, 1]  # the official rule, for reference


def test_bad_score_shapes_are_rejected():
    with pytest.raises(ValueError, match="score matrix"):
        choice_correct(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="score matrix"):
        choice_correct(np.array([[0.1], [0.2]]))
    with pytest.raises(ValueError, match="ties"):
        choice_correct(np.array([[0.1, 0.2]]), ties="maybe")
    assert np.isnan(choice_accuracy(np.zeros((0, 2))))


def test_sugarcrepe_subsets_and_groups_over_their_items():
    correct = {
        "replace_obj": np.array([True, False]),  # 0.5
        "replace_att": np.array([True, True, True, False]),  # 0.75
        "replace_rel": np.array([], dtype=bool),  # nothing evaluable: NaN, left out of its group
        "swap_obj": np.array([False]),
        "add_att": np.array([True]),
        "add_obj": np.array([False, True]),
    }
    m = sugarcrepe.subset_metrics(correct)
    assert m["replace_obj"] == 0.5 and m["replace_att"] == 0.75 and np.isnan(m["replace_rel"])
    assert m["replace"] == pytest.approx(4 / 6)  # the paper's groups: 4 right of 6 items, not 0.625
    assert m["swap"] == 0.0  # swap_att absent: swap_obj alone
    assert m["add"] == pytest.approx(2 / 3)
    # the three single numbers, each by its own rule
    assert m["average"] == pytest.approx((4 / 6 + 0.0 + 2 / 3) / 3)  # groups
    assert m["subset_mean"] == pytest.approx((0.5 + 0.75 + 0.0 + 1.0 + 0.5) / 5)  # subsets
    assert m["item_mean"] == pytest.approx(6 / 10)  # items: 6 right of 10


def test_sugarcrepe_groups_reproduce_the_papers_group_columns():
    """Pretrained ViT-B/32: the paper's per-subset accuracies (main table) and its REPLACE / SWAP /
    ADD (NegCLIP re-evaluation table), with each subset's item count of the official JSONs; but
    swap_obj's 61.38 is 151 of 246 items (no count of the JSON's 245 gives it)."""
    subsets = {
        "replace_obj": (90.92, 1652),
        "replace_att": (80.08, 788),
        "replace_rel": (69.20, 1406),
        "swap_obj": (61.38, 246),
        "swap_att": (63.96, 666),
        "add_obj": (77.21, 2062),
        "add_att": (68.79, 692),
    }
    correct = {name: np.arange(n) < round(acc / 100 * n) for name, (acc, n) in subsets.items()}
    m = sugarcrepe.subset_metrics(correct)
    assert 100 * m["replace"] == pytest.approx(80.76, abs=0.01)
    assert 100 * m["swap"] == pytest.approx(63.27, abs=0.01)
    assert 100 * m["add"] == pytest.approx(75.09, abs=0.01)


def test_vg_relation_macro_leaves_out_symmetric_relations():
    groups = ["on", "on", "holding", "next to", "next to", "beside", "wearing"]
    correct = np.array([True, False, True, False, False, False, True])
    metrics, n = aro.vg_metrics("vg_relation", correct, groups)
    assert metrics["acc"] == pytest.approx(3 / 7)  # plain accuracy keeps every item
    assert metrics["macro_acc"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)  # on, holding, wearing
    assert n == 3
    assert {"next to", "beside", "between", "attached to"} <= aro.SYMMETRIC_RELATIONS
    assert "on" not in aro.SYMMETRIC_RELATIONS and "holding" not in aro.SYMMETRIC_RELATIONS


def test_vg_attribution_macro_needs_25_cases_per_pair():
    groups = ["white_black"] * 25 + ["small_large"] * 24 + ["red_blue"] * 30
    correct = np.array([True] * 20 + [False] * 5 + [False] * 24 + [True] * 15 + [False] * 15)
    metrics, n = aro.vg_metrics("vg_attribution", correct, groups)
    assert n == 2  # small_large (24 cases) is left out
    assert metrics["macro_acc"] == pytest.approx((0.8 + 0.5) / 2)
    assert metrics["acc"] == pytest.approx(35 / 79)


def test_macro_accuracy_without_qualifying_groups_is_nan():
    value, n = aro.macro_accuracy(np.array([True]), ["by"], exclude=aro.SYMMETRIC_RELATIONS)
    assert np.isnan(value) and n == 0


def test_pre_caption_is_blips():
    text = 'A man (in red) riding a wave; "big" one!!   Then more.'
    assert aro.pre_caption(text) == "a man in red riding a wave big one then more"
    assert aro.pre_caption("one two three four", max_words=2) == "one two"


def test_tagger_perturbations_move_only_their_words():
    tokens = ["a", "red", "dog", "on", "the", "green", "grass", "near", "a", "tree"]
    tags = ["DT", "JJ", "NN", "IN", "DT", "JJ", "NN", "IN", "DT", "NN"]
    out = aro.shuffle_nouns_and_adj(tokens, tags, np.random.RandomState(3)).split()
    fixed = [i for i, t in enumerate(tags) if t not in NOUN_TAGS | ADJECTIVE_TAGS]
    assert [out[i] for i in fixed] == [tokens[i] for i in fixed]
    assert sorted(out[i] for i in (2, 6, 9)) == ["dog", "grass", "tree"]
    assert sorted(out[i] for i in (1, 5)) == ["green", "red"]

    out = aro.shuffle_allbut_nouns_and_adj(tokens, tags, np.random.RandomState(3)).split()
    kept = [i for i in range(len(tags)) if i not in fixed]
    assert [out[i] for i in kept] == [tokens[i] for i in kept]
    assert sorted(out[i] for i in fixed) == sorted(tokens[i] for i in fixed)


def test_trigram_perturbations():
    tokens = [str(i) for i in range(8)]  # trigrams 012 345 67
    within = trigrams.shuffle_within_trigrams(tokens, random.Random(0)).split()
    assert [sorted(within[i : i + 3]) for i in (0, 3, 6)] == [
        ["0", "1", "2"],
        ["3", "4", "5"],
        ["6", "7"],
    ]
    across = trigrams.shuffle_trigrams(tokens, random.Random(0))
    assert across in {" ".join(p) for p in itertools.permutations(["0 1 2", "3 4 5", "6 7"])}


def test_order_options_are_seeded():
    captions = ["A man riding a wave on top of a surfboard.", "Two dogs play in the park."]
    trigram_only = ("shuffle_within_trigrams", "shuffle_trigrams")
    first = aro.order_options(captions, trigram_only, seed=1)
    assert first == aro.order_options(captions, trigram_only, seed=1)
    assert first != aro.order_options(captions, trigram_only, seed=2)
    assert [len(options) for options in first] == [3, 3]
    assert first[0][0] == "a man riding a wave on top of a surfboard"
    for bad in [("shuffle_everything",), ()]:
        with pytest.raises(ValueError, match="non-empty subset"):
            aro.order_options(captions, bad)
