"""The operator registry: every curation step a recipe can name, with its kind and params model.

Recipes are data, so a step can only be an op found here: built-in modules register at import,
third-party packages through the ``smallcomp.ops`` entry-point group.

Loading the registry imports every op module, and ``validate`` and ``smallcomp ops`` do nothing
more, so an op module imports its heavy libraries (torch, open_clip, ultralytics, diffusers, the
OpenAI client) inside the functions that run the op: naming and checking steps stays cheap
(``tests/test_validate_fast.py``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from benchmark.spec.strict import Strict

Kind = Literal["score", "filter", "map", "generate", "sample"]
KINDS: tuple[Kind, ...] = ("score", "filter", "map", "generate", "sample")

BUILTIN_MODULES = (
    "benchmark.ops.basic",
    "benchmark.ops.language",
    "benchmark.ops.dedup",
    "benchmark.ops.clip_score",
    "benchmark.ops.samplers",
    "benchmark.ops.keywords",
    "benchmark.ops.rewrite",
    "benchmark.ops.negatives",
    "benchmark.ops.batching",
    "benchmark.ops.detect",
    "benchmark.ops.inpaint",
    "benchmark.ops.quality_check",
    "benchmark.ops.embedding",
    "benchmark.ops.image_based",
    "benchmark.ops.neighbours",
    "benchmark.ops.edit_caption",
)


class Params(Strict):
    """Base for op params."""


# Estimated device-seconds per input row for the given params on a device kind ("cpu" or
# "cuda"): lets a track's curation budget refuse a recipe before any work starts.
Cost = Callable[[Params, str], float]


@dataclass(frozen=True)
class Op:
    name: str
    kind: Kind
    params: type[Params]
    fn: Callable
    doc: str
    cost: Cost | None = None
    # Runs in a worker process: libraries such as ultralytics and faiss bring their own OpenMP
    # runtime, which slows the trainer's torch several-fold once they share its process.
    isolate: bool = False


_OPS: dict[str, Op] = {}
_loaded = False


def register(
    name: str,
    kind: Kind,
    params: type[Params] = Params,
    *,
    cost: Cost | None = None,
    isolate: bool = False,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as op ``name``; its docstring is what ``smallcomp ops`` shows."""
    if kind not in KINDS:
        raise ValueError(f"op {name!r}: kind must be one of {KINDS}, got {kind!r}")

    def deco(fn: Callable) -> Callable:
        if name in _OPS and _OPS[name].fn is not fn:
            raise ValueError(f"op {name!r} is registered twice")
        _OPS[name] = Op(name, kind, params, fn, (fn.__doc__ or "").strip(), cost, isolate)
        return fn

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group="smallcomp.ops"):
        ep.load()


def get(name: str) -> Op:
    """The op called ``name``; a KeyError's message suggests the closest names."""
    _load()
    if name not in _OPS:
        close = difflib.get_close_matches(name, _OPS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `smallcomp ops` lists them"
        raise KeyError(f"unknown op '{name}'{hint}")
    return _OPS[name]


def all_ops() -> list[Op]:
    _load()
    return sorted(_OPS.values(), key=lambda op: (KINDS.index(op.kind), op.name))
