"""Training under torch's elastic launcher: N gloo ranks on the CPU train what one process does.

The track's batch is the global batch; each rank trains on its slice with the loss over every
rank's features, so 2 ranks match 1 process (to float rounding), a killed job resumes to the
same model, two launchers meet at a rendezvous on 127.0.0.1, and the stage's key ignores N.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ddp_ranks
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.multiprocessing as mp
from conftest import REPO, TEST_TRACK
from open_clip.loss import ClipLoss

from benchmark import train
from benchmark.cli import main
from benchmark.distributed import Launch, free_port
from benchmark.loss import NegClipLoss
from benchmark.pipeline import Runner
from benchmark.spec.load import load_recipe, load_track
from benchmark.spec.recipe import Step
from benchmark.store import Store

LOSS_RTOL = 1e-3  # final loss, relative
TASK_POINTS = 0.5  # every eval task's headline, in points
WAIT_S = 240  # bound on any one launched job


def _ranks_env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


# -- the losses over ranks ---------------------------------------------------------------------


@pytest.mark.slow
def test_losses_over_two_ranks_equal_one_process(tmp_path):
    out = tmp_path / "ranks.json"
    mp.spawn(ddp_ranks.losses, args=(2, free_port(), str(out)), nprocs=2, join=True)
    got = json.loads(out.read_text())
    for name, fn in (("clip", ClipLoss()), ("negclip", NegClipLoss())):
        feats = [f.clone().requires_grad_() for f in ddp_ranks.features()]
        value = fn(*(feats if name == "negclip" else feats[:2]), torch.tensor(10.0))
        value.backward()
        loss, grads = got[name]
        assert abs(loss - float(value.detach())) < 1e-6, name
        for f, g in zip(feats, grads, strict=True):
            want = f.grad if f.grad is not None else torch.zeros_like(f)
            assert torch.allclose(torch.tensor(g), want, atol=1e-6), name


# -- the stage's key ---------------------------------------------------------------------------


def test_train_stage_key_does_not_depend_on_ranks(tmp_path, monkeypatch):
    """(d) One key whatever the launch; only how the stage is built differs."""
    table = pa.table({"uid": ["a", "b"], "caption": ["x", "y"], "image": ["s#0", "s#1"]})
    scale = load_track(TEST_TRACK).scale("micro")
    built = []

    def fake(*args, **kwargs):
        built.append(args)
        return {"world_size": 0}

    monkeypatch.setattr(train, "train", fake)
    monkeypatch.setattr(train, "launched", fake)
    paths = [
        Runner(Store(tmp_path / f"s{n}"), launch=Launch(n)).train(
            table, scale, Step(op="random"), 0, where="r.yaml"
        )
        for n in (1, 2, 4)
    ]
    assert len({p.name for p in paths}) == 1
    assert len(built) == 3 and isinstance(built[1][0], Launch)  # 2 and 4 go through torchrun


# -- whole runs: 2 gloo ranks against 1 process ------------------------------------------------


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> tuple[Path, Path]:
    """A store holding the test track's pool and one curation; the recipe file."""
    root = tmp_path_factory.mktemp("ddp")
    recipe = root / "r.yaml"
    recipe.write_text(
        f"name: r\ntrack: {TEST_TRACK}\nsteps:\n  - op: language\n"
        "  - op: caption_length\n    min_words: 2\n"
    )
    Runner(Store(root / "base")).curate(load_recipe(recipe))
    return root, recipe


def _store(curated, name: str) -> Path:
    root, _ = curated
    dest = root / name
    if not dest.exists():
        shutil.copytree(root / "base", dest)
    return dest


@pytest.fixture(scope="module")
def one_process(curated) -> dict:
    return Runner(Store(_store(curated, "one"))).run(load_recipe(curated[1]), "micro", 0)


@pytest.fixture(scope="module")
def two_ranks(curated) -> dict:
    runner = Runner(Store(_store(curated, "two")), launch=Launch(2))
    return runner.run(load_recipe(curated[1]), "micro", 0)


def _compare(label: str, a: dict, b: dict) -> None:
    la, lb = a["train"]["final_loss"], b["train"]["final_loss"]
    rel = abs(la - lb) / abs(la)
    points = {t: 100 * abs(a["headline"][t] - b["headline"][t]) for t in a["headline"]}
    worst = max(points.values())
    print(f"\n{label}: final loss {la:.7f} vs {lb:.7f} (relative {rel:.2e}); "
          f"largest task difference {worst:.2f} points {points}")  # fmt: skip
    assert rel <= LOSS_RTOL
    assert worst <= TASK_POINTS


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(curated, one_process, two_ranks):
    """(a) and (d): the same objective over the same global batches; the same stage."""
    _compare("2 ranks vs 1 process", one_process, two_ranks)
    t1, t2 = one_process["train"], two_ranks["train"]
    assert (t1["world_size"], t1["batch_per_rank"], t1["devices"]) == (1, 64, ["cpu"])
    assert (t2["world_size"], t2["batch_per_rank"], t2["devices"]) == (2, 32, ["cpu", "cpu"])
    assert two_ranks["world_size"] == 2 and two_ranks["devices"] == ["cpu", "cpu"]
    assert t1["samples_seen"] == t2["samples_seen"] == 1024
    root, _ = curated
    (k1,) = [p.name for p in (root / "one" / "train").iterdir() if p.is_dir()]
    (k2,) = [p.name for p in (root / "two" / "train").iterdir() if p.is_dir()]
    assert k1 == k2  # N is not an input of the stage
    stage = root / "two" / "train" / k2
    assert not (stage / train.LAUNCH).exists() and not (stage / train.CHECKPOINT).exists()
    assert json.loads((stage / train.RECORD).read_text()) == t2


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out + [d for c in out for d in _children(c)]


def _rank_pid(root: int, rank: int) -> int | None:
    for pid in _children(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"benchmark.train" in cmd and f"RANK={rank}".encode() in env:
            return pid
    return None


@pytest.mark.slow
def test_sigkill_one_rank_then_rerun_matches_uninterrupted(curated, one_process, two_ranks):
    """(b) The elastic agent tears the job down; the rerun resumes and ends the same."""
    root, recipe = curated
    runs = _store(curated, "killed")
    cmd = [sys.executable, "-m", "benchmark.cli", "--runs", str(runs), "run", str(recipe)]
    cmd += ["--scale", "micro", "--seeds", "0", "--gpus", "2", "--leaderboard", str(root / "lb")]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_ranks_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + WAIT_S
        while not list(runs.glob("train/*.partial/checkpoint.pt")):
            assert proc.poll() is None, "run ended before its first checkpoint"
            assert time.time() < deadline
            time.sleep(0.01)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None, "rank 1 not found"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    assert "smallcomp: error: [train] the ranks failed" in err.decode()
    assert not list(runs.glob("train/*/manifest.json")), "a killed stage must not look finished"
    (ckpt,) = runs.glob("train/*.partial/checkpoint.pt")
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < 16
    resumed = Runner(Store(runs), launch=Launch(2)).run(load_recipe(recipe), "micro", 0)
    assert resumed["train"]["resumed_from"] >= step
    _compare("resumed vs uninterrupted (2 ranks)", two_ranks, resumed)
    _compare("resumed (2 ranks) vs 1 process", one_process, resumed)


@pytest.mark.slow
def test_two_node_rendezvous_on_loopback(curated, one_process, tmp_path):
    """(c) Two launchers, one process each, meet at a c10d rendezvous on 127.0.0.1."""
    root, _ = curated
    (table,) = (root / "base" / "curate").glob("*/curated.parquet")
    out, port = tmp_path / "model", free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc_per_node",
                "1",
                "--node-rank",
                str(node),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--local-addr",
                "127.0.0.1",
                "--rdzv-id",
                "two-nodes",
                "-m",
                "benchmark.train",
                "--runs",
                str(root / "base"),
                "--table",
                str(table.parent),
                "--track",
                str(TEST_TRACK),
                "--scale",
                "micro",
                "--seed",
                "0",
                "--out",
                str(out),
                "--device",
                "cpu",
            ],  # fmt: skip
            cwd=REPO,
            env=_ranks_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for node in (0, 1)
    ]
    try:
        errs = [p.communicate(timeout=WAIT_S)[1].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], errs
    record = json.loads((out / train.RECORD).read_text())
    assert record["world_size"] == 2 and record["batch_per_rank"] == 32
    assert (out / "open_clip_model.safetensors").exists() and (
        out / "open_clip_config.json"
    ).exists()
    assert not (out / train.CHECKPOINT).exists()
    want = one_process["train"]["final_loss"]
    rel = abs(record["final_loss"] - want) / want
    print(f"\n2 nodes vs 1 process: final loss relative difference {rel:.2e}")
    assert rel <= LOSS_RTOL


# -- errors ------------------------------------------------------------------------------------


def _error_lines(capsys) -> list[str]:
    return [x for x in capsys.readouterr().err.splitlines() if x.startswith("smallcomp: error: ")]


def test_global_batch_that_does_not_split_over_ranks_is_one_line(tmp_path, recipe, capsys):
    r = recipe("steps:\n  - op: no_filter\n")
    args = ["--runs", str(tmp_path / "runs"), "run", str(r), "--scale", "micro", "--gpus", "3"]
    assert main([*args, "--leaderboard", str(tmp_path / "lb")]) == 2
    (line,) = _error_lines(capsys)
    assert line.endswith("batch_size 64 (the global batch) does not split evenly over 3 ranks")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.parquet"))
    two_nodes = [*args[:-2], "--nnodes", "2"]
    with pytest.raises(SystemExit):
        main([*two_nodes, "--leaderboard", str(tmp_path / "lb")])
    assert "needs --rdzv-endpoint HOST:PORT" in _error_lines(capsys)[0]


@pytest.mark.slow
def test_recipe_error_on_the_ranks_is_one_line_naming_the_recipe(curated, tmp_path, capsys):
    """What only training finds out (a curated set smaller than one global batch) comes back
    from the ranks as the in-process error would: one line naming the recipe."""
    root, _ = curated
    (pool,) = (root / "base" / "pool").glob("*/pool.parquet")
    (tmp_path / "few.txt").write_text("\n".join(pq.read_table(pool)["uid"].to_pylist()[:10]))
    r = tmp_path / "few.yaml"
    r.write_text(f"name: few\ntrack: {TEST_TRACK}\nsteps:\n  - op: uids\n    path: few.txt\n")
    runs = _store(curated, "error")
    args = ["--runs", str(runs), "run", str(r), "--scale", "micro", "--seeds", "0", "--gpus", "2"]
    assert main([*args, "--leaderboard", str(tmp_path / "lb")]) == 2
    (line,) = _error_lines(capsys)
    assert line == (
        f"smallcomp: error: {r}: train: the curated set has 10 rows, fewer than one batch of 64"
    )
    assert not list(runs.rglob(train.ERROR))
