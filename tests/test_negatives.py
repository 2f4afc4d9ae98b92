"""`hard_negatives` (NegCLIP-style): every negative differs from its caption, and on shapes
captions changes exactly the fact its kind says (checked by parsing the world's vocabulary)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from benchmark.evaluate import aro
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shards import ShardReader
from benchmark.text.shapes_caption import parse
from benchmark.text.swaps import english_candidates, shapes_candidates
from benchmark.text.vocabulary import coco
from benchmark.world import COLOURS, describe, sample_objects

STEP = "recipe.yaml: steps[3] (hard_negatives)"


def ctx(tmp_path: Path) -> StepContext:
    return StepContext(STEP, ShardReader(tmp_path), 0, tmp_path / "work")


def run(table: pa.Table, context: StepContext, **params) -> pa.Table:
    o = registry.get("hard_negatives")
    return o.apply(table, o.params.model_validate(params), context)


def table_of(captions: list[str | None]) -> pa.Table:
    uids = [f"{i:032x}" for i in range(len(captions))]
    return pa.table(
        {"uid": pa.array(uids, pa.string()), "caption": pa.array(captions, pa.string())}
    )


def shapes_captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [describe(sample_objects(rng, int(rng.integers(1, 4))), rng) for _ in range(n)]


def attributes(caption: str) -> tuple[Counter, Counter, Counter]:
    objs = parse(caption).objects
    return (
        Counter(o.shape.lower for o in objs),
        Counter(o.colour.lower for o in objs if o.colour),
        Counter(o.key for o in objs),
    )


def test_shapes_negatives_change_exactly_the_fact_their_kind_names():
    rng = np.random.default_rng(0)
    made = Counter()
    for caption in shapes_captions(200):
        shapes, colours, objects = attributes(caption)
        facts = parse(caption).facts()
        for kind, negatives in shapes_candidates(caption, rng).items():
            for neg in negatives:
                made[kind] += 1
                assert neg != caption
                if kind == "shuffle":
                    continue
                assert parse(neg).facts() != facts, (kind, caption, neg)
                n_shapes, n_colours, n_objects = attributes(neg)
                if kind in ("object_swap", "attribute_swap"):  # same words, bound differently
                    assert (n_shapes, n_colours) == (shapes, colours)
                elif kind == "relation":  # same objects, the relation inverted
                    assert n_objects == objects
                else:  # attribute_replace: one colour becomes one the caption does not use
                    assert n_shapes == shapes
                    added = set(n_colours) - set(colours)
                    assert len(added) == 1 and added <= set(COLOURS)
    assert all(made[k] > 20 for k in made), made


def test_english_negatives_swap_nouns_colours_and_relations():
    rng = np.random.default_rng(0)
    c = english_candidates("A dog chasing a cat.", coco(), rng)
    assert c["object_swap"] == ["A cat chasing a dog."]
    c = english_candidates("Two dogs and an apple on the table", coco(), rng)
    assert "Two apples and a dog on the table" in c["object_swap"]  # number and article agree
    c = english_candidates("A red car next to a blue bus", coco(), rng)
    assert c["attribute_swap"] == ["A blue car next to a red bus"]
    assert all(
        re.fullmatch(r"An? (\w+) car next to an? (\w+) bus", neg) for neg in c["attribute_replace"]
    )
    assert all("red" in neg or "blue" in neg for neg in c["attribute_replace"])
    assert c["relation"] == []  # "next to" is its own inverse: no negative
    c = english_candidates("A black and white cat on a red-brown couch", coco(), rng)
    assert c["attribute_swap"] == [
        "A red and white cat on a black-brown couch",
        "A brown and white cat on a red-black couch",
        "A black and red cat on a white-brown couch",
        "A black and brown cat on a red-white couch",
    ]  # never "white and black cat": that is the same cat
    c = english_candidates("A cat sitting on top of a car", coco(), rng)
    assert c["relation"] == ["A cat sitting under a car"]
    c = english_candidates("A cat to the left of a dog", coco(), rng)
    assert c["relation"] == ["A cat to the right of a dog"]
    caption = "a man riding a wave on a surfboard"
    shuffled = english_candidates(caption, coco(), rng)["shuffle"]
    assert len(shuffled) == 1 and shuffled[0] != caption
    assert Counter(shuffled[0].split(" ")) == Counter(caption.split(" "))


def test_op_respects_kinds_limit_and_seed(tmp_path):
    captions = shapes_captions(30, seed=5)
    table = table_of(captions)
    out = run(table, ctx(tmp_path), vocabulary="shapes", max_per_sample=2)
    assert out.column("negative_captions").type == pa.list_(pa.string())
    negatives = out.column("negative_captions").to_pylist()
    for caption, negs in zip(captions, negatives, strict=True):
        assert len(negs) <= 2 and caption not in negs and len(set(negs)) == len(negs)
        assert negs  # every world caption has a colour to replace
    rel = run(table, ctx(tmp_path), vocabulary="shapes", kinds=["relation"], max_per_sample=5)
    for caption, negs in zip(captions, rel.column("negative_captions").to_pylist(), strict=True):
        assert len(negs) == len(parse(caption).relations)
    again = run(table.take(list(range(29, -1, -1))), ctx(tmp_path), vocabulary="shapes")
    first = run(table, ctx(tmp_path), vocabulary="shapes")
    assert (
        again.column("negative_captions").to_pylist()[::-1]
        == first.column("negative_captions").to_pylist()
    )


def test_op_edge_cases(tmp_path):
    swaps = ["object_swap", "attribute_swap", "relation", "attribute_replace"]
    captions = table_of([None, "A view of the mountains", ""])
    out = run(captions, ctx(tmp_path), tagger="rules", kinds=swaps)
    assert out.column("negative_captions").to_pylist() == [[], [], []]  # nothing to swap
    none, (shuffled,), empty_caption = (
        run(captions, ctx(tmp_path), tagger="rules").column("negative_captions").to_pylist()
    )  # the default kinds also shuffle words (ARO's order perturbation)
    assert none == empty_caption == []
    assert sorted(shuffled.split()) == sorted(["A", "view", "of", "the", "mountains"])
    empty = run(table_of([]), ctx(tmp_path))
    assert empty.num_rows == 0 and "negative_captions" in empty.column_names
    for missing in ("uid", "caption"):
        with pytest.raises(OpError, match=re.escape(STEP) + f".*{missing}"):
            run(table_of(["a dog"]).drop_columns([missing]), ctx(tmp_path))
    with pytest.raises(ValueError):
        registry.get("hard_negatives").params.model_validate({"kinds": ["noun_drop"]})


def test_tagger_path_swaps_tagged_nouns_and_adjectives(tmp_path, monkeypatch):
    def fake_tag(captions):
        return [
            (["a", "small", "dog", "near", "a", "large", "tree"], list("DJNIDJN")) for _ in captions
        ]

    tags = {"D": "DT", "J": "JJ", "N": "NN", "I": "IN"}
    monkeypatch.setattr(
        aro, "tag", lambda cs: [(t, [tags[x] for x in ts]) for t, ts in fake_tag(cs)]
    )
    out = run(table_of(["a small dog near a large tree"]), ctx(tmp_path), tagger="spacy",
              kinds=["object_swap", "attribute_swap"])  # fmt: skip
    assert out.column("negative_captions").to_pylist() == [
        ["a small tree near a large dog", "a large dog near a small tree"]
    ]


def test_tagger_spacy_without_spacy_fails_naming_the_step(tmp_path):
    try:
        aro.tag(["a dog"])
    except ImportError:
        pass
    else:
        pytest.skip("spaCy and its English model are installed here")
    with pytest.raises(OpError, match=re.escape(STEP) + ".*spacy"):
        run(table_of(["a dog and a cat"]), ctx(tmp_path), tagger="spacy")
    auto = run(table_of(["a dog and a cat"]), ctx(tmp_path), tagger="auto")  # falls back
    assert "a cat and a dog" in auto.column("negative_captions").to_pylist()[0]
