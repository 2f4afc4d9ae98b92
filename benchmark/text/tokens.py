"""Words of a caption with their character spans, so edits keep everything else as written.

Swaps and rewrites replace a few words; splitting and re-joining would lose the caption's own
punctuation, spacing and capitals, which are part of what the model reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z]+")
# Words that name nothing: never looked up as nouns, never part of a noun phrase.
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all",
    "both", "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "several", "many", "few", "of", "on", "in", "at", "to", "from", "with", "without", "by", "for",
    "into", "onto", "over", "under", "above", "below", "behind", "near", "next", "beside",
    "between", "through", "across", "along", "around", "up", "down", "out", "off", "and", "or",
    "but", "while", "as", "than", "then", "there", "here", "is", "are", "was", "were", "be", "been",
    "being", "has", "have", "had", "do", "does", "did", "it", "its", "he", "she", "his", "her",
    "him", "they", "them", "their", "we", "us", "our", "you", "your", "i", "me", "my", "who",
    "which", "what", "where", "when", "how", "not", "very", "so", "too", "can", "could", "will",
    "would", "should", "may", "might", "must", "s"
})  # fmt: skip


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower()


def words(text: str) -> list[Word]:
    """Alphabetic words in order ("hot-dog" is two words; digits and punctuation are not words)."""
    return [Word(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def replace(text: str, edits: dict[tuple[int, int], str]) -> str:
    """``text`` with each (start, end) span replaced; spans must not overlap."""
    out, at = [], 0
    for (start, end), new in sorted(edits.items()):
        if start < at:
            raise ValueError(f"overlapping edits at {start}")
        out += [text[at:start], new]
        at = end
    return "".join(out) + text[at:]


def same_case(new: str, old: str) -> str:
    """``new`` with a capital first letter when ``old`` has one."""
    return new[:1].upper() + new[1:] if old[:1].isupper() else new
