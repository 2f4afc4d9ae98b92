"""Path fields in a track's options (pool, eval tasks): typed, so that loading resolves and checks
them, and a missing eval directory fails ``validate`` instead of the run after training.

A field typed ``DataDir``, ``DataFile`` or ``DataPattern`` expands ``$VAR`` / ``${VAR:-default}``
from the environment and, when validated with :func:`data_context`, resolves a relative path
against the track's data root. ``DataDir`` and ``DataFile`` must then exist, checked only when the
data root itself does: a track may name a data root that is not on this machine (``coco`` and
``cc3m`` read ``$SMALLCOMP_DATA``), and it still validates here; where that data is installed,
every path in it is checked. A ``DataPattern`` (a glob of shards) is resolved, not checked: its
pool's build says when it matches nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, ValidationInfo

_DATA_ROOT = "data_root"  # the validation-context key :func:`data_context` sets


def expand(text: str) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` from the environment."""
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1]) or m[2], text)
    return os.path.expandvars(text)


def data_context(root: Path) -> dict:
    """The validation context that makes path fields resolve against ``root`` and be checked."""
    return {_DATA_ROOT: root}


def _resolver(must_be: Literal["dir", "file"] | None):
    def resolve(value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str | os.PathLike):
            return value  # pydantic's own type error names it
        text = expand(os.fspath(value))
        root = (info.context or {}).get(_DATA_ROOT)
        if root is None:
            return text
        path = Path(root) / text
        if must_be == "dir" and Path(root).is_dir() and not path.is_dir():
            raise ValueError(f"no such directory: {path}")
        if must_be == "file" and Path(root).is_dir() and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return str(path)

    return BeforeValidator(resolve)


DataDir = Annotated[Path, _resolver("dir")]
DataFile = Annotated[Path, _resolver("file")]
DataPattern = Annotated[str, _resolver(None)]


# A recipe's op params may name files beside the recipe (``uids``: a list of uids). They stay in
# the params as written, relative to the recipe, so the recipe's hash is the same wherever it
# is checked out; loading reads them through this context and records what it must (a digest).
_RECIPE_DIR = "recipe_dir"


def recipe_context(recipe_dir: Path) -> dict:
    """The validation context of a recipe's op params: the directory its files are relative to."""
    return {_RECIPE_DIR: Path(recipe_dir)}


def recipe_dir(info: ValidationInfo) -> Path | None:
    """The recipe's directory while the recipe loads; None when params are validated again
    later (curation, budget checks), which reads no files."""
    return (info.context or {}).get(_RECIPE_DIR)
