"""The `shapes` world: seeded scenes of coloured shapes, rendered and described in English.

A miniature of web image-text data with everything known: each object's shape, colour, size and
box, so curation, detection and inpainting can be checked against the truth, and compositional
probes (swapped attributes, relations) can be generated exactly.

It depends on nothing else in the benchmark: the `shapes` pool draws its samples from it, the
text rules read its captions, and ops and evaluators render and probe its scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 205, 30),
    "purple": (150, 60, 200),
    "orange": (245, 135, 25),
}
SIZES = {"small": 9, "large": 14}  # radius in pixels on a CANVAS canvas
CANVAS = 64
BACKGROUND = (200, 200, 200)
RELATIONS = ("to the left of", "to the right of", "above", "below")
INVERSE = dict(zip(RELATIONS, ("to the right of", "to the left of", "below", "above"), strict=True))


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    x: int  # centre
    y: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in canvas pixels."""
        r = SIZES[self.size]
        return (self.x - r, self.y - r, self.x + r, self.y + r)

    def phrase(self, with_size: bool = False) -> str:
        return (
            f"{self.size} {self.colour} {self.shape}"
            if with_size
            else f"{self.colour} {self.shape}"
        )


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    noise_seed: int


def sample_objects(rng: np.random.Generator, n: int, distinct: bool = True) -> tuple[Obj, ...]:
    """``n`` non-overlapping objects; with ``distinct`` no two share both shape and colour."""
    objs: list[Obj] = []
    while len(objs) < n:
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        size = list(SIZES)[rng.integers(len(SIZES))]
        if distinct and any(o.shape == shape and o.colour == colour for o in objs):
            continue
        r = SIZES[size]
        for _ in range(100):
            x, y = (int(v) for v in rng.integers(r + 1, CANVAS - r - 1, size=2))
            if all(math.hypot(x - o.x, y - o.y) > r + SIZES[o.size] + 2 for o in objs):
                objs.append(Obj(shape, colour, size, x, y))
                break
        else:
            objs.clear()  # crowded: start over
    return tuple(objs)


def relation(a: Obj, b: Obj) -> str:
    """Where ``a`` is relative to ``b``, by the axis along which they are further apart."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def clear_relation(a: Obj, b: Obj, margin: int = 6) -> bool:
    """True when the relation is unambiguous (objects clearly apart along one axis)."""
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    return abs(dx - dy) >= margin


def _polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r * 0.85
        return [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    if shape == "triangle":
        return [(x, y - r), (x + r * 0.95, y + r * 0.8), (x - r * 0.95, y + r * 0.8)]
    if shape == "diamond":
        return [(x, y - r), (x + r * 0.75, y), (x, y + r), (x - r * 0.75, y)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((x + rad * math.cos(a), y + rad * math.sin(a)))
        return pts
    if shape == "cross":
        t = r * 0.35
        return [
            (x - t, y - r),
            (x + t, y - r),
            (x + t, y - t),
            (x + r, y - t),
            (x + r, y + t),
            (x + t, y + t),
            (x + t, y + r),
            (x - t, y + r),
            (x - t, y + t),
            (x - r, y + t),
            (x - r, y - t),
            (x - t, y - t),
        ]
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, r: float, fill: tuple[int, ...] | int
) -> None:
    """One object, centred at (x, y) with radius ``r``, as every scene draws it (``fill``: an RGB
    colour, or a level on a mask)."""
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    else:
        draw.polygon(_polygon(shape, x, y, r), fill=fill)


def add_noise(image: Image.Image, seed: int) -> Image.Image:
    """The world's pixel noise (uniform, +-6 per channel), seeded."""
    arr = np.asarray(image, dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-6, 7, size=arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def render(scene: Scene, size: int = CANVAS) -> Image.Image:
    """Draw the scene; a little seeded pixel noise makes every rendering distinct."""
    im = Image.new("RGB", (CANVAS, CANVAS), BACKGROUND)
    draw = ImageDraw.Draw(im)
    for o in scene.objects:
        draw_shape(draw, o.shape, o.x, o.y, SIZES[o.size], COLOURS[o.colour])
    im = add_noise(im, scene.noise_seed)
    return im if size == CANVAS else im.resize((size, size), Image.BILINEAR)


def with_article(phrase: str) -> str:
    """``phrase`` after the indefinite article it takes ("a red circle", "an orange star")."""
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def describe(objs: tuple[Obj, ...], rng: np.random.Generator) -> str:
    """One true English caption, drawn from several templates and phrasings."""
    sized = rng.random() < 0.3
    phrases = [with_article(o.phrase(sized)) for o in objs]
    if len(objs) == 1:
        template = (
            "{0}",
            "a picture of {0}",
            "there is {0}",
            "{0} on a grey background",
            "a photo of {0}",
        )[rng.integers(5)]
        return template.format(phrases[0])
    if len(objs) >= 2 and rng.random() < 0.6 and clear_relation(objs[0], objs[1]):
        core = f"{phrases[0]} {relation(objs[0], objs[1])} {phrases[1]}"
        if len(objs) == 3:
            core += f" and {phrases[2]}"
        return core if rng.random() < 0.7 else f"a picture of {core}"
    listed = ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
    return listed if rng.random() < 0.6 else f"there is {listed}"


# Word-for-word translations of the caption vocabulary: a non-English defect that language id
# can catch, as it catches foreign captions in web data.
TRANSLATIONS = {
    "de": {
        "a": "ein",
        "an": "ein",
        "picture": "Bild",
        "of": "von",
        "there": "da",
        "is": "ist",
        "photo": "Foto",
        "on": "auf",
        "grey": "grauem",
        "background": "Hintergrund",
        "and": "und",
        "to": "",
        "the": "",
        "left": "links",
        "right": "rechts",
        "above": "über",
        "below": "unter",
        "small": "kleiner",
        "large": "großer",
        "circle": "Kreis",
        "square": "Quadrat",
        "triangle": "Dreieck",
        "star": "Stern",
        "cross": "Kreuz",
        "diamond": "Raute",
        "red": "roter",
        "green": "grüner",
        "blue": "blauer",
        "yellow": "gelber",
        "purple": "violetter",
        "orange": "oranger",
    },
    "fr": {
        "a": "un",
        "an": "un",
        "picture": "image",
        "of": "de",
        "there": "il",
        "is": "y a",
        "photo": "photo",
        "on": "sur",
        "grey": "gris",
        "background": "fond",
        "and": "et",
        "to": "",
        "the": "",
        "left": "à gauche",
        "right": "à droite",
        "above": "au-dessus",
        "below": "en dessous",
        "small": "petit",
        "large": "grand",
        "circle": "cercle",
        "square": "carré",
        "triangle": "triangle",
        "star": "étoile",
        "cross": "croix",
        "diamond": "losange",
        "red": "rouge",
        "green": "vert",
        "blue": "bleu",
        "yellow": "jaune",
        "purple": "violet",
        "orange": "orange",
    },
    "es": {
        "a": "un",
        "an": "un",
        "picture": "imagen",
        "of": "de",
        "there": "hay",
        "is": "",
        "photo": "foto",
        "on": "sobre",
        "grey": "gris",
        "background": "fondo",
        "and": "y",
        "to": "",
        "the": "",
        "left": "a la izquierda",
        "right": "a la derecha",
        "above": "encima",
        "below": "debajo",
        "small": "pequeño",
        "large": "grande",
        "circle": "círculo",
        "square": "cuadrado",
        "triangle": "triángulo",
        "star": "estrella",
        "cross": "cruz",
        "diamond": "rombo",
        "red": "rojo",
        "green": "verde",
        "blue": "azul",
        "yellow": "amarillo",
        "purple": "morado",
        "orange": "naranja",
    },
}


def translate(caption: str, lang: str) -> str:
    table = TRANSLATIONS[lang]
    words = [table.get(w.strip(","), w) for w in caption.split()]
    return " ".join(w for w in words if w)
