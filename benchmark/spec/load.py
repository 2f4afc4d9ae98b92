"""Load tracks and recipes from YAML into validated specs; every error is one located line."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmark import columns, pools
from benchmark.device import default_device
from benchmark.evaluate import registry as tasks
from benchmark.models import trust
from benchmark.models.clip_configs import known_config
from benchmark.ops import registry as ops
from benchmark.spec.errors import SpecError
from benchmark.spec.paths import data_context, expand, recipe_context
from benchmark.spec.recipe import Recipe, Step
from benchmark.spec.strict import Strict
from benchmark.spec.track import Eval, Scale, Track
from benchmark.spec.validation import validate
from benchmark.spec.yamlfile import Located, field_name, load_yaml
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
MAX_INCLUDES = 8  # how deep ``include:`` may nest; the shipped recipes nest 2 deep
INHERITED = ("track", "sampler", "loss")  # what a recipe takes from the one it includes


@dataclass(frozen=True)
class TrackSpec:
    track: Track
    pool: pools.PoolParams
    reference_pool: pools.PoolParams | None
    file: str
    data_root: Path
    eval_params: dict[str, Strict]  # each eval task's validated options, paths resolved

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
    includes: tuple[str, ...] = ()  # the files it includes, each the one the previous includes
    expanded: dict | None = None  # with includes: the recipe as one file would write it

    @property
    def hash(self) -> str:
        """Identity of what the recipe does: its steps, sampler and loss, not its prose. A file
        a step names counts by its content: loading records its sha256 in the step's params.
        The steps are the resolved ones, so ``include:`` changes no hash."""
        return digest(self.recipe.model_dump(include={"steps", "sampler", "loss"}))

    def source(self) -> bytes:
        """The recipe file as written; for a recipe that includes others, one recipe that
        stands alone with the same name, steps and hash (what a submission bundle ships)."""
        if self.expanded is None:
            return Path(self.file).read_bytes()
        head = f"# {self.file}, its include: expanded ({' -> '.join(self.includes)})\n"
        return (head + yaml.safe_dump(self.expanded, sort_keys=False, allow_unicode=True)).encode()


def _pool_params(doc: Located, data: object, prefix: tuple, root: Path) -> pools.PoolParams:
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise doc.error(prefix, f"field '{'.'.join(prefix)}' needs a 'kind' naming the pool type")
    try:
        kind = pools.get(data["kind"])
    except KeyError as e:
        raise doc.error(prefix + ("kind",), str(e.args[0])) from None
    return validate(doc, kind.params, data, prefix, data_context(root))


def _eval_params(doc: Located, ev: Eval, root: Path) -> dict[str, Strict]:
    """Each listed task's options, validated by the task's params model.

    ``options.all`` holds options several tasks share: each goes to every listed task whose
    params have it, unless the task's own options set it; one that no listed task takes is an
    error, as a typo is.
    """
    where = ("eval", "options")
    models = {}
    for i, name in enumerate(ev.tasks):
        try:
            models[name] = tasks.get(name).params
        except KeyError as e:
            raise doc.error(("eval", "tasks", i), str(e.args[0])) from None
    for key in ev.options:
        if key != "all" and key not in models:
            at = where + (key,)
            raise doc.error(
                at, f"field '{field_name(at)}': no task '{key}' in eval.tasks", key=True
            )
    shared = ev.options.get("all", {})
    for key in shared:
        if not any(key in m.model_fields for m in models.values()):
            at = where + ("all", key)
            msg = f"unknown field '{field_name(at)}': no task in eval.tasks takes it"
            raise doc.error(at, msg, key=True)
    out = {}
    for name, model in models.items():
        own = ev.options.get(name, {})
        common = {k: v for k, v in shared.items() if k in model.model_fields and k not in own}
        data = common | own
        origin = dict.fromkeys(common, where + ("all",))
        out[name] = validate(doc, model, data, where + (name,), data_context(root), origin)
    return out


def load_spec(path: str | Path, allow_weights: Collection[str] = ()) -> TrackSpec | RecipeSpec:
    """A track or a recipe from one read of the file, told apart by their fields: tracks define
    a pool, scales or an eval suite, and recipes may set none of these."""
    doc = load_yaml(path)
    if {"scales", "pool", "eval"} & set(doc.data):
        return _track(doc)
    return _recipe(doc, allow_weights=allow_weights)


def load_track(path: str | Path) -> TrackSpec:
    return _track(load_yaml(path))


def _track(doc: Located) -> TrackSpec:
    track = validate(doc, Track, doc.data)
    root = Path(doc.file).parent
    if track.data_root is not None:
        root = (root / expand(track.data_root)).resolve()
    pool = _pool_params(doc, track.pool, ("pool",), root)
    ref_pool = None
    if track.reference is not None and track.reference.pool is not None:
        ref_pool = _pool_params(doc, track.reference.pool, ("reference", "pool"), root)
    eval_params = _eval_params(doc, track.eval, root)
    for name, scale in track.scales.items():
        if not known_config(scale.model):
            raise doc.error(("scales", name, "model"), f"unknown model config '{scale.model}'")
    return TrackSpec(track, pool, ref_pool, doc.file, root, eval_params)


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


def _benchmark_track(path: Path) -> bool:
    """Whether ``path`` is one of the benchmark's own tracks (this checkout's ``tracks/``), whose
    pickled models are trusted as the benchmark's settings."""
    return Path(path).resolve().parent == Path(__file__).resolve().parents[2] / "tracks"


def _check_track_models(doc: Located, track: TrackSpec, allow: Collection[str]) -> None:
    """A track a recipe brings along (by path, or next to itself) is the submitter's, not the
    benchmark's: the models it names are held to the recipe's rule, so shipping a track with a
    pickled detector cannot run code. ``--track`` on the command line is the user's own choice."""
    t = track.track
    named: list[tuple[str, trust.Loader, str | None]] = [
        ("detector.model", "detector", t.detector.model if t.detector else None),
        ("reference.model", "clip", t.reference.model if t.reference else None),
        ("reference.pretrained", "clip_weights", t.reference.pretrained if t.reference else None),
    ]
    named += [(f"scales.{n}.pretrained", "clip_weights", s.pretrained) for n, s in t.scales.items()]
    for field, loader, value in named:
        if value is None:
            continue
        try:
            trust.check(loader, value, allow)
        except trust.UnsafeModel as e:
            raise doc.error(
                ("track",),
                f"field 'track': {track.file} is not one of the benchmark's tracks, "
                f"and its '{field}' {e}",
            ) from None


def _step(
    doc: Located,
    raw: object,
    where: tuple,
    sampler: bool,
    allow_weights: Collection[str] = (),
    base: Path | None = None,
) -> Step:
    """``raw`` checked as a step (``doc`` says where it was written); files it names are
    relative to ``base``, the loading recipe's directory (default: ``doc``'s)."""
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
    base = Path(doc.file).parent if base is None else base
    validated = validate(doc, op.params, params, where, recipe_context(base))
    for name, loader, value in trust.named_models(validated):
        try:
            trust.check(loader, value, allow_weights)
        except trust.UnsafeModel as e:
            at = where + (name,)
            raise doc.error(at, f"field '{field_name(at)}': {e}") from None
    # JSON mode: params are data, like the YAML they came from, so every report, hash and
    # worker they travel to takes them as they are (a Path-typed option stays a string).
    return Step(op=op.name, params=validated.model_dump(mode="json"))


def _with_includes(doc: Located) -> list[Located]:
    """``doc``, then the recipe it includes, then the one that includes, and so on.

    ``include:`` names a recipe file relative to the including one; each is read by
    ``load_yaml``, with all its caps. A missing or unreadable file, an include nested more
    than ``MAX_INCLUDES`` deep and a cycle are errors on the ``include`` field that names it;
    an error inside an included file points into that file."""
    docs = [doc]
    while "include" in docs[-1].data:
        d = docs[-1]
        raw = d.data["include"]
        if not isinstance(raw, str) or not raw.endswith((".yaml", ".yml")):
            raise d.error(
                ("include",),
                "field 'include' must name a recipe file (.yaml), relative to this one",
            )
        if len(docs) > MAX_INCLUDES:
            raise d.error(
                ("include",), f"field 'include': includes nest more than {MAX_INCLUDES} deep"
            )
        path = Path(d.file).parent / raw
        if not path.is_file():  # nor a directory, device or pipe
            raise d.error(("include",), f"field 'include': no recipe file {path}")
        seen = [Path(x.file).resolve() for x in docs]
        if path.resolve() in seen:
            cycle = [x.file for x in docs[seen.index(path.resolve()) :]] + [str(path)]
            raise d.error(
                ("include",), f"field 'include': recipes include each other: {' -> '.join(cycle)}"
            )
        try:
            path.open("rb").close()
        except OSError as e:
            raise d.error(
                ("include",), f"field 'include': cannot read {path}: {e.strerror}"
            ) from None
        docs.append(load_yaml(path))
    return docs


# What each training loss needs from the curated table, and the step that provides it.
LOSS_COLUMNS = {"negclip": (columns.NEGATIVES, "hard_negatives")}


def _writers(column: str) -> str:
    names = []
    for op in ops.all_ops():
        if not callable(op.writes) and column in op.writes:
            names.append(op.name)
    return f"; put a step that writes it first ({', '.join(names)})" if names else ""


def _check_columns(
    recipe: Recipe, track: TrackSpec, at: list[tuple[Located, tuple]], loss_doc: Located
) -> None:
    """Each step reads only columns the pool has or an earlier step writes, the sampler's
    columns exist, and the loss has what it trains on: checked from the ops' declarations,
    before any work, rather than as a failure after curation. ``at``: where each step, then
    the sampler, was written (a step of an included recipe is in that recipe's file)."""
    have = set(pools.get(track.pool.kind).visible_columns)
    placed = list(recipe.steps)
    if recipe.sampler is not None:
        placed.append(recipe.sampler)
    for (doc, where), step in zip(at, placed, strict=False):
        op = ops.get(step.op)
        params = op.params.model_validate(step.params)
        missing = [c for c in op.columns_read(params) if c not in have]
        if missing:
            column = missing[0]
            raise doc.error(
                where + ("op",),
                f"field '{field_name(where)}': '{op.name}' reads column '{column}', which "
                f"neither the pool nor an earlier step writes{_writers(column)}",
            )
        have |= set(op.columns_written(params))
    needed = LOSS_COLUMNS.get(recipe.loss)
    if needed and needed[0] not in have:
        raise loss_doc.error(
            ("loss",),
            f"field 'loss': {recipe.loss} trains on column '{needed[0]}', which no step "
            f"writes; add a '{needed[1]}' step",
        )


def load_recipe(
    path: str | Path,
    track_override: str | None = None,
    device: str | None = None,
    allow_weights: Collection[str] = (),
) -> RecipeSpec:
    """``allow_weights``: pickled model files the user lets the recipe name (``trust``)."""
    return _recipe(load_yaml(path), track_override, device, allow_weights)


def _recipe(
    doc: Located,
    track_override: str | None = None,
    device: str | None = None,
    allow_weights: Collection[str] = (),
) -> RecipeSpec:
    docs = _with_includes(doc)
    steps: list[tuple[Located, tuple, object]] = []  # each step's file, path in it, raw value
    inherited: dict[str, tuple[Located, object]] = {}  # INHERITED: the nearest file's value
    for d in reversed(docs):  # the innermost included recipe first: its steps come first
        data = dict(d.data)
        for key in data:
            if key in TRAINING_KEYS:
                raise d.error(
                    (key,),
                    f"recipe may not set '{key}': training settings are fixed by the track",
                    key=True,
                )
        data.pop("include", None)
        own = data.pop("steps", [])
        data.pop("sampler", None)
        if not isinstance(own, list):
            raise d.error(("steps",), "field 'steps' must be a list of steps")
        for key in ("track", "loss"):  # an included recipe's name and description stay its own
            if key not in data and key in inherited:
                data[key] = inherited[key][1]
        recipe = validate(d, Recipe, data)
        steps += [(d, ("steps", i), s) for i, s in enumerate(own)]
        inherited |= {key: (d, d.data[key]) for key in INHERITED if key in d.data}
    # Files a step names are relative to this recipe, wherever the step was written: curation
    # looks for them there, and the steps hash as if written here.
    base = Path(doc.file).parent
    recipe.steps = [_step(d, s, where, False, allow_weights, base) for d, where, s in steps]
    sampler_doc, sampler = inherited.get("sampler", (doc, None))
    if sampler is not None:
        recipe.sampler = _step(sampler_doc, sampler, ("sampler",), True, base=base)
    track_doc = inherited.get("track", (doc,))[0] if track_override is None else doc
    track_name = track_override or recipe.track
    try:
        track_file = find_track(track_name, Path(track_doc.file).parent)
    except FileNotFoundError:
        raise track_doc.error(("track",), f"field 'track': no track '{track_name}' found") from None
    track = load_track(track_file)
    if track_override is None and not _benchmark_track(track_file):
        _check_track_models(track_doc, track, allow_weights)
    loss_doc = inherited.get("loss", (doc,))[0]
    if recipe.loss not in track.track.rules.losses:
        allowed = ", ".join(track.track.rules.losses)
        raise loss_doc.error(("loss",), f"field 'loss': track allows only {allowed}")
    at = [(d, where) for d, where, _ in steps] + [(sampler_doc, ("sampler",))]
    _check_columns(recipe, track, at, loss_doc)
    if doc.data.get("steps"):
        steps_at = doc.where(("steps",), key=True)
    else:
        steps_at = doc.where(("include",), key=True) if steps else (1, 1)
    expanded = None
    if len(docs) > 1:
        expanded = {k: doc.data[k] for k in ("name", "description") if k in doc.data}
        expanded["track"] = inherited["track"][1]
        expanded["steps"] = [s for _, _, s in steps]
        expanded |= {k: inherited[k][1] for k in ("sampler", "loss") if k in inherited}
    includes = tuple(d.file for d in docs[1:])
    spec = RecipeSpec(recipe, track, doc.file, steps_at, includes, expanded)
    rows = getattr(track.pool, "size", None)
    if isinstance(rows, int):  # pools of unknown size are checked once built
        from benchmark.spec import budget

        budget.check(spec, rows, device or default_device(import_torch=False))
    return spec
