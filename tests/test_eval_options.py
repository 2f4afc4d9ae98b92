"""A track's eval options and pool paths are typed: checked when the track loads, not after
training. Paths resolve against the data root and must exist wherever that root does."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from conftest import TEST_TRACK

from benchmark.cli import main
from benchmark.evaluate import aro
from benchmark.evaluate import registry as tasks
from benchmark.evaluate.shapes import ChoiceParams, ZeroshotParams
from benchmark.evaluate.suite import RetrievalParams, Templates
from benchmark.spec.errors import SpecError
from benchmark.spec.load import load_track

SCALES = (
    "scales:\n  a: {model: shapes-vit-tiny, samples_seen: 10, batch_size: 2, lr: 0.1, warmup: 0,"
    " weight_decay: 0, seeds: [0]}\n"
)


def track(tmp_path: Path, head: str, eval_tasks: str, options: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        f"name: t\n{head}eval:\n  suite: s\n  version: '1'\n  tasks: [{eval_tasks}]\n"
        f"  options:\n{options}{SCALES}"
    )
    return path


def error(path: Path, capsys) -> str:
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_shared_options_go_to_the_tasks_that_take_them():
    params = load_track(TEST_TRACK).eval_params
    assert params["zeroshot"] == ZeroshotParams(image_size=32, per_class=2)  # no 'n': not its
    assert params["relation"] == ChoiceParams(image_size=32, n=40)


def test_shared_option_no_task_takes_is_an_error(tmp_path, capsys):
    path = track(tmp_path, "pool: {kind: shapes}\n", "zeroshot", "    all: {image_sise: 32}\n")
    err = error(path, capsys)
    assert f"{path}:8:11: unknown field 'eval.options.all.image_sise'" in err, err


def test_bad_shared_value_is_located_where_it_is_written(tmp_path, capsys):
    options = "    all: {image_size: 8}\n    zeroshot: {per_class: 2}\n"
    path = track(tmp_path, "pool: {kind: shapes}\n", "zeroshot, relation", options)
    err = error(path, capsys)
    assert f"{path}:8:23: field 'eval.options.all.image_size'" in err, err


def test_options_for_a_task_not_listed_are_an_error(tmp_path, capsys):
    path = track(tmp_path, "pool: {kind: shapes}\n", "zeroshot", "    zershot: {per_class: 2}\n")
    err = error(path, capsys)
    assert f"{path}:8:5: field 'eval.options.zershot': no task 'zershot' in eval.tasks" in err


def test_paths_resolve_against_the_expanded_data_root(tmp_path, monkeypatch):
    (tmp_path / "data" / "imagenet-samples").mkdir(parents=True)
    (tmp_path / "data" / "shards").mkdir()
    monkeypatch.setenv("SC_TEST_DATA", str(tmp_path / "data"))
    head = "data_root: ${SC_TEST_DATA:-nowhere}\npool: {kind: byod, path: shards/*.tar}\n"
    spec = load_track(track(tmp_path, head, "imagenet", "    imagenet: {root: imagenet-samples}\n"))
    assert spec.eval_params["imagenet"].root == tmp_path / "data" / "imagenet-samples"
    assert spec.pool.path == str(tmp_path / "data" / "shards" / "*.tar")  # a pattern: not checked


def test_paths_under_a_data_root_not_on_this_machine_are_not_checked(tmp_path):
    head = f"data_root: {tmp_path / 'absent'}\npool: {{kind: coco, root: coco}}\n"
    spec = load_track(track(tmp_path, head, "imagenet", "    imagenet: {root: imagenet/val}\n"))
    assert spec.pool.root == tmp_path / "absent" / "coco"
    assert spec.eval_params["imagenet"].root == tmp_path / "absent" / "imagenet" / "val"


def test_missing_pool_directory_is_located(tmp_path, capsys):
    head = f"data_root: {tmp_path}\npool: {{kind: coco, root: coco}}\n"
    path = track(tmp_path, head, "zeroshot", "    zeroshot: {}\n")
    err = error(path, capsys)
    assert f"{path}:3:26: field 'pool.root': no such directory: {tmp_path / 'coco'}" in err, err


def test_missing_eval_file_is_located(tmp_path, capsys):
    (tmp_path / "coco").mkdir()
    options = "    retrieval_coco: {root: coco, captions: captions.json}\n"
    path = track(tmp_path, f"data_root: {tmp_path}\npool: {{kind: shapes}}\n", "retrieval_coco",
                 options)  # fmt: skip
    err = error(path, capsys)
    assert "field 'eval.options.retrieval_coco.captions': no such file: " in err, err


def test_retrieval_needs_recall_at_1_for_its_headline():
    with pytest.raises(ValueError, match="must include 1"):
        RetrievalParams(root="x", ks=[5, 10])


def test_task_params_agree_with_the_families():
    from benchmark.evaluate import imagenet  # loads open_clip: the names are spelled in suite

    assert set(get_args(Templates)) == set(imagenet.TEMPLATES)
    assert set(aro.TASKS) <= set(tasks.names())


def test_tasks_get_validated_params_and_the_evaluate_key_is_unchanged(tmp_path, monkeypatch):
    """Results are keyed by the evaluate stage: typed options must not move that key."""
    from benchmark import pipeline
    from benchmark.store import Store

    spec = load_track(TEST_TRACK)
    seen = {}

    def task(name: str) -> tasks.Task:
        def run(bundle: object, params: object) -> dict:
            seen[name] = params
            return {"metrics": {}}

        return tasks.Task(name, run, "acc", ZeroshotParams)

    monkeypatch.setattr(tasks, "get", task)
    monkeypatch.setattr(pipeline.clip, "create", lambda *a, **k: None)
    store = Store(tmp_path / "runs")
    pipeline.Runner(store).evaluate(tmp_path / "model", spec)
    assert seen == spec.eval_params
    ev = spec.track.eval
    options = {"all": {"image_size": 32, "n": 40}, "zeroshot": {"per_class": 2}}  # as written
    inputs = {"model": "model", "suite": ev.suite, "version": ev.version, "tasks": ev.tasks}
    assert store.stage("evaluate", inputs | {"options": options}).done


def test_load_error_is_a_spec_error(tmp_path):
    path = track(tmp_path, "pool: {kind: shapes}\n", "imagenet", "    imagenet: {}\n")
    with pytest.raises(SpecError, match="missing required field 'eval.options.imagenet.root'"):
        load_track(path)
