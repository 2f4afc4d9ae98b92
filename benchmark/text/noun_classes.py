"""Which target classes a caption's words name, through WordNet: DataComp's text-based filter.

Two matchers. ``datacomp_classes`` is DataComp's rule (baselines/apply_filter.py,
``does_contain_text_entity``): split the caption on whitespace, take each token's first WordNet
synset over all parts of speech (``synsets(token)[0]``: nltk lower-cases and lemmatises, and
lists noun senses first), and match its offset against the class offsets. Tokens keep their
punctuation, so "dog." names nothing while "t-shirt" is found whole; a word with no noun sense
is looked up as a verb or adjective, and since offsets are only unique within a part of speech,
its offset can equal a class's noun offset ("rocking" → rock.v.01, whose offset is the common
opossum's): DataComp keeps such a caption, and so does this rule.

``caption_classes`` is smallcomp's noun matcher: alphabetic words without punctuation, noun senses
only, function words skipped, two-word and hyphenated names matched whole ("hot dog" is not a
dog, "t-shirt" is one word), and ``depth`` also accepts a caption noun whose hypernyms up to that
many levels include a class ("puppy" → dog at depth 1).

Classes are ImageNet-21k (DataComp's: the fall-2011 wnids timm ships, checked against the file
DataComp pins), ImageNet-1k, COCO's 80 categories or the `shapes` world's shapes; the last two are
each the most likely noun sense of the name, so a caption word and a class name that are the same
word always match. ImageNet-1k classes are leaves (breeds, species), so a generic "dog" does not
match them; ImageNet-21k has the inner nodes too (dog, person, shirt), so most captions match it.
"""

from __future__ import annotations

import hashlib
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from benchmark.text.tokens import FUNCTION_WORDS, words
from benchmark.text.vocabulary import COCO_TERMS
from benchmark.text.wordnet import wordnet
from benchmark.world import SHAPES

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset

CLASS_SETS = ("imagenet21k", "imagenet", "coco", "shapes")
# sha256 of DataComp's imagenet21k_wordnet_ids.txt (baselines/utils.py): one wnid a line.
IMAGENET21K_SHA256 = "66362bdedf36d933382edca5493fc562dcc17128ce36403c9e730a75f48cb2f2"
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


def imagenet21k_wnids() -> list[str]:
    """ImageNet-21k's wnids as DataComp matches them; raises if timm's copy is not DataComp's."""
    from timm.data import ImageNetInfo

    names = list(ImageNetInfo("imagenet-21k-goog").label_names())
    digest = hashlib.sha256("".join(f"{w}\n" for w in names).encode()).hexdigest()
    if digest != IMAGENET21K_SHA256:
        raise ValueError(f"timm's ImageNet-21k synset list is not DataComp's (sha256 {digest})")
    return names


@cache
def targets(classes: str) -> dict[int, str]:
    """Class noun offset → class name, for one of CLASS_SETS (ImageNet-21k classes are named by
    their wnid: the list has no names, and WordNet's lemmas are shared by many synsets)."""
    if classes == "imagenet21k":
        return {int(w[1:]): w for w in imagenet21k_wnids()}
    if classes == "imagenet":
        from open_clip import IMAGENET_CLASSNAMES

        from benchmark.evaluate.imagenet import wnids

        return {int(w[1:]): name for w, name in zip(wnids(), IMAGENET_CLASSNAMES, strict=True)}
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
        out.setdefault(sense.offset(), name)
    return out


def _climb(sense: Synset, depth: int) -> list[Synset]:
    """``sense`` and its hypernyms (instance hypernyms too) up to ``depth`` levels."""
    level, seen = [sense], [sense]
    for _ in range(depth):
        level = [h for s in level for h in s.hypernyms() + s.instance_hypernyms()]
        seen += level
    return seen


def _match(lemma: str, table: dict[int, str], depth: int) -> str | None:
    sense = first_noun_sense(lemma)
    if sense is None:
        return None
    return next((table[s.offset()] for s in _climb(sense, depth) if s.offset() in table), None)


@lru_cache(maxsize=1 << 18)  # a web pool's distinct tokens are many; its frequent ones few
def first_sense_offset(token: str) -> int | None:
    """The offset of ``token``'s first WordNet synset of any part of speech (nouns come first)."""
    senses = wordnet().synsets(token)
    return senses[0].offset() if senses else None


def datacomp_classes(caption: str, classes: str) -> list[str]:
    """The classes DataComp's rule finds in the caption, in caption order, each once: whitespace
    tokens as written, first sense of any part of speech, offsets compared (module docstring)."""
    table = targets(classes)
    found: dict[str, None] = {}
    for token in caption.split():
        offset = first_sense_offset(token)
        if offset in table:
            found[table[offset]] = None
    return list(found)


def caption_classes(caption: str, classes: str, depth: int = 0) -> list[str]:
    """The class names the caption's nouns match, in caption order, each once. A two-word or
    hyphenated name that matches a class ("hot dog", "t-shirt") is taken whole; otherwise words
    are looked up one by one (so "red cross", a WordNet noun of its own, still names a cross)."""
    table = targets(classes)
    spans = words(caption)
    ws = [w.lower for w in spans]
    found: dict[str, None] = {}
    i = 0
    while i < len(ws):
        pair = None
        if i + 1 < len(ws):
            if caption[spans[i].end : spans[i + 1].start] == "-":
                pair = _match(f"{ws[i]}-{ws[i + 1]}", table, depth)
            pair = pair or _match(f"{ws[i]}_{ws[i + 1]}", table, depth)
        if pair:
            found[pair] = None
            i += 2
            continue
        single = None if ws[i] in FUNCTION_WORDS else _match(ws[i], table, depth)
        if single:
            found[single] = None
        i += 1
    return list(found)
