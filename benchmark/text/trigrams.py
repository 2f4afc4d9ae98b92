"""Word-order perturbations by trigrams, as ARO's Order tasks make them: the words split into
consecutive trigrams (the last may be shorter), shuffled within each or as whole trigrams.

The draws are ``random.Random.shuffle``'s, the official code's, so a generator seeded as it is
replays its perturbations exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def _trigrams(tokens: Sequence[str]) -> list[list[str]]:
    return [list(tokens[i : i + 3]) for i in range(0, len(tokens), 3)]


def shuffle_within_trigrams(tokens: Sequence[str], rng: random.Random) -> str:
    """Permute the words inside each consecutive trigram."""
    trigrams = _trigrams(tokens)
    for trigram in trigrams:
        rng.shuffle(trigram)
    return " ".join(" ".join(t) for t in trigrams)


def shuffle_trigrams(tokens: Sequence[str], rng: random.Random) -> str:
    """Permute the order of the consecutive trigrams."""
    trigrams = _trigrams(tokens)
    rng.shuffle(trigrams)
    return " ".join(" ".join(t) for t in trigrams)
