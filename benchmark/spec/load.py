"""Load tracks and recipes from YAML into validated specs; every error is one located line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark import pools
from benchmark.evaluate import registry as tasks
from benchmark.ops import registry as ops
from benchmark.spec.errors import SpecError
from benchmark.spec.recipe import Recipe, Step
from benchmark.spec.track import Scale, Track
from benchmark.spec.validation import field_name, validate
from benchmark.spec.yamlfile import Located, load_yaml
from benchmark.store import digest

TRAINING_KEYS = set(Scale.model_fields) | {
    "scale",
    "scales",
    "train",
    "training",
    "optimizer",
    "epochs",
    "pool",
    "eval",
    "reference",
}


PATH_KEYS = ("root", "path", "captions", "split_file", "image_root", "dir")


@dataclass(frozen=True)
class TrackSpec:
    track: Track
    pool: pools.PoolParams
    reference_pool: pools.PoolParams | None
    file: str
    data_root: Path

    def scale(self, name: str) -> Scale:
        if name not in self.track.scales:
            known = ", ".join(self.track.scales)
            raise SpecError(self.file, 1, 1, f"track has no scale '{name}' (scales: {known})")
        return self.track.scales[name]


@dataclass(frozen=True)
class RecipeSpec:
    recipe: Recipe
    track: TrackSpec
    file: str
    steps_at: tuple[int, int] = (1, 1)  # where the recipe lists its steps (for budget errors)

    @property
    def hash(self) -> str:
        """Identity of what the recipe does: its steps, sampler and loss, not its prose."""
        return digest(self.recipe.model_dump(include={"steps", "sampler", "loss"}))


def _pool_params(doc: Located, data: object, prefix: tuple) -> pools.PoolParams:
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise doc.error(prefix, f"field '{'.'.join(prefix)}' needs a 'kind' naming the pool type")
    try:
        kind = pools.get(data["kind"])
    except KeyError as e:
        raise doc.error(prefix + ("kind",), str(e.args[0])) from None
    return validate(doc, kind.params, data, prefix)


def expand(text: str) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` from the environment."""
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1]) or m[2], text)
    return os.path.expandvars(text)


def resolve_paths(data: dict, root: Path) -> dict:
    """Relative path-valued options point into the track's data root."""
    return {
        k: str(root / expand(v)) if k in PATH_KEYS and isinstance(v, str) else v
        for k, v in data.items()
    }


def load_track(path: str | Path) -> TrackSpec:
    doc = load_yaml(path)
    track = validate(doc, Track, doc.data)
    root = Path(path).parent
    if track.data_root is not None:
        root = (root / expand(track.data_root)).resolve()
    pool = _pool_params(doc, resolve_paths(track.pool, root), ("pool",))
    ref_pool = None
    if track.reference is not None and track.reference.pool is not None:
        ref_pool = _pool_params(
            doc, resolve_paths(track.reference.pool, root), ("reference", "pool")
        )
    for i, name in enumerate(track.eval.tasks):
        if name not in tasks.names():
            raise doc.error(("eval", "tasks", i), f"unknown eval task '{name}'")
    from benchmark.models.clip import known_config

    for name, scale in track.scales.items():
        if not known_config(scale.model):
            raise doc.error(("scales", name, "model"), f"unknown model config '{scale.model}'")
    return TrackSpec(track, pool, ref_pool, doc.file, root)


def find_track(name: str, near: Path) -> Path:
    """A track named in a recipe: a path, or ``tracks/<name>.yaml`` in a parent of the recipe."""
    if name.endswith((".yaml", ".yml")):
        p = Path(name) if Path(name).is_absolute() else near / name
        return p if p.exists() else Path(name)
    for d in [near.resolve(), *near.resolve().parents, Path.cwd()]:
        p = d / "tracks" / f"{name}.yaml"
        if p.exists():
            return p
    raise FileNotFoundError(name)


def _step(doc: Located, raw: object, where: tuple, sampler: bool) -> Step:
    if not isinstance(raw, dict):
        raise doc.error(where, f"field '{field_name(where)}' must be a mapping with an 'op'")
    if "op" not in raw:
        raise doc.error(where, f"field '{field_name(where)}' is missing 'op'")
    if not isinstance(raw["op"], str):
        raise doc.error(where + ("op",), f"field '{field_name(where)}.op' must be an op name")
    try:
        op = ops.get(raw["op"])
    except KeyError as e:
        raise doc.error(where + ("op",), str(e.args[0])) from None
    if sampler != (op.kind == "sample"):
        want = "a sampler" if sampler else "a data step (score/filter/map/generate)"
        raise doc.error(where + ("op",), f"'{op.name}' is a {op.kind} op; here it must be {want}")
    params = {k: v for k, v in raw.items() if k != "op"}
    return Step(op=op.name, params=validate(doc, op.params, params, where).model_dump())


def load_recipe(
    path: str | Path, track_override: str | None = None, device: str | None = None
) -> RecipeSpec:
    doc = load_yaml(path)
    data = dict(doc.data)
    for key in data:
        if key in TRAINING_KEYS:
            raise doc.error(
                (key,),
                f"recipe may not set '{key}': training settings are fixed by the track",
                key=True,
            )
    steps = data.pop("steps", [])
    sampler = data.pop("sampler", None)
    if not isinstance(steps, list):
        raise doc.error(("steps",), "field 'steps' must be a list of steps")
    recipe = validate(doc, Recipe, data)
    recipe.steps = [_step(doc, s, ("steps", i), sampler=False) for i, s in enumerate(steps)]
    if sampler is not None:
        recipe.sampler = _step(doc, sampler, ("sampler",), sampler=True)
    track_name = track_override or recipe.track
    try:
        track_file = find_track(track_name, Path(path).parent)
    except FileNotFoundError:
        raise doc.error(("track",), f"field 'track': no track '{track_name}' found") from None
    track = load_track(track_file)
    if recipe.loss not in track.track.rules.losses:
        allowed = ", ".join(track.track.rules.losses)
        raise doc.error(("loss",), f"field 'loss': track allows only {allowed}")
    steps_at = doc.where(("steps",), key=True) if steps else (1, 1)
    spec = RecipeSpec(recipe, track, doc.file, steps_at)
    rows = getattr(track.pool, "size", None)
    if isinstance(rows, int):  # pools of unknown size are checked once built
        from benchmark.spec import budget

        budget.check(spec, rows, device or ("cuda" if _cuda() else "cpu"))
    return spec


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
