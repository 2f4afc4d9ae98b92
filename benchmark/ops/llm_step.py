"""What the ops that can ask an LLM share (keywords, rewrite, edit_caption): the ``backend`` and
``llm`` params, and one way to send a step's prompts and account for them.

The params are field types rather than fields of a base model, so that each op keeps them where
its params list them (``smallcomp ops`` and the JSON schema show fields in declaration order,
and a base model's fields would come first); the base model adds the check that ``backend:
llm`` comes with an ``llm:`` block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, model_validator

from benchmark.models.llm import (
    LLMBackend,
    LLMConfig,
    LLMError,
    LLMRequest,
    LLMResult,
    check_failures,
)
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params

T = TypeVar("T")

Backend = Literal["offline", "llm"]
LLMBlock = Annotated[LLMConfig | None, Field(description="the LLM to ask (backend: llm)")]
CaptionsPerRequest = Annotated[int, Field(ge=1, le=200, description="captions sent per prompt")]
Schema = type[BaseModel] | dict[str, Any]


class LLMParams(Params):
    """Base for the params of an op that works offline or asks an LLM; it declares
    ``backend: Backend = "offline"`` and ``llm: LLMBlock = None`` among its fields."""

    if TYPE_CHECKING:
        backend: Backend
        llm: LLMConfig | None

    @model_validator(mode="after")
    def _llm_configured(self) -> LLMParams:
        if self.backend == "llm" and self.llm is None:
            raise ValueError("backend: llm needs an llm: block (model, base_url, prices, ...)")
        return self


def ask(
    p: LLMParams, ctx: StepContext, calls: list[tuple[list[LLMRequest], Schema]]
) -> list[list[LLMResult]]:
    """The results of each ``(requests, schema)`` call, through one backend made from ``p.llm``.

    The step fails (``ctx.fail``) when the backend cannot run, or when more than
    ``llm.max_failures`` of all the requests still failed after their retries; the backend's
    tokens and cost go to the step's record (``extra_costs["llm"]``)."""
    assert p.llm is not None  # LLMParams checks it
    try:
        backend = LLMBackend(p.llm)
        out = [backend.complete_json(requests, schema) for requests, schema in calls]
        check_failures([r for results in out for r in results], p.llm.max_failures)
    except LLMError as e:
        raise ctx.fail(str(e)) from None
    ctx.extra_costs["llm"] = backend.usage.as_dict()
    return out


def ask_in_chunks(
    items: list[T],
    p: LLMParams,
    ctx: StepContext,
    *,
    size: int,
    prefix: str,
    prompt: Callable[[list[T]], str],
    system: str,
    answer_model: Callable[[int], type[BaseModel]],
) -> list[tuple[list[T], LLMResult]]:
    """Each run of ``size`` consecutive ``items`` with the result of its prompt (request id
    ``<prefix><chunk number>``), asked as in ``ask``.

    A prompt numbers its items from 0, and its answer is validated by ``answer_model(n)`` for
    its ``n`` items, so chunks of one size (all but perhaps the last) share one schema and one
    call."""
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    requests = [LLMRequest.of(f"{prefix}{k}", prompt(c), system) for k, c in enumerate(chunks)]
    by_size: dict[int, list[int]] = {}
    for k, chunk in enumerate(chunks):
        by_size.setdefault(len(chunk), []).append(k)
    calls = [([requests[k] for k in ks], answer_model(n)) for n, ks in by_size.items()]
    results: dict[int, LLMResult] = {}
    for ks, answers in zip(by_size.values(), ask(p, ctx, calls), strict=True):
        results.update(zip(ks, answers, strict=True))
    return [(chunk, results[k]) for k, chunk in enumerate(chunks)]
