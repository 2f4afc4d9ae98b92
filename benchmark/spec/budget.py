"""A recipe's curation compute, estimated before any work, against the track's cap.

Training compute is equal by construction; curation compute is not, so a track may cap it
(device-seconds per 1,000 pool samples) and a recipe that would exceed the cap is refused up
front, with the estimate and the cap, instead of after hours of generation.
"""

from __future__ import annotations

from benchmark.ops import registry as ops
from benchmark.spec.errors import SpecError


def estimate(steps: list, rows: int, device: str) -> list[tuple[str, float]]:
    """(op, device-seconds) per step that declares a cost, every step counted on all ``rows``
    (an upper bound: earlier filters usually leave fewer)."""
    kind = "cpu" if device == "cpu" else "cuda"
    out = []
    for step in steps:
        op = ops.get(step.op)
        if op.cost is not None:
            out.append((op.name, op.cost(op.params.model_validate(step.params), kind) * rows))
    return out


def check(spec, rows: int, device: str) -> None:
    """Raise a located SpecError when ``spec``'s estimate exceeds its track's budget."""
    budget = spec.track.track.rules.curation_budget
    if budget is None:
        return
    parts = estimate(spec.recipe.steps, rows, device)
    total = sum(s for _, s in parts)
    cap = budget.device_s_per_1k * rows / 1000
    if total > cap:
        detail = " + ".join(f"{name} {s:,.0f}" for name, s in parts if s >= 0.5)
        raise SpecError(
            spec.file,
            *spec.steps_at,
            f"field 'steps': estimated curation compute {total:,.0f} device-s on {device} "
            f"({detail}) for {rows:,} pool samples exceeds the track's budget of {cap:,.0f} "
            f"device-s ({budget.device_s_per_1k:g} per 1,000 samples)",
        )
