"""An English caption chunked by rule: tokens, a coarse part of speech for each, and chunks of
noun phrases, prepositions, verb groups and conjunctions, with a leading frame ("a picture of")
set aside. No tagger: word classes, word forms and WordNet's tagged counts decide, and the
vocabulary's object names are nouns whatever their form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchmark.text import pos
from benchmark.text.tokens import FUNCTION_WORDS, Word
from benchmark.text.vocabulary import COCO_IMPLIED, COLOURS, Mention
from benchmark.text.word_classes import (
    ADVERBS,
    AUXILIARIES,
    CONJUNCTIONS,
    DETERMINERS,
    FRAMES,
    MULTI_PREPOSITIONS,
    PREPOSITIONS,
)

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


def tokenize(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def closed_class(word: str) -> bool:
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
        before_content = joined and not closed_class(toks[i + 1].lower)
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


def parse(caption: str, named: set[int]) -> Parse:
    """Tokens, tags and chunks. A noun phrase is determiners and nouns/adjectives joined by
    spaces, hyphens or a possessive "'s" (adjectives also by commas, colours by "and": "a
    large, black and white cat"); a verb group is consecutive verbs ("is sitting")."""
    toks = tokenize(caption)
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


def name_tokens(located: list[Mention], toks: list[Word]) -> set[int]:
    """Tokens of object names, which are nouns whatever their form; activities ("skiing") are
    left to the tagger."""
    return {
        i
        for n in located
        for i in range(n.first, n.last + 1)
        if not (toks[n.last].lower.endswith("ing") and toks[n.last].lower in COCO_IMPLIED)
    }


def locate(caption: str, toks: list[Word], m: Mention) -> Mention:
    """``m`` with token indices into ``toks`` (which, unlike vocabulary's words, has digits)."""
    first = next(i for i, t in enumerate(toks) if t.start == m.start)
    last = next(i for i, t in enumerate(toks) if t.end == m.end)
    return Mention(m.categories, first, last, m.start, m.end)
