"""YAML loading that remembers where every value came from.

Pydantic reports errors by path (``steps.2.fraction``); users need ``file:line:col``. We compose
the YAML node tree with the safe loader, build plain Python values from it ourselves, and keep a
map from each path to the position of its node, so any validation error can point at the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmark.spec.errors import SpecError

Path_ = tuple[str | int, ...]


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


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(node: yaml.Node, path: Path_, file: str, values: dict, keys: dict) -> Any:
    values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                line, col = _mark(knode)
                raise SpecError(file, line, col, "YAML merge keys ('<<') are not supported")
            k = _scalar(knode)
            if not isinstance(k, str | int | float | bool) or isinstance(k, bool):
                line, col = _mark(knode)
                raise SpecError(file, line, col, f"mapping keys must be plain names, got {k!r}")
            k = str(k)
            if k in out:
                line, col = _mark(knode)
                raise SpecError(file, line, col, f"duplicate key '{k}'")
            keys[path + (k,)] = _mark(knode)
            out[k] = _build(vnode, path + (k,), file, values, keys)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (i,), file, values, keys) for i, v in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return node  # a collection used as a key; rejected by the caller
    return _LOADER.construct_object(node, deep=True)


_LOADER = yaml.SafeLoader("")


def load_yaml(path: str | Path) -> Located:
    """Read one YAML document; syntax errors and undecodable bytes become a located SpecError."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise SpecError(file, 1, 1, f"cannot read file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(file, line, col, "file is not valid UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise SpecError(file, line, col, f"YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise SpecError(file, 1, 1, f"YAML error: {e}") from None
    if node is None:
        raise SpecError(file, 1, 1, "file is empty")
    values: dict = {}
    keys: dict = {}
    try:
        data = _build(node, (), file, values, keys)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError(file, line, col, f"YAML value error: {e.problem}") from None
    if not isinstance(data, dict):
        raise SpecError(file, *values[()], "top level must be a mapping of fields")
    return Located(file, data, values, keys)
