"""``--executor ray`` gives the local answer: every recipe, on a real local Ray cluster.

The cluster declares two logical GPUs (this machine has none), so model steps are scheduled as
GPU actors, one device index each, and fall back to the CPU inside the actor.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REPO, TEST_TRACK, with_world_boxes

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray  # noqa: E402  (pip install -e '.[dev]' brings it)

from benchmark import curate as curation  # noqa: E402
from benchmark import curate_ray, pools  # noqa: E402
from benchmark.pipeline import Runner  # noqa: E402
from benchmark.spec.load import load_recipe, load_track  # noqa: E402
from benchmark.spec.recipe import Step  # noqa: E402
from benchmark.store import Store  # noqa: E402

pytestmark = pytest.mark.slow

RECIPES = sorted(
    p
    for p in (REPO / "recipes").rglob("*.yaml")
    if "track: shapes\n" in p.read_text()  # the embedded world's recipes
)


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2,
        num_gpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def track(tmp_path_factory) -> Path:
    """The test track with what every shapes recipe needs: a detector (random weights from
    ultralytics' config) and the NegCLIP loss."""
    d = tmp_path_factory.mktemp("track")
    text = TEST_TRACK.read_text().replace("losses: [clip]", "losses: [clip, negclip]")
    (d / "t.yaml").write_text(text + "detector:\n  model: yolov8n.yaml\n")
    return d / "t.yaml"


def _steps(report: dict) -> list[tuple]:
    return [
        (s["op"], s["rows_in"], s["rows_out"], s["samples_processed"], json.dumps(s.get("quality")))
        for s in report["steps"]
    ]


def test_every_recipe_curates_the_same_on_ray(cluster, track: Path, tmp_path: Path):
    assert len(RECIPES) >= 14
    local = Runner(Store(tmp_path / "local"))
    on_ray = Runner(Store(tmp_path / "ray"), executor=curate_ray.RayOptions())
    for recipe in RECIPES:
        spec = load_recipe(recipe, str(track))
        _, want = local.curate(spec)
        for shared in ("pool", "reference"):  # built once; the curation is redone
            if (tmp_path / "local" / shared).exists() and not (tmp_path / "ray" / shared).exists():
                shutil.copytree(tmp_path / "local" / shared, tmp_path / "ray" / shared)
        table, got = on_ray.curate(spec)
        assert got["executor"] == "ray"
        assert got["uid_hash"] == want["uid_hash"], recipe.name
        assert _steps(got) == _steps(want), recipe.name
        assert table.num_rows == want["curated_rows"]
        key = on_ray._curate_stage(spec).key  # the executor is not part of the stage key
        assert key == local._curate_stage(spec).key
        for step in got["steps"]:
            assert set(step["device_s"]) and step["wall_s"] >= 0
        models = [s for s in got["steps"] if s["op"] in {"clip_score", "embed", "detect"}]
        for step in models:  # model steps ran as GPU actors, each with its own device
            gpus = [tuple(w["gpu_ids"]) for w in step["workers"]]
            assert all(len(g) == 1 for g in gpus) and len(set(gpus)) == len(gpus), step


@pytest.fixture
def edits_pool(tmp_path: Path) -> Path:
    """A shapes pool whose detections are the world's own boxes, so generate steps make real
    edits (a random detector finds nothing)."""
    params = pools.get("shapes").params.model_validate(
        {"size": 300, "seed": 3, "image_size": 64, "defects": {}}
    )
    table = pools.get("shapes").build(params, tmp_path).table
    table = with_world_boxes(table)
    pq.write_table(table.drop_columns(["gt_defect"]), tmp_path / "pool.parquet")
    return tmp_path / "pool.parquet"


EDIT_STEPS = [
    Step(op="keywords", params={"vocabulary": "shapes"}),
    Step(op="inpaint", params={"backend": "classical", "dilate": 0}),
    Step(op="repaint", params={"backend": "shapes", "vocabulary": "shapes", "variants": 2}),
    Step(op="edit_caption", params={"vocabulary": "shapes", "fallback": "drop"}),
    Step(op="quality_check", params={"detector": False, "clip": False}),
]


def _validated(steps: list[Step]) -> list[Step]:
    from benchmark.ops import registry

    return [
        Step(op=s.op, params=registry.get(s.op).params.model_validate(s.params).model_dump())
        for s in steps
    ]


def test_generated_rows_match_and_a_restart_redoes_nothing(cluster, edits_pool: Path):
    from benchmark.ops.context import StepContext
    from benchmark.pools.shards import ShardReader

    root = edits_pool.parent
    steps = _validated(EDIT_STEPS)
    track = load_track(TEST_TRACK)

    def context(i: int, step: Step) -> StepContext:
        return StepContext(f"steps[{i}]", ShardReader(root), i, root / f"w{i}", store_root=root)

    want = curation.curate(pq.read_table(edits_pool), steps, context)
    assert want.steps[1]["rows_out"] > want.steps[1]["rows_in"]  # edits were made

    def spec(i: int, step: Step, defects: bool) -> curate_ray.StepSpec:
        return curate_ray.StepSpec(
            i, step, f"steps[{i}]", str(root), str(root / f"r{i}"), "cpu", track, (), defects
        )

    local = root / "local"  # the local edits, kept aside: Ray's workers make every edit again
    local.mkdir()
    (root / "generated").rename(local / "generated")
    out = root / "ray"
    out.mkdir()
    report = curate_ray.Curation(edits_pool, steps, spec, curate_ray.RayOptions()).run(out)
    assert report["uid_hash"] == want.uid_hash
    got = pq.read_table(out / "curated.parquet")
    assert got.column_names == want.table.column_names
    # Edits are the same pixels, but a chunk is named by the edits it holds, and Ray's
    # workers chunked them differently: only the image references differ.
    same = [c for c in got.column_names if c != "image"]
    assert got.select(same).equals(want.table.select(same).cast(got.select(same).schema))
    reader, local_reader = ShardReader(root), ShardReader(local)
    for a, b in zip(
        got.column("image").to_pylist(), want.table.column("image").to_pylist(), strict=True
    ):
        if a != b:
            assert reader.read_image(a).tobytes() == local_reader.read_image(b).tobytes()
    for a, b in zip(report["steps"], want.steps, strict=True):
        assert (a["rows_in"], a["rows_out"]) == (b["rows_in"], b["rows_out"]), a["op"]
    edits = report["steps"][1]["edits"]
    assert edits["generated"] == want.steps[1]["edits"]["generated"] and edits["reused"] == 0
    uids = np.load(out / "uids.npy")
    assert len(uids) == got.num_rows

    again = root / "again"
    again.mkdir()
    second = curate_ray.Curation(edits_pool, steps, spec, curate_ray.RayOptions()).run(again)
    assert second["uid_hash"] == want.uid_hash
    assert second["steps"][1]["edits"]["generated"] == 0  # every chunk was found, none redone
    assert second["steps"][1]["edits"]["reused"] == edits["planned"]


@pytest.fixture
def two_nodes():
    """A real two-node cluster on loopback alone: a head and a worker raylet, both on
    127.0.0.1 (``ray start`` would put a second node on the interface address: it resolves
    127.0.0.1 away unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which then refuses to add
    nodes). Two logical CPUs each (this machine has 2 cores): an actor reserves one on each
    node and leaves one to the read and join tasks, so Ray spreads the actors over both
    (actors on 1-CPU nodes reserve nothing, and Ray may put them all on one node). Torn down
    whatever the test does."""
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", include_dashboard=False)
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes(timeout=60)
        yield cluster
    finally:
        cluster.shutdown()


def test_two_node_loopback_cluster_curates_the_same(two_nodes, tmp_path: Path):
    """``smallcomp curate --executor ray --ray-address`` on two nodes gives the local answer,
    with the model step's actors on both nodes (they read the pool, shards and reference
    model from the shared filesystem and report to the records actor across nodes)."""
    import subprocess
    import sys

    recipe = REPO / "recipes" / "baselines" / "basic_and_clip_score.yaml"
    _, want = Runner(Store(tmp_path / "local")).curate(load_recipe(recipe, str(TEST_TRACK)))
    for shared in ("pool", "reference"):
        shutil.copytree(tmp_path / "local" / shared, tmp_path / "ray" / shared)
    env = dict(os.environ)
    # The executor's own choice, not the test module's, decides how the driver connects.
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    # Every actor up before the first batch and one batch in flight each, so the first actor
    # to start does not take every batch (Ray Data's defaults; the answer is the same).
    env["RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S"] = "180"
    env["RAY_DATA_ACTOR_DEFAULT_MAX_TASKS_IN_FLIGHT_TO_MAX_CONCURRENCY_FACTOR"] = "1"
    cmd = [sys.executable, "-m", "benchmark.cli", "--runs", str(tmp_path / "ray"), "curate"]
    cmd += [str(recipe), "--track", str(TEST_TRACK), "--executor", "ray"]
    cmd += ["--ray-address", two_nodes.address, "--ray-concurrency", "2"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (report,) = (tmp_path / "ray" / "curate").glob("*/report.json")
    got = json.loads(report.read_text())
    assert got["executor"] == "ray"
    assert got["uid_hash"] == want["uid_hash"]
    assert _steps(got) == _steps(want)
    nodes = {n.node_id[:12] for n in two_nodes.list_all_nodes()}
    assert two_nodes.address.startswith("127.0.0.1:") and len(nodes) == 2
    (scored,) = [s for s in got["steps"] if s["op"] == "clip_score"]
    assert {w["node"] for w in scored["workers"]} == nodes, scored["workers"]
