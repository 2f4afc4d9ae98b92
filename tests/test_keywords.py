"""`keywords` (offline vocabulary and LLM backend) and `text_based` (WordNet classes) on real
captions: what they find, what they refuse to find, and how they fail."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pyarrow as pa
import pytest
from llm_server import LLMServer  # tests/ is on sys.path
from pydantic import ValidationError

from benchmark.cli import main
from benchmark.ops import keywords as keyword_ops
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shards import ShardReader
from benchmark.text import wordnet
from benchmark.text.vocabulary import categories, coco, shapes

KEY = "sk-test-keywords-0000000000000000"
STEP = "recipe.yaml: steps[1] (keywords)"


def ctx(tmp_path: Path, name: str = STEP) -> StepContext:
    return StepContext(name, ShardReader(tmp_path), 0, tmp_path / "work")


def run(op: str, table: pa.Table, context: StepContext, **params) -> pa.Table:
    o = registry.get(op)
    return o.apply(table, o.params.model_validate(params), context)


def captions_table(captions: list[str | None]) -> pa.Table:
    uids = [f"{i:032x}" for i in range(len(captions))]
    return pa.table(
        {"uid": pa.array(uids, pa.string()), "caption": pa.array(captions, pa.string())}
    )


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man riding a motorbike next to a puppy.", ["person", "motorcycle", "dog"]),
        ("Two hot dogs on a plate", ["hot dog"]),
        ("a teddy bear sitting on a sofa", ["couch", "teddy bear"]),
        ("An orange bus parked in the street", ["bus"]),
        ("Oranges and bananas in a bowl", ["bowl", "banana", "orange"]),
        ("A woman talks on her cell phone in front of the TV", ["person", "tv", "cell phone"]),
        ("Jets and a plane at the airport", ["airplane"]),
        ("A baby elephant walks behind an adult elephant", ["elephant"]),
        (
            "People waiting at a traffic light on their bikes",
            ["person", "bicycle", "traffic light"],
        ),
        ("Children standing at a bus stop", ["person"]),
        ("a skier going down the ski slope", ["person", "skis"]),
        (
            "Knives, forks and wine glasses on the dining table",
            ["wine glass", "fork", "knife", "dining table"],
        ),
        ("A view of the mountains at dusk", []),
        ("", []),
    ],
)
def test_coco_keywords_find_synonyms_plurals_and_phrases_not_lookalikes(caption, expected):
    assert categories(caption, coco()) == expected


def test_shapes_vocabulary_names_the_world_shapes_and_nothing_else():
    assert categories("two red circles above a star and a dog", shapes()) == ["circle", "star"]
    assert categories("a large blue diamond", shapes()) == ["diamond"]


def test_offline_keywords_are_precise_on_coco_captions(samples: Path):
    """Against the instance labels of the captioned image, as benchmarks/keywords_coco.py."""
    ann = samples / "coco-mini" / "annotations"
    instances = json.loads((ann / "instances_val2017.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    truth: dict[int, set[str]] = {im["id"]: set() for im in instances["images"]}
    for a in instances["annotations"]:
        truth[a["image_id"]].add(names[a["category_id"]])
    pairs = [
        (c["caption"], truth[c["image_id"]])
        for c in json.loads((ann / "captions_val2017.json").read_text())["annotations"]
        if c["image_id"] in truth
    ]
    found = [set(categories(caption, coco())) for caption, _ in pairs]
    tp = sum(len(f & t) for f, (_, t) in zip(found, pairs, strict=True))
    fp = sum(len(f - t) for f, (_, t) in zip(found, pairs, strict=True))
    assert tp / (tp + fp) >= 0.9
    assert tp > 300  # it finds plenty, not just the safe few


def test_keywords_op_adds_a_list_column_and_handles_edge_cases(tmp_path):
    table = captions_table(["a dog on a couch", None, "nothing here"])
    out = run("keywords", table, ctx(tmp_path))
    assert out.column("keywords").type == pa.list_(pa.string())
    assert out.column("keywords").to_pylist() == [["dog", "couch"], [], []]
    assert out.num_rows == 3 and out.column_names[:2] == ["uid", "caption"]

    empty = run("keywords", table.slice(0, 0), ctx(tmp_path))
    assert empty.num_rows == 0 and empty.column("keywords").type == pa.list_(pa.string())

    with pytest.raises(OpError, match=re.escape(STEP) + ".*caption"):
        run("keywords", table.drop_columns(["caption"]), ctx(tmp_path))
    with pytest.raises(ValidationError, match="llm"):
        registry.get("keywords").params.model_validate({"backend": "llm"})
    with pytest.raises(ValidationError):
        registry.get("keywords").params.model_validate({"vocabulary": "imagenet"})


# --- LLM backend --------------------------------------------------------------------------


class Labeller:
    """A "model" that labels each numbered caption line with the offline matcher, and keeps
    the system prompts it was sent."""

    def __init__(self) -> None:
        self.systems: list[str] = []

    def __call__(self, messages: list[dict]) -> str:
        self.systems += [m["content"] for m in messages if m["role"] == "system"]
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        lines = [line.split(": ", 1) for line in user.splitlines()]
        labelled = [{"index": int(i), "categories": categories(c, coco())} for i, c in lines]
        return json.dumps({"captions": labelled})


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer(Labeller()) as server:
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
    return {"backend": "llm", "llm": config, "captions_per_request": 4, **overrides}


COCO_CAPTIONS = [
    "A man riding a motorbike next to a puppy.",
    "Two hot dogs on a plate",
    "a teddy bear sitting on a sofa",
    "An orange bus parked in the street",
    "A view of the mountains at dusk",
    "Knives and forks on a table",
    "A cat sleeping on a laptop",
    "Children standing at a bus stop",
    "Pizza and a glass of wine",
    "Sheep grazing near a fence",
]


def test_llm_keywords_batch_captions_and_record_cost(llm: LLMServer, tmp_path):
    context = ctx(tmp_path)
    out = run("keywords", captions_table(COCO_CAPTIONS), context, **llm_params(llm))
    assert out.column("keywords").to_pylist() == [categories(c, coco()) for c in COCO_CAPTIONS]
    assert llm.counts["chat"] == math.ceil(len(COCO_CAPTIONS) / 4)  # 4, 4, then 2 captions
    assert all(", ".join(coco().categories) in system for system in llm.responder.systems)
    usage = context.extra_costs["llm"]
    assert usage["prompt_tokens"] == llm.tokens["prompt"] > 0
    assert usage["completion_tokens"] == llm.tokens["completion"]
    assert usage["cost_usd"] > 0 and usage["failures"] == 0


def test_llm_failures_leave_null_keywords_and_are_counted(llm: LLMServer, tmp_path):
    second_chunk = keyword_ops.prompt(COCO_CAPTIONS[4:8])
    llm.faults = {second_chunk: ["malformed"] * 5}
    context = ctx(tmp_path)
    params = llm_params(llm)
    params["llm"]["max_failures"] = 0.5  # one prompt in three may fail
    out = run("keywords", captions_table(COCO_CAPTIONS), context, **params)
    got = out.column("keywords").to_pylist()
    assert got[4:8] == [None] * 4
    assert got[:4] + got[8:] == [
        categories(c, coco()) for c in COCO_CAPTIONS[:4] + COCO_CAPTIONS[8:]
    ]
    assert llm.calls[second_chunk] == 2  # one retry, then recorded as failed
    assert context.extra_costs["llm"]["failures"] == 1


def test_failing_llm_step_fails_in_one_line_and_a_rerun_asks_only_for_the_failures(
    llm: LLMServer, recipe, tmp_path: Path, capsys: pytest.CaptureFixture
):
    """An outage fails the step (exit 2, one line, nothing finished, nothing cached); a partial
    one too, beyond max_failures, but the valid answers are cached; once the server recovers a
    rerun asks for exactly the failed prompts, and the report (which holds the cache_dir path)
    is written."""
    cache = tmp_path / "answers"
    config = llm_params(llm)["llm"] | {"cache_dir": str(cache)}
    step = "steps:\n  - op: keywords\n    backend: llm\n    captions_per_request: 100\n"
    r = recipe(step + f"    llm: {json.dumps(config)}\n")
    runs = tmp_path / "runs"

    def curate() -> tuple[int, str, str]:
        code = main(["--runs", str(runs), "curate", str(r)])
        out, err = capsys.readouterr()
        return code, out, err

    llm.fail_all = "server_error"
    code, _, err = curate()
    (line,) = [x for x in err.splitlines() if x.startswith("smallcomp: error:")]
    assert code == 2 and "Traceback" not in err
    assert "steps[0] (keywords): 6 of 6 LLM requests failed" in line and "HTTP 500" in line
    assert not list(runs.glob("curate/*/report.json"))
    assert not any(p.read_text() for p in cache.glob("answers-*.jsonl"))

    prompts = sorted(llm.calls)  # the pool's 600 captions, 100 to a prompt
    assert len(prompts) == 6 and all(n == 2 for n in llm.calls.values())  # 1 + max_retries
    llm.reset()
    llm.faults = {p: ["server_error"] * 2 for p in prompts[:2]}
    code, _, err = curate()
    assert code == 2 and "2 of 6 LLM requests failed" in err

    llm.reset()
    code, out, _ = curate()
    assert code == 0
    assert set(llm.calls) == set(prompts[:2]) and sum(llm.calls.values()) == 2
    (step,) = json.loads(out)["steps"]
    assert step["params"]["llm"]["cache_dir"] == str(cache)
    assert (step["llm"]["requests"], step["llm"]["cached"], step["llm"]["failures"]) == (2, 4, 0)


def test_llm_answer_must_label_every_caption_once():
    model = keyword_ops.answer_model(("dog", "cat"), 2)
    ok = model.model_validate_json(
        '{"captions": [{"index": 1, "categories": []}, {"index": 0, "categories": ["dog"]}]}'
    )
    assert [c.index for c in ok.captions] == [1, 0]
    for bad in (
        '{"captions": [{"index": 0, "categories": ["dog"]}]}',  # caption 1 missing
        '{"captions": [{"index": 0, "categories": ["horse"]}, {"index": 1, "categories": []}]}',
        '{"captions": [{"index": 0, "categories": []}, {"index": 2, "categories": []}]}',
    ):
        with pytest.raises(ValidationError):
            model.model_validate_json(bad)


def test_llm_backend_without_key_fails_naming_the_step(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    params = {"backend": "llm", "llm": {"model": "gpt-4o-mini"}}
    with pytest.raises(OpError, match=re.escape(STEP) + ".*OPENAI_API_KEY"):
        run("keywords", captions_table(["a dog"]), ctx(tmp_path), **params)


# --- text_based ---------------------------------------------------------------------------


def test_text_based_keeps_captions_naming_a_target_class(tmp_path):
    table = captions_table([
        "A dog lying on the sofa",
        "A view of the mountains at dusk",
        "a puppy in the snow",
        "a red star above a blue circle",
        "a golden retriever catching a frisbee",
        "IMG_0001.jpg",
        "a small red cross",  # "red cross" is a WordNet noun of its own, but names no class
    ])  # fmt: skip
    kept = run("text_based", table, ctx(tmp_path), classes="coco")
    assert kept.column("caption").to_pylist() == [
        "A dog lying on the sofa",
        "a golden retriever catching a frisbee",
    ]
    assert kept.column("text_classes").to_pylist() == [["dog", "couch"], ["frisbee"]]
    deeper = run("text_based", table, ctx(tmp_path), classes="coco", match="nouns", depth=1)
    assert "a puppy in the snow" in deeper.column("caption").to_pylist()  # puppy → dog
    shaped = run("text_based", table, ctx(tmp_path), classes="shapes")
    assert shaped.column("text_classes").to_pylist() == [["star", "circle"], ["cross"]]
    # Two-word names are the noun matcher's: DataComp's whitespace tokens see "retriever".
    imagenet = run("text_based", table, ctx(tmp_path), classes="imagenet", match="nouns")
    assert imagenet.column("text_classes").to_pylist()[0:1] == [["Golden Retriever"]]


def test_text_based_edge_cases(tmp_path, monkeypatch):
    table = captions_table(["IMG_0001.jpg", "asdf qwerty"])
    none = run("text_based", table, ctx(tmp_path, "r.yaml: steps[0] (text_based)"), classes="coco")
    assert none.num_rows == 0 and "text_classes" in none.column_names
    empty = run("text_based", table.slice(0, 0), ctx(tmp_path), classes="shapes")
    assert empty.num_rows == 0
    with pytest.raises(OpError, match=r"steps\[0\] \(text_based\).*caption"):
        run(
            "text_based",
            table.drop_columns(["caption"]),
            ctx(tmp_path, "r.yaml: steps[0] (text_based)"),
        )

    def missing(*_):
        raise wordnet.WordNetMissing(wordnet.INSTALL_HELP)

    monkeypatch.setattr(keyword_ops, "caption_classes", missing)
    monkeypatch.setattr(keyword_ops, "datacomp_classes", missing)
    with pytest.raises(OpError, match=r"steps\[0\] \(text_based\).*apt-get install"):
        run("text_based", table, ctx(tmp_path, "r.yaml: steps[0] (text_based)"))


def test_wordnet_is_located_or_explains_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(wordnet.ENV, str(tmp_path))
    with pytest.raises(wordnet.WordNetMissing, match="wordnet-base"):
        wordnet.locate()
    monkeypatch.delenv(wordnet.ENV)
    assert (wordnet.locate() / "data.noun").is_file()
    wn = wordnet.wordnet()
    assert wn.synset_from_pos_and_offset("n", 1440764).name() == "tench.n.01"  # n01440764
    assert wn.synset("dog.n.01").lexname() == "noun.animal"  # the lexnames table is right
