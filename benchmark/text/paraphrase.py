"""Meaning-preserving rewrites of a caption by rule: LaCLIP's idea without a language model.

LaCLIP shows that training on several phrasings of a caption helps, provided the phrasings say
the same thing. Without a model, only edits whose meaning is certain are made:

- templates: "a photo of X" ↔ "X" (the frame adds nothing);
- order: "X and Y" → "Y and X", and lists reordered, only when every item is a plain noun phrase
  (or "A <relation> B"), so no clause changes what it attaches to;
- relations: "A <relation> B" → "B <inverse> A" for relations with a known inverse;
- synonyms: a noun or adjective replaced by a WordNet synonym, only when the word's most frequent
  sense is its first synset, the synonym's most frequent sense is the same synset (so it reads
  the same), and neither is on a stop list (colours, sizes, shapes, people, numbers, relation
  words: the words compositional tests are about).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from benchmark.text import pos, tokens
from benchmark.text.inflection import fix_articles, plural
from benchmark.text.tokens import FUNCTION_WORDS, same_case, words
from benchmark.text.vocabulary import COCO_TERMS, COLOURS
from benchmark.text.wordnet import wordnet
from benchmark.world import INVERSE, SHAPES, SIZES

RELATION_INVERSE = INVERSE | {
    "in front of": "behind",
    "behind": "in front of",
    "next to": "next to",
    "beside": "beside",
    "near": "near",
}
_RELATIONS = sorted(RELATION_INVERSE, key=len, reverse=True)  # longest match first
TEMPLATES = ("a photo of", "a picture of", "an image of", "a photograph of", "there is")
ADDED_TEMPLATES = ("a photo of", "a picture of", "an image of")
DETERMINERS = frozenset({
    "a", "an", "the", "one", "two", "three", "four", "five", "six", "some", "several", "many",
})  # fmt: skip
_SINGLE_WORD_TERMS = {t for ts in COCO_TERMS.values() for t in ts if " " not in t}
NOUNS = frozenset(SHAPES) | _SINGLE_WORD_TERMS
KEEP = (
    FUNCTION_WORDS
    | COLOURS
    | set(SHAPES)
    | set(SIZES)
    | set(COCO_TERMS["person"])
    | {w for r in RELATION_INVERSE for w in r.split()}
    | {"flat"}  # its adjective synonyms ("level", "plane") read as nouns
)
# Synonyms that pass the sense test but read as another word in a caption.
AVOID = frozenset({
    "mortal", "john", "privy", "minor", "miss", "works", "tribunal", "rookie", "nutrient",
    "biting", "queer", "yesteryear", "framework", "depot", "aggregation", "cavity", "parallel",
    "instance", "characteristic", "welter", "muddle", "mill", "corsage", "marquee", "look",
    "specter",
})  # fmt: skip
_SEPARATOR = re.compile(r"\s*,\s*and\s+|\s*,\s*|\s+and\s+")
_END = re.compile(r"[\s.!?]*$")


@dataclass(frozen=True)
class Caption:
    """A caption as an optional template, a body, its end punctuation and first-letter case."""

    template: str | None
    body: str
    end: str
    capital: bool


def split(caption: str) -> Caption:
    text = caption.strip()
    m = _END.search(text)
    end, text = text[m.start() :].strip(), text[: m.start()]
    capital = text[:1].isupper() and not text[1:2].isupper()  # "TV ..." keeps its capitals
    if capital:
        text = text[0].lower() + text[1:]
    for t in TEMPLATES:
        if text.lower().startswith(t + " "):
            return Caption(t, text[len(t) + 1 :], end, capital)
    return Caption(None, text, end, capital)


def join(c: Caption) -> str:
    text = fix_articles(f"{c.template} {c.body}" if c.template else c.body) + c.end
    return text[0].upper() + text[1:] if c.capital and text else text


def is_noun(word: str) -> bool:
    return word in NOUNS or pos.can_be_noun(word)


def is_noun_phrase(phrase: str) -> bool:
    """determiner, modifier*, noun: at most four words after the determiner, none a function
    word. The determiner is required, so "black and white cat" is not read as two phrases."""
    ws = phrase.lower().split()
    if not ws or ws[0] not in DETERMINERS:
        return False
    ws = ws[1:]
    return (
        1 <= len(ws) <= 4
        and all(w.isalpha() and w not in FUNCTION_WORDS for w in ws)
        and all(w in COLOURS or w in SIZES or is_noun(w) or pos.can_be_modifier(w) for w in ws)
        and is_noun(ws[-1])
    )


def relational(phrase: str) -> tuple[str, str, str] | None:
    """(A, relation, B) when ``phrase`` is exactly "A <relation> B" with noun phrases A and B."""
    padded = f" {phrase.lower()} "
    for rel in _RELATIONS:
        at = padded.find(f" {rel} ")  # the space before rel: phrase[at - 1]
        if at >= 0:
            left, right = phrase[: at - 1].strip(), phrase[at + len(rel) + 1 :].strip()
            if is_noun_phrase(left) and is_noun_phrase(right):
                return left, rel, right
            return None
    return None


def _items(body: str) -> list[str] | None:
    """The body's list items when it is a list of plain or relational noun phrases."""
    items = _SEPARATOR.split(body)
    if all(is_noun_phrase(i) or relational(i) for i in items):
        return items
    return None


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def reorder(c: Caption, rng: np.random.Generator) -> Caption | None:
    """Another order of the list items; or, for "NP and NP ..." at the start, the two swapped."""
    items = _items(c.body)
    if items and len(items) > 1:
        order = rng.permutation(len(items))
        while (order == np.arange(len(items))).all():
            order = rng.permutation(len(items))
        return replace(c, body=_listed([items[k] for k in order]))
    ws = c.body.split(" ")
    if "and" not in ws:
        return None
    cut = ws.index("and")
    first = " ".join(ws[:cut])
    for stop in range(min(len(ws), cut + 6), cut + 1, -1):
        second = " ".join(ws[cut + 1 : stop])
        if is_noun_phrase(first) and is_noun_phrase(second):
            return replace(c, body=" ".join([second, "and", first, *ws[stop:]]))
    return None


def invert(c: Caption, rng: np.random.Generator) -> Caption | None:
    """One "A <relation> B" item written as "B <inverse> A"."""
    items = _items(c.body)
    if not items:
        return None
    candidates = [k for k, item in enumerate(items) if relational(item)]
    if not candidates:
        return None
    k = candidates[int(rng.integers(len(candidates)))]
    a, rel, b = relational(items[k])
    items[k] = f"{b} {RELATION_INVERSE[rel]} {a}"
    return replace(c, body=_listed(items))


@cache
def synonyms(word: str) -> tuple[str, ...]:
    """Same-sense single-word synonyms of ``word`` (inflected like it), or none."""
    lowered = word.lower()
    if lowered in KEEP or len(lowered) < 3:
        return ()
    counts = pos.counts(lowered)
    tag = max(counts, key=counts.get, default=None)
    if tag not in ("n", "a"):
        return ()
    wn = wordnet()
    lemma = wn.morphy(lowered, tag)
    senses = wn.synsets(lemma, tag)
    if not senses or senses[0].lemmas()[0].name().lower() != lemma:
        return ()
    sense = senses[0]
    out = []
    for other in sense.lemmas()[1:]:
        name = other.name()
        if (
            name.isalpha()
            and name.islower()
            and len(name) > 2
            and name not in AVOID
            and other.count() >= 1
            and wn.synsets(name, tag)[0] == sense
        ):
            out.append(plural(name) if tag == "n" and lowered != lemma else name)
    return tuple(out)


def substitute(c: Caption, rng: np.random.Generator) -> Caption | None:
    """One or two words replaced by a synonym."""
    options = [(w, synonyms(w.text)) for w in words(c.body)]
    options = [(w, s) for w, s in options if s]
    if not options:
        return None
    picked = rng.permutation(len(options))[: int(rng.integers(1, 3))]
    edits = {}
    for k in sorted(picked):
        w, syns = options[k]
        edits[(w.start, w.end)] = same_case(syns[int(rng.integers(len(syns)))], w.text)
    return replace(c, body=tokens.replace(c.body, edits))


def retemplate(c: Caption, rng: np.random.Generator) -> Caption | None:
    """Drop the "a photo of" frame, or add one before a caption that starts with a determiner."""
    if c.template:
        return replace(c, template=None)
    first = c.body.split(" ", 1)[0].lower()
    if first not in DETERMINERS:
        return None
    return replace(c, template=ADDED_TEMPLATES[int(rng.integers(len(ADDED_TEMPLATES)))])


TRANSFORMS = (reorder, invert, substitute, retemplate)


def paraphrases(caption: str, k: int, rng: np.random.Generator, attempts: int = 8) -> list[str]:
    """Up to ``k`` distinct rewrites, each a random combination of the applicable edits; fewer
    when the caption allows fewer (a caption no rule applies to gets none)."""
    if not caption or not caption.strip():
        return []
    base = split(caption)
    same = {caption, join(base)}
    out: list[str] = []
    for _ in range(attempts * k):
        if len(out) >= k:
            break
        chosen = [t for t in TRANSFORMS if rng.random() < 0.5]
        if not chosen:
            chosen = [TRANSFORMS[int(rng.integers(len(TRANSFORMS)))]]
        c = base
        for transform in chosen:
            c = transform(c, rng) or c
        text = join(c)
        if text not in same and text not in out:
            out.append(text)
    return out
