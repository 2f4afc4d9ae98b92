"""Finding and opening the WordNet 3.0 database without nltk's downloader.

Tests and offline machines cannot run ``nltk.download``; Debian's ``wordnet-base`` package ships
the same WordNet 3.0 dict files, minus the ``lexnames`` table nltk insists on reading. That table
is fixed by the WordNet 3.0 format (lexnames(5WN)), so it is supplied here when missing. nltk is
imported on first use: it takes over a second, and most commands never need WordNet.
"""

from __future__ import annotations

import io
import os
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

ENV = "SMALLCOMP_WORDNET"
DEBIAN_DIR = Path("/usr/share/wordnet")
INSTALL_HELP = (
    "WordNet 3.0 not found. Install it with `apt-get install -y --no-install-recommends "
    f"wordnet-base` (files in {DEBIAN_DIR}), or set {ENV} to a WordNet 3.0 dict directory "
    "(data.noun, index.noun, ...; e.g. nltk's corpora/wordnet, unzipped)"
)
# lexnames(5WN): the 45 lexicographer files, in file-number order.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl"
)  # fmt: skip
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetMissing(RuntimeError):
    """No WordNet database could be found; the message says how to install one."""


def locate() -> Path:
    """The WordNet dict directory: $SMALLCOMP_WORDNET, then Debian's, then nltk's data path."""
    import nltk

    if os.environ.get(ENV):
        path = Path(os.environ[ENV])
        if not (path / "data.noun").is_file():
            raise WordNetMissing(f"{ENV}={path} has no WordNet data.noun. {INSTALL_HELP}")
        return path
    candidates = [DEBIAN_DIR] + [Path(p) / "corpora" / "wordnet" for p in nltk.data.path]
    for path in candidates:
        if (path / "data.noun").is_file() and (path / "index.noun").is_file():
            return path
    raise WordNetMissing(INSTALL_HELP)


def _lexnames() -> io.StringIO:
    lines = (f"{i:02d}\t{n}\t{_POS_NUMBER[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES))
    return io.StringIO("".join(lines))


@cache
def wordnet() -> WordNetCorpusReader:
    """The WordNet reader, loaded once per process (a few seconds: it indexes every lemma)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        """nltk's reader, with the fixed ``lexnames`` table when the directory lacks it, and
        no mapping to other WordNet versions (only for multilingual data, and nltk would look
        for its own downloaded copy to build it)."""

        def open(self, file: str):  # noqa: A003 - nltk's method name
            if file == "lexnames" and not (root / file).exists():
                return _lexnames()
            return super().open(file)

        def map_wn(self, version: str = "wordnet") -> None:
            return None

    root = locate()
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))  # nltk only opens files under its data path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed
        return Reader(str(root), None)
