"""Which model files may be loaded: a recipe is data, so nothing it names may run code on loading.

Several loaders run code from the files they read. Unpickling runs whatever the pickle's author
put in it (ultralytics ``.pt`` files are whole pickled models; torch ``.pt``/``.bin`` files are
pickles); ultralytics passes a model yaml's ``activation`` to ``eval`` and calls any name of its
module namespace that the yaml gives as a layer; open_clip hands a saved directory's
``tokenizer_kwargs`` to transformers, so ``trust_remote_code`` there imports the directory's
Python; diffusers and transformers directories can name ``.py`` files of their own (``auto_map``,
custom components, custom pipelines). So a file a recipe names loads only in a form that runs
none: safetensors weights (checked by content, not by name), JSON configs without code hooks,
model yamls whose layers are torch layer classes.

Pickled weights come only from paths the caller allows: the track's own settings (the track is the
benchmark's, not the submitter's) and the paths the user gives with ``--allow-weights``. The check
runs twice: when a recipe is validated (a located error before any work) and in the loaders
themselves, which refuse an unallowed file whoever calls them. Diffusion pipelines have no
allow-list: they always load from safetensors, with diffusers' and transformers' own classes only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel

Loader = Literal["clip", "clip_weights", "detector", "pipeline"]

# Weight formats whose loaders unpickle (torch, ultralytics, joblib).
PICKLED = frozenset({".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"})
# Config keys with which transformers, open_clip and diffusers import code named by the directory.
CODE_KEYS = frozenset({"trust_remote_code", "auto_map", "custom_pipeline"})
# Where a diffusion pipeline's components may come from: diffusers imports any other module it is
# told to. The safety checker is never loaded (``DiffusionInpainter`` replaces it with None).
LIBRARIES = frozenset({"diffusers", "transformers"})
UNLOADED = frozenset({"safety_checker"})
SCHEMAS = ("hf-hub:", "local-dir:")  # open_clip fetches config and tokenizer from elsewhere
MAX_HEADER = 100 << 20  # the largest JSON header the safetensors library itself accepts


class UnsafeModel(ValueError):
    """A model a recipe names would run code when loaded (or cannot be shown not to)."""


@dataclass(frozen=True)
class Loads:
    """Marks an op param as naming a model that ``loader`` reads, so validation checks it."""

    loader: Loader


ClipModel = Annotated[str | None, Loads("clip")]
ClipWeights = Annotated[str | None, Loads("clip_weights")]
DetectorModel = Annotated[str | None, Loads("detector")]
PipelineModel = Annotated[str | None, Loads("pipeline")]


def named_models(params: BaseModel) -> Iterator[tuple[str, Loader, str]]:
    """(field, loader, value) for every param that names a model and is set."""
    for name, field in type(params).model_fields.items():
        value = getattr(params, name)
        for mark in field.metadata:
            if isinstance(mark, Loads) and value is not None:
                yield name, mark.loader, value


def allowed(value: str, allow: Collection[str | Path | None]) -> bool:
    """Whether ``value`` is one of the allowed paths or lies inside an allowed directory (symlinks
    resolved, so a link cannot lead out of an allowed directory). Paths are taken as the loaders
    take them: relative to the working directory, ``~`` not expanded."""
    path = Path(value).resolve()
    roots = [Path(a).resolve() for a in allow if a is not None]
    return any(path == root or root in path.parents for root in roots)


def check(loader: Loader, value: str | None, allow: Collection[str | Path | None] = ()) -> None:
    """Raise UnsafeModel unless ``loader`` can read ``value`` without running code in it.

    An allowed path is the caller's to vouch for and is not checked (pipelines excepted)."""
    if value is None or (loader != "pipeline" and allowed(value, allow)):
        return
    if loader == "clip":
        _clip_model(value)
    elif loader == "clip_weights":
        if Path(value).exists():  # otherwise an open_clip pretrained tag
            safetensors(Path(value))
    elif loader == "detector":
        _detector(value)
    elif Path(value).is_dir():  # otherwise a hub id, checked once downloaded
        pipeline_dir(Path(value))


def _clip_model(name: str) -> None:
    if name.startswith(SCHEMAS):
        raise UnsafeModel(
            f"'{name}': open_clip would take config and tokenizer from elsewhere; name a model "
            "config or a local directory"
        )
    path = Path(name)
    if path.is_dir():
        model_dir(path)
        pickled = sorted(f.name for f in path.iterdir() if f.suffix in PICKLED)
        if pickled:
            raise UnsafeModel(
                f"{path} holds pickled weights ({', '.join(pickled)}), which open_clip could load; "
                "keep only safetensors there, or allow the directory with --allow-weights"
            )


def _detector(model: str) -> None:
    if "://" in model:
        raise UnsafeModel(f"'{model}': a detector is named by local path or ultralytics yaml name")
    if Path(model).suffix not in (".yaml", ".yml"):
        raise UnsafeModel(
            f"'{model}' is not a model yaml: ultralytics loads weights by unpickling them, which "
            "runs any code they hold; name a model yaml, or allow the file with --allow-weights"
        )
    from benchmark.models.detector import check_config

    check_config(model)


def safetensors(path: Path) -> None:
    """Refuse a file that is not safetensors by name and by content: loaders pick their format by
    the name, and a pickle renamed ``.safetensors`` must be refused, not unpickled."""
    if path.suffix != ".safetensors":
        raise UnsafeModel(
            f"{path} is not a .safetensors file: other weight formats are pickles, which run code "
            "when loaded; convert it to safetensors, or allow it with --allow-weights"
        )
    size = path.stat().st_size
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = f.read(n) if 0 < n <= min(size - 8, MAX_HEADER) else b""
    try:
        ok = isinstance(json.loads(header), dict)
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise UnsafeModel(f"{path} is named .safetensors but is not a safetensors file")


def model_dir(path: Path) -> None:
    """Refuse a model directory with Python code in it, a JSON config that asks a loader to import
    code, or a ``.safetensors`` file that is not one."""
    for f in sorted(f for f in path.rglob("*") if f.is_file()):
        if f.suffix == ".py":
            where = f.relative_to(path)
            raise UnsafeModel(f"{path} holds Python code ({where}), which a loader could import")
        if f.suffix == ".json":
            key = _code_key(_json(f))
            if key:
                raise UnsafeModel(f"{f}: '{key}' would make the loader import code; remove it")
        elif f.suffix == ".safetensors":
            safetensors(f)


def pipeline_dir(path: Path) -> None:
    """A diffusers pipeline directory: ``model_dir``'s checks, a built-in pipeline class, components
    from diffusers and transformers only, and safetensors weights for each (``.bin`` files are
    pickles, and never loaded)."""
    model_dir(path)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise UnsafeModel(f"{path} has no model_index.json: not a diffusers pipeline directory")
    index = _json(index_file)
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise UnsafeModel(f"{index_file}: '_class_name' must name a diffusers pipeline class")
    for name, entry in index.items():
        if name.startswith("_") or name in UNLOADED or not isinstance(entry, list):
            continue
        library = entry[0] if entry else None
        if library is not None and library not in LIBRARIES:
            raise UnsafeModel(
                f"{index_file}: component '{name}' comes from '{library}'; only diffusers and "
                "transformers components are loaded"
            )
        files = [f for f in (path / name).glob("*") if f.is_file()]
        if any(f.suffix in PICKLED for f in files) and not any(
            f.suffix == ".safetensors" for f in files
        ):
            raise UnsafeModel(
                f"{path / name} has only pickled weights; pipelines load from safetensors "
                "(diffusers' save_pretrained writes them)"
            )


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UnsafeModel(f"{path} is not valid JSON: {e}") from None


def _code_key(data: object) -> str | None:
    """The first key, at any depth, that asks for code (``trust_remote_code: false`` is fine)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in CODE_KEYS and v not in (False, None):
                return k
            found = _code_key(v)
            if found:
                return found
    elif isinstance(data, list):
        for v in data:
            found = _code_key(v)
            if found:
                return found
    return None
