"""Turn pydantic errors on located YAML into one ``FILE:LINE:COL`` line naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from benchmark.spec.errors import SpecError
from benchmark.spec.yamlfile import Located, field_name

M = TypeVar("M", bound=BaseModel)


def validate(
    doc: Located,
    model: type[M],
    data: object,
    prefix: tuple = (),
    context: dict | None = None,
    origin: Mapping[str, tuple] | None = None,
) -> M:
    """Validate ``data`` (found at ``prefix`` in ``doc``); the first error becomes a SpecError.

    ``context`` reaches field validators (:func:`benchmark.spec.paths.data_context`); ``origin``
    gives the prefix of top-level keys written elsewhere (options shared by several eval tasks),
    so an error in one points at where it was written.
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        # A misspelt key also leaves its field missing: name the misspelling, which is the cause.
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        at = (origin or {}).get(loc[0], prefix) if loc else prefix
        raise located(doc, at + loc, err) from None


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
