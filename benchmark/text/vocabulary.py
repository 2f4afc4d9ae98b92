"""Which object categories a caption mentions: COCO's 80, or the `shapes` world's shapes.

Captions name objects in many ways ("puppy", "motorbike", "two men", "cell phone"), and several
category names are also parts of other things ("hot dog" is no dog, "teddy bear" no bear, an
"orange bus" no orange). So each category lists its everyday names (singular; plurals are
derived), phrases that contain a category word without being one block the shorter match, and
matching is longest-first over the caption's words. Terms that imply a second object ("skier":
a person on skis) map to both, because that is what the image shows and what COCO annotates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from benchmark.text.inflection import SINGULAR, plural
from benchmark.text.tokens import words
from benchmark.world import SHAPES

COCO_TERMS: dict[str, tuple[str, ...]] = {
    "person": (
        "person", "man", "woman", "boy", "girl", "child", "kid", "baby", "toddler", "couple",
        "people", "player", "guy", "lady", "gentleman", "adult", "teenager", "teen", "youngster",
        "crowd", "family", "chef", "officer", "policeman", "soldier", "worker", "student",
        "tourist", "pedestrian", "passenger", "driver", "rider", "athlete", "someone", "somebody",
        "pitcher", "batter", "catcher", "umpire", "bride", "groom", "surfer", "biker", "cyclist",
        "skater", "spectator", "football player", "audience", "daughter", "son", "mother",
        "father", "mom", "dad", "friend", "husband", "wife", "brother", "sister", "gal", "dude",
        "businessman", "fireman", "human", "couple of people", "group of people",
    ),
    "bicycle": ("bicycle", "bike", "mountain bike"),
    "car": ("car", "automobile", "taxi", "cab", "suv", "sedan", "jeep", "minivan", "hatchback"),
    "motorcycle": (
        "motorcycle", "motorbike", "motor bike", "dirt bike", "scooter", "moped", "motocross",
    ),
    "airplane": (
        "airplane", "aeroplane", "plane", "jet", "jetliner", "airliner", "aircraft", "airbus",
        "seaplane", "biplane",
    ),
    "bus": ("bus", "busses", "double decker", "trolley bus", "minibus"),
    "train": ("train", "locomotive", "tram", "streetcar", "subway train", "railcar"),
    "truck": (
        "truck", "pickup truck", "lorry", "firetruck", "semi truck", "tow truck", "truck bed",
    ),
    "boat": (
        "boat", "ship", "sailboat", "kayak", "canoe", "yacht", "ferry", "steamboat", "tugboat",
        "rowboat", "speedboat",
    ),
    "traffic light": (
        "traffic light", "stop light", "stoplight", "traffic signal", "traffic lights",
    ),
    "fire hydrant": ("fire hydrant", "hydrant", "fire plug", "fireplug"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter", "meter"),
    "bench": ("bench", "park bench"),
    "bird": (
        "bird", "seagull", "gull", "pigeon", "duck", "goose", "parrot", "eagle", "owl", "swan",
        "sparrow", "crow", "hen", "rooster", "pelican", "hawk", "heron", "finch",
        "robin", "flamingo", "penguin", "songbird", "bluebird", "woodpecker", "hummingbird",
    ),
    "cat": ("cat", "kitten", "kitty", "housecat"),
    "dog": ("dog", "puppy", "pup", "doggy", "doggie", "poodle", "terrier", "retriever", "labrador"),
    "horse": ("horse", "pony", "foal", "stallion", "mare", "horseback"),
    "sheep": ("sheep", "lamb", "ewe"),
    "cow": ("cow", "cattle", "bull", "calf", "ox", "heifer"),
    "elephant": ("elephant",),
    "bear": ("bear", "panda", "polar bear", "grizzly", "grizzly bear", "brown bear", "black bear"),
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack", "back pack", "rucksack", "knapsack"),
    "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "hand bag", "purse", "pocketbook", "clutch bag"),
    "tie": ("tie", "necktie", "bow tie", "bowtie"),
    "suitcase": ("suitcase", "luggage", "baggage", "suit case", "luggage bag"),
    "frisbee": ("frisbee", "frisbe", "flying disc"),
    "skis": ("skis", "ski"),
    "snowboard": ("snowboard", "snow board"),
    "sports ball": (
        "ball", "tennis ball", "soccer ball", "football", "basketball", "volleyball", "beach ball",
        "softball",
    ),
    "kite": ("kite",),
    "baseball bat": ("baseball bat", "bat", "softball bat"),
    "baseball glove": ("baseball glove", "glove", "mitt", "baseball mitt"),
    "skateboard": ("skateboard", "skate board", "longboard"),
    "surfboard": ("surfboard", "surf board", "surfboarder", "boogie board", "bodyboard"),
    "tennis racket": ("tennis racket", "racket", "racquet", "tennis racquet"),
    "bottle": ("bottle", "water bottle", "beer bottle", "wine bottle"),
    "wine glass": ("wine glass", "glass of wine", "champagne glass", "wineglass"),
    "cup": ("cup", "mug", "coffee cup", "teacup", "tea cup", "coffee mug", "paper cup"),
    "fork": ("fork",),
    "knife": ("knife", "steak knife", "butter knife"),
    "spoon": ("spoon", "teaspoon", "tablespoon"),
    "bowl": ("bowl",),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "cheeseburger", "panini"),
    "orange": ("orange", "tangerine", "mandarin", "clementine"),
    "broccoli": ("broccoli", "brocolli", "broccolli"),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hotdog", "chili dog", "corn dog", "frankfurter", "bratwurst"),
    "pizza": ("pizza", "pizza pie"),
    "donut": ("donut", "doughnut"),
    "cake": ("cake", "cupcake", "cheesecake", "birthday cake", "wedding cake"),
    "chair": ("chair", "armchair", "stool", "recliner", "highchair", "high chair"),
    "couch": ("couch", "sofa", "loveseat", "love seat", "futon"),
    "potted plant": (
        "potted plant", "plant", "houseplant", "house plant", "flower pot", "flowerpot",
        "pot plant", "planter",
    ),
    "bed": ("bed", "bunk bed", "mattress"),
    "dining table": ("dining table", "table", "kitchen table", "picnic table", "coffee table"),
    "toilet": ("toilet", "urinal", "commode", "toilet bowl"),
    "tv": ("tv", "television", "tv set", "flat screen", "flatscreen", "monitor", "t v"),
    "laptop": ("laptop", "notebook computer", "laptop computer", "macbook", "netbook"),
    "mouse": ("mouse", "computer mouse"),
    "remote": (
        "remote", "remote control", "tv remote", "controller", "wii remote", "wiimote",
        "game controller", "wii controller",
    ),
    "keyboard": ("keyboard", "computer keyboard"),
    "cell phone": (
        "cell phone", "cellphone", "phone", "mobile phone", "smartphone", "smart phone",
        "iphone", "cellular phone", "telephone",
    ),
    "microwave": ("microwave", "microwave oven"),
    "oven": ("oven", "stove", "stovetop", "toaster oven"),
    "toaster": ("toaster",),
    "sink": ("sink", "washbasin", "basin"),
    "refrigerator": ("refrigerator", "fridge", "freezer", "icebox"),
    "book": ("book", "novel", "textbook", "paperback", "hardcover"),
    "clock": ("clock", "clocktower", "clock tower"),
    "vase": ("vase",),
    "scissors": ("scissors", "pair of scissors", "shears"),
    "teddy bear": (
        "teddy bear", "teddy", "stuffed bear", "stuffed animal", "stuffed toy", "plush bear",
        "stuffed sheep", "stuffed dog", "stuffed cat",
    ),
    "hair drier": ("hair drier", "hair dryer", "hairdryer", "blow dryer", "blowdryer"),
    "toothbrush": ("toothbrush", "tooth brush"),
}  # fmt: skip

# Terms that name a person, or an activity, together with the thing used.
COCO_IMPLIED: dict[str, tuple[str, ...]] = {
    "skier": ("person", "skis"),
    "snowboarder": ("person", "snowboard"),
    "skateboarder": ("person", "skateboard"),
    "motorcyclist": ("person", "motorcycle"),
    "skiing": ("skis",),
    "snowboarding": ("snowboard",),
    "skateboarding": ("skateboard",),
    "surfing": ("surfboard",),
}

# Phrases that contain a category word but are not that object; matching them first hides the
# shorter term ("bus stop" has no bus in it, "ski slope" no skis, "orange juice" no orange).
COCO_BLOCKED: tuple[str, ...] = (
    "bus stop", "bus station", "train station", "train tracks", "train track", "railroad tracks",
    "ski slope", "ski lift", "ski resort", "ski area", "ski run", "ski pole", "ski poles",
    "orange juice", "orange peel", "phone booth", "dog house", "cat food", "dog food",
    "football field", "football game", "chair lift", "cell tower", "pizza box", "sandwich shop",
    "pizza shop", "donut shop", "tv stand", "tv room", "kite surfing", "kitesurfing",
    "kite surfer", "remote area", "couple of", "bed of", "telephone line", "telephone pole",
    "telephone wire", "mp player", "dvd player", "cd player", "record player", "music player",
)  # fmt: skip

# A person word next to an animal names the animals' age or group, not a person: "baby
# elephant", "adult panda", "family of bears", "elephant family".
ANIMALS = frozenset(
    {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}
)
AGE_OR_GROUP = frozenset({"baby", "babies", "adult", "adults", "family", "families", "mother"})

# "orange" directly before a noun is a colour ("an orange bus"): only these words after it (or
# the end of the caption) leave the fruit reading.
FRUIT_CONTEXT = frozenset({
    "on", "in", "with", "and", "sitting", "next", "is", "are", "lying", "laying", "slices", "slice",
    "halves", "half", "sits"
})  # fmt: skip
COLOURS = frozenset({
    "red", "green", "blue", "yellow", "purple", "orange", "white", "black", "brown", "grey", "gray",
    "pink", "silver", "gold", "tan", "beige"
})  # fmt: skip


@dataclass(frozen=True)
class Vocabulary:
    """Category names, and every word sequence that mentions them (empty: blocks a shorter
    match without naming anything)."""

    name: str
    categories: tuple[str, ...]
    terms: dict[tuple[str, ...], tuple[str, ...]]
    singulars: dict[str, str]  # derived plural form → its term, so a swap can keep the number
    longest: int  # words in the longest term


@dataclass(frozen=True)
class Mention:
    """Categories named by the words ``first..last`` (inclusive), at characters start..end."""

    categories: tuple[str, ...]
    first: int
    last: int
    start: int
    end: int


def _build(
    name: str,
    categories: tuple[str, ...],
    terms: dict[str, tuple[str, ...]],
    implied: dict[str, tuple[str, ...]],
    blocked: tuple[str, ...],
) -> Vocabulary:
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for phrase in blocked:
        table[tuple(phrase.split())] = ()
        table[tuple(plural(phrase).split())] = ()
    named = {t: (c,) for c, ts in terms.items() for t in ts} | implied
    singulars = {plural(t): t for t in named if plural(t) not in named}
    singulars |= {t: SINGULAR[t] for t in named if t in SINGULAR}  # "people" is a term itself
    for term, cats in named.items():
        for form in (term, plural(term)):
            key = tuple(form.split())
            table[key] = tuple(dict.fromkeys(table.get(key, ()) + cats))
    return Vocabulary(name, categories, table, singulars, max(len(t) for t in table))


@cache
def coco() -> Vocabulary:
    return _build("coco", tuple(COCO_TERMS), COCO_TERMS, COCO_IMPLIED, COCO_BLOCKED)


@cache
def shapes() -> Vocabulary:
    return _build("shapes", SHAPES, {s: (s,) for s in SHAPES}, {}, ())


VOCABULARIES = {"coco": coco, "shapes": shapes}
VocabularyName = Literal["coco", "shapes"]  # the keys of VOCABULARIES


def vocabulary(name: str) -> Vocabulary:
    if name not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {name!r}; choose from {sorted(VOCABULARIES)}")
    return VOCABULARIES[name]()


def _is_colour_use(lowered: list[str], i: int, caption: str, end: int) -> bool:
    """True when the word at ``i`` ("orange") describes the next word instead of naming a
    fruit: it is directly followed (no punctuation between) by a word outside FRUIT_CONTEXT,
    or by "and" and another colour ("orange and white cat")."""
    if i + 1 >= len(lowered) or caption[end:].lstrip()[:1] in (",", ".", ";", "!", "?"):
        return False
    nxt = lowered[i + 1]
    if nxt == "and":
        return i + 2 < len(lowered) and lowered[i + 2] in COLOURS
    return nxt not in FRUIT_CONTEXT


def mentions(caption: str, vocab: Vocabulary) -> list[Mention]:
    """Every category mention in the caption, left to right, longest phrase first."""
    ws = words(caption)
    lowered = [w.lower for w in ws]
    out: list[Mention] = []
    i = 0
    while i < len(ws):
        for n in range(min(vocab.longest, len(ws) - i), 0, -1):
            cats = vocab.terms.get(tuple(lowered[i : i + n]))
            if cats is None:
                continue
            last = i + n - 1
            colour = n == 1 and lowered[i] in COLOURS
            if cats and not (colour and _is_colour_use(lowered, i, caption, ws[last].end)):
                out.append(Mention(cats, i, last, ws[i].start, ws[last].end))
            i = last
            break
        i += 1
    return [
        m
        for k, m in enumerate(out)
        if not _describes_animal(m, out[k - 1] if k else None, out[k + 1 : k + 2], lowered)
    ]


def _describes_animal(
    m: Mention, before: Mention | None, after: list[Mention], lowered: list[str]
) -> bool:
    if m.first != m.last or lowered[m.first] not in AGE_OR_GROUP:
        return False
    if before and ANIMALS & set(before.categories) and before.last == m.first - 1:
        return True
    return bool(
        after
        and ANIMALS & set(after[0].categories)
        and lowered[m.last + 1 : after[0].first] in ([], ["of"])
    )


def categories(caption: str, vocab: Vocabulary) -> list[str]:
    """The categories a caption mentions, each once, in the vocabulary's order."""
    found = {c for m in mentions(caption, vocab) for c in m.categories}
    return [c for c in vocab.categories if c in found]
