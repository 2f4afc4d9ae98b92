"""A recipe: data steps and a sampler, applied to a track's pool. It cannot touch training."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from benchmark.spec.strict import Strict


class Step(Strict):
    """One op with its params (validated against the op's own params model when loading)."""

    op: str
    params: dict[str, Any] = {}


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    track: str
    description: str = ""
    steps: list[Step] = []
    sampler: Step = Step(op="random")
    loss: Literal["clip", "negclip"] = "clip"

    @field_validator("name")
    @classmethod
    def _short(cls, v: str) -> str:
        if len(v) > 64:
            raise ValueError("at most 64 characters")
        return v
