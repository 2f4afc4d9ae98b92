"""Reading a `shapes` world caption back into the objects and relations it asserts.

The world's vocabulary is closed (sizes, colours, shapes, four relations), so a caption can be
parsed exactly: that is what lets hard negatives swap exactly one fact, and lets tests prove a
rewrite asserts the same facts as its original.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from benchmark.text.tokens import Word, words
from benchmark.world import COLOURS, INVERSE, RELATIONS, SHAPES, SIZES

ARTICLES = frozenset({"a", "an", "the"})
_RELATION_WORDS = {tuple(r.split()): r for r in RELATIONS}
_FLIPPED = ("to the right of", "below")  # facts are written with their inverses


@dataclass(frozen=True)
class ObjectMention:
    """One object phrase: "[size] [colour] shape", each part a word of the caption."""

    shape: Word
    colour: Word | None = None
    size: Word | None = None

    @property
    def key(self) -> tuple[str | None, str | None, str]:
        return (
            self.size.lower if self.size else None,
            self.colour.lower if self.colour else None,
            self.shape.lower,
        )


@dataclass(frozen=True)
class RelationMention:
    """``objects[subject]`` is ``relation`` ``objects[object]``; start..end spans the words."""

    subject: int
    relation: str
    object: int
    start: int
    end: int


@dataclass(frozen=True)
class Parsed:
    objects: tuple[ObjectMention, ...]
    relations: tuple[RelationMention, ...]

    def facts(self) -> tuple[Counter, frozenset]:
        """What the caption asserts: the objects (a multiset of (size, colour, shape)) and the
        relations between them, each written one way ("left of", "above") so that "A right of
        B" and "B left of A" are the same fact."""
        rels = set()
        for r in self.relations:
            a, rel, b = self.objects[r.subject].key, r.relation, self.objects[r.object].key
            if rel in _FLIPPED:
                a, rel, b = b, INVERSE[rel], a
            rels.add((a, rel, b))
        return Counter(o.key for o in self.objects), frozenset(rels)


def parse(caption: str) -> Parsed:
    """Objects in order of appearance, and a relation wherever one joins two consecutive
    objects (articles aside) — the world's captions put relations nowhere else."""
    ws = words(caption)
    lowered = [w.lower for w in ws]
    objects: list[ObjectMention] = []
    ends: list[int] = []  # index of each object's shape word
    starts: list[int] = []
    i = 0
    while i < len(ws):
        j, size, colour = i, None, None
        if lowered[j] in SIZES and j + 1 < len(ws):
            size, j = ws[j], j + 1
        if lowered[j] in COLOURS and j + 1 < len(ws):
            colour, j = ws[j], j + 1
        if lowered[j] in SHAPES:
            objects.append(ObjectMention(ws[j], colour, size))
            starts.append(i)
            ends.append(j)
            i = j + 1
        else:
            i += 1
    relations = []
    for k in range(len(objects) - 1):
        first, stop = ends[k] + 1, starts[k + 1]
        if stop > first and lowered[stop - 1] in ARTICLES:  # the second object's article
            stop -= 1
        relation = _RELATION_WORDS.get(tuple(lowered[first:stop]))
        if relation:
            relations.append(RelationMention(k, relation, k + 1, ws[first].start, ws[stop - 1].end))
    return Parsed(tuple(objects), tuple(relations))
