"""COCO-Order / Flickr30k-Order options are the official ones on the sample packs' captions.

``data/aro_official_order.json`` was made once, outside the project, by running the official
``TextShuffler`` (mertyg/vision-language-models-are-bows, after ``seed_all(1)``: numpy's global
``np.random.permutation`` for the noun/adjective shuffles, Python's global ``random.shuffle`` for
the trigram ones, ``nltk.word_tokenize`` with NLTK's English Punkt model, spaCy en_core_web_sm 3.8
tags) over each pack's captions in the order :func:`retrieval.load` gives them, as COCO_Order loops
them. It keeps the first captions' spaCy tokens and tags with their five options, and a digest of
every caption's trigram options. spaCy is not installed here, so the tagger perturbations are
checked given the official tags; the draws run through all captions, so the digest pins the order
of every draw, not only the first captions'.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from benchmark.evaluate import aro, retrieval

EXPECTED = json.loads((Path(__file__).parent / "data" / "aro_official_order.json").read_text())
PACKS = ("coco-mini", "flickr8k-1k")
TRIGRAM_ONLY = aro.PERTURBATIONS[2:]


def pack_captions(samples: Path, pack: str) -> list[str]:
    return [c for captions in retrieval.load(samples / pack).captions for c in captions]


@pytest.mark.parametrize("pack", PACKS)
def test_all_four_perturbations_are_the_official_ones(pack, samples, monkeypatch):
    first = EXPECTED[pack]["first"]
    captions = pack_captions(samples, pack)[: len(first)]
    assert captions == [e["caption"] for e in first]
    tagged = {e["caption"]: (e["tokens"], e["tags"]) for e in first}
    monkeypatch.setattr(aro, "tag", lambda texts: [tagged[t] for t in texts])
    assert aro.order_options(captions) == [e["options"] for e in first]


@pytest.mark.parametrize("pack", PACKS)
def test_trigram_perturbations_of_every_caption_are_the_official_ones(pack, samples):
    expected = EXPECTED[pack]
    captions = pack_captions(samples, pack)
    assert len(captions) == expected["captions"]
    options = aro.order_options(captions, TRIGRAM_ONLY)
    first = expected["first"]
    assert options[: len(first)] == [[e["options"][i] for i in (0, 3, 4)] for e in first]
    digest = hashlib.sha256(json.dumps(options).encode()).hexdigest()
    assert digest == expected["trigram_sha256"]


def test_words_are_split_within_sentences():
    # Without the sentence split the inner full stop stays on its word ("man."), as NLTK's
    # word tokenizer leaves it when told the text is one line.
    words = aro.word_tokenize("A man rides. A dog runs.")
    assert words == ["A", "man", "rides", ".", "A", "dog", "runs", "."]


def test_perturbing_leaves_the_process_generators_alone():
    random.seed(5)
    np.random.seed(5)
    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    aro.order_options(["A small dog runs on the green grass near a tree ."], TRIGRAM_ONLY)
    aro.shuffle_nouns_and_adj(["a", "red", "dog"], ["DT", "JJ", "NN"], np.random.RandomState(1))
    assert random.getstate() == python_state
    assert (np.random.get_state()[1] == numpy_state).all()
