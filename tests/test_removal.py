"""Counterfactual caption edits: removing an object's phrase (every shapes template, real COCO
captions), the absence fallback, the `edit_caption` op, and its LLM backend."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from llm_server import LLMServer  # tests/ is on sys.path
from pydantic import ValidationError

from benchmark.ops import edit_caption as edit_ops
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shards import ShardReader
from benchmark.text.absence import absence_caption
from benchmark.text.removal import remove_object, replace_object
from benchmark.text.shapes_caption import parse
from benchmark.text.vocabulary import categories, coco
from benchmark.text.wordnet import wordnet
from benchmark.world import describe, sample_objects

STEP = "recipe.yaml: steps[3] (edit_caption)"
KEY = "sk-test-edit-caption-000000000000"

# --- shapes ------------------------------------------------------------------------------------


def template(caption: str) -> str:
    """Which of describe's templates made the caption (frame, structure, sized or not)."""
    frame = next(
        (f for f in ("a picture of", "there is", "a photo of") if caption.startswith(f)), ""
    )
    n = len(parse(caption).objects)
    if caption.endswith("on a grey background"):
        shape = "background"
    elif n == 1:
        shape = "single"
    elif parse(caption).relations:
        shape = f"relation{n}"
    else:
        shape = f"list{n}"
    sized = any(s in caption.split() for s in ("small", "large"))
    return f"{frame}|{shape}|{'sized' if sized else 'plain'}"


def relations_without(caption: str, shape: str) -> frozenset:
    """The original's relation facts that do not involve the removed object."""
    return frozenset(f for f in parse(caption).facts()[1] if shape not in (f[0][2], f[2][2]))


def test_every_shapes_template_loses_exactly_the_removed_object():
    rng = np.random.default_rng(0)
    seen: Counter[str] = Counter()
    removed = 0
    for _ in range(3000):
        objs = sample_objects(rng, int(rng.integers(1, 4)))
        caption = describe(objs, rng)
        seen[template(caption)] += 1
        keys = Counter(o.key for o in parse(caption).objects)
        shapes = Counter(o.shape for o in objs)
        for o in objs:
            out = remove_object(caption, o.shape, "shapes")
            if len(objs) == 1 or shapes[o.shape] > 1:
                # nothing left, or which of two circles went is unknown
                assert out is None, (caption, o.shape)
                continue
            assert out is not None, (caption, o.shape)
            removed += 1
            gone = next(k for k in keys if k[2] == o.shape)
            assert Counter(x.key for x in parse(out).objects) == keys - Counter([gone]), out
            assert parse(out).facts()[1] == relations_without(caption, o.shape), (caption, out)
            assert not re.search(r"(\band|,|\bof|\babove|\bbelow)$|\band and\b|, and|\s,|\s\s", out)
            assert out.split(" ")[-1] in {x.shape for x in objs}, out
            for frame in ("a picture of ", "there is "):
                assert out.startswith(frame) == caption.startswith(frame), (caption, out)
    frames = ("", "a picture of", "there is", "a photo of")
    expected = {f"{f}|single|{s}" for f in frames for s in ("sized", "plain")}
    expected |= {f"|background|{s}" for s in ("sized", "plain")}
    expected |= {
        f"{f}|{k}|{s}"
        for f in ("", "a picture of")
        for k in ("relation2", "relation3")
        for s in ("sized", "plain")
    }
    expected |= {
        f"{f}|{k}|{s}"
        for f in ("", "there is")
        for k in ("list2", "list3")
        for s in ("sized", "plain")
    }
    assert set(seen) == expected  # every template, sized and plain, was exercised
    assert removed > 2000


@pytest.mark.parametrize(
    ("caption", "shape", "expected"),
    [
        ("a red circle, a blue square and a green star", "square", "a red circle and a green star"),
        (
            "a red circle, a blue square and a green star",
            "circle",
            "a blue square and a green star",
        ),
        ("a red circle, a blue square and a green star", "star", "a red circle and a blue square"),
        ("a red circle to the left of a blue square", "square", "a red circle"),
        ("a red circle to the left of a blue square", "circle", "a blue square"),
        (
            "a picture of a small red circle above a large orange square and a small green star",
            "square",
            "a picture of a small red circle and a small green star",
        ),
        ("there is a purple cross and an orange diamond", "cross", "there is an orange diamond"),
        ("A red circle to the left of a blue square.", "square", "A red circle."),
        ("A red circle to the left of an orange square.", "circle", "An orange square."),
        ("a red circle and a blue circle", "circle", None),  # which one went?
        ("a photo of a small red circle", "circle", None),  # nothing would be left
        ("a red circle on a grey background", "circle", None),
        ("two red circles and a blue square", "circle", None),  # not the world's grammar
        ("a red circle and a blue square", "star", None),  # not named
    ],
)
def test_shapes_removal_examples(caption, shape, expected):
    assert remove_object(caption, shape, "shapes") == expected


@pytest.mark.parametrize(
    ("caption", "shape", "expected"),
    [
        ("a small red circle", "circle", "no small red circle"),
        ("a picture of a red circle", "circle", "a picture with no red circle"),
        ("a photo of a large blue star", "star", "a photo with no large blue star"),
        ("there is an orange diamond", "diamond", "there is no orange diamond"),
        ("a red circle on a grey background", "circle", "no red circle on a grey background"),
        ("A red circle and a blue circle.", "circle", "No red circle and no blue circle."),
    ],
)
def test_shapes_absence(caption, shape, expected):
    assert absence_caption(caption, shape, "shapes") == expected


# --- COCO captions -----------------------------------------------------------------------------

COCO_EDITS = [
    # lists lose an item and its separator; two items left read "A and B"
    ("A small kitchen with yellow walls, a microwave and sink.", "sink",
     "A small kitchen with yellow walls and a microwave."),
    ("A small kitchen with yellow walls, a microwave and sink.", "microwave",
     "A small kitchen with yellow walls and sink."),
    ("A macbook laptop next to a phone, backpack, and various books.", "cell phone",
     "A macbook laptop next to a backpack and various books."),
    ("A pizza is prepared with cheese, tomato sauce, and broccoli.", "broccoli",
     "A pizza is prepared with cheese and tomato sauce."),
    ("A kitchen with a stove, a sink, and a fridge.", "sink",
     "A kitchen with a stove and a fridge."),
    ("A bathroom with a toilet, sink, bath tub, and a small cabinet.", "toilet",
     "A bathroom with a sink, bath tub, and a small cabinet."),
    ("a cat and a dog on a couch", "dog", "a cat on a couch"),
    ("A cat and dog on a couch", "cat", "A dog on a couch"),  # the shared article stays
    ("A bus and cars on a street", "bus", "Cars on a street"),  # no "a" before a plural
    ("A dog and people in a park", "dog", "People in a park"),
    ("A bathroom sink and mirror covered with bathroom items", "sink",
     "A mirror covered with bathroom items"),
    ("a donut with a cup of coffee and an ornate napkin holder", "cup",
     "a donut with an ornate napkin holder"),
    # a subject left alone agrees with its verb
    ("A white oven and a white refrigerator are in the kitchen.", "oven",
     "A white refrigerator is in the kitchen."),
    ("There are a cat and a dog on the bed.", "dog", "There is a cat on the bed."),
    ("There are two dogs and a cat on the bed.", "cat", "There are two dogs on the bed."),
    # prepositional phrases, with the participle that led to them or a bare copula
    ("The kitchen has a microwave on the counter beside the sink.", "sink",
     "The kitchen has a microwave on the counter."),
    ("a young child looking at a birthday cupcake", "cake", "a young child"),
    ("This is a bike locked to a parking meter.", "parking meter", "This is a bike."),
    ("a person that is on a motorcycle in the dark", "motorcycle", "a person"),
    ("A dog is on a couch.", "couch", "A dog."),
    ("A plate of pizza on a table", "pizza", "A plate on a table"),  # the plate is still there
    # verbs go with their objects; where the scene is stays
    ("A woman holding a knife in the kitchen.", "knife", "A woman in the kitchen."),
    ("A man riding a horse on a beach", "horse", "A man on a beach"),
    ("A man holding a slice of pizza", "pizza", "A man"),
    ("A man holding a cup and smiling", "cup", "A man smiling"),
    ("A man picking up a cup", "cup", "A man"),
    # a subject's relation goes with it; the next noun phrase takes its place
    ("A parking meter sitting in the middle of a flooded street.", "parking meter",
     "A flooded street."),
    ("A Thai airways airplane at the Bangkok Airport terminal", "airplane",
     "The Bangkok Airport terminal"),
    ("A red bus at a bus stop near a tower.", "bus", "A bus stop near a tower."),
    ("A man riding a motorcycle through the rain.", "person", "A motorcycle through the rain."),
    ("A picture of a dog on a couch.", "dog", "A picture of a couch."),
    ("A hot dog on a plate", "hot dog", "A plate"),
    # a clause about the removed object goes whole
    ("A dog sitting in a doorway and a person holding a can of dog food with the dog looking "
     "at it.", "person", "A dog sitting in a doorway."),
    # nothing safe to do
    ("Two giraffes at the zoo during the day.", "giraffe", None),  # several
    ("A herd of Elephant protecting a young Elephant.", "elephant", None),
    ("A cross country skier accompanied by his dog.", "skis", None),  # only implied
    ("People are skiing on the snowy slopes in a designated area.", "skis", None),
    ("A hot dog on a plate", "dog", None),  # a hot dog is no dog
    ("A dog bed in a room", "dog", None),  # a modifier, not the thing
    ("A man's dog on a leash", "person", None),  # a possessor
    ("A clock on a building that says 8:25.", "clock", None),  # "says" was the clock's
    ("A cat eating from a bowl next to a bird.", "cat", None),  # its verb stays behind
    ("A little dog stands next to a man preparing food in the kitchen", "person", None),
    ("A man is in a kitchen making pizzas.", "person", None),
    ("A picture of a dog.", "dog", None),  # nothing would be left
    ("A bowl of broccoli, noodles and rice", "bowl", None),  # the list is in the bowl
    ("", "dog", None),
]  # fmt: skip


@pytest.mark.parametrize(("caption", "category", "expected"), COCO_EDITS)
def test_coco_removal_examples(caption, category, expected):
    assert remove_object(caption, category, "coco") == expected


@pytest.mark.parametrize(
    ("caption", "category", "expected"),
    [
        ("A dog is sleeping on the couch.", "dog", "No dog is sleeping on the couch."),
        ("Two giraffes at the zoo during the day.", "giraffe",
         "No giraffes at the zoo during the day."),
        ("A herd of sheep grazing", "sheep", "No sheep grazing"),
        ("A man holding a slice of pizza", "pizza", "A man holding no slice of pizza"),
        ("A plate of donuts", "donut", "A plate with no donuts"),
        ("A picture of a dog.", "dog", "A picture with no dog."),
        ("Zebras socialize on some rocks.", "zebra", "No zebras socialize on some rocks."),
        ("Someone has parked a bicycle.", "person", "No one has parked a bicycle."),
        ("A cross country skier accompanied by his dog.", "skis",
         "A cross country skier accompanied by his dog with no skis."),
        ("A kitchen", "refrigerator", "A kitchen with no refrigerator"),
        ("A bench in a park", "sports ball", "A bench in a park with no ball"),
        ("", "dog", "a picture with no dog"),
    ],
)  # fmt: skip
def test_absence_caption_negates_the_object_in_place(caption, category, expected):
    assert absence_caption(caption, category) == expected


def coco_captions(samples: Path) -> list[str]:
    ann = samples / "coco-mini" / "annotations"
    return [
        a["caption"].strip()
        for split in ("train", "val")
        for a in json.loads((ann / f"captions_{split}2017.json").read_text())["annotations"]
    ]


def test_coco_mini_removals_drop_the_object_and_add_nothing(samples: Path):
    """Every rule-based edit of coco-mini's captions: the category is no longer named, no
    category is named that was not before, and the first letter's case and the final
    punctuation are kept. The counts pin the rules' coverage (numbers in the report)."""
    pairs = removed = captions_edited = 0
    named = 0
    for caption in coco_captions(samples):
        found = categories(caption, coco())
        named += bool(found)
        any_edit = False
        for category in found:
            pairs += 1
            out = remove_object(caption, category, "coco")
            if out is None:
                continue
            removed += 1
            any_edit = True
            left = categories(out, coco())
            assert category not in left and set(left) <= set(found), (caption, out)
            assert out[0].isupper() == caption[0].isupper(), (caption, out)
            assert (out[-1] in ".!?") == (caption[-1] in ".!?"), (caption, out)
        captions_edited += any_edit
    assert (named, pairs) == (1093, 1796)
    assert removed >= 600 and captions_edited >= 500


# --- the op ------------------------------------------------------------------------------------


def ctx(tmp_path: Path, name: str = STEP) -> StepContext:
    return StepContext(name, ShardReader(tmp_path), 0, tmp_path / "work")


def run(table: pa.Table, context: StepContext, **params) -> pa.Table:
    o = registry.get("edit_caption")
    return o.fn(table, o.params.model_validate(params), context)


def table_of(rows: list[tuple[str | None, str | None]]) -> pa.Table:
    return pa.table(
        {
            "uid": pa.array([f"{i:032x}" for i in range(len(rows))], pa.string()),
            "caption": pa.array([c for c, _ in rows], pa.string()),
            "removed": pa.array([r for _, r in rows], pa.string()),
        }
    )


ROWS = [
    ("a cat and a dog on a couch", None),  # an original: untouched
    ("a cat and a dog on a couch", "dog"),
    ("Two dogs on a couch.", "dog"),  # one of two: the absence fallback
    ("A woman holding a knife in the kitchen.", "knife"),
    (None, "dog"),
]


def test_edit_caption_op_edits_only_rows_with_a_removed_object(tmp_path):
    context = ctx(tmp_path)
    out = run(table_of(ROWS), context)
    assert out.column_names == ["uid", "caption", "removed", "parent_caption", "edit"]
    assert out.column("caption").to_pylist() == [
        "a cat and a dog on a couch",
        "a cat on a couch",
        "No dogs on a couch.",
        "A woman in the kitchen.",
        "a picture with no dog",
    ]
    assert out.column("parent_caption").to_pylist() == [None, *[c for c, _ in ROWS[1:]]]
    assert out.column("edit").to_pylist() == [None, "removed", "absence", "removed", "absence"]
    assert context.extra_costs["edit_caption"] == {
        "rows": 4,
        "removed": 2,
        "replaced": 0,
        "absence": 2,
        "dropped": {"absence": 0, "failed": 0},
        "failures": {},
    }
    assert context.samples_processed == 4


def test_edit_caption_op_can_drop_what_it_cannot_remove(tmp_path):
    context = ctx(tmp_path)
    out = run(table_of(ROWS), context, fallback="drop")
    assert out.column("caption").to_pylist() == [
        "a cat and a dog on a couch",
        "a cat on a couch",
        "A woman in the kitchen.",
    ]
    assert out.column("edit").to_pylist() == [None, "removed", "removed"]
    assert context.extra_costs["edit_caption"]["dropped"] == {"absence": 2, "failed": 0}


def test_edit_caption_op_leaves_edited_rows_alone(tmp_path):
    once = run(table_of(ROWS), ctx(tmp_path))
    twice = run(once, ctx(tmp_path))
    assert twice.equals(once)  # a second step does not remove the object twice


def test_edit_caption_op_on_shapes(tmp_path):
    rows = [
        ("a red circle to the left of a blue square", "square"),
        ("there is a red circle and a blue square", "circle"),
        ("a photo of a small red circle", "circle"),
    ]
    out = run(table_of(rows), ctx(tmp_path), vocabulary="shapes")
    assert out.column("caption").to_pylist() == [
        "a red circle",
        "there is a blue square",
        "a photo with no small red circle",
    ]
    assert out.column("edit").to_pylist() == ["removed", "removed", "absence"]


def test_edit_caption_op_edge_cases(tmp_path):
    empty = run(table_of([]), ctx(tmp_path))
    assert empty.num_rows == 0 and {"parent_caption", "edit"} <= set(empty.column_names)
    originals = table_of([("a dog", None), ("a cat", None)])
    context = ctx(tmp_path)
    out = run(originals, context)
    assert out.column("caption").to_pylist() == ["a dog", "a cat"]
    assert out.column("edit").to_pylist() == [None, None]
    assert context.extra_costs["edit_caption"]["rows"] == 0
    for missing in ("caption", "removed"):
        with pytest.raises(OpError, match=re.escape(STEP) + f".*{missing}"):
            run(table_of([("a dog", "dog")]).drop_columns([missing]), ctx(tmp_path))
    with pytest.raises(ValidationError, match="llm"):
        registry.get("edit_caption").params.model_validate({"backend": "llm"})
    with pytest.raises(ValidationError):
        registry.get("edit_caption").params.model_validate({"fallback": "keep"})


# --- LLM backend -------------------------------------------------------------------------------


class Editor:
    """A "model" that edits each numbered "[object] caption" line with the offline rules (or
    states the absence), and keeps the system prompts it was sent."""

    def __init__(self) -> None:
        self.systems: list[str] = []

    def __call__(self, messages: list[dict]) -> str:
        self.systems += [m["content"] for m in messages if m["role"] == "system"]
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        answers = []
        for line in user.splitlines():
            index, category, caption = re.fullmatch(r"(\d+): \[([^\]]+)\] ?(.*)", line).groups()
            out = remove_object(caption, category, "coco")
            edit = "removed" if out else "absence"
            caption = out or absence_caption(caption, category)
            answers.append({"index": int(index), "edit": edit, "caption": caption})
        return json.dumps({"captions": answers})


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    wordnet()  # the Editor's rules read WordNet: load it now, not in a request the client times
    with LLMServer(Editor()) as server:
        yield server


def llm_params(server: LLMServer, **overrides) -> dict:
    config = {
        "model": "test-model",
        "base_url": server.base_url,
        "prices": {"test-model": {"input": 0.15, "output": 0.60}},
        "max_retries": 1,
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
        "timeout_s": 10.0,
    }
    return {"backend": "llm", "llm": config, "captions_per_request": 2, **overrides}


LLM_ROWS = [
    ("A cat and a dog on a couch.", "dog"),
    ("A man riding a horse on a beach", None),
    ("A woman holding a knife in the kitchen.", "knife"),
    ("Two giraffes at the zoo.", "giraffe"),
    ("A cat and a dog on a couch.", "dog"),  # the same edit again: asked once
    ("A red bus at a bus stop near a tower.", "bus"),
]


def test_llm_edits_batch_captions_and_record_cost(llm: LLMServer, tmp_path):
    context = ctx(tmp_path)
    out = run(table_of(LLM_ROWS), context, **llm_params(llm))
    offline = run(table_of(LLM_ROWS), ctx(tmp_path))
    assert out.equals(offline)  # the scripted model answers as the rules do
    assert out.column("caption").to_pylist()[3] == "No giraffes at the zoo."
    assert llm.counts["chat"] == math.ceil(4 / 2)  # four distinct edits, two per prompt
    assert all("One object was removed" in s for s in llm.responder.systems)
    usage = context.extra_costs["llm"]
    assert usage["prompt_tokens"] == llm.tokens["prompt"] > 0
    assert usage["cost_usd"] > 0 and usage["failures"] == 0
    assert context.extra_costs["edit_caption"]["removed"] == 4


def test_llm_failures_drop_their_rows_and_are_counted(llm: LLMServer, tmp_path):
    pairs = [(c, r) for c, r in LLM_ROWS if r is not None]
    second = edit_ops.prompt(list(dict.fromkeys(pairs))[2:4])
    llm.faults = {second: ["malformed"] * 5}
    context = ctx(tmp_path)
    params = llm_params(llm)
    params["llm"]["max_failures"] = 0.5  # one prompt in two may fail
    out = run(table_of(LLM_ROWS), context, **params)
    assert out.column("caption").to_pylist() == [
        "A cat on a couch.",
        "A man riding a horse on a beach",
        "A woman in the kitchen.",
        "A cat on a couch.",
    ]
    assert llm.calls[second] == 2  # one retry, then recorded as failed
    record = context.extra_costs["edit_caption"]
    assert record["dropped"]["failed"] == 2 and record["failures"] == {"llm_failed": 2}
    assert context.extra_costs["llm"]["failures"] == 1
    with pytest.raises(OpError, match=re.escape(STEP) + ": 1 of 2 LLM requests failed"):
        run(table_of(LLM_ROWS), ctx(tmp_path), **llm_params(llm))  # max_failures 0.05


def test_llm_answer_that_still_names_the_object_is_a_failure(llm: LLMServer, tmp_path):
    def lazy(messages: list[dict]) -> str:
        lines = messages[-1]["content"].splitlines()
        return json.dumps(
            {
                "captions": [
                    {"index": i, "edit": "removed", "caption": line.split("] ", 1)[1]}
                    for i, line in enumerate(lines)
                ]
            }
        )

    llm.responder = lazy
    context = ctx(tmp_path)
    out = run(table_of([("A puppy on a sofa", "dog")]), context, **llm_params(llm))
    assert out.num_rows == 0
    assert context.extra_costs["edit_caption"]["failures"] == {"still_named": 1}


def test_llm_answer_must_edit_every_caption_once():
    model = edit_ops.answer_model(2)
    ok = model.model_validate_json(
        '{"captions": [{"index": 1, "edit": "absence", "caption": "No dog."},'
        ' {"index": 0, "edit": "removed", "caption": "A couch."}]}'
    )
    assert [c.index for c in ok.captions] == [1, 0]
    for bad in (
        '{"captions": [{"index": 0, "edit": "removed", "caption": "A couch."}]}',
        '{"captions": [{"index": 0, "edit": "kept", "caption": "x"},'
        ' {"index": 1, "edit": "removed", "caption": "y"}]}',
        '{"captions": [{"index": 0, "edit": "removed", "caption": ""},'
        ' {"index": 1, "edit": "removed", "caption": "y"}]}',
    ):
        with pytest.raises(ValidationError):
            model.model_validate_json(bad)


def test_llm_backend_without_key_fails_naming_the_step(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    params = {"backend": "llm", "llm": {"model": "gpt-4o-mini"}}
    with pytest.raises(OpError, match=re.escape(STEP) + ".*OPENAI_API_KEY"):
        run(table_of([("a dog", "dog")]), ctx(tmp_path), **params)


@pytest.mark.parametrize(
    ("caption", "category", "new", "vocab", "expected"),
    [
        (
            "A red circle to the left of a blue square on a grey background.",
            "circle",
            "triangle",
            "shapes",
            "A red triangle to the left of a blue square on a grey background.",
        ),
        (
            "there is a large orange square, a red star and a blue circle",
            "star",
            "cross",
            "shapes",
            "there is a large orange square, a red cross and a blue circle",
        ),
        ("a photo of a green star", "star", "diamond", "shapes", "a photo of a green diamond"),
        ("a red circle and a blue square", "circle", "square", "shapes", None),  # two squares
        ("a red circle and a blue circle", "circle", "star", "shapes", None),  # which circle?
        (
            "A dog sleeping on a couch.",
            "dog",
            "elephant",
            "coco",
            "An elephant sleeping on a couch.",
        ),
        ("An apple on a table", "apple", "banana", "coco", "A banana on a table"),
        ("Two Dogs on a couch", "dog", "cat", "coco", None),  # one of several
        ("a dog bed in a room", "dog", "cat", "coco", None),  # a modifier
        ("a cat and a dog", "dog", "cat", "coco", None),  # would say one cat of two
        ("a man walking his dog", "person", "horse", "coco", None),  # "his" points at the man
        ("a man walking his dog", "dog", "cat", "coco", "a man walking his cat"),
        ("a skier on a slope", "skis", "snowboard", "coco", None),  # named inside "skier"
        ("", "dog", "cat", "coco", None),
    ],
)
def test_replace_object_swaps_one_name(caption, category, new, vocab, expected) -> None:
    assert replace_object(caption, category, new, vocab) == expected
