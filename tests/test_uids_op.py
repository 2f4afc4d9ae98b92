"""The ``uids`` filter: a curated uid list, exported in any of its three formats, curates the same
set again and trains the same model; its content is part of the recipe's hash; a bad list is one
located line at load time."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, TEST_TRACK

from benchmark import curate
from benchmark.cli import main
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pipeline import Runner
from benchmark.pools.shards import ShardReader
from benchmark.spec.errors import SpecError
from benchmark.spec.load import load_recipe
from benchmark.store import Store

BASIC = REPO / "recipes" / "baselines" / "basic.yaml"
A, B, C, X = (f"{i:032x}" for i in (0xA, 0xB, 0xC, 0xF00D))


def _write(directory: Path, name: str, path: str, extra: str = "") -> Path:
    r = directory / f"{name}.yaml"
    r.write_text(
        f"name: {name}\ntrack: {TEST_TRACK}\nsteps:\n  - op: uids\n    path: {path}\n{extra}"
    )
    return r


def export(uids: list[str], directory: Path) -> dict[str, Path]:
    """The curated uids in the three formats the op reads."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {
        "npy": directory / "uids.npy",
        "parquet": directory / "uids.parquet",
        "txt": directory / "uids.txt",
    }
    np.save(out["npy"], curate.uid_array(uids))
    pq.write_table(pa.table({"uid": uids, "other": list(range(len(uids)))}), out["parquet"])
    out["txt"].write_text("".join(f"{u.upper() if i % 2 else u}\n" for i, u in enumerate(uids)))
    return out


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> tuple[Path, pa.Table, dict]:
    """basic.yaml's steps curated on the test track."""
    root = tmp_path_factory.mktemp("uids")
    runner, spec = Runner(Store(root / "runs")), load_recipe(BASIC, str(TEST_TRACK))
    table, report = runner.curate(spec)
    assert 0 < report["curated_rows"] < report["pool_rows"]
    report["stage"] = runner._curate_stage(spec).path
    return root, table, report


def test_exported_uids_in_each_format_curate_the_same_set(basic):
    root, table, report = basic
    uids = table.column("uid").to_pylist()
    files = export(uids, root / "lists")
    # the curate stage's own DataComp file is the same list as the one exported here
    stage_npy = report["stage"] / "uids.npy"
    assert np.array_equal(np.load(stage_npy, allow_pickle=False), np.load(files["npy"]))
    runner = Runner(Store(root / "runs"))
    for fmt, file in files.items():
        spec = load_recipe(_write(root, f"from_{fmt}", f"lists/{file.name}"))
        assert spec.recipe.steps[0].params == {
            "path": f"lists/{file.name}",
            "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        }
        curated, again = runner.curate(spec)
        assert again["uid_hash"] == report["uid_hash"], fmt
        assert curated.column("uid").to_pylist() == uids
        (step,) = again["steps"]
        assert step["uids"] == {"listed": len(uids), "repeated": 0, "not_in_pool": 0}


def test_uids_not_in_the_pool_are_counted(basic, capsys):
    root, table, _ = basic
    listed = [X, *table.column("uid").to_pylist()[:10], C]
    (root / "foreign.txt").write_text("\n".join(listed) + "\n")
    r = _write(root, "foreign", "foreign.txt")
    assert main(["--runs", str(root / "runs"), "curate", str(r), "--report"]) == 0
    out = capsys.readouterr().out
    assert " 600 ->       10 " in out and "uids listed 12, not in pool 2" in out

    t = pa.table({"uid": [A, B, C], "caption": ["a", "b", "c"]})
    (root / "list.txt").write_text(f"{B}\n{X}\n\n{B.upper()}\n")
    op = registry.get("uids")
    params = op.params.model_validate(
        {"path": "list.txt", "sha256": hashlib.sha256((root / "list.txt").read_bytes()).hexdigest()}
    )
    ctx = StepContext("steps[0] (uids)", ShardReader(root), 0, root / "w", recipe_dir=root)
    kept = op.apply(t, params, ctx)
    assert kept.column("uid").to_pylist() == [B]
    assert ctx.extra_costs == {"uids": {"listed": 3, "repeated": 1, "not_in_pool": 1}}
    assert op.kind == "filter" and op.scope == "table" and op.columns_read(params) == ("uid",)


def _npy(path: Path, arr: np.ndarray, pickle: bool = False) -> None:
    with path.open("wb") as f:
        np.save(f, arr, allow_pickle=pickle)


MALFORMED = {
    "bad_hex.txt": (lambda p: p.write_text(f"{A}\n{B[:-1]}x\n"), "bad_hex.txt line 2: "),
    "short.txt": (lambda p: p.write_text(f"{A[:-1]}\n"), "is not a uid (32 hex digits)"),
    "latin1.txt": (lambda p: p.write_bytes(f"{A}\n".encode() + b"caf\xe9\n"), "not UTF-8"),
    "empty.txt": (lambda p: p.write_text("\n\n"), "lists no uids"),
    "int.npy": (lambda p: _npy(p, np.arange(4)), "has dtype int64"),
    "u4.npy": (lambda p: _npy(p, np.zeros(2, "u4,u4")), "a uid list is DataComp's"),
    "two_d.npy": (lambda p: _npy(p, np.zeros((2, 2), "u8")), "a uid list is DataComp's"),
    "pickle.npy": (
        lambda p: _npy(p, np.array([A], dtype=object), pickle=True),
        "refused, it holds pickled objects",
    ),
    "not.npy": (lambda p: p.write_bytes(b"\x80\x04K\x01."), "is not a .npy array"),
    "no_uid.parquet": (
        lambda p: pq.write_table(pa.table({"key": [A]}), p),
        "has no 'uid' column (columns: key)",
    ),
    "int_uid.parquet": (lambda p: pq.write_table(pa.table({"uid": [1]}), p), "want hex strings"),
    "null_uid.parquet": (
        lambda p: pq.write_table(pa.table({"uid": [A, None]}), p),
        "row 1: None is not a uid",
    ),
    "junk.parquet": (lambda p: p.write_bytes(b"PAR1 not really"), "not a readable Parquet file"),
    "absent.npy": (lambda p: None, "no such file: "),
    "folder.txt": (lambda p: p.mkdir(), "no such file: "),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_uid_file_is_one_located_line(tmp_path, capsys, name):
    make, expected = MALFORMED[name]
    make(tmp_path / name)
    r = _write(tmp_path, "bad", name)
    assert main(["validate", str(r)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{r}:5:11: field 'steps[0].path': " in err and expected in err, err


def test_file_content_is_part_of_the_recipe_hash_and_curate_key(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "u.txt").write_text(f"{A}\n{B}\n")
    r = _write(tmp_path, "r", "lists/u.txt")
    runner = Runner(Store(tmp_path / "runs"))
    first = load_recipe(r)
    same = load_recipe(r)
    assert first.hash == same.hash
    assert runner._curate_stage(first).key == runner._curate_stage(same).key
    (lists / "u.txt").write_text(f"{A}\n{C}\n")
    changed = load_recipe(r)
    assert changed.hash != first.hash
    assert runner._curate_stage(changed).key != runner._curate_stage(first).key

    # where the recipe and its list lie does not enter the hash: only what the list holds
    moved = tmp_path / "elsewhere"
    shutil.copytree(lists, moved / "lists")
    assert load_recipe(_write(moved, "r", "lists/u.txt")).hash == changed.hash

    # a pinned sha256 is kept when it matches (any case) and refused when it does not
    digest = hashlib.sha256((lists / "u.txt").read_bytes()).hexdigest()
    pinned = load_recipe(_write(tmp_path, "p", "lists/u.txt", f"    sha256: {digest.upper()}\n"))
    assert pinned.hash == changed.hash
    with pytest.raises(SpecError, match=r":6:13: field 'steps\[0\].sha256': .* not the pinned"):
        load_recipe(_write(tmp_path, "q", "lists/u.txt", f"    sha256: {'ab' * 32}\n"))


def test_a_list_changed_after_loading_fails_the_step(basic):
    root, table, _ = basic
    (root / "late.txt").write_text("\n".join(table.column("uid").to_pylist()[:5]))
    spec = load_recipe(_write(root, "late", "late.txt"))
    (root / "late.txt").write_text("\n".join(table.column("uid").to_pylist()[:6]))
    with pytest.raises(OpError, match=r"late.yaml: steps\[0\] \(uids\): .*changed since"):
        Runner(Store(root / "runs")).curate(spec)


@pytest.mark.slow
def test_uid_list_trains_and_scores_exactly_as_the_recipe_it_came_from(basic, tmp_path):
    """Fresh stores for both, so each model is trained, not found in the other's cache."""
    root, table, report = basic
    files = export(table.column("uid").to_pylist(), tmp_path / "lists")
    a = Runner(Store(tmp_path / "a")).run(load_recipe(BASIC, str(TEST_TRACK)), "micro", 0)
    spec = load_recipe(_write(tmp_path, "replay", f"lists/{files['npy'].name}"))
    b = Runner(Store(tmp_path / "b")).run(spec, "micro", 0)
    assert a["curated"]["uid_hash"] == b["curated"]["uid_hash"] == report["uid_hash"]
    assert a["recipe_hash"] != b["recipe_hash"]
    assert a["train"]["final_loss"] == b["train"]["final_loss"]
    assert a["headline"] == b["headline"]
    for task in a["tasks"]:
        assert a["tasks"][task]["metrics"] == b["tasks"][task]["metrics"], task
