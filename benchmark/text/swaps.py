"""Hard negative captions: the caption with one fact changed (NegCLIP's swaps).

NegCLIP teaches compositionality by putting, next to each image, captions that use the same
words but say something false: objects or attributes swapped, relations inverted, words
shuffled. Each kind here makes every such edit it can find; the caller picks among them.

- ``shapes`` captions are parsed exactly (sizes, colours, shapes, relations), so every negative
  changes exactly one fact of the scene.
- other English captions: COCO nouns swap places (keeping each position's number), two different
  colour words swap, a colour becomes one the caption does not use, a relation becomes its
  inverse, or words are shuffled within trigrams (ARO's order perturbation). With a tagger's
  Penn tags, any two nouns or two adjectives can swap, as in NegCLIP.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import combinations
from typing import Literal, get_args

import numpy as np

from benchmark.text.inflection import fix_articles, plural
from benchmark.text.penn_tags import ADJECTIVE_TAGS, NOUN_TAGS
from benchmark.text.shapes_caption import parse
from benchmark.text.tokens import Word, replace, same_case, words
from benchmark.text.trigrams import shuffle_within_trigrams
from benchmark.text.vocabulary import COLOURS, Vocabulary, mentions
from benchmark.world import COLOURS as SHAPE_COLOURS
from benchmark.world import INVERSE

Kind = Literal["object_swap", "attribute_swap", "relation", "attribute_replace", "shuffle"]
KINDS: tuple[Kind, ...] = get_args(Kind)
# Relations whose inverse makes a different claim ("next to" is its own inverse: no negative).
RELATION_FLIP = INVERSE | {"in front of": "behind", "behind": "in front of", "on top of": "under"}
ENGLISH_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "brown")

Tagged = tuple[list[str], list[str]]  # (tokens, Penn Treebank tags) of one caption


def _swap(
    caption: str, a: Word, b: Word, new_a: str | None = None, new_b: str | None = None
) -> str:
    """``a`` and ``b`` trade places (or become ``new_a``/``new_b``), articles agreeing after."""
    edits = {(a.start, a.end): same_case(new_a or b.text, a.text)}
    edits[(b.start, b.end)] = same_case(new_b or a.text, b.text)
    return fix_articles(replace(caption, edits))


def _replace_word(caption: str, w: Word, new: str) -> str:
    return fix_articles(replace(caption, {(w.start, w.end): same_case(new, w.text)}))


def _relation_flips(caption: str) -> list[str]:
    """Each known relation phrase replaced by its inverse, one at a time."""
    ws = words(caption)
    lowered = [w.lower for w in ws]
    out = []
    for rel, inverse in RELATION_FLIP.items():
        n = len(rel.split())
        for i in range(len(ws) - n + 1):
            if lowered[i : i + n] == rel.split():
                span = (ws[i].start, ws[i + n - 1].end)
                out.append(replace(caption, {span: same_case(inverse, ws[i].text)}))
    return out


def _shuffles(caption: str, rng: np.random.Generator, tries: int = 5) -> list[str]:
    tokens = caption.split()
    for _ in range(tries):
        shuffled = shuffle_within_trigrams(tokens, random.Random(int(rng.integers(2**32))))
        if shuffled != " ".join(tokens):
            return [shuffled]
    return []


def shapes_candidates(caption: str, rng: np.random.Generator) -> dict[str, list[str]]:
    """Every one-fact change of a shapes-world caption, by kind. An edit that leaves the
    asserted facts as they were (swapping the shapes of two red objects in a plain list) is
    not a negative and is dropped."""
    parsed = parse(caption)
    objs = parsed.objects
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    for a, b in combinations(objs, 2):
        if a.shape.lower != b.shape.lower:
            out["object_swap"].append(_swap(caption, a.shape, b.shape))
        if a.colour and b.colour and a.colour.lower != b.colour.lower:
            out["attribute_swap"].append(_swap(caption, a.colour, b.colour))
    for r in parsed.relations:
        edit = {(r.start, r.end): same_case(INVERSE[r.relation], caption[r.start : r.end])}
        out["relation"].append(replace(caption, edit))
    used = {o.colour.lower for o in objs if o.colour}
    absent = [c for c in SHAPE_COLOURS if c not in used]
    for o in objs:
        if o.colour and absent:
            new = absent[int(rng.integers(len(absent)))]
            out["attribute_replace"].append(_replace_word(caption, o.colour, new))
    facts = parsed.facts()
    out = {k: [n for n in negs if parse(n).facts() != facts] for k, negs in out.items()}
    out["shuffle"] = _shuffles(caption, rng)
    return out


def _inflected(text: str, plural_wanted: bool, vocab: Vocabulary) -> str:
    singular = vocab.singulars.get(text, text)
    return plural(singular) if plural_wanted else singular


def english_candidates(
    caption: str, vocab: Vocabulary, rng: np.random.Generator, tagged: Tagged | None = None
) -> dict[str, list[str]]:
    """Every rule-based (or, with ``tagged``, tag-based) swap of an English caption, by kind."""
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    if tagged:
        tokens, tags = tagged
        for kind, wanted in (("object_swap", NOUN_TAGS), ("attribute_swap", ADJECTIVE_TAGS)):
            at = [i for i, t in enumerate(tags) if t in wanted]
            for i, j in combinations(at, 2):
                if tokens[i].lower() != tokens[j].lower():
                    swapped = list(tokens)
                    swapped[i], swapped[j] = tokens[j], tokens[i]
                    out[kind].append(fix_articles(" ".join(swapped)))
    else:
        found = mentions(caption, vocab)
        for a, b in combinations(found, 2):
            if set(a.categories) & set(b.categories):
                continue
            ta, tb = caption[a.start : a.end].lower(), caption[b.start : b.end].lower()
            new_a = _inflected(tb, ta in vocab.singulars, vocab)
            new_b = _inflected(ta, tb in vocab.singulars, vocab)
            wa = Word(caption[a.start : a.end], a.start, a.end)
            wb = Word(caption[b.start : b.end], b.start, b.end)
            out["object_swap"].append(_swap(caption, wa, wb, new_a, new_b))
        ws = words(caption)
        at = [i for i, w in enumerate(ws) if w.lower in COLOURS]
        for i, j in combinations(at, 2):
            between = {w.lower for w in ws[i + 1 : j]}
            # "black and white cat": both colours describe one thing; swapping them is no lie
            if ws[i].lower != ws[j].lower and not between <= {"and", "or"}:
                out["attribute_swap"].append(_swap(caption, ws[i], ws[j]))
    colours = [w for w in words(caption) if w.lower in COLOURS]
    absent = [c for c in ENGLISH_COLOURS if c not in {w.lower for w in colours}]
    for w in colours if absent else []:
        new = absent[int(rng.integers(len(absent)))]
        out["attribute_replace"].append(_replace_word(caption, w, new))
    out["relation"] = _relation_flips(caption)
    out["shuffle"] = _shuffles(caption, rng)
    return out


def pick(
    caption: str, candidates: dict[str, list[str]], kinds: Sequence[str], limit: int,
    rng: np.random.Generator,
) -> list[str]:  # fmt: skip
    """Up to ``limit`` distinct negatives, taking kinds in turn (in ``kinds`` order) so that
    every requested kind is represented before any is repeated; none equals the caption."""
    pools = {k: [candidates[k][i] for i in rng.permutation(len(candidates[k]))] for k in kinds}
    same = {caption, caption.strip()}
    out: list[str] = []
    while len(out) < limit and any(pools.values()):
        for k in kinds:
            while pools[k]:
                negative = pools[k].pop(0)
                if negative not in same and negative not in out:
                    out.append(negative)
                    break
            if len(out) >= limit:
                break
    return out
