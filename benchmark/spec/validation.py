"""Turn pydantic errors on located YAML into one ``FILE:LINE:COL`` line naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from benchmark.spec.errors import SpecError
from benchmark.spec.yamlfile import Located

M = TypeVar("M", bound=BaseModel)


def field_name(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate(doc: Located, model: type[M], data: object, prefix: tuple = ()) -> M:
    """Validate ``data`` (found at ``prefix`` in ``doc``); the first error becomes a SpecError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = prefix + tuple(p for p in err["loc"] if not _is_union_tag(p))
        raise located(doc, loc, err) from None


def _is_union_tag(p: object) -> bool:
    # pydantic puts the member type name into loc for unions, e.g. 'function-after[...]'
    return isinstance(p, str) and ("[" in p or p in {"int", "float", "str", "list", "dict"})


def located(doc: Located, loc: tuple, err: dict) -> SpecError:
    kind, msg = err["type"], err["msg"]
    name = field_name(loc)
    if kind == "extra_forbidden":
        return doc.error(loc, f"unknown field '{name}'", key=True)
    if kind == "missing":
        return doc.error(loc[:-1], f"missing required field '{name}'")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return doc.error(loc, f"field '{name}': {msg}")
