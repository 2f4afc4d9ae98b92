"""English plurals and the a/an article: what changes when a word is swapped into a caption.

Vocabularies list singular terms and match their plurals; rewrites and swaps put one word where
another was and must keep "a"/"an" agreeing with whatever now follows it.
"""

from __future__ import annotations

import re

IRREGULAR = {
    "man": "men",
    "woman": "women",
    "person": "people",
    "child": "children",
    "mouse": "mice",
    "goose": "geese",
    "foot": "feet",
    "tooth": "teeth",
    "ox": "oxen",
    "knife": "knives",
    "leaf": "leaves",
    "calf": "calves",
    "wolf": "wolves",
    "shelf": "shelves",
    "loaf": "loaves",
    "life": "lives",
    "wife": "wives",
    "scarf": "scarves",
}
SINGULAR = {v: k for k, v in IRREGULAR.items()}
UNCHANGED = frozenset({"sheep", "deer", "fish", "moose", "broccoli", "cattle", "aircraft"})
# Words whose first letter misleads the vowel rule (a one-, a uni-, an hour).
_CONSONANT_SOUND = re.compile(r"^(one|once|uni|use|usu|eu|ewe)")
_VOWEL_SOUND = re.compile(r"^(hour|honest|honou?r)")
_ARTICLE_BEFORE_WORD = re.compile(r"\b([Aa]n?)\s+([A-Za-z]+)")


def plural(noun: str) -> str:
    """The plural of a singular noun or noun phrase ("teddy bears", "glasses of wine")."""
    if " of " in noun:
        head, _, tail = noun.partition(" of ")
        return f"{plural(head)} of {tail}"
    head, _, last = noun.rpartition(" ")
    if last in UNCHANGED:
        out = last
    elif last in IRREGULAR:
        out = IRREGULAR[last]
    elif last.endswith("man") and last not in ("human", "german"):  # fireman → firemen
        out = last[:-3] + "men"
    elif re.search(r"(s|x|z|ch|sh)$", last):
        out = last + "es"
    elif re.search(r"[^aeiou]y$", last):
        out = last[:-1] + "ies"
    else:
        out = last + "s"
    return f"{head} {out}" if head else out


def article(word: str) -> str:
    """ "a" or "an" before ``word``, by its (approximate) first sound."""
    w = word.lower()
    if _VOWEL_SOUND.match(w):
        return "an"
    if w[:1] in ("a", "e", "i", "o", "u") and not _CONSONANT_SOUND.match(w):
        return "an"
    return "a"


def fix_articles(text: str) -> str:
    """Each article "a"/"an" made to agree with the word after it, keeping its capitalisation."""

    def agree(m: re.Match) -> str:
        fixed = article(m.group(2))
        return (fixed.capitalize() if m.group(1)[0].isupper() else fixed) + m.group(0)[
            len(m.group(1)) :
        ]

    return _ARTICLE_BEFORE_WORD.sub(agree, text)
