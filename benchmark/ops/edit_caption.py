"""Counterfactual captions: the caption of an edited image made to say what the edit removed or
replaced."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, Field, create_model, model_validator

from benchmark.columns import ADDED, CAPTION, PARENT_CAPTION, REMOVED
from benchmark.ops.context import StepContext
from benchmark.ops.llm_step import Backend, CaptionsPerRequest, LLMBlock, LLMParams, ask_in_chunks
from benchmark.ops.registry import register
from benchmark.text.absence import absence_caption
from benchmark.text.removal import remove_object, replace_object
from benchmark.text.vocabulary import mentions, vocabulary
from benchmark.text.wordnet import WordNetMissing

Edit = Literal["removed", "absence", "replaced", "failed"]
EDIT = "edit"  # how an earlier edit_caption changed the row's caption
SYSTEM = (
    "One object was removed from each image below. Each line is '<index>: [<object>] "
    "<caption>'. Edit the caption so that it describes the edited image: delete the words "
    "that name the object (by any name, synonym or plural) and repair the sentence, dropping "
    "its article and adjectives, the 'and' or comma that joined it to a list, a relation or "
    "preposition left with nothing on one side, and a verb whose object it was; keep every "
    "other word as written, add nothing, and answer edit 'removed'. When that cannot give a "
    "true caption (the caption names several of these objects, says nothing else, or the "
    "rest only makes sense with it), rewrite the caption to say the object is not there, e.g. "
    "'No dog is sleeping on the couch', and answer edit 'absence'. Answer with every index "
    "exactly once."
)


class EditCaption(LLMParams):
    vocabulary: Literal["coco", "shapes"] = Field(
        "coco", description="the names the removed categories go by: COCO's 80, or the shapes"
    )
    backend: Backend = "offline"
    llm: LLMBlock = None
    captions_per_request: CaptionsPerRequest = 20
    fallback: Literal["absence", "drop"] = Field(
        "absence",
        description="when the phrase cannot be removed: say the object is absent, or drop the row",
    )


@cache
def answer_model(n: int) -> type[BaseModel]:
    """The validated answer to a prompt of ``n`` captions: a non-empty caption and the kind of
    edit for every index exactly once (anything else is retried, not half-used)."""
    edited = create_model(
        "EditedCaption",
        index=(int, Field(ge=0, lt=n)),
        edit=(Literal["removed", "absence"], ...),
        caption=(Annotated[str, Field(min_length=1)], ...),
    )

    def every_index_once(answer: BaseModel) -> BaseModel:
        if sorted(c.index for c in answer.captions) != list(range(n)):
            raise ValueError(f"answer must edit each caption index 0..{n - 1} exactly once")
        return answer

    return create_model(
        "EditedCaptions",
        captions=(list[edited], ...),
        __validators__={"every_index_once": model_validator(mode="after")(every_index_once)},
    )


def prompt(pairs: list[tuple[str, str]]) -> str:
    """One line per (caption, removed category); whitespace runs (newlines) become spaces so
    each caption stays on its line."""
    return "\n".join(f"{i}: [{cat}] {' '.join(c.split())}" for i, (c, cat) in enumerate(pairs))


def _offline(pairs: list[tuple[str, str]], vocab: str) -> list[tuple[str, Edit]]:
    out: list[tuple[str, Edit]] = []
    for caption, category in pairs:
        edited = remove_object(caption, category, vocab)
        if edited is None:
            out.append((absence_caption(caption, category, vocab), "absence"))
        else:
            out.append((edited, "removed"))
    return out


def _llm(
    pairs: list[tuple[str, str]], p: EditCaption, ctx: StepContext, reasons: Counter[str]
) -> list[tuple[str | None, Edit]]:
    """The LLM's edit per pair, asking once per distinct pair, ``captions_per_request`` to a
    prompt. A failed request, or a "removed" caption that still names the object (by the
    offline vocabulary: the edit would contradict its image), is a failure, counted in
    ``reasons``. Prompts hold the distinct pairs of the batch the row part was given (see
    ``keywords._llm_keywords``); ``max_failures`` is checked per batch."""
    answered = ask_in_chunks(
        list(dict.fromkeys(pairs)),
        p,
        ctx,
        size=p.captions_per_request,
        prefix="e",
        prompt=prompt,
        system=SYSTEM,
        answer_model=answer_model,
    )
    vocab = vocabulary(p.vocabulary)
    edits: dict[tuple[str, str], tuple[str | None, Edit]] = {}
    for chunk, result in answered:
        if result.status != "ok":
            reasons["llm_failed"] += len(chunk)
            edits.update(dict.fromkeys(chunk, (None, "failed")))
            continue
        answer = {c.index: c for c in result.value.captions}
        for i, (caption, category) in enumerate(chunk):
            text, edit = answer[i].caption.strip(), answer[i].edit
            if edit == "removed" and any(category in m.categories for m in mentions(text, vocab)):
                reasons["still_named"] += 1
                edits[(caption, category)] = (None, "failed")
            else:
                edits[(caption, category)] = (text, edit)
    return [edits[pair] for pair in pairs]


def _column(table: pa.Table, name: str, values: list, dtype: pa.DataType) -> pa.Table:
    """``table`` with column ``name`` set to ``values`` (replaced in place, or appended)."""
    array = pa.array(values, dtype)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


@register(
    "edit_caption",
    "map",
    EditCaption,
    reads=(CAPTION, REMOVED),
    writes=(CAPTION, PARENT_CAPTION, EDIT),
)
def edit_caption(table: pa.Table, p: EditCaption, ctx: StepContext) -> pa.Table:
    """Counterfactual captions: on each row whose ``removed`` names the category an earlier
    step (``inpaint``) removed from the image, and that no earlier ``edit_caption`` edited,
    ``caption`` becomes the caption without that object; the old one goes to
    ``parent_caption`` and ``edit`` says how: ``removed`` (the naming phrase was removed by
    rule, grammar repaired: "a cat and a dog on a couch" → "a cat on a couch"), or
    ``absence`` (no rule could; the caption negates the object instead: "No dog is sleeping
    on the couch"), or, with ``fallback: drop``, the row is dropped. A row whose ``added``
    names what ``repaint`` painted in the object's place gets the name swapped by rule
    (``replaced``: "a dog on a couch" → "a cat on a couch"), or is dropped when no one-word
    swap says it (a caption without the object cannot describe an image with another one).
    ``llm`` asks an LLM for the removal edit, ``captions_per_request`` captions per prompt, with
    validated JSON answers; rows whose request failed after retries, or whose "removed"
    caption still names the object, are dropped: the parent caption would describe an image
    that no longer exists (more than ``llm.max_failures`` of the requests failing fails the
    step). Counts of each outcome, and the LLM's tokens and cost, go to the step's record."""
    ctx.require(table, CAPTION, REMOVED)
    removed = table.column(REMOVED).to_pylist()
    added = (
        table.column(ADDED).to_pylist() if ADDED in table.column_names else [None] * table.num_rows
    )
    done = table.column(EDIT).to_pylist() if EDIT in table.column_names else None
    todo = [i for i, r in enumerate(removed) if r is not None and not (done and done[i])]
    swaps = [i for i in todo if added[i] is not None]
    todo = [i for i in todo if added[i] is None]
    if swaps and p.backend == "llm":
        raise ctx.fail("backend 'llm' edits removals; replacements (repaint) need backend offline")
    captions = table.column(CAPTION).to_pylist()
    ctx.samples_processed += len(todo) + len(swaps)
    pairs = [(captions[i] or "", removed[i]) for i in todo]
    reasons: Counter[str] = Counter()
    try:
        if p.backend == "llm" and pairs:
            found = _llm(pairs, p, ctx, reasons)
        else:
            found = _offline(pairs, p.vocabulary)
        for i in swaps:
            text = replace_object(captions[i] or "", removed[i], added[i], p.vocabulary)
            found.append((text, "failed" if text is None else "replaced"))
            if text is None:
                reasons["no_swap"] += 1
    except WordNetMissing as e:
        raise ctx.fail(str(e)) from None
    todo += swaps
    new_captions = list(captions)
    parents = (
        table.column(PARENT_CAPTION).to_pylist()
        if PARENT_CAPTION in table.column_names
        else [None] * table.num_rows
    )
    edits = list(done) if done else [None] * table.num_rows
    keep = [True] * table.num_rows
    counts: Counter[str] = Counter()
    for i, (text, edit) in zip(todo, found, strict=True):
        counts[edit] += 1
        if edit == "failed" or (edit == "absence" and p.fallback == "drop"):
            keep[i] = False
            continue
        parents[i], new_captions[i], edits[i] = captions[i], text, edit
    table = _column(table, CAPTION, new_captions, table.schema.field(CAPTION).type)
    table = _column(table, PARENT_CAPTION, parents, pa.string())
    table = _column(table, EDIT, edits, pa.string())
    ctx.extra_costs["edit_caption"] = {
        "rows": len(todo),
        "removed": counts["removed"],
        "replaced": counts["replaced"],
        "absence": counts["absence"] if p.fallback == "absence" else 0,
        "dropped": {
            "absence": counts["absence"] if p.fallback == "drop" else 0,
            "failed": counts["failed"],
        },
        "failures": dict(sorted(reasons.items())),
    }
    return table.filter(pa.array(keep, pa.bool_()))
