"""The base of every spec model: unknown keys are errors, so a typo never silently does nothing."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
