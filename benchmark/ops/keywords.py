"""What a caption names: object keywords (offline vocabulary or an LLM) and DataComp's
text-based filter (caption nouns matched to target classes through WordNet)."""

from __future__ import annotations

from functools import cache
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field, create_model, model_validator

from benchmark.columns import CAPTION, KEYWORDS
from benchmark.ops.context import StepContext
from benchmark.ops.llm_step import Backend, CaptionsPerRequest, LLMBlock, LLMParams, ask_in_chunks
from benchmark.ops.registry import Params, register
from benchmark.text.noun_classes import caption_classes, datacomp_classes
from benchmark.text.vocabulary import categories, vocabulary
from benchmark.text.wordnet import WordNetMissing

TEXT_CLASSES = "text_classes"

SYSTEM = (
    "You label image captions with the object categories they mention. Use only these "
    "categories: {names}. A category is mentioned when the caption names that kind of object, "
    'by any word or synonym ("puppy" is dog, "sofa" is couch); words that only look alike '
    "do not count (a hot dog is no dog, an orange bus has no orange). Answer with every caption "
    "index exactly once, with an empty list when a caption mentions none."
)


class Keywords(LLMParams):
    vocabulary: Literal["coco", "shapes"] = Field(
        "coco", description="COCO's 80 categories, or the shapes world's shapes"
    )
    backend: Backend = "offline"
    llm: LLMBlock = None
    captions_per_request: CaptionsPerRequest = 20


@cache
def answer_model(names: tuple[str, ...], n: int) -> type[BaseModel]:
    """The validated answer to a prompt of ``n`` captions: categories from ``names`` only, and
    every caption index exactly once (an answer that skips one is retried, not half-used)."""
    labelled = create_model(
        "LabelledCaption",
        index=(int, Field(ge=0, lt=n)),
        categories=(list[Literal[names]], ...),
    )

    def every_index_once(answer: BaseModel) -> BaseModel:
        if sorted(c.index for c in answer.captions) != list(range(n)):
            raise ValueError(f"answer must label each caption index 0..{n - 1} exactly once")
        return answer

    return create_model(
        "CaptionCategories",
        captions=(list[labelled], ...),
        __validators__={"every_index_once": model_validator(mode="after")(every_index_once)},
    )


def prompt(captions: list[str]) -> str:
    return "\n".join(f"{i}: {' '.join(c.split())}" for i, c in enumerate(captions))


def _llm_keywords(
    captions: list[str], names: tuple[str, ...], p: Keywords, ctx: StepContext
) -> list[list[str] | None]:
    """Keywords per caption, None where the LLM gave no valid answer after its retries.

    A prompt holds ``captions_per_request`` consecutive captions of the batch the row part was
    given, so the prompts (and the cache keys) follow the executor's batches; each caption's
    answer is asked for by its own index, so only a model that lets neighbours sway it answers
    differently for another split. ``max_failures`` is checked per batch."""
    answered = ask_in_chunks(
        captions,
        p,
        ctx,
        size=p.captions_per_request,
        prefix="c",
        prompt=prompt,
        system=SYSTEM.format(names=", ".join(names)),
        answer_model=lambda n: answer_model(names, n),
    )
    out: list[list[str] | None] = []
    for chunk, result in answered:
        if result.status != "ok":
            out += [None] * len(chunk)
            continue
        labels = {c.index: set(c.categories) for c in result.value.captions}
        out += [[name for name in names if name in labels[i]] for i in range(len(chunk))]
    return out


@register("keywords", "score", Keywords, reads=(CAPTION,), writes=(KEYWORDS,))
def keywords(table: pa.Table, p: Keywords, ctx: StepContext) -> pa.Table:
    """Which object categories each caption mentions, as a list<string> column ``keywords``
    (COCO's 80 names, or the shapes world's shapes). Keyword lists are what concept-balancing
    curation (MetaCLIP's entry counts, DataComp's text-based filter) is built on. ``offline``
    matches curated synonym lists (plurals, multiword names, "hot dog" is no dog; about 0.95
    precision on COCO captions vs instance labels); ``llm`` asks an LLM,
    ``captions_per_request`` captions per prompt, with validated JSON answers; a caption whose
    request still failed after retries gets null (more than ``llm.max_failures`` of the
    requests failing fails the step), and tokens and cost go to the step's record."""
    ctx.require(table, CAPTION)
    captions = [c or "" for c in table.column(CAPTION).to_pylist()]
    ctx.samples_processed += len(captions)
    vocab = vocabulary(p.vocabulary)
    if p.backend == "llm" and captions:
        found = _llm_keywords(captions, vocab.categories, p, ctx)
    else:
        found = [categories(c, vocab) for c in captions]
    return table.append_column(KEYWORDS, pa.array(found, pa.list_(pa.string())))


class TextBased(Params):
    classes: Literal["imagenet21k", "imagenet", "coco", "shapes"] = Field(
        "imagenet21k",
        description="ImageNet-21k (DataComp's), ImageNet-1k, COCO's 80 categories, or the shapes",
    )
    match: Literal["datacomp", "nouns"] = Field(
        "datacomp",
        description="DataComp's rule (whitespace tokens, first sense of any part of speech) or "
        "smallcomp's noun matcher (words without punctuation, two-word names, hypernym depth)",
    )
    depth: int = Field(
        0, ge=0, le=6, description="also match caption nouns this many hypernym levels below"
    )

    @model_validator(mode="after")
    def _depth_needs_nouns(self) -> TextBased:
        if self.depth and self.match != "nouns":
            raise ValueError("depth is part of the noun matcher: set match: nouns")
        return self


@register("text_based", "filter", TextBased, reads=(CAPTION,), writes=(TEXT_CLASSES,))
def text_based(table: pa.Table, p: TextBased, ctx: StepContext) -> pa.Table:
    """DataComp's text-based filter: keep a sample when a caption word's most likely WordNet
    sense (lemmatised) is one of the target classes, so training text is about the concepts the
    evaluation asks for. ``match: datacomp`` (the default) is DataComp's exact rule over
    whitespace tokens as written ("dog." names nothing); ``nouns`` is smallcomp's matcher, which
    strips punctuation, looks at noun senses only and matches two-word and hyphenated names
    whole (benchmark/text/noun_classes.py says how they differ). Adds ``text_classes`` (the
    classes matched; ImageNet-21k ones by wnid). Needs the WordNet 3.0 database (apt-get install
    wordnet-base)."""
    ctx.require(table, CAPTION)
    captions = [c or "" for c in table.column(CAPTION).to_pylist()]
    ctx.samples_processed += len(captions)
    try:
        if p.match == "datacomp":
            found = [datacomp_classes(c, p.classes) for c in captions]
        else:
            found = [caption_classes(c, p.classes, p.depth) for c in captions]
    except WordNetMissing as e:
        raise ctx.fail(str(e)) from None
    table = table.append_column(TEXT_CLASSES, pa.array(found, pa.list_(pa.string())))
    return table.filter(pa.array([bool(f) for f in found], pa.bool_()))
