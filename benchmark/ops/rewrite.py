"""Caption rewriting in the manner of LaCLIP: several phrasings per caption, the original kept."""

from __future__ import annotations

from functools import cache
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, Field, create_model

from benchmark.columns import CAPTION, REWRITES, UID
from benchmark.models.llm import LLMRequest
from benchmark.ops.context import StepContext
from benchmark.ops.llm_step import Backend, LLMBlock, LLMParams, ask
from benchmark.ops.registry import register
from benchmark.spec.numbers import Seed
from benchmark.text.paraphrase import paraphrases
from benchmark.text.seeding import sample_rng
from benchmark.text.wordnet import WordNetMissing

SYSTEM = (
    "Rewrite an image caption {k} times. Each rewrite must describe exactly the same image: "
    "keep every object, count, colour, size, attribute and spatial relation, add nothing and "
    "drop nothing; change only wording and sentence structure. Answer with {k} rewrites, each "
    "different from the caption and from each other."
)


class Rewrite(LLMParams):
    k: int = Field(3, ge=1, le=10, description="rewrites per caption (offline: at most k)")
    backend: Backend = "offline"
    llm: LLMBlock = None
    seed: Seed = Field(0, description="offline rewrites are a function of (seed, uid, caption)")


@cache
def answer_model(k: int) -> type[BaseModel]:
    """Exactly ``k`` non-empty rewrites (anything else is retried)."""
    text = Annotated[str, Field(min_length=1)]
    return create_model("Rewrites", rewrites=(list[text], Field(min_length=k, max_length=k)))


def _llm_rewrites(captions: list[str], p: Rewrite, ctx: StepContext) -> list[list[str] | None]:
    system = SYSTEM.format(k=p.k)
    unique = list(dict.fromkeys(c for c in captions if c.strip()))  # one request per caption
    requests = [LLMRequest.of(f"r{i}", c, system) for i, c in enumerate(unique)]
    [results] = ask(p, ctx, [(requests, answer_model(p.k))])
    by_caption: dict[str, list[str] | None] = {c: [] for c in captions}
    for caption, result in zip(unique, results, strict=True):
        if result.status == "ok":
            kept = [r.strip() for r in result.value.rewrites]
            by_caption[caption] = list(dict.fromkeys(r for r in kept if r != caption.strip()))
        else:
            by_caption[caption] = None
    return [by_caption[c] for c in captions]


@register("rewrite", "map", Rewrite, reads=(UID, CAPTION), writes=(REWRITES,))
def rewrite(table: pa.Table, p: Rewrite, ctx: StepContext) -> pa.Table:
    """LaCLIP-style caption augmentation: up to ``k`` rewrites per caption in a list<string>
    column ``caption_rewrites``, the original left in ``caption``; training draws the original
    or one rewrite afresh each epoch (benchmark.text.caption_pick), so the text tower learns the
    content, not one phrasing. ``offline`` rewrites by meaning-preserving rules (templates,
    reordering of plain noun-phrase lists, relation inversion, same-sense WordNet synonyms),
    seeded per uid; ``llm`` asks an LLM for ``k`` rewrites per distinct caption (null where the
    request failed after retries, a failed step beyond ``llm.max_failures``; tokens and cost go
    to the step's record)."""
    ctx.require(table, UID, CAPTION)
    captions = [c or "" for c in table.column(CAPTION).to_pylist()]
    ctx.samples_processed += len(captions)
    if p.backend == "llm" and captions:
        found = _llm_rewrites(captions, p, ctx)
    else:
        uids = table.column(UID).to_pylist()
        try:
            found = [
                paraphrases(c, p.k, sample_rng(u, p.seed))
                for u, c in zip(uids, captions, strict=True)
            ]
        except WordNetMissing as e:
            raise ctx.fail(str(e)) from None
    return table.append_column(REWRITES, pa.array(found, pa.list_(pa.string())))
