"""The operator registry: every curation step a recipe can name, with its kind and params model.

Recipes are data, so a step can only be an op found here: built-in modules register at import,
third-party packages through the ``smallcomp.ops`` entry-point group.
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
)


class Params(Strict):
    """Base for op params."""


@dataclass(frozen=True)
class Op:
    name: str
    kind: Kind
    params: type[Params]
    fn: Callable
    doc: str


_OPS: dict[str, Op] = {}
_loaded = False


def register(
    name: str, kind: Kind, params: type[Params] = Params
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as op ``name``; its docstring is what ``smallcomp ops`` shows."""
    if kind not in KINDS:
        raise ValueError(f"op {name!r}: kind must be one of {KINDS}, got {kind!r}")

    def deco(fn: Callable) -> Callable:
        if name in _OPS and _OPS[name].fn is not fn:
            raise ValueError(f"op {name!r} is registered twice")
        _OPS[name] = Op(name, kind, params, fn, (fn.__doc__ or "").strip())
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
