"""The caption of a counterfactual image: what the caption says once one object is taken out,
or swapped for an object of another category.

Counterfactual augmentation removes a detected object from an image (or paints another in its
place); the caption must stop naming it, or the pair teaches the opposite of the edit. A swap is
said by ``replace_object`` ("a dog on a couch" → "a cat on a couch"); a removal two ways:

- ``remove_object``: the words naming the object go, with whatever only made sense with them
  (its determiner and modifiers, the "and" or comma that joined it to a list, the relation or
  preposition that tied it to the rest, the verb it was the object of). What is left is a caption
  that is still true of the edited image. When no rule gets there with confidence it returns
  None: a wrong caption on a training pair is worse than none, and the caller has a fallback.
- ``absence_caption``: that fallback, which keeps the caption and negates the object ("No dog is
  sleeping on the couch").

`shapes` captions are parsed exactly (shapes_world.describe's templates are a closed grammar);
other captions are chunked by rule into noun phrases, prepositions, verbs and conjunctions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from benchmark.pools.shapes_world import COLOURS as SHAPE_COLOURS
from benchmark.pools.shapes_world import RELATIONS, SHAPES, SIZES
from benchmark.text import pos
from benchmark.text.inflection import SINGULAR, fix_articles, plural
from benchmark.text.paraphrase import Caption, join, split
from benchmark.text.tokens import FUNCTION_WORDS, Word, replace, same_case
from benchmark.text.vocabulary import (
    ANIMALS,
    COCO_IMPLIED,
    COCO_TERMS,
    COLOURS,
    VOCABULARIES,
    Mention,
    coco,
    mentions,
)

VocabularyName = Literal["coco", "shapes"]

NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty",
)  # fmt: skip
SINGULAR_DETERMINERS = frozenset({"a", "an", "one", "this", "that", "another", "each", "every"})
PLURAL_DETERMINERS = frozenset(
    {"several", "many", "few", "multiple", "various", "numerous", "these", "those", "both"}
    | set(NUMBER_WORDS[1:])
)
# "that" is left out: in captions it mostly starts a clause ("a dog that is sleeping").
DETERMINERS = (SINGULAR_DETERMINERS - {"that"}) | PLURAL_DETERMINERS | {
    "the", "some", "any", "no", "his", "her", "its", "their", "my", "your", "our",
}  # fmt: skip
PREPOSITIONS = frozenset({
    "on", "in", "at", "to", "from", "with", "without", "by", "for", "into", "onto", "over",
    "under", "above", "below", "behind", "near", "beside", "between", "through", "across",
    "along", "around", "up", "down", "out", "off", "of", "inside", "outside", "atop", "against",
    "beneath", "underneath", "toward", "towards", "past", "during", "like", "among", "amongst",
    "via", "upon", "within", "alongside", "beyond",
})  # fmt: skip
# Read as one preposition, so "a dog in front of a tv" has one relation and no noun "front".
MULTI_PREPOSITIONS = tuple(
    tuple(p.split())
    for p in (*RELATIONS, "in front of", "on top of", "next to", "close to", "out of")
    if " " in p
)
# Relations that place a thing somewhere: "A dog on a couch" without the dog is "A couch". Not
# "with" (what the subject has or holds goes with it) nor "of".
SPATIAL = frozenset(
    {"on", "in", "at", "near", "by", "beside", "under", "underneath", "beneath", "above", "below",
     "behind", "over", "inside", "atop", "against", "along", "across", "alongside", "upon",
     "within", "among", "between", "around", "outside"}
    | {" ".join(p) for p in MULTI_PREPOSITIONS if p != ("out", "of")}
)  # fmt: skip
CONJUNCTIONS = frozenset({"and", "or", "but", "while", "as", "then", "nor"})
AUXILIARIES = frozenset({
    "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "does", "do",
    "did", "can", "could", "will", "would", "may", "might", "must", "should", "appears", "seems",
})  # fmt: skip
COPULAS = frozenset({"is", "are", "was", "were", "be", "been", "being", "am"})
ADVERBS = frozenset({"very", "really", "extremely", "quite", "fairly"})  # inside noun phrases
# Verbs after which the subject's removal leaves a true caption: where something is, not what
# the subject does to it ("A dog sitting on a couch" → "A couch"; not "talking on a phone").
PLACING_VERBS = frozenset({
    "sitting", "sits", "standing", "stands", "lying", "lies", "laying", "lays", "resting",
    "rests", "sleeping", "sleeps", "parked", "perched", "perches", "waiting", "waits", "posing",
    "poses", "walking", "walks", "running", "runs", "riding", "rides", "driving", "drives",
    "hanging", "hangs", "leaning", "leans", "located", "displayed", "shown", "seen", "placed",
    "grazing", "grazes", "swimming", "floating", "going", "heading", "moving", "coming", "flying",
    "flies", "traveling", "travelling", "travels", "stopped",
})  # fmt: skip
# Verbs whose object is what the subject is on: without the rider the horse is still there.
CARRYING_VERBS = frozenset({"riding", "rides", "driving", "drives"})
PARTICLES = frozenset({"up", "out", "off", "away"})  # "picking up a cup": the verb's object
# Nouns before "of": "a herd of sheep" is several sheep; "a slice of pizza" is pizza (negated
# as a whole); a holder ("a plate of pizza", "a picture of a dog") is still there without what
# it holds; any other ("the side of a bus") is part of what it names and goes with it.
COLLECTIVES = frozenset({
    "group", "groups", "herd", "herds", "flock", "flocks", "bunch", "bunches", "pair", "couple",
    "lot", "lots", "pack", "fleet", "row", "rows", "line", "lines", "number", "pile", "piles",
    "stack", "stacks", "team", "set", "variety", "collection", "assortment", "dozen", "dozens",
    "crowd", "swarm", "school", "family", "handful", "bundle", "cluster", "array", "selection",
})  # fmt: skip
PORTIONS = frozenset({
    "slice", "slices", "piece", "pieces", "half", "halves", "bite", "bites", "portion", "chunk",
    "chunks", "serving", "scoop", "wedge", "wedges",
})  # fmt: skip
HOLDERS = frozenset({
    "plate", "plates", "bowl", "bowls", "box", "boxes", "tray", "trays", "basket", "baskets",
    "bag", "bags", "cup", "glass", "pan", "pot", "jar", "bucket", "platter", "dish", "container",
    "carton", "crate", "picture", "photo", "image", "photograph", "view", "shot", "display",
    "closeup", "shelf",
})  # fmt: skip
# Parts that name a place on something ("the middle of a street"): a subject's removal lands on
# the thing, not the part.
PARTS = frozenset({
    "middle", "side", "top", "front", "back", "edge", "corner", "bottom", "end", "center",
    "centre", "rear", "inside", "outside", "surface",
})  # fmt: skip
# Where a scene is: a place that stays when an object in it is removed ("a woman holding a
# knife in the kitchen" → "a woman in the kitchen"), unlike "a man eating a sandwich on a
# plate" (→ "a man": the plate may have held only the sandwich).
SCENES = frozenset({
    "beach", "street", "road", "field", "park", "kitchen", "room", "bathroom", "bedroom", "city",
    "snow", "water", "ocean", "sea", "lake", "river", "grass", "yard", "airport", "runway",
    "tarmac", "station", "sidewalk", "lot", "restaurant", "bar", "shop", "store", "market", "zoo",
    "farm", "forest", "woods", "hill", "hillside", "mountain", "slope", "court", "stadium", "sky",
    "air", "area", "building", "house", "office", "garden", "desert", "sand", "pen", "enclosure",
    "pasture", "town", "intersection", "platform", "wave", "ground", "floor", "dirt", "track",
    "lawn", "background", "home", "shore", "shoreline", "coast", "bay", "harbor", "marina",
    "dock", "pier", "highway", "lane", "alley", "corner", "plaza", "square", "trail", "path",
    "jungle", "meadow", "camp",
})  # fmt: skip
PERSON_PRONOUNS = frozenset({
    "he", "she", "his", "her", "him", "hers", "himself", "herself", "they", "their", "them",
    "themselves",
})  # fmt: skip
THING_PRONOUNS = frozenset({"it", "its", "itself", "they", "their", "them", "themselves"})
RELATIVES = frozenset({"that", "which", "who", "whose", "whom"})
# Category names that read badly in a sentence ("with no sports ball").
SPOKEN = {"sports ball": "ball", "dining table": "table"}
# Words that are negated whole ("Someone has parked a bicycle" → "No one has ...").
NEGATED = {"someone": "no one", "somebody": "nobody"}
# Single terms that mean more than one of the category.
GROUP_TERMS = frozenset({
    "people", "couple", "crowd", "family", "audience", "couple of people", "group of people",
    "cattle", "busses", "traffic lights",
})  # fmt: skip
MASS_NOUNS = frozenset({"broccoli", "luggage", "baggage"})
FRAMES = tuple(
    tuple(f.split())
    for f in (
        "a picture of", "a photo of", "an image of", "a photograph of", "a close up of",
        "a closeup of", "a view of", "there is", "there are", "this is", "here is", "here are",
        "these are",
    )
)  # fmt: skip

_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_JOINED = re.compile(r"[^\s'’-]")  # a gap with anything else in it separates phrases


@dataclass(frozen=True)
class Chunk:
    """Tokens ``first..last`` (inclusive) of one kind: "NP", "P" (preposition), "V" (verb group),
    "C" (conjunction), "X" (another function word); "," and "." stand for punctuation before
    token ``first`` and span no tokens."""

    kind: str
    first: int
    last: int


@dataclass(frozen=True)
class Parse:
    caption: str
    tokens: list[Word]
    tags: list[str]
    chunks: list[Chunk]
    frame: int  # tokens of a leading frame ("a picture of", "there are"), left out of chunks

    def kind(self, k: int) -> str | None:
        return self.chunks[k].kind if 0 <= k < len(self.chunks) else None

    def text(self, k: int) -> str:
        c = self.chunks[k]
        return " ".join(t.lower for t in self.tokens[c.first : c.last + 1])

    def head(self, k: int) -> str:
        return self.tokens[self.chunks[k].last].lower

    def words(self, k: int) -> set[str]:
        c = self.chunks[k]
        return {t.lower for t in self.tokens[c.first : c.last + 1]}

    def of_before(self, k: int) -> bool:
        """Whether chunk ``k`` completes "<noun phrase> of" ("a slice of <k>")."""
        return self.kind(k - 1) == "P" and self.text(k - 1) == "of" and self.kind(k - 2) == "NP"

    def chunk_of(self, token: int) -> int:
        return next(k for k, c in enumerate(self.chunks) if c.first <= token <= c.last)

    def start(self, k: int) -> int:
        """Character offset where chunk ``k``'s first token starts."""
        return self.tokens[self.chunks[k].first].start

    def end(self, k: int) -> int:
        """Character offset where chunk ``k``'s last token ends."""
        return self.tokens[self.chunks[k].last].end


def _tokens(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _closed(word: str) -> bool:
    return word.isdigit() or (word in FUNCTION_WORDS and word not in ADVERBS)


def _tag(toks: list[Word], caption: str, named: set[int]) -> list[str]:
    """A coarse part of speech per token. Content words are nouns or adjectives ("N") unless
    their form and place say verb: an -ed word before a function word ("a car parked in"), an
    -ing word after a noun ("a dog sleeping", "a kitchen making pizzas"; after an adjective it
    is one: "a large sleeping dog"), or an -s word WordNet knows mainly as a verb after a noun
    ("a man holds a"). Words of the vocabulary's object names are nouns, except activities
    ("skiing"), which are verbs as much as names."""
    tags: list[str] = []
    for i, t in enumerate(toks):
        w = t.lower
        joined = i + 1 < len(toks) and not _JOINED.search(caption[t.end : toks[i + 1].start])
        before_content = joined and not _closed(toks[i + 1].lower)
        prev = tags[-1] if tags else None
        if w == "s" and i and re.search(r"['’]", caption[toks[i - 1].end : t.start]):
            tag = "POSS"
        elif i in named or w in ADVERBS:
            tag = "N"
        elif w in CONJUNCTIONS:
            tag = "C"
        elif w in DETERMINERS or w.isdigit():
            tag = "D"
        elif w in PREPOSITIONS:
            tag = "P"
        elif w in AUXILIARIES:
            tag = "V"
        elif w in FUNCTION_WORDS:
            tag = "X"
        elif len(w) > 4 and w.endswith("ed"):
            tag = "N" if prev == "D" or before_content else "V"
        elif len(w) > 4 and w.endswith("ing"):
            after_adjective = prev == "N" and _adjective(toks[i - 1].lower)
            modifier = prev == "D" or after_adjective or (prev != "N" and before_content)
            tag = "N" if modifier else "V"
        elif w.endswith("s") and not w.endswith("ss") and prev == "N" and not before_content:
            counts = pos.counts(w)
            tag = "V" if counts.get("v", 0) > counts.get("n", -1) else "N"
        else:
            tag = "N"
        tags.append(tag)
    return tags


def _adjective(word: str) -> bool:
    """Mainly an adjective by WordNet's tagged counts, or a colour."""
    if word in COLOURS:
        return True
    counts = pos.counts(word)
    return counts.get("a", -1) > max(counts.get("n", -1), counts.get("v", -1))


def _parse(caption: str, named: set[int]) -> Parse:
    """Tokens, tags and chunks. A noun phrase is determiners and nouns/adjectives joined by
    spaces, hyphens or a possessive "'s" (adjectives also by commas, colours by "and": "a
    large, black and white cat"); a verb group is consecutive verbs ("is sitting")."""
    toks = _tokens(caption)
    lowered = tuple(t.lower for t in toks)
    frame = next((len(f) for f in FRAMES if lowered[: len(f)] == f and len(f) < len(toks)), 0)
    tags = _tag(toks, caption, named)
    chunks: list[Chunk] = []
    i = frame
    while i < len(toks):
        gap = caption[toks[i - 1].end : toks[i].start] if i > frame else ""
        if re.search(r"[.!?;]", gap):
            chunks.append(Chunk(".", i, i - 1))
        elif re.search(r"[,:]", gap):
            chunks.append(Chunk(",", i, i - 1))
        multi = next((q for q in MULTI_PREPOSITIONS if lowered[i : i + len(q)] == q), None)
        if multi:
            chunks.append(Chunk("P", i, i + len(multi) - 1))
            i += len(multi)
            continue
        kind = "NP" if tags[i] in ("D", "N") else tags[i]
        j = i
        while j + 1 < len(toks):
            gap = caption[toks[j].end : toks[j + 1].start]
            listed = kind == "NP" and gap.strip() == "," and tags[j + 1] == "N"
            if _JOINED.search(gap) and not (listed and _adjective(lowered[j])):
                break  # "a large, circular sink" is one sink
            if any(lowered[j + 1 : j + 1 + len(q)] == q for q in MULTI_PREPOSITIONS):
                break
            nxt = tags[j + 1]
            if (
                kind == "NP"
                and lowered[j] in COLOURS
                and lowered[j + 1 : j + 2] in (("and",), ("or",))
                and lowered[j + 2 : j + 3]
                and lowered[j + 2] in COLOURS
            ):
                j += 2  # "a black and white cat": one cat
            elif (kind == "V" and nxt == "V") or (
                kind == "NP" and (nxt in ("N", "POSS") or (nxt == "D" and tags[j] in ("D", "POSS")))
            ):
                j += 1
            else:
                break
        chunks.append(Chunk(kind, i, j))
        i = j + 1
    return Parse(caption, toks, tags, chunks, frame)


def _named(located: list[Mention], toks: list[Word]) -> set[int]:
    """Tokens of object names, which are nouns whatever their form; activities ("skiing") are
    left to the tagger."""
    return {
        i
        for n in located
        for i in range(n.first, n.last + 1)
        if not (toks[n.last].lower.endswith("ing") and toks[n.last].lower in COCO_IMPLIED)
    }


def _located(caption: str, toks: list[Word], m: Mention) -> Mention:
    """``m`` with token indices into ``toks`` (which, unlike vocabulary's words, has digits)."""
    first = next(i for i, t in enumerate(toks) if t.start == m.start)
    last = next(i for i, t in enumerate(toks) if t.end == m.end)
    return Mention(m.categories, first, last, m.start, m.end)


def _is_scene(word: str) -> bool:
    return word in SCENES or (word.endswith("s") and word[:-1] in SCENES)


# --- shapes ------------------------------------------------------------------------------------


def _shape_np(k: int) -> str:
    sizes, colours, shapes = "|".join(SIZES), "|".join(SHAPE_COLOURS), "|".join(SHAPES)
    return rf"an? (?:(?:{sizes}) )?(?:(?:{colours}) )?(?P<shape{k}>{shapes})"


_SHAPE_ITEM = re.compile(
    rf"{_shape_np(0)}(?: (?P<relation>{'|'.join(RELATIONS)}) (?P<second>{_shape_np(1)}))?"
)
_SHAPE_SEPARATOR = re.compile(r", | and ")
_BACKGROUND = " on a grey background"


def _shape_items(body: str) -> tuple[list[str], list[re.Match], list[str]] | None:
    """The world's grammar: item (, item)* [and item], an item being "NP" or "NP <relation>
    NP". The items, their matches and the shapes they name in order; None outside it."""
    items = _SHAPE_SEPARATOR.split(body)
    parsed = [_SHAPE_ITEM.fullmatch(item) for item in items]
    if not all(parsed):
        return None
    shapes = [m.group(g) for m in parsed for g in ("shape0", "shape1") if m.group(g)]
    return items, parsed, shapes


def _remove_shape(caption: str, category: str) -> str | None:
    """[frame] items [on a grey background] (``_shape_items``): the object's item loses it (a
    relation keeps its other side), the list is rejoined with commas and "and"; anything outside
    the grammar, a shape named twice, or a caption naming only the object gets None."""
    c = split(caption)
    body, suffix = c.body, ""
    if body.endswith(_BACKGROUND):
        body, suffix = body[: -len(_BACKGROUND)], _BACKGROUND
    grammar = _shape_items(body)
    if grammar is None:
        return None
    items, parsed, shapes = grammar
    if shapes.count(category) != 1 or len(shapes) == 1:
        return None
    kept = []
    for item, m in zip(items, parsed, strict=True):
        if m.group("shape0") == category:
            if m.group("second"):
                kept.append(m.group("second"))
        elif m.group("shape1") == category:
            kept.append(item[: m.start("relation") - 1])
        else:
            kept.append(item)
    body = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
    return join(Caption(c.template, body + suffix, c.end, c.capital))


# --- English -----------------------------------------------------------------------------------


@cache
def _plural_terms() -> frozenset[str]:
    """Every derived plural of a COCO term ("dogs", "hot dogs", "people"), and the terms that
    name several things themselves ("traffic lights", "crowd")."""
    terms = {t for ts in COCO_TERMS.values() for t in ts}
    return frozenset(plural(t) for t in terms if plural(t) != t) | GROUP_TERMS


def _several(p: Parse, m: Mention, k: int) -> bool:
    """Whether the mention (in noun-phrase chunk ``k``) names more than one thing: a plural or
    group word, a plural determiner, a collective ("a herd of"), or a noun like "sheep" with
    nothing saying it is one. Removing one of several leaves the others, so the phrase cannot
    simply go."""
    text = " ".join(t.lower for t in p.tokens[m.first : m.last + 1])
    if text in _plural_terms():
        return True
    c = p.chunks[k]
    dets = {p.tokens[i].lower for i in range(c.first, m.first) if p.tags[i] == "D"}
    if dets & PLURAL_DETERMINERS or any(d.isdigit() and d != "1" for d in dets):
        return True
    if p.of_before(k) and p.head(k - 2) in COLLECTIVES:
        return True
    if plural(text) == text and text not in MASS_NOUNS:  # "sheep", "aircraft"
        after = p.tokens[m.last + 1].lower if m.last + 1 < len(p.tokens) else None
        return not (dets & SINGULAR_DETERMINERS or after in ("is", "was", "has"))
    return False


def _unit(p: Parse, k: int) -> tuple[int, int]:
    """The first and last chunks of what the removal takes: the noun phrase, with the phrase
    before an "of" that it completes ("a slice of pizza", "the side of a bus"; a holder, as in
    "a plate of pizza", stays: it is still there without what it held), and with its own "of"
    phrase ("a cup of coffee")."""
    a, b = k, k
    if p.of_before(k) and p.head(k - 2) not in HOLDERS:
        a = k - 2
    while p.kind(b + 1) == "P" and p.text(b + 1) == "of" and p.kind(b + 2) == "NP":
        b += 2
    return a, b


def _agree(p: Parse, spans: dict, remaining: int, after: int) -> None:
    """After a two-item subject loses an item, a verb or frame that agreed with both ("A cat
    and a dog are", "there are a cat and a dog") agrees with the one left, when it is clearly
    one thing (a singular determiner)."""
    if p.tokens[p.chunks[remaining].first].lower not in SINGULAR_DETERMINERS:
        return
    fixes = {"are": "is", "were": "was", "have": "has"}
    verb = [p.tokens[p.chunks[after].first]] if p.kind(after) == "V" else []
    if p.frame == 2 and p.tokens[0].lower in ("there", "here"):
        verb.append(p.tokens[1])
    for t in verb:
        if t.lower in fixes:
            spans[(t.start, t.end)] = same_case(fixes[t.lower], t.text)


def _is_and(p: Parse, k: int) -> bool:
    return p.kind(k) == "C" and p.text(k) in ("and", "or")


def _continues_to_and(p: Parse, k: int) -> bool:
    """Whether the noun phrase at ``k`` starts the rest of a list: (", NP")* then "and NP"."""
    while p.kind(k) == "NP":
        if _is_and(p, k + 1) or (p.kind(k + 1) == "," and _is_and(p, k + 2)):
            return True
        if p.kind(k + 1) != ",":
            return False
        k += 2
    return False


def _two_left(p: Parse, k: int) -> bool:
    """Whether chunks from ``k`` are ", and NP" ending the list: the Oxford comma of a list
    that is left with two items, which reads wrong ("a cat, and a dog")."""
    return (
        p.kind(k) == ","
        and _is_and(p, k + 1)
        and p.kind(k + 2) == "NP"
        and p.kind(k + 3) != ","
        and not _is_and(p, k + 3)
    )


def _coordination(p: Parse, a: int, b: int) -> dict | None:
    """The unit (chunks ``a..b``) as an item of a list of noun phrases goes with its separator;
    a list left with two items gets "and" in place of its comma, a subject left with one item
    a singular verb. "... and a dog lying on the grass" after something else than the subject
    coordinates a clause, which goes whole."""
    spans: dict = {}
    if _is_and(p, a - 1):  # a later item: "... and <unit>"
        before = a - 3 if p.kind(a - 2) == "," else a - 2
        if p.kind(before) != "NP":
            return None
        if p.kind(b + 1) == "V" and before != 0:
            stop = next((k for k in range(b + 1, len(p.chunks)) if p.kind(k) in ",."), None)
            end = p.tokens[p.chunks[stop].first - 1].end if stop is not None else p.tokens[-1].end
            spans[(p.end(before), end)] = ""
            return spans
        spans[(p.end(before), p.end(b))] = ""
        if p.kind(before - 1) == "," and p.kind(before - 2) == "NP":
            spans[(p.end(before - 2), p.start(before))] = " and "
        elif before == 0:
            _agree(p, spans, before, b + 1)
        return spans
    if p.kind(a - 1) == ",":  # a middle or asyndetic last item: "<NP>, <unit>"
        if p.kind(a - 2) != "NP":
            return None
        sep = b + 1
        while p.kind(sep) == "," or _is_and(p, sep):
            sep += 1
        if not (p.kind(b + 1) in (None, ".") or (sep > b + 1 and p.kind(sep) == "NP")):
            return None
        if p.kind(a - 3) != "," and _two_left(p, b + 1):  # "A, B, and C" → "A and C"
            spans[(p.end(a - 2), p.start(sep - 1))] = " "
        else:
            spans[(p.end(a - 2), p.end(b))] = ""
        return spans
    sep = b + 1  # the first item: "<unit>, ..." or "<unit> and ..."
    while p.kind(sep) == "," or _is_and(p, sep):
        sep += 1
    if sep == b + 1 or p.kind(sep) != "NP":
        return None
    if p.kind(b + 1) == "," and not (_is_and(p, b + 2) or _continues_to_and(p, sep)):
        return None
    if a != 0 and p.kind(sep + 1) == "V":
        return None  # "... holding a knife and a woman smiling": a clause, not a list
    if b > a and p.text(b - 1) == "of" and p.kind(b + 1) == ",":
        return None  # "a bowl of noodles, meat and rice": the list is what the bowl holds
    first, other = p.chunks[a], p.chunks[sep]
    keep_det = (
        a == b
        and p.tags[first.first] == "D"
        and p.tags[other.first] != "D"
        and not _uncountable_or_plural(p.head(sep))  # "A bus and cars" → "Cars", not "A cars"
    )
    start = p.tokens[first.first + 1].start if keep_det else p.start(a)
    spans[(start, p.start(sep))] = ""
    if _two_left(p, sep + 1):  # "A, B, and C" → "B and C"
        spans[(p.end(sep), p.start(sep + 2))] = " "
    if a == 0 and p.kind(sep + 1) not in (",", "C"):
        _agree(p, spans, a if keep_det else sep, sep + 1)
    return spans


def _uncountable_or_plural(noun: str) -> bool:
    """Whether a bare noun cannot take "a": a plural ("cars", "people") or a mass noun."""
    if noun in MASS_NOUNS or noun in SINGULAR:
        return True
    return noun.endswith("s") and not noun.endswith(("ss", "us", "is"))


def _trailing(p: Parse, k: int) -> int:
    """The last chunk of the prepositional phrases after chunk ``k`` that may hang on it ("a
    cat on a laptop between the keyboard and the cover"): they go with it, since kept they
    would say something of what is left; a phrase saying where the scene is ("in the
    kitchen") stops them, and stays."""
    end, j = k, k + 1
    while p.kind(j) == "P" and p.kind(j + 1) == "NP":
        if p.text(j) in SPATIAL and _is_scene(p.head(j + 1)):
            break
        end, j = j + 1, j + 2
        while _is_and(p, j) and p.kind(j + 1) == "NP":
            end, j = j + 1, j + 2
    return end


def _object_of_preposition(p: Parse, a: int, b: int) -> dict | None:
    """The prepositional phrase ("on a couch") goes whole, with the phrases hanging on it; so
    does a participle that only
    led to it ("a child looking at a cupcake" → "a child"; a finite verb stays: "a cat lies"),
    and a copula left with nothing to say ("A dog is on a couch" → "A dog"). After a particle
    the object is the verb's ("picking up a cup"). A participle after the object ("next to a
    man preparing food") may be about the object: no rule can tell, so None."""
    if p.text(a - 1) in PARTICLES and p.kind(a - 2) == "V":
        return _object_of_verb(p, a, b, verb=a - 2)
    before = a - 2
    if p.kind(before) == "," and p.kind(before - 1) == "NP":
        pass  # "a man in the kitchen, next to a stove"
    elif p.kind(before) not in ("NP", "V"):
        return None  # the phrase opens a sentence or follows "while", "as"
    holder = p.text(a - 1) == "of"  # "a plate of pizza on a table": the phrases are the plate's
    end = b if holder else _trailing(p, b)
    if p.kind(end + 1) in ("V", "NP"):
        return None  # about the object ("a man preparing food"), or a missing comma
    start = p.tokens[p.chunks[a - 1].first - 1].end
    words = p.words(before) if p.kind(before) == "V" else set()
    if len(words) == 1 and min(words).endswith(("ing", "ed")) and p.kind(before - 1) == "NP":
        start = p.end(before - 1)
    if words and words <= COPULAS:
        if p.kind(end + 1) not in (None, ".", ",", "C") or p.kind(before - 1) in (None, "."):
            return None
        if p.kind(before - 1) == "X" and p.text(before - 1) in RELATIVES:
            before -= 1  # "a person that is on a motorcycle" → "a person"
            if p.kind(before - 1) in (None, "."):
                return None
        start = p.tokens[p.chunks[before].first - 1].end
    return {(start, p.end(end)): ""}


def _object_of_verb(p: Parse, a: int, b: int, verb: int | None = None) -> dict | None:
    """The verb goes with its object ("a man holding a knife" → "a man"), and so do the
    object's own prepositional phrases, up to one that says where the scene is ("in the
    kitchen"). A bare copula ("this is a dog") is no such verb."""
    v = a - 1 if verb is None else verb
    if p.words(v) <= COPULAS:
        return None
    first = v - 1 if p.kind(v - 1) == "C" else v
    if p.kind(first - 1) in (None, "."):
        return None
    end = _trailing(p, b)
    stop = p.end(end)
    if first == v and p.kind(end + 1) == "C" and p.kind(end + 2) == "V":
        stop = p.end(end + 1)  # "a man holding a cup and smiling" → "a man smiling"
    return {(p.tokens[p.chunks[first].first - 1].end, stop): ""}


def _subject(p: Parse, a: int, b: int, category: str) -> dict | None:
    """The first noun phrase goes with what tied it to the next one, which takes its place:
    "A dog (sitting) on a couch" → "A couch", "A man riding a horse" → "A horse". Only when
    the rest says nothing more about the removed subject (no verb, no pronoun)."""
    if a != 0:
        return None
    k = b + 1
    if p.kind(k) == "V":
        verbs = p.words(k) - AUXILIARIES
        if p.kind(k + 1) == "NP" and verbs and verbs <= CARRYING_VERBS:
            land = k + 1
        elif verbs <= PLACING_VERBS and p.kind(k + 1) == "P" and p.text(k + 1) in SPATIAL:
            land = k + 2
        else:
            return None
    elif p.kind(k) == "P" and p.text(k) in SPATIAL:
        land = k + 1
    else:
        return None
    if p.kind(land) != "NP":
        return None
    for j in range(land, len(p.chunks)):
        kind, text = p.kind(j), p.text(j)
        if kind == "V" or (kind == "X" and text in RELATIVES):
            return None  # "A building that says 8:25": the clause was the clock's
        if (kind == "C" and not _is_and(p, j)) or (kind == "P" and text == "with"):
            return None  # "as his elders mill about", "in the snow with skis"
    if p.head(land) in PARTS and p.of_before(land + 2):
        land += 2  # "A meter in the middle of a street" → "A street"
    if any(t.lower in _pronouns(category) for t in p.tokens[p.chunks[land].first :]):
        return None
    return {(p.start(a), p.start(land)): ""}


def _pronouns(category: str) -> frozenset[str]:
    """The pronouns that may stand for the category: people are he or she, things it, animals
    either."""
    if category == "person":
        return PERSON_PRONOUNS
    return PERSON_PRONOUNS | THING_PRONOUNS if category in ANIMALS else THING_PRONOUNS


def _object_phrase(caption: str, category: str) -> tuple[Parse, Mention, int, list[Mention]] | None:
    """The parsed caption, the one mention of ``category`` (token-indexed), the noun-phrase chunk
    it heads, and every mention; None when the caption names the category otherwise: twice,
    only along with another category, inside a frame, as an activity, or as a modifier."""
    found = mentions(caption, coco())
    targets = [m for m in found if category in m.categories]
    if len(targets) != 1 or targets[0].categories != (category,):
        return None
    toks = _tokens(caption)
    located = [_located(caption, toks, n) for n in found]
    m = located[found.index(targets[0])]
    p = _parse(caption, _named(located, toks))
    if m.first < p.frame or caption[m.start : m.end].lower() in COCO_IMPLIED:
        return None
    k = p.chunk_of(m.first)
    if p.chunks[k].kind != "NP" or p.chunks[k].last != m.last:
        return None  # a modifier ("dog bed") or possessor ("the dog's bed"), not the thing
    if any(n is not m and p.chunk_of(n.first) == k for n in located):
        return None  # "a pizza oven": which words name which object is guesswork
    return p, m, k, located


def _remove_english(caption: str, category: str) -> str | None:
    phrase = _object_phrase(caption, category)
    if phrase is None:
        return None
    p, m, k, _ = phrase
    if _several(p, m, k):
        return None
    a, b = _unit(p, k)
    if p.kind(b + 1) == "X" and p.text(b + 1) in RELATIVES:
        return None  # "a dog that is sleeping": the clause would attach to something else
    if p.kind(a - 1) == "P" and p.text(a - 1) == "to" and p.tags[p.chunks[a].first] != "D":
        return None  # "to ski": a verb
    spans = _coordination(p, a, b)
    if spans is None and p.kind(a - 1) == "P":
        spans = _object_of_preposition(p, a, b)
    elif spans is None and p.kind(a - 1) == "V":
        spans = _object_of_verb(p, a, b)
    elif spans is None and a == 0:
        spans = _subject(p, a, b, category)
    if spans is None:
        return None
    return _finish(caption, replace(caption, spans), category)


_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DOUBLE_COMMA = re.compile(r",\s*,")
_LEADING = re.compile(r"^[\s,;:]+")
_COMMA_AT_END = re.compile(r"[,;:]+(?=[.!?]*$)")


def _finish(original: str, text: str, category: str) -> str | None:
    """Spacing and punctuation tidied, articles agreeing, the first letter's case kept; None
    when nothing meaningful is left, or a pronoun that may have pointed at the removed object
    follows the edit ("A horse with his rider" once the man is gone)."""
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _DOUBLE_COMMA.sub(",", text)
    text = _COMMA_AT_END.sub("", _LEADING.sub("", text)).strip()
    text = fix_articles(text)
    new, old = _tokens(text), _tokens(original)
    if not any(not _closed(t.lower) for t in new) or text == original.strip():
        return None
    cut = next(
        (i for i, (x, y) in enumerate(zip(old, new, strict=False)) if x.lower != y.lower),
        min(len(old), len(new)),
    )
    if any(t.lower in _pronouns(category) for t in new[cut:]):
        return None
    if original.lstrip()[:1].isupper() and text[:1].islower():
        text = text[0].upper() + text[1:]
    return text


def remove_object(caption: str, category: str, vocabulary: VocabularyName) -> str | None:
    """``caption`` without the phrase naming ``category`` (any name the vocabulary knows for
    it, plural or multiword), grammar repaired; None when no rule can do it safely: the object
    is named more than once or as several ("two dogs", "a herd of sheep"), only inside another
    word ("skier" for skis), as a modifier ("dog bed"), or is all the caption says, or the
    rest of the sentence still depends on it (its verb, a pronoun). Rules, in order:

    - an item of a list of noun phrases goes with its "and" or comma ("a cat and a dog on a
      couch" → "a cat on a couch"); a verb or "there are" that agreed with two items agrees
      with the one left;
    - the object of a preposition goes with it ("a cat next to a dog" → "a cat");
    - the object of a verb goes with the verb and its own attachments, keeping a phrase that
      says where the scene is ("a woman holding a knife in the kitchen" → "a woman in the
      kitchen"), because a verb without its object ("a woman holding") says nothing;
    - the subject goes with the relation or placing verb that tied it to the next noun phrase,
      which becomes the subject ("a red circle to the left of a blue square" → "a blue square",
      "a dog sitting on a couch" → "a couch"): that is what the edited image shows.

    The first letter's case and the final punctuation are kept; articles are made to agree."""
    if not caption or not caption.strip():
        return None
    if vocabulary == "shapes":
        return _remove_shape(caption, category)
    return _remove_english(caption, category)


def _replace_shape(caption: str, category: str, new: str) -> str | None:
    c = split(caption)
    grammar = _shape_items(c.body.removesuffix(_BACKGROUND))
    if grammar is None:
        return None
    _, _, shapes = grammar
    if shapes.count(category) != 1 or new in shapes:
        return None
    named = re.compile(rf"\b{category}\b")
    return join(Caption(c.template, named.sub(new, c.body, count=1), c.end, c.capital))


def _replace_english(caption: str, category: str, new: str) -> str | None:
    phrase = _object_phrase(caption, category)
    if phrase is None:
        return None
    p, m, k, located = phrase
    if any(new in n.categories for n in located):
        return None  # "a cat and a dog" with the dog made a cat: two cats, said as one
    if _several(p, m, k):
        return None  # one of several: the words fit no single swap
    if _pronouns(category) != _pronouns(new) and any(
        t.lower in _pronouns(category) for t in p.tokens[m.last + 1 :]
    ):
        return None  # "a man and his dog" with the man made a horse
    name = same_case(SPOKEN.get(new, new), caption[m.start : m.end])
    return fix_articles(replace(caption, {(m.start, m.end): name}))


def replace_object(caption: str, category: str, new: str, vocabulary: VocabularyName) -> str | None:
    """``caption`` with the one phrase naming ``category`` made to name ``new`` instead ("A
    dog sleeping on a couch" → "A cat sleeping on a couch", "a red circle above a blue square"
    → "a red star above a blue square"): the edit painted an object of ``new`` where the old
    one was, and everything else the caption says (its colour, place, relations) is still true.
    The article is made to agree. None when the swap is not one word's: the object is named
    twice, as several, as a modifier or only inside another word, ``new`` is already named (the
    caption would count wrong), or a pronoun that pointed at it no longer fits."""
    if not caption or not caption.strip() or category == new:
        return None
    if vocabulary == "shapes":
        return _replace_shape(caption, category, new)
    return _replace_english(caption, category, new)


# --- absence -----------------------------------------------------------------------------------


def _det_end(p: Parse, first: int, limit: int) -> int:
    """The first token at or after ``first`` (and before ``limit``) that is no determiner."""
    i = first
    while i < limit and p.tags[i] == "D":
        i += 1
    return i


def _negation(p: Parse, m: Mention) -> tuple[int, int, str]:
    """(start, end, replacement) negating the noun phrase of mention ``m``: its determiners
    (a possessor's too) become "no"; a collective goes ("a herd of sheep" → "no sheep"); a
    portion is negated for its contents ("a slice of pizza" → "no slice of pizza"); after a
    holder or a leading frame "of" becomes "with" ("a plate with no pizza", "a picture with
    no dog")."""
    toks, k = p.tokens, p.chunk_of(m.first)
    c = p.chunks[k]
    poss = [i for i in range(c.first, m.first) if p.tags[i] == "POSS"]
    if poss:
        return (toks[c.first].start, toks[poss[-1] + 1].start, "no ")
    det_end = toks[_det_end(p, c.first, m.first)].start
    if p.of_before(k):
        head = p.head(k - 2)
        if head in COLLECTIVES:
            return (p.start(k - 2), toks[m.first].start, "no ")
        if head in PORTIONS:
            before = p.chunks[k - 2]
            return (p.start(k - 2), toks[_det_end(p, before.first, before.last)].start, "no ")
        if head in HOLDERS:
            return (p.start(k - 1), det_end, "with no ")
    if k == 0 and p.frame and toks[p.frame - 1].lower == "of":
        return (toks[p.frame - 1].start, det_end, "with no ")
    return (toks[c.first].start, det_end, "no ")


def absence_caption(caption: str, category: str, vocabulary: VocabularyName = "coco") -> str:
    """The fallback when ``remove_object`` gives None: the caption, saying the object is not
    there. Where the caption names it, each naming phrase is negated in place ("A dog is
    sleeping on the couch" → "No dog is sleeping on the couch", "a picture of a red circle" →
    "a picture with no red circle"): appending "with no dog" to a caption that still says "a
    dog" would contradict itself, and a one-word change makes the original and the edit a clean
    hard-negative pair. The number is kept ("two dogs are" → "no dogs are"), so verbs still
    agree. Where the caption names it only inside another word ("a skier", for skis) or not at
    all, " with no <name>" is appended ("A skier on a slope with no skis.")."""
    name = SPOKEN.get(category, category)
    text = caption.strip() if caption else ""
    if not text:
        return f"a picture with no {name}"
    body = text.rstrip(".!? ")
    appended = f"{body} with no {name}{text[len(body) :].strip()}"
    found = mentions(text, VOCABULARIES[vocabulary]())
    targets = [m for m in found if category in m.categories]
    if not targets or any(_implied(text, m, category) for m in targets):
        return appended
    toks = _tokens(text)
    located = [_located(text, toks, n) for n in found]
    p = _parse(text, _named(located, toks))
    spans: dict[tuple[int, int], str] = {}
    for m in (located[found.index(t)] for t in targets):
        if m.first < p.frame:  # a frame word itself ("a picture"): nothing to negate in place
            continue
        start, end, new = _negation(p, m)
        if text[m.start : m.end].lower() in NEGATED:
            start, end, new = m.start, m.end, NEGATED[text[m.start : m.end].lower()]
        if any(s < end and start < e for s, e in spans):
            continue
        if end > start:
            spans[(start, end)] = same_case(new, text[start:end])
        elif start == 0 and text[:2].istitle():  # "Zebras graze" → "No zebras graze"
            spans[(0, 1)] = same_case(new, text) + text[0].lower()
        else:
            spans[(start, end)] = new.upper() if text[start:].split(" ")[0].isupper() else new
    return fix_articles(replace(text, spans)) if spans else appended


def _implied(text: str, m: Mention, category: str) -> bool:
    """Whether the mention names the category only along with something else ("skier") or as
    an activity ("skiing"): negating it would deny more than the object."""
    return m.categories != (category,) or text[m.start : m.end].lower() in COCO_IMPLIED
