"""Things found by name: ops, eval tasks, pool kinds. One registry type for all three.

A registry fills itself on first lookup by importing its built-in modules (each registers what
it defines at import) and, where it has one, the modules of an entry-point group (third-party
ops), so naming and checking things costs an import of light modules and nothing more. A name
is registered once; looking up one that is not there is a KeyError whose message suggests the
closest names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


def _known(names: list[str]) -> str:
    return f" (known: {', '.join(names)})"


class Registry(Generic[T]):
    """Items of one ``kind`` (``"op"``, ``"pool kind"``) by name.

    ``modules`` and the entry points of ``group`` are loaded on the first ``get``, ``names``
    or ``items``; registering (``add``, ``replace``) never loads, since it runs while those
    modules import. ``unmatched`` ends the KeyError's message when no name is close (by
    default the list of known names)."""

    def __init__(
        self,
        kind: str,
        modules: Iterable[str] = (),
        group: str | None = None,
        unmatched: Callable[[list[str]], str] = _known,
    ) -> None:
        self.kind = kind
        self.modules = tuple(modules)
        self.group = group
        self._unmatched = unmatched
        self._items: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first, so a module that looks a name up while importing is fine
        for module in self.modules:
            importlib.import_module(module)
        if self.group is not None:
            for ep in entry_points(group=self.group):
                ep.load()

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; a second, different item under one name is an error
        (the same item again is not: a module imported twice under one name)."""
        if name in self._items and self._items[name] != item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def replace(self, name: str, item: T) -> T:
        """Swap the item registered as ``name`` (which must be) for ``item``: a later
        decorator completing what an earlier one registered."""
        if name not in self._items:
            raise KeyError(f"{self.kind} '{name}' is not registered")
        self._items[name] = item
        return item

    def registered(self, name: str) -> T | None:
        """The item registered as ``name`` so far, without loading anything."""
        return self._items.get(name)

    def get(self, name: str) -> T:
        """The item called ``name``; a KeyError's message suggests the closest names."""
        self._load()
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else self._unmatched(self.names())
            raise KeyError(f"unknown {self.kind} '{name}'{hint}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs, sorted by name."""
        self._load()
        return sorted(self._items.items())
