"""The `shapes` suite: zero-shot classification and ARO/SugarCrepe-style choice sets, all drawn
from held-out scenes of the shapes world, so every negative is exactly and verifiably false."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from benchmark.evaluate.choice import choice_correct, item_se
from benchmark.evaluate.registry import register
from benchmark.spec.numbers import Seed
from benchmark.spec.strict import Strict
from benchmark.world import (
    COLOURS,
    INVERSE,
    SHAPES,
    Obj,
    Scene,
    clear_relation,
    relation,
    render,
    sample_objects,
    with_article,
)

if TYPE_CHECKING:
    from benchmark.models.clip import ClipBundle

EVAL_SEED = 1_000_003  # far from any pool seed: eval scenes are never pool scenes
CLASSNAMES = [f"{c} {s}" for s in SHAPES for c in COLOURS]
TEMPLATES = [
    "a {c}.",
    "a picture of a {c}.",
    "there is a {c}.",
    "a photo of a {c}.",
    "a {c} on a grey background.",
]

Item = tuple[tuple[Obj, ...], list[str]]  # objects, [positive, negatives...]


class SceneParams(Strict):
    """Options every shapes task takes: which held-out scenes, rendered how large."""

    seed: Seed = Field(EVAL_SEED, description="eval scene seed (far from every pool seed)")
    image_size: int = Field(64, ge=16, le=512, description="rendered scene size in pixels")


class ChoiceParams(SceneParams):
    n: int = Field(10_000, gt=0, description="choice sets drawn (scenes shared by the tasks)")


class ZeroshotParams(SceneParams):
    per_class: int = Field(250, gt=0, description="scenes per colour+shape class")


def _objects(rng: np.random.Generator, n: int, ok: Callable[[tuple[Obj, ...]], bool]):
    while True:
        objs = sample_objects(rng, n)
        if ok(objs):
            return objs


def _differ(objs: tuple[Obj, ...]) -> bool:
    a, b = objs[0], objs[1]
    return a.shape != b.shape and a.colour != b.colour and clear_relation(a, b)


def _with(o: Obj, **kw: str) -> Obj:
    return Obj(kw.get("shape", o.shape), kw.get("colour", o.colour), o.size, o.x, o.y)


def _rel(a: Obj, b: Obj, r: str | None = None) -> str:
    return f"{with_article(a.phrase())} {r or relation(a, b)} {with_article(b.phrase())}"


def _listed(objs) -> str:
    phrases = [with_article(o.phrase()) if isinstance(o, Obj) else o for o in objs]
    return (
        " and ".join(phrases)
        if len(phrases) < 3
        else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    )


def _other(rng: np.random.Generator, choices, exclude) -> str:
    left = [c for c in choices if c not in exclude]
    return left[rng.integers(len(left))]


# Every choice task poses its captions about the same held-out two-object scenes (a scene's
# image is encoded once per evaluation), each task drawing its own negatives.
Scene2 = tuple[Obj, Obj]


def relation_item(objs: Scene2, rng) -> list[str]:
    a, b = objs
    return [_rel(a, b), _rel(b, a)]


def attribution_item(objs: Scene2, rng) -> list[str]:
    a, b = objs
    return [_listed((a, b)), _listed((_with(a, colour=b.colour), _with(b, colour=a.colour)))]


def _orders(words: list[str], rng) -> list[str]:
    """ARO's four order perturbations, exact on this vocabulary (no tagger needed)."""
    content = set(SHAPES) | set(COLOURS)
    idx = [i for i, w in enumerate(words) if w in content]
    rest = [i for i, w in enumerate(words) if w not in content]
    out = []
    for group in (idx, rest):
        w = list(words)
        for i, j in zip(group, rng.permutation(group), strict=True):
            w[i] = words[j]
        out.append(" ".join(w))
    tri = [words[i : i + 3] for i in range(0, len(words), 3)]
    out.append(" ".join(" ".join(t[k] for k in rng.permutation(len(t))) for t in tri))
    out.append(" ".join(" ".join(tri[k]) for k in rng.permutation(len(tri))))
    return out


def order_item(objs: Scene2, rng) -> list[str]:
    pos = _rel(*objs)
    for _ in range(1000):  # four distinct perturbations, none the caption, come within a few
        negs = _orders(pos.split(), rng)
        if pos not in negs and len(set(negs)) == len(negs):
            return [pos, *negs]
    raise RuntimeError(f"no four distinct order perturbations of {pos!r}")


def replace_obj_item(objs: Scene2, rng) -> list[str]:
    new = _with(objs[0], shape=_other(rng, SHAPES, {x.shape for x in objs}))
    return [_listed(objs), _listed((new, objs[1]))]


def replace_att_item(objs: Scene2, rng) -> list[str]:
    new = _with(objs[0], colour=_other(rng, COLOURS, {x.colour for x in objs}))
    return [_listed(objs), _listed((new, objs[1]))]


def replace_rel_item(objs: Scene2, rng) -> list[str]:
    a, b = objs
    return [_rel(a, b), _rel(a, b, INVERSE[relation(a, b)])]


def swap_obj_item(objs: Scene2, rng) -> list[str]:
    a, b = objs
    r = relation(a, b)
    return [_rel(a, b), _rel(_with(a, shape=b.shape), _with(b, shape=a.shape), r)]


def swap_att_item(objs: Scene2, rng) -> list[str]:
    a, b = objs
    r = relation(a, b)
    return [_rel(a, b), _rel(_with(a, colour=b.colour), _with(b, colour=a.colour), r)]


def add_obj_item(objs: Scene2, rng) -> list[str]:
    extra = Obj(
        _other(rng, SHAPES, {o.shape for o in objs}),
        _other(rng, COLOURS, {o.colour for o in objs}),
        "small",
        0,
        0,
    )
    return [_listed(objs), _listed((*objs, extra))]


def add_att_item(objs: Scene2, rng) -> list[str]:
    """The second object named bare ("a circle") against it named with the first object's
    colour: a colour that is in the scene, on the wrong object, so only binding tells them
    apart (suite 1 added an absent colour, which every recipe caught: 84-96%)."""
    a, b = objs
    return [_listed((a, f"a {b.shape}")), _listed((a, _with(b, colour=a.colour)))]


CHOICE_TASKS = {
    "relation": relation_item,  # ARO VG-Relation
    "attribution": attribution_item,  # ARO VG-Attribution
    "order": order_item,  # ARO COCO-Order
    "replace_obj": replace_obj_item,  # SugarCrepe
    "replace_att": replace_att_item,
    "replace_rel": replace_rel_item,
    "swap_obj": swap_obj_item,
    "swap_att": swap_att_item,
    "add_obj": add_obj_item,
    "add_att": add_att_item,
}


@functools.cache
def scenes(n: int, seed: int = EVAL_SEED) -> list[Scene2]:
    """The held-out scenes every choice task asks about: two objects of different shape and
    colour, clearly apart along one axis (so the relation words are true)."""
    return [_objects(np.random.default_rng([seed, 2, i]), 2, _differ) for i in range(n)]


def choice_items(task: str, n: int, seed: int = EVAL_SEED) -> list[Item]:
    make = CHOICE_TASKS[task]
    task_id = list(CHOICE_TASKS).index(task)
    return [
        (objs, make(objs, np.random.default_rng([seed, task_id, i])))
        for i, objs in enumerate(scenes(n, seed))
    ]


def _image(objs: tuple[Obj, ...], i: int, size: int):
    return render(Scene(objs, noise_seed=i), size)


def encode_scenes(bundle: ClipBundle, items: list[Item], image_size: int, key: tuple | None):
    """Image embeddings of the items' scenes; with a ``key`` (their scene seed and count),
    computed once per bundle for all the tasks that share it."""
    if key is not None and key in bundle.memo:
        return bundle.memo[key]
    images = bundle.encode_images(_image(objs, i, image_size) for i, (objs, _) in enumerate(items))
    if key is not None:
        bundle.memo[key] = images
    return images


def score_choices(
    bundle: ClipBundle, items: list[Item], image_size: int, key: tuple | None = None
) -> np.ndarray:
    """(items, captions) image-text similarities; each distinct caption is encoded once."""
    import torch

    from benchmark.evaluate.zeroshot import encode_texts

    images = encode_scenes(bundle, items, image_size, key)
    k = len(items[0][1])
    texts = encode_texts(bundle, [c for _, caps in items for c in caps]).view(len(items), k, -1)
    return torch.einsum("nd,nkd->nk", images, texts).numpy()


def _choice_task(task: str) -> Callable:
    def run(bundle: ClipBundle, p: ChoiceParams) -> dict:
        items = choice_items(task, p.n, p.seed)
        scores = score_choices(bundle, items, p.image_size, ("scenes", p.seed, p.n, p.image_size))
        correct = choice_correct(scores, ties="right" if task == "order" else "wrong")
        return {
            "dataset": f"shapes/{task}",
            "task": "choice",
            "metrics": {"acc": float(correct.mean()), "item_se": item_se(correct)},
            "n": p.n,
        }

    run.__doc__ = f"Accuracy on `{task}` choice sets: positive strictly above every negative."
    return run


for _name in CHOICE_TASKS:
    register(_name, "acc", ChoiceParams)(_choice_task(_name))


def zeroshot_items(per_class: int, seed: int = EVAL_SEED) -> list[tuple[Obj, int]]:
    out = []
    for label, name in enumerate(CLASSNAMES):
        colour, shape = name.split()
        for i in range(per_class):
            rng = np.random.default_rng([seed, 99, label, i])
            (o,) = sample_objects(rng, 1)
            out.append((Obj(shape, colour, o.size, o.x, o.y), label))
    return out


@register("zeroshot", "acc1", ZeroshotParams)
def zeroshot_task(bundle: ClipBundle, p: ZeroshotParams) -> dict:
    """Zero-shot colour+shape classification (the ImageNet analogue), clip_benchmark metrics."""
    import torch

    from benchmark.evaluate import zeroshot

    items = zeroshot_items(p.per_class, p.seed)
    feats = bundle.encode_images(_image((o,), i, p.image_size) for i, (o, _) in enumerate(items))
    labels = torch.tensor([y for _, y in items])
    weights = zeroshot.classifier(bundle, CLASSNAMES, TEMPLATES)
    m = zeroshot.metrics(feats, labels, weights)
    m["item_se"] = item_se((feats.float() @ weights).argmax(dim=1) == labels)
    return {
        "dataset": "shapes/zeroshot",
        "task": "zeroshot_classification",
        "metrics": m,
        "n": len(items),
    }
