"""Filters on what the table already says: no filter, caption length, image size and aspect."""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from benchmark.columns import CAPTION, HEIGHT, WIDTH
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register


@register("no_filter", "filter")
def no_filter(table: pa.Table, p: Params, ctx: StepContext) -> pa.Table:
    """Keep everything: the baseline every curation recipe is compared with."""
    return table


# What fastText's tokenizer (Dictionary::readWord) splits on; each newline is also a token.
FASTTEXT_SPACE = re.compile(r"[^ \n\r\t\v\f\0]+")


class CaptionLength(Params):
    min_words: int = Field(0, ge=0, description="keep captions with more words than this")
    max_words: int | None = Field(None, ge=1)
    min_chars: int = Field(0, ge=0, description="keep captions with more characters than this")
    words: Literal["whitespace", "fasttext"] = Field(
        "whitespace",
        description="count words as str.split() does (DataComp's basic filter) or as fastText's "
        "tokenizer does (its image-based filter's caption filter)",
    )

    @model_validator(mode="after")
    def _order(self) -> CaptionLength:
        if self.max_words is not None and self.max_words <= self.min_words:
            raise ValueError("max_words must be greater than min_words")
        return self


@register("caption_length", "filter", CaptionLength, reads=(CAPTION,))
def caption_length(table: pa.Table, p: CaptionLength, ctx: StepContext) -> pa.Table:
    """Drop captions too short to describe anything (DataComp's basic filter: > 2 words, > 5
    characters) or too long to fit the text tower. Characters are counted as written, spaces
    included, as DataComp counts them; ``words: fasttext`` counts as DataComp's image-based
    caption filter does (fastText's tokenizer: a newline is a token of its own)."""
    ctx.require(table, CAPTION)
    captions = table.column(CAPTION).to_pylist()
    ctx.samples_processed += len(captions)
    count = _fasttext_tokens if p.words == "fasttext" else _whitespace_tokens
    words = np.array([count(c) for c in captions], dtype=np.int64)
    chars = np.array([len(c) for c in captions], dtype=np.int64)
    keep = (words > p.min_words) & (chars > p.min_chars)
    if p.max_words is not None:
        keep &= words <= p.max_words
    return table.filter(pa.array(keep))


def _whitespace_tokens(caption: str) -> int:
    return len(caption.split())


def _fasttext_tokens(caption: str) -> int:
    return len(FASTTEXT_SPACE.findall(caption)) + caption.count("\n")


class ImageSize(Params):
    min_side: int = Field(0, ge=0, description="keep images whose shorter side is at least this")
    max_aspect: float | None = Field(None, ge=1, description="keep long/short side ratio <= this")


@register("image_size", "filter", ImageSize, reads=(WIDTH, HEIGHT))
def image_size(table: pa.Table, p: ImageSize, ctx: StepContext) -> pa.Table:
    """Drop tiny images and extreme aspect ratios (DataComp's basic filter uses 200 px and 3.0:
    shorter side >= 200, longer / shorter <= 3; a zero side fails the ratio)."""
    ctx.require(table, WIDTH, HEIGHT)
    ctx.samples_processed += table.num_rows
    w, h = table.column(WIDTH), table.column(HEIGHT)
    short, long = pc.min_element_wise(w, h), pc.max_element_wise(w, h)
    keep = pc.greater_equal(short, p.min_side)
    if p.max_aspect is not None:
        ratio = pc.divide(pc.cast(long, pa.float64()), pc.cast(short, pa.float64()))
        keep = pc.and_(keep, pc.less_equal(ratio, p.max_aspect))
    return table.filter(keep)
