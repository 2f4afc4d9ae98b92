"""Eval tasks by name: a track's suite lists them, results are keyed by them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

BUILTIN_MODULES = ("benchmark.evaluate.shapes", "benchmark.evaluate.suite")


@dataclass(frozen=True)
class Task:
    name: str
    fn: Callable  # (bundle: ClipBundle, options: dict) -> {"dataset", "task", "metrics", ...}
    headline: str  # the metric the leaderboard shows for this task


_TASKS: dict[str, Task] = {}


def register(name: str, headline: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        _TASKS[name] = Task(name, fn, headline)
        return fn

    return deco


def _load() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    _load()
    return sorted(_TASKS)


def get(name: str) -> Task:
    _load()
    return _TASKS[name]
