"""Hard negative captions in the manner of NegCLIP: the caption with one fact changed."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import Field

from benchmark.columns import CAPTION, NEGATIVES, UID
from benchmark.evaluate import aro
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register
from benchmark.spec.numbers import Seed
from benchmark.text.seeding import sample_rng
from benchmark.text.swaps import KINDS, Kind, Tagged, english_candidates, pick, shapes_candidates
from benchmark.text.vocabulary import coco


class HardNegatives(Params):
    kinds: list[Kind] = Field(
        list(KINDS),
        min_length=1,
        description="edits to make, taken in turn: " + ", ".join(KINDS) + " (NegCLIP's word "
        "swaps, and ARO's order shuffles, which the order tasks need)",
    )
    max_per_sample: int = Field(3, ge=1, le=20)
    vocabulary: Literal["coco", "shapes"] = Field(
        "coco", description="shapes: exact parses of shapes-world captions; coco: any English"
    )
    tagger: Literal["auto", "spacy", "rules"] = Field(
        "auto", description="English nouns/adjectives from spaCy's tags (auto: when installed)"
    )
    seed: Seed = Field(0, description="negatives are a function of (seed, uid, caption)")


def _tags(captions: list[str], p: HardNegatives, ctx: StepContext) -> list[Tagged] | None:
    if p.vocabulary == "shapes" or p.tagger == "rules" or not captions:
        return None
    try:
        return aro.tag(captions)
    except ImportError as e:
        if p.tagger == "spacy":
            raise ctx.fail(str(e)) from None
        return None


@register("hard_negatives", "map", HardNegatives, reads=(UID, CAPTION), writes=(NEGATIVES,))
def hard_negatives(table: pa.Table, p: HardNegatives, ctx: StepContext) -> pa.Table:
    """NegCLIP-style hard negatives: up to ``max_per_sample`` captions per sample, each the
    caption with one thing changed (objects or colours swapped, a relation inverted, a colour
    replaced by an absent one, words shuffled within trigrams), in a list<string> column
    ``negative_captions``; a hard-negative loss then teaches the model that word order and
    binding matter. Every negative differs from its caption; a caption with nothing to swap
    gets an empty list. ``vocabulary: shapes`` parses the world's captions exactly; otherwise
    COCO nouns and colour words are swapped, or any nouns/adjectives when spaCy is installed."""
    ctx.require(table, UID, CAPTION)
    uids = table.column(UID).to_pylist()
    captions = [c or "" for c in table.column(CAPTION).to_pylist()]
    ctx.samples_processed += len(captions)
    tags = _tags(captions, p, ctx)
    vocab = coco()
    found = []
    for i, (uid, caption) in enumerate(zip(uids, captions, strict=True)):
        rng = sample_rng(uid, p.seed)
        if p.vocabulary == "shapes":
            candidates = shapes_candidates(caption, rng)
        else:
            candidates = english_candidates(caption, vocab, rng, tags[i] if tags else None)
        found.append(pick(caption, candidates, p.kinds, p.max_per_sample, rng))
    return table.append_column(NEGATIVES, pa.array(found, pa.list_(pa.string())))
