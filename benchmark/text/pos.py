"""A part-of-speech guess for a word out of context, from WordNet's sense-tagged counts.

Without a tagger, "plays" in "a man plays tennis" must not be paraphrased as a noun ("drama").
WordNet counts how often each sense of a lemma was seen in a tagged corpus (cntlist), so the
part of speech whose senses were seen most is the best context-free guess.
"""

from __future__ import annotations

from functools import cache

from benchmark.text.wordnet import wordnet

POS = ("n", "v", "a", "r")  # noun, verb, adjective (satellites included), adverb


@cache
def counts(word: str) -> dict[str, int]:
    """Tagged-corpus count per part of speech of ``word``'s lemma; absent: no such sense."""
    wn = wordnet()
    out = {}
    for pos in POS:
        lemma = wn.morphy(word.lower(), pos)
        if lemma is None:
            continue
        out[pos] = sum(
            lem.count()
            for synset in wn.synsets(lemma, pos)
            for lem in synset.lemmas()
            if lem.name().lower() == lemma
        )
    return out


def can_be_noun(word: str) -> bool:
    """Has a noun sense seen at least as often as its verb senses."""
    c = counts(word)
    return "n" in c and c["n"] >= c.get("v", -1)


def can_be_modifier(word: str) -> bool:
    """Has a noun or adjective sense (both modify nouns) seen at least as often as its verbs."""
    c = counts(word)
    best = max(c.get("n", -1), c.get("a", -1))
    return best >= 0 and best >= c.get("v", -1)
