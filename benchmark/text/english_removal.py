"""An object removed from an English caption, or replaced by another category, by rules over the
caption's chunks (:mod:`benchmark.text.chunker`): which words go with the object's noun phrase
(a list's separator, a preposition, a verb, the relation that tied a subject to the rest), and
the tidying after. ``removal.remove_object`` lists the rules in order.
"""

from __future__ import annotations

import re
from functools import cache

from benchmark.text.chunker import Parse, closed_class, locate, name_tokens, parse, tokenize
from benchmark.text.inflection import SINGULAR, fix_articles, plural
from benchmark.text.tokens import replace, same_case
from benchmark.text.vocabulary import ANIMALS, COCO_IMPLIED, COCO_TERMS, Mention, coco, mentions
from benchmark.text.word_classes import (
    AUXILIARIES,
    CARRYING_VERBS,
    COLLECTIVES,
    COPULAS,
    GROUP_TERMS,
    HOLDERS,
    MASS_NOUNS,
    PARTICLES,
    PARTS,
    PERSON_PRONOUNS,
    PLACING_VERBS,
    PLURAL_DETERMINERS,
    RELATIVES,
    SCENES,
    SINGULAR_DETERMINERS,
    SPATIAL,
    SPOKEN,
    THING_PRONOUNS,
)


def _is_scene(word: str) -> bool:
    return word in SCENES or (word.endswith("s") and word[:-1] in SCENES)


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
    toks = tokenize(caption)
    located = [locate(caption, toks, n) for n in found]
    m = located[found.index(targets[0])]
    p = parse(caption, name_tokens(located, toks))
    if m.first < p.frame or caption[m.start : m.end].lower() in COCO_IMPLIED:
        return None
    k = p.chunk_of(m.first)
    if p.chunks[k].kind != "NP" or p.chunks[k].last != m.last:
        return None  # a modifier ("dog bed") or possessor ("the dog's bed"), not the thing
    if any(n is not m and p.chunk_of(n.first) == k for n in located):
        return None  # "a pizza oven": which words name which object is guesswork
    return p, m, k, located


def remove_english(caption: str, category: str) -> str | None:
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
    new, old = tokenize(text), tokenize(original)
    if not any(not closed_class(t.lower) for t in new) or text == original.strip():
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


def replace_english(caption: str, category: str, new: str) -> str | None:
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
