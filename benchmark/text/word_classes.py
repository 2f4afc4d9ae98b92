"""The English word classes the removal rules read captions with: function words by kind
(determiners, prepositions, conjunctions, auxiliaries), the verbs and nouns whose meaning decides
what a removal takes along (placing verbs, collectives, portions, holders, parts, scenes),
pronouns, and the frames a caption may open with ("a picture of", "there are").
"""

from __future__ import annotations

from benchmark.world import RELATIONS

NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty",
)  # fmt: skip
SINGULAR_DETERMINERS = frozenset({"a", "an", "one", "this", "that", "another", "each", "every"})
PLURAL_DETERMINERS = frozenset(
    {"several", "many", "few", "multiple", "various", "numerous", "these", "those", "both"}
    | set(NUMBER_WORDS[1:])
)
# "that" is left out: in captions it mostly starts a clause ("a dog that is sleeping").
DETERMINERS = (SINGULAR_DETERMINERS - {"that"}) | PLURAL_DETERMINERS | {
    "the", "some", "any", "no", "his", "her", "its", "their", "my", "your", "our",
}  # fmt: skip
PREPOSITIONS = frozenset({
    "on", "in", "at", "to", "from", "with", "without", "by", "for", "into", "onto", "over",
    "under", "above", "below", "behind", "near", "beside", "between", "through", "across",
    "along", "around", "up", "down", "out", "off", "of", "inside", "outside", "atop", "against",
    "beneath", "underneath", "toward", "towards", "past", "during", "like", "among", "amongst",
    "via", "upon", "within", "alongside", "beyond",
})  # fmt: skip
# Read as one preposition, so "a dog in front of a tv" has one relation and no noun "front".
MULTI_PREPOSITIONS = tuple(
    tuple(p.split())
    for p in (*RELATIONS, "in front of", "on top of", "next to", "close to", "out of")
    if " " in p
)
# Relations that place a thing somewhere: "A dog on a couch" without the dog is "A couch". Not
# "with" (what the subject has or holds goes with it) nor "of".
SPATIAL = frozenset(
    {"on", "in", "at", "near", "by", "beside", "under", "underneath", "beneath", "above", "below",
     "behind", "over", "inside", "atop", "against", "along", "across", "alongside", "upon",
     "within", "among", "between", "around", "outside"}
    | {" ".join(p) for p in MULTI_PREPOSITIONS if p != ("out", "of")}
)  # fmt: skip
CONJUNCTIONS = frozenset({"and", "or", "but", "while", "as", "then", "nor"})
AUXILIARIES = frozenset({
    "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "does", "do",
    "did", "can", "could", "will", "would", "may", "might", "must", "should", "appears", "seems",
})  # fmt: skip
COPULAS = frozenset({"is", "are", "was", "were", "be", "been", "being", "am"})
ADVERBS = frozenset({"very", "really", "extremely", "quite", "fairly"})  # inside noun phrases
# Verbs after which the subject's removal leaves a true caption: where something is, not what
# the subject does to it ("A dog sitting on a couch" → "A couch"; not "talking on a phone").
PLACING_VERBS = frozenset({
    "sitting", "sits", "standing", "stands", "lying", "lies", "laying", "lays", "resting",
    "rests", "sleeping", "sleeps", "parked", "perched", "perches", "waiting", "waits", "posing",
    "poses", "walking", "walks", "running", "runs", "riding", "rides", "driving", "drives",
    "hanging", "hangs", "leaning", "leans", "located", "displayed", "shown", "seen", "placed",
    "grazing", "grazes", "swimming", "floating", "going", "heading", "moving", "coming", "flying",
    "flies", "traveling", "travelling", "travels", "stopped",
})  # fmt: skip
# Verbs whose object is what the subject is on: without the rider the horse is still there.
CARRYING_VERBS = frozenset({"riding", "rides", "driving", "drives"})
PARTICLES = frozenset({"up", "out", "off", "away"})  # "picking up a cup": the verb's object
# Nouns before "of": "a herd of sheep" is several sheep; "a slice of pizza" is pizza (negated
# as a whole); a holder ("a plate of pizza", "a picture of a dog") is still there without what
# it holds; any other ("the side of a bus") is part of what it names and goes with it.
COLLECTIVES = frozenset({
    "group", "groups", "herd", "herds", "flock", "flocks", "bunch", "bunches", "pair", "couple",
    "lot", "lots", "pack", "fleet", "row", "rows", "line", "lines", "number", "pile", "piles",
    "stack", "stacks", "team", "set", "variety", "collection", "assortment", "dozen", "dozens",
    "crowd", "swarm", "school", "family", "handful", "bundle", "cluster", "array", "selection",
})  # fmt: skip
PORTIONS = frozenset({
    "slice", "slices", "piece", "pieces", "half", "halves", "bite", "bites", "portion", "chunk",
    "chunks", "serving", "scoop", "wedge", "wedges",
})  # fmt: skip
HOLDERS = frozenset({
    "plate", "plates", "bowl", "bowls", "box", "boxes", "tray", "trays", "basket", "baskets",
    "bag", "bags", "cup", "glass", "pan", "pot", "jar", "bucket", "platter", "dish", "container",
    "carton", "crate", "picture", "photo", "image", "photograph", "view", "shot", "display",
    "closeup", "shelf",
})  # fmt: skip
# Parts that name a place on something ("the middle of a street"): a subject's removal lands on
# the thing, not the part.
PARTS = frozenset({
    "middle", "side", "top", "front", "back", "edge", "corner", "bottom", "end", "center",
    "centre", "rear", "inside", "outside", "surface",
})  # fmt: skip
# Where a scene is: a place that stays when an object in it is removed ("a woman holding a
# knife in the kitchen" → "a woman in the kitchen"), unlike "a man eating a sandwich on a
# plate" (→ "a man": the plate may have held only the sandwich).
SCENES = frozenset({
    "beach", "street", "road", "field", "park", "kitchen", "room", "bathroom", "bedroom", "city",
    "snow", "water", "ocean", "sea", "lake", "river", "grass", "yard", "airport", "runway",
    "tarmac", "station", "sidewalk", "lot", "restaurant", "bar", "shop", "store", "market", "zoo",
    "farm", "forest", "woods", "hill", "hillside", "mountain", "slope", "court", "stadium", "sky",
    "air", "area", "building", "house", "office", "garden", "desert", "sand", "pen", "enclosure",
    "pasture", "town", "intersection", "platform", "wave", "ground", "floor", "dirt", "track",
    "lawn", "background", "home", "shore", "shoreline", "coast", "bay", "harbor", "marina",
    "dock", "pier", "highway", "lane", "alley", "corner", "plaza", "square", "trail", "path",
    "jungle", "meadow", "camp",
})  # fmt: skip
PERSON_PRONOUNS = frozenset({
    "he", "she", "his", "her", "him", "hers", "himself", "herself", "they", "their", "them",
    "themselves",
})  # fmt: skip
THING_PRONOUNS = frozenset({"it", "its", "itself", "they", "their", "them", "themselves"})
RELATIVES = frozenset({"that", "which", "who", "whose", "whom"})
# Category names that read badly in a sentence ("with no sports ball").
SPOKEN = {"sports ball": "ball", "dining table": "table"}
# Words that are negated whole ("Someone has parked a bicycle" → "No one has ...").
NEGATED = {"someone": "no one", "somebody": "nobody"}
# Single terms that mean more than one of the category.
GROUP_TERMS = frozenset({
    "people", "couple", "crowd", "family", "audience", "couple of people", "group of people",
    "cattle", "busses", "traffic lights",
})  # fmt: skip
MASS_NOUNS = frozenset({"broccoli", "luggage", "baggage"})
FRAMES = tuple(
    tuple(f.split())
    for f in (
        "a picture of", "a photo of", "an image of", "a photograph of", "a close up of",
        "a closeup of", "a view of", "there is", "there are", "this is", "here is", "here are",
        "these are",
    )
)  # fmt: skip
