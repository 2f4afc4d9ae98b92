"""The base of every spec model: unknown keys are errors, so a typo never silently does nothing."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # inf passes every lower bound and nan an unbounded field; no spec number means either
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
