"""Eval tasks by name: a track's suite lists them, results are keyed by them.

Each task declares its options as a params model, so a track's ``eval.options`` are checked when
the track loads (a typo or a missing eval directory fails ``validate``, not the run after
training). Task modules import their heavy libraries inside the task, so loading them to read
names and params is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.spec.strict import Strict

BUILTIN_MODULES = ("benchmark.evaluate.shapes", "benchmark.evaluate.suite")


@dataclass(frozen=True)
class Task:
    name: str
    fn: Callable  # (bundle: ClipBundle, params) -> {"dataset", "task", "metrics", ...}
    headline: str  # the metric the leaderboard shows for this task
    params: type[Strict]  # its options in a track's ``eval.options``


_TASKS: dict[str, Task] = {}


def register(name: str, headline: str, params: type[Strict]) -> Callable[[Callable], Callable]:
    """Register ``fn(bundle, params)`` as task ``name``, its options validated by ``params``."""

    def deco(fn: Callable) -> Callable:
        _TASKS[name] = Task(name, fn, headline, params)
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
