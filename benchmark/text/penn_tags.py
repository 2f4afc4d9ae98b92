"""Penn Treebank part-of-speech tags, as spaCy's English tagger and nltk write them.

A caption tagged this way (ARO's noun/adjective shuffles, NegCLIP-style swaps) says which words
are nouns and which adjectives, in every form the tag set tells apart.
"""

from __future__ import annotations

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
ADJECTIVE_TAGS = frozenset({"JJ", "JJR", "JJS"})
