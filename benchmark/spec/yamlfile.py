"""YAML loading that remembers where every value came from.

Pydantic reports errors by path (``steps.2.fraction``); users need ``file:line:col``. We read the
safe parser's event stream, build plain Python values from it ourselves, and keep a map from each
path to the position of its node, so any validation error can point at the text.

A recipe comes from anyone, so building is a loop over events (no recursion to exhaust) with caps
on file size, nesting, values and alias expansion, only the YAML tags plain data needs, and only
finite numbers of a sane size: hostile input is refused in milliseconds, with its position.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmark.spec.errors import SpecError

Path_ = tuple[str | int, ...]

MAX_BYTES = 1 << 20  # recipes and tracks are a few KB (the largest shipped one is under 3 KB)
MAX_DEPTH = 64  # nested mappings and lists; shipped files nest at most 4 deep
MAX_VALUES = 10_000  # scalars, keys and collections after alias expansion; shipped: under 250
MAX_INT = 2**53  # the largest integer a float (and a JSON number) holds exactly
_MAX_INT_CHARS = 64  # a longer integer literal is out of range, and some are slow to convert


class Located:
    """A document's data plus the (line, col) of every node and every mapping key, by path."""

    def __init__(self, file: str, data: Any, values: dict, keys: dict) -> None:
        self.file = file
        self.data = data
        self._values = values
        self._keys = keys

    def where(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """Position of the deepest node on ``path`` that exists (keys point at the key text)."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            p = path[:n]
            if key and n == len(path) and p in self._keys:
                return self._keys[p]
            if p in self._values:
                return self._values[p]
        return (1, 1)

    def error(self, path: Sequence[str | int], message: str, *, key: bool = False) -> SpecError:
        line, col = self.where(path, key=key)
        return SpecError(self.file, line, col, message)


def field_name(path: Sequence[str | int]) -> str:
    """``steps[2].fraction``: a path the way the user would write it."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


_TAG = "tag:yaml.org,2002:"
_INT, _MERGE = _TAG + "int", _TAG + "merge"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null"))
_LOADER = yaml.SafeLoader("")  # its resolver and scalar constructors, nothing else
# libyaml's parser is about 20x faster than the pure-Python one and emits the same events.
_PARSER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


def _mark(event: yaml.Event) -> tuple[int, int]:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _short(value: object) -> str:
    """``repr(value)`` cut to fit in a one-line message (a hostile value may be a megabyte)."""
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


@dataclass(slots=True)
class _Open:
    """A mapping or list whose end event has not come yet."""

    path: Path_
    value: dict | list
    anchor: str | None
    start: int  # values counted before it: its size, for an alias, is the count at its end - this
    key: str | None = None  # a mapping's key waiting for its value


class _Builder:
    """Plain values from parser events in one loop, refusing what no spec needs (see module)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # finished anchors: value, values in it
        self.count = 0
        self.root: Any = None

    def document(self, events: Iterator[yaml.Event]) -> Any:
        """The one document in ``events``; ``()`` is missing from ``values`` when there is none."""
        for event in events:
            if isinstance(event, yaml.NodeEvent | yaml.CollectionEndEvent) and self._feed(event):
                break
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                raise self._refuse(event, "a spec is one YAML document; found a second '---'")
        return self.root

    def _refuse(self, event: yaml.Event, message: str) -> SpecError:
        return SpecError(self.file, *_mark(event), message)

    def _feed(self, event: yaml.Event) -> bool:
        """Take one event; True once the document's top-level value is complete."""
        if isinstance(event, yaml.CollectionEndEvent):
            done = self.stack.pop()
            if done.anchor is not None:
                self.anchors[done.anchor] = (done.value, self.count - done.start)
            return self._add(done.value)
        path, is_key = self._slot()
        if isinstance(event, yaml.CollectionStartEvent):
            self._open(event, path, is_key)
            return False
        if isinstance(event, yaml.AliasEvent):
            value = self._alias(event)
        else:
            value = self._scalar(event, path, is_key)
        if is_key:
            self._key(event, value)
            return False
        self.values[path] = _mark(event)
        return self._add(value)

    def _slot(self) -> tuple[Path_, bool]:
        """Path of the node starting now, and whether it is a mapping's key (then: the mapping)."""
        if not self.stack:
            return (), False
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.path + (len(top.value),), False
        if top.key is None:
            return top.path, True
        return top.path + (top.key,), False

    def _add(self, value: Any) -> bool:
        if not self.stack:
            self.root = value
            return True
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            top.value[top.key] = value
            top.key = None
        return False

    def _count(self, event: yaml.Event, n: int = 1) -> None:
        self.count += n
        if self.count > MAX_VALUES:
            what = f"alias '*{event.anchor}' expands" if n > 1 else "file has"
            raise self._refuse(
                event, f"{what} more than {MAX_VALUES:,} values; a recipe or track is small"
            )

    def _open(self, event: yaml.CollectionStartEvent, path: Path_, is_key: bool) -> None:
        mapping = isinstance(event, yaml.MappingStartEvent)
        if is_key:
            kind = "mapping" if mapping else "list"
            raise self._refuse(event, f"mapping keys must be plain names, got a {kind}")
        if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
            raise self._refuse(event, f"YAML tag '{_tag_name(event.tag)}' is not supported")
        if len(self.stack) >= MAX_DEPTH:
            raise self._refuse(event, f"nested more than {MAX_DEPTH} levels deep")
        self._count(event)
        self.values[path] = _mark(event)
        if event.anchor is not None:
            self.anchors.pop(event.anchor, None)  # redefined: an alias inside it is recursive
        self.stack.append(_Open(path, {} if mapping else [], event.anchor, self.count - 1))

    def _alias(self, event: yaml.AliasEvent) -> Any:
        name = event.anchor
        if name not in self.anchors:
            if any(o.anchor == name for o in self.stack):
                raise self._refuse(event, f"alias '*{name}' is inside its own anchor (recursive)")
            raise self._refuse(event, f"alias '*{name}' has no anchor '&{name}' before it")
        value, size = self.anchors[name]
        self._count(event, size)
        return copy.deepcopy(value)  # each use its own value, as if written out

    def _scalar(self, event: yaml.ScalarEvent, path: Path_, is_key: bool) -> Any:
        self._count(event)
        tag, plain = event.tag, event.tag in (None, "!")
        if plain:
            tag = _LOADER.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE and is_key:
            raise self._refuse(event, "YAML merge keys ('<<') are not supported")
        if tag not in _SCALAR_TAGS:
            hint = f"; quote {_short(event.value)} to make it a string" if plain else ""
            raise self._refuse(event, f"YAML tag '{_tag_name(tag)}' is not supported{hint}")
        field = f"field '{field_name(path)}'"
        if tag == _INT and len(event.value.replace("_", "")) > _MAX_INT_CHARS:
            raise self._refuse(event, f"{field}: integer out of range (beyond ±2**53)")
        try:
            node = yaml.ScalarNode(tag, event.value)
            value = _LOADER.yaml_constructors[tag](_LOADER, node)
        except (ValueError, KeyError):
            raise self._refuse(
                event, f"{field}: {_short(event.value)} is not a valid '{_tag_name(tag)}'"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self._refuse(
                event, f"{field}: must be a finite number, not {_short(event.value)}"
            )
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise self._refuse(event, f"{field}: integer out of range (beyond ±2**53)")
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        return value

    def _key(self, event: yaml.Event, value: Any) -> None:
        top = self.stack[-1]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._refuse(event, f"mapping keys must be plain names, got {_short(value)}")
        key = str(value)
        if key in top.value:
            raise self._refuse(event, f"duplicate key '{key}'")
        self.keys[top.path + (key,)] = _mark(event)
        top.key = key


def _read(path: str | Path) -> bytes:
    """The file's bytes, refusing (without reading it all) one too large to be a spec."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise SpecError(file, 1, 1, f"cannot read file: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        what = f"{size:,} bytes" if size > MAX_BYTES else f"over {MAX_BYTES:,} bytes"
        raise SpecError(file, 1, 1, f"file is {what}; a recipe or track may be at most 1 MiB")
    return raw


def load_yaml(path: str | Path) -> Located:
    """Read one YAML document; syntax errors, undecodable bytes and every refusal of hostile
    input (see the module docstring) become a located SpecError."""
    file = str(path)
    raw = _read(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(file, line, col, "file is not valid UTF-8") from None
    builder = _Builder(file)
    try:
        data = builder.document(yaml.parse(text, Loader=_PARSER))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (e.context, e.problem) if x)
        here = text.split("\n", line)[line - 1 : line] if mark else []  # not mark.index: bytes
        if here and here[0][col - 1 : col] == "\t":
            what += " (a tab: YAML indents with spaces)"
        raise SpecError(file, line, col, f"YAML syntax error: {what}") from None
    except yaml.reader.ReaderError as e:
        at = text.find(chr(e.character))  # libyaml counts bytes, PyYAML characters: find it
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        raise SpecError(file, line, col, f"YAML syntax error: {str(e).splitlines()[0]}") from None
    except yaml.YAMLError as e:
        raise SpecError(file, 1, 1, f"YAML error: {e}") from None
    if () not in builder.values:
        raise SpecError(file, 1, 1, "file is empty")
    if not isinstance(data, dict):
        raise SpecError(file, *builder.values[()], "top level must be a mapping of fields")
    return Located(file, data, builder.values, builder.keys)
