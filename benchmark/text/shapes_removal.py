"""An object removed from a `shapes` caption, or replaced by another shape. The world's templates
(``world.describe``) are a closed grammar, so a caption is parsed exactly: an edit is exact, or
None outside the grammar.
"""

from __future__ import annotations

import re

from benchmark.text.paraphrase import Caption, join, split
from benchmark.world import COLOURS as SHAPE_COLOURS
from benchmark.world import RELATIONS, SHAPES, SIZES


def _shape_np(k: int) -> str:
    sizes, colours, shapes = "|".join(SIZES), "|".join(SHAPE_COLOURS), "|".join(SHAPES)
    return rf"an? (?:(?:{sizes}) )?(?:(?:{colours}) )?(?P<shape{k}>{shapes})"


_SHAPE_ITEM = re.compile(
    rf"{_shape_np(0)}(?: (?P<relation>{'|'.join(RELATIONS)}) (?P<second>{_shape_np(1)}))?"
)
_SHAPE_SEPARATOR = re.compile(r", | and ")
_BACKGROUND = " on a grey background"


def _shape_items(body: str) -> tuple[list[str], list[re.Match], list[str]] | None:
    """The world's grammar: item (, item)* [and item], an item being "NP" or "NP <relation>
    NP". The items, their matches and the shapes they name in order; None outside it."""
    items = _SHAPE_SEPARATOR.split(body)
    parsed = [_SHAPE_ITEM.fullmatch(item) for item in items]
    if not all(parsed):
        return None
    shapes = [m.group(g) for m in parsed for g in ("shape0", "shape1") if m.group(g)]
    return items, parsed, shapes


def remove_shape(caption: str, category: str) -> str | None:
    """[frame] items [on a grey background] (``_shape_items``): the object's item loses it (a
    relation keeps its other side), the list is rejoined with commas and "and"; anything outside
    the grammar, a shape named twice, or a caption naming only the object gets None."""
    c = split(caption)
    body, suffix = c.body, ""
    if body.endswith(_BACKGROUND):
        body, suffix = body[: -len(_BACKGROUND)], _BACKGROUND
    grammar = _shape_items(body)
    if grammar is None:
        return None
    items, parsed, shapes = grammar
    if shapes.count(category) != 1 or len(shapes) == 1:
        return None
    kept = []
    for item, m in zip(items, parsed, strict=True):
        if m.group("shape0") == category:
            if m.group("second"):
                kept.append(m.group("second"))
        elif m.group("shape1") == category:
            kept.append(item[: m.start("relation") - 1])
        else:
            kept.append(item)
    body = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
    return join(Caption(c.template, body + suffix, c.end, c.capital))


def replace_shape(caption: str, category: str, new: str) -> str | None:
    c = split(caption)
    grammar = _shape_items(c.body.removesuffix(_BACKGROUND))
    if grammar is None:
        return None
    _, _, shapes = grammar
    if shapes.count(category) != 1 or new in shapes:
        return None
    named = re.compile(rf"\b{category}\b")
    return join(Caption(c.template, named.sub(new, c.body, count=1), c.end, c.capital))
