"""The caption of an image an object was taken out of, when no removal rule can drop its words:
the caption kept, saying the object is not there ("No dog is sleeping on the couch").
"""

from __future__ import annotations

from benchmark.text.chunker import Parse, locate, name_tokens, parse, tokenize
from benchmark.text.inflection import fix_articles
from benchmark.text.tokens import replace, same_case
from benchmark.text.vocabulary import (
    COCO_IMPLIED,
    VOCABULARIES,
    Mention,
    VocabularyName,
    mentions,
)
from benchmark.text.word_classes import COLLECTIVES, HOLDERS, NEGATED, PORTIONS, SPOKEN


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
    toks = tokenize(text)
    located = [locate(text, toks, n) for n in found]
    p = parse(text, name_tokens(located, toks))
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
