"""Which target classes a caption's nouns name, through WordNet: DataComp's text-based filter.

DataComp keeps a sample when a caption word's most likely WordNet synset (``synsets(word)[0]``,
which lemmatises) is one of the ImageNet-21k class synsets. The same rule is used here, restricted
to noun senses (synset offsets are only unique within a part of speech), with three choices of
classes: ImageNet-1k (its wnids are WordNet 3.0 noun offsets), COCO's 80 categories and the
`shapes` world's shapes, each taken as the most likely sense of its name, so a caption word and a
class name that are the same word always match. Two documented extensions: a two-word name
that is a class is matched whole ("hot dog" is not a dog), and ``depth`` also accepts a caption
noun whose hypernyms up to that many levels include a class ("puppy" → dog at depth 1).
ImageNet-1k classes are leaves (breeds, species), so a generic "dog" does not match them, as it
would not match a breed in DataComp's rule either.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from benchmark.pools.shapes_world import SHAPES
from benchmark.text.tokens import FUNCTION_WORDS, words
from benchmark.text.vocabulary import COCO_TERMS
from benchmark.text.wordnet import wordnet

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

CLASS_SETS = ("imagenet", "coco", "shapes")
# COCO names WordNet spells differently or lacks, mapped to the closest WordNet noun.
COCO_WORDNET = {
    "stop sign": "street_sign",
    "sports ball": "ball",
    "wine glass": "wineglass",
    "potted plant": "pot_plant",
    "cell phone": "cellular_telephone",
    "hot dog": "hotdog",
    "donut": "doughnut",
    "tv": "television",
    "hair drier": "hand_blower",
    "skis": "ski",
    "remote": "remote_control",
    "teddy bear": "teddy",
}


@cache
def first_noun_sense(lemma: str) -> Synset | None:
    """WordNet's most frequent noun sense of ``lemma`` (inflected forms are lemmatised)."""
    senses = wordnet().synsets(lemma, "n")
    return senses[0] if senses else None


@cache
def targets(classes: str) -> dict[Synset, str]:
    """Class synset → class name, for one of CLASS_SETS."""
    if classes == "imagenet":
        from open_clip import IMAGENET_CLASSNAMES

        from benchmark.evaluate.imagenet import wnids

        wn = wordnet()
        return {
            wn.synset_from_pos_and_offset("n", int(w[1:])): name
            for w, name in zip(wnids(), IMAGENET_CLASSNAMES, strict=True)
        }
    if classes == "coco":
        names = {c: COCO_WORDNET.get(c, c.replace(" ", "_")) for c in COCO_TERMS}
    elif classes == "shapes":
        names = {s: s for s in SHAPES}
    else:
        raise ValueError(f"unknown classes {classes!r}; choose from {CLASS_SETS}")
    out = {}
    for name, lemma in names.items():
        sense = first_noun_sense(lemma)
        if sense is None:
            raise ValueError(f"{classes} class {name!r}: no WordNet noun {lemma!r}")
        out.setdefault(sense, name)
    return out


def _climb(sense: Synset, depth: int) -> list[Synset]:
    """``sense`` and its hypernyms (instance hypernyms too) up to ``depth`` levels."""
    level, seen = [sense], [sense]
    for _ in range(depth):
        level = [h for s in level for h in s.hypernyms() + s.instance_hypernyms()]
        seen += level
    return seen


def _match(lemma: str, table: dict[Synset, str], depth: int) -> str | None:
    sense = first_noun_sense(lemma)
    if sense is None:
        return None
    return next((table[s] for s in _climb(sense, depth) if s in table), None)


def caption_classes(caption: str, classes: str, depth: int = 0) -> list[str]:
    """The class names the caption's nouns match, in caption order, each once. A two-word name
    that matches a class ("hot dog") is taken whole; otherwise words are looked up one by one
    (so "red cross", a WordNet noun of its own, still names a cross)."""
    table = targets(classes)
    ws = [w.lower for w in words(caption)]
    found: dict[str, None] = {}
    i = 0
    while i < len(ws):
        pair = _match(f"{ws[i]}_{ws[i + 1]}", table, depth) if i + 1 < len(ws) else None
        if pair:
            found[pair] = None
            i += 2
            continue
        single = None if ws[i] in FUNCTION_WORDS else _match(ws[i], table, depth)
        if single:
            found[single] = None
        i += 1
    return list(found)
