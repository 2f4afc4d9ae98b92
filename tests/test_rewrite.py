"""`rewrite` (LaCLIP-style): offline rewrites keep the meaning exactly (checked by parsing shapes
captions), are seeded per uid, and the LLM path is validated and costed; `pick_caption` draws
uniformly and reproducibly."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from llm_server import LLMServer  # tests/ is on sys.path

from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shards import ShardReader
from benchmark.text.caption_pick import pick_caption
from benchmark.text.paraphrase import paraphrases
from benchmark.text.shapes_caption import parse
from benchmark.world import describe, sample_objects

STEP = "recipe.yaml: steps[2] (rewrite)"


def ctx(tmp_path: Path) -> StepContext:
    return StepContext(STEP, ShardReader(tmp_path), 0, tmp_path / "work")


def run(table: pa.Table, context: StepContext, **params) -> pa.Table:
    o = registry.get("rewrite")
    return o.apply(table, o.params.model_validate(params), context)


def table_of(captions: list[str | None], uids: list[str] | None = None) -> pa.Table:
    uids = uids or [f"{i:032x}" for i in range(len(captions))]
    return pa.table(
        {"uid": pa.array(uids, pa.string()), "caption": pa.array(captions, pa.string())}
    )


def shapes_captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [describe(sample_objects(rng, int(rng.integers(1, 4))), rng) for _ in range(n)]


def test_offline_rewrites_never_change_what_a_shapes_caption_asserts():
    captions = shapes_captions(300)
    rng = np.random.default_rng(1)
    rewritten = 0
    for caption in captions:
        truth = parse(caption).facts()
        rewrites = paraphrases(caption, 4, rng)
        assert caption not in rewrites and len(set(rewrites)) == len(rewrites)
        for r in rewrites:
            assert parse(r).facts() == truth, (caption, r)
        rewritten += bool(rewrites)
    assert rewritten == len(captions)  # every world caption has at least a template change


def test_offline_rewrite_kinds():
    rng = np.random.default_rng(0)

    def all_rewrites(caption: str) -> set[str]:
        return {r for _ in range(20) for r in paraphrases(caption, 5, rng)}

    relation = all_rewrites("A red circle to the left of a blue square.")
    assert "A blue square to the right of a red circle." in relation
    assert "A photo of a red circle to the left of a blue square." in relation
    listed = all_rewrites("there is a red circle, a blue square and a green star")
    assert "there is a green star, a red circle and a blue square" in listed
    assert "a red circle, a blue square and a green star" in listed  # the frame dropped
    assert any("automobile" in r or "auto " in r for r in all_rewrites("A car on the street"))
    starts = all_rewrites("A man and a woman sitting on a bench")
    assert "A woman and a man sitting on a bench" in starts


def test_offline_rewrites_leave_colours_verbs_and_clauses_alone():
    rng = np.random.default_rng(0)
    caption = "A man plays tennis while a red dog sits on the grass"
    for r in (r for _ in range(20) for r in paraphrases(caption, 5, rng)):
        assert " plays " in r and " red " in r and " sits " in r
        assert r.endswith("a red dog sits on the grass")  # no clause moved
    for r in (r for _ in range(10) for r in paraphrases("A black and white cat", 5, rng)):
        assert r.endswith("a black and white cat")  # two colours of one cat, not two things
    assert paraphrases("", 3, rng) == [] and paraphrases("   ", 3, rng) == []
    assert paraphrases("IMG_2041.JPG", 3, rng) == []  # nothing to rephrase: no junk rewrites


def test_rewrite_op_is_seeded_per_uid_not_by_row_order(tmp_path):
    captions = shapes_captions(20, seed=3)
    table = table_of(captions)
    out = run(table, ctx(tmp_path), k=3)
    assert out.column("caption").to_pylist() == captions  # the original is kept
    assert out.column("caption_rewrites").type == pa.list_(pa.string())
    rewrites = out.column("caption_rewrites").to_pylist()
    assert all(1 <= len(r) <= 3 for r in rewrites)
    reversed_out = run(table.take(list(range(19, -1, -1))), ctx(tmp_path), k=3)
    assert reversed_out.column("caption_rewrites").to_pylist()[::-1] == rewrites
    other_seed = run(table, ctx(tmp_path), k=3, seed=1).column("caption_rewrites").to_pylist()
    assert other_seed != rewrites


def test_rewrite_op_edge_cases(tmp_path):
    out = run(table_of([None, ""]), ctx(tmp_path))
    assert out.column("caption_rewrites").to_pylist() == [[], []]
    empty = run(table_of([]), ctx(tmp_path))
    assert empty.num_rows == 0 and empty.column("caption_rewrites").type == pa.list_(pa.string())
    for missing in ("uid", "caption"):
        with pytest.raises(OpError, match=re.escape(STEP) + f".*{missing}"):
            run(table_of(["a dog"]).drop_columns([missing]), ctx(tmp_path))


# --- LLM backend --------------------------------------------------------------------------


def rewriting_responder(messages: list[dict]) -> str:
    """A "model" that gives k rewrites: the caption in framing templates (and once itself)."""
    system = next(m["content"] for m in messages if m["role"] == "system")
    k = int(re.search(r"Rewrite an image caption (\d+) times", system).group(1))
    caption = messages[-1]["content"]
    frames = [caption, f"a photo of {caption}", f"an image of {caption}", f"{caption}, seen here"]
    return json.dumps({"rewrites": frames[:k]})


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-rewrite-000000000000")
    with LLMServer(rewriting_responder) as server:
        yield server


def llm_params(server: LLMServer, k: int = 3) -> dict:
    config = {
        "model": "test-model",
        "base_url": server.base_url,
        "prices": {"test-model": {"input": 1.0, "output": 2.0}},
        "max_retries": 1,
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
    }
    return {"backend": "llm", "llm": config, "k": k}


def test_llm_rewrites_per_distinct_caption_with_cost_and_failures(llm: LLMServer, tmp_path):
    captions = ["a dog on a couch", "two cats", "a dog on a couch", "", "a red bus"]
    llm.faults = {"a red bus": ["wrong_fields"] * 3}
    context = ctx(tmp_path)
    params = llm_params(llm)
    params["llm"]["max_failures"] = 0.5  # one prompt in three may fail
    out = run(table_of(captions), context, **params)
    got = out.column("caption_rewrites").to_pylist()
    assert got[0] == got[2] == ["a photo of a dog on a couch", "an image of a dog on a couch"]
    assert got[1] == ["a photo of two cats", "an image of two cats"]  # the caption itself dropped
    assert got[3] == [] and got[4] is None  # empty: nothing asked; failed: recorded as null
    assert llm.calls == {"a dog on a couch": 1, "two cats": 1, "a red bus": 2}
    usage = context.extra_costs["llm"]
    assert usage["failures"] == 1 and usage["prompt_tokens"] == llm.tokens["prompt"]
    assert usage["cost_usd"] == pytest.approx(
        (llm.tokens["prompt"] * 1.0 + llm.tokens["completion"] * 2.0) / 1e6
    )


def test_llm_answer_with_too_few_rewrites_is_retried_then_failed(llm: LLMServer, tmp_path):
    llm.responder = lambda messages: json.dumps({"rewrites": ["only one"]})
    context = ctx(tmp_path)
    params = llm_params(llm, k=2)
    params["llm"]["max_failures"] = 1.0
    out = run(table_of(["a dog"]), context, **params)
    assert out.column("caption_rewrites").to_pylist() == [None]
    assert llm.calls["a dog"] == 2
    with pytest.raises(OpError, match=re.escape(STEP) + ": 1 of 1 LLM requests failed"):
        run(table_of(["a dog"]), ctx(tmp_path), **llm_params(llm, k=2))


# --- pick_caption ---------------------------------------------------------------------------


def test_pick_caption_is_uniform_and_a_function_of_seed_epoch_uid():
    uid = "9f86d081884c7d659a2feaa0c55ad015"
    options = ["original", "first", "second", "third"]
    drawn = [pick_caption(uid, options[0], options[1:], 0, epoch) for epoch in range(4000)]
    counts = Counter(drawn)
    assert set(counts) == set(options)
    assert all(abs(n / 4000 - 0.25) < 0.03 for n in counts.values())
    assert drawn == [pick_caption(uid, options[0], options[1:], 0, e) for e in range(4000)]
    assert drawn != [pick_caption(uid, options[0], options[1:], 1, e) for e in range(4000)]
    other_uid = [pick_caption("0" * 32, options[0], options[1:], 0, e) for e in range(4000)]
    assert drawn != other_uid
    assert pick_caption("not-hex uid", "original", ["x"], 0, 0) in ("original", "x")
    assert pick_caption(uid, "original", None, 3, 7) == "original"
    assert pick_caption(uid, "original", [], 3, 7) == "original"
