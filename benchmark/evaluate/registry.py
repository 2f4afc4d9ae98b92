"""Eval tasks by name: a track's suite lists them, results are keyed by them.

Each task declares its options as a params model, so a track's ``eval.options`` are checked when
the track loads (a typo or a missing eval directory fails ``validate``, not the run after
training). Task modules import their heavy libraries inside the task, so loading them to read
names and params is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.registry import Registry
from benchmark.spec.strict import Strict

BUILTIN_MODULES = ("benchmark.evaluate.shapes", "benchmark.evaluate.suite")


@dataclass(frozen=True)
class Task:
    name: str
    fn: Callable  # (bundle: ClipBundle, params) -> {"dataset", "task", "metrics", ...}
    headline: str  # the metric the leaderboard shows for this task
    params: type[Strict]  # its options in a track's ``eval.options``


_TASKS: Registry[Task] = Registry("eval task", BUILTIN_MODULES)


def register(name: str, headline: str, params: type[Strict]) -> Callable[[Callable], Callable]:
    """Register ``fn(bundle, params)`` as task ``name``, its options validated by ``params``."""

    def deco(fn: Callable) -> Callable:
        _TASKS.add(name, Task(name, fn, headline, params))
        return fn

    return deco


def names() -> list[str]:
    return _TASKS.names()


def get(name: str) -> Task:
    """The task called ``name``; a KeyError's message suggests the closest names."""
    return _TASKS.get(name)
