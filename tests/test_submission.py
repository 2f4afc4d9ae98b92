"""Submission bundles: `smallcomp submit`, `smallcomp verify` and `leaderboard --add`.

One real tiny run (the test track's micro scale, seed 0) is bundled once per session; verify
re-derives it (retraining seed 0 bit for bit), and every tampered copy is caught with a line
naming what was changed.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TEST_TRACK

from benchmark import leaderboard
from benchmark.bundle import open_bundle, seal, sorted_uids, write_archive
from benchmark.cli import main
from benchmark.store import file_sha256

RECIPE = f"name: sub\ntrack: {TEST_TRACK}\nsteps:\n  - op: language\n  - op: caption_length\n"


class Submitted:
    """The session's run and its bundles (one without models, one with)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs, self.board = root / "runs", root / "lb"
        self.recipe = root / "sub.yaml"
        self.recipe.write_text(RECIPE + "    min_words: 2\n")

    def submit(self, *extra: str, out: str = "bundles", recipe: Path | None = None) -> int:
        args = ["--runs", str(self.runs), "submit", str(recipe or self.recipe), "--scale", "micro"]
        args += ["--leaderboard", str(self.board), "--out", str(self.root / out), *extra]
        return main(args)

    def verify(self, bundle: Path, *extra: str) -> int:
        args = ["--runs", str(self.runs), "verify", str(bundle), "--track", str(TEST_TRACK)]
        return main([*args, *extra])

    def bundle(self, out: str = "bundles") -> Path:
        (folder,) = [p for p in (self.root / out).iterdir() if p.is_dir()]
        return folder


@pytest.fixture(scope="module")
def submitted(tmp_path_factory) -> Submitted:
    s = Submitted(tmp_path_factory.mktemp("submission"))
    run = ["--runs", str(s.runs), "run", str(s.recipe), "--scale", "micro", "--seeds", "0"]
    assert main([*run, "--leaderboard", str(s.board)]) == 0
    assert s.submit() == 0
    assert s.submit("--with-models", out="with_models") == 0
    return s


def _tampered(submitted: Submitted, tmp_path: Path, edit, reseal: bool = True) -> Path:
    """A copy of the bundle with ``edit(root)`` applied, its manifest rewritten to match (as a
    forger would) unless ``reseal`` is False."""
    copy = tmp_path / submitted.bundle().name
    shutil.copytree(submitted.bundle(), copy)
    edit(copy)
    if reseal:
        seal(copy)
    return copy


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


# -- submit ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundle_holds_recipe_sorted_datacomp_uids_results_and_manifest(submitted):
    root = submitted.bundle()
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for name in (
        "bundle.json",
        "recipe.yaml",
        "recipe.resolved.json",
        "uids.npy",
        "curation.json",
        "environment.json",
        "results/seed0.json",
        "train/seed0.json",
        "manifest.json",
    ):
        assert name in names
    assert (root / "recipe.yaml").read_text() == submitted.recipe.read_text()  # as written
    resolved = json.loads((root / "recipe.resolved.json").read_text())
    assert resolved["steps"][1]["params"]["min_chars"] is not None  # defaults resolved
    info = json.loads((root / "bundle.json").read_text())
    result = json.loads((root / "results/seed0.json").read_text())
    assert info["recipe_hash"] == result["recipe_hash"] and info["seeds"] == [0]
    assert (info["track"], info["suite_version"]) == ("shapes-test", "1")
    assert json.loads((root / "train/seed0.json").read_text()) == result["train"]
    assert json.loads((root / "curation.json").read_text())["steps"][0]["op"] == "language"
    assert "torch" in json.loads((root / "environment.json").read_text())["runs"]["0"]["versions"]
    # DataComp's format, sorted, though the curate stage keeps table order
    uids = np.load(root / "uids.npy", allow_pickle=False)
    assert uids.dtype == np.dtype("u8,u8") and len(uids) == info["curated"]["size"]
    assert np.array_equal(uids, np.sort(uids))
    (table_order,) = submitted.runs.glob("curate/*/uids.npy")
    assert np.array_equal(uids, np.sort(np.load(table_order)))
    (curated,) = submitted.runs.glob("curate/*/curated.parquet")
    assert np.array_equal(uids, sorted_uids(pq.read_table(curated).column("uid").to_pylist()))
    manifest = json.loads((root / "manifest.json").read_text())["files"]
    assert set(manifest) == names - {"manifest.json"}
    assert all(file_sha256(root / n) == m["sha256"] for n, m in manifest.items())
    assert not any(n.startswith("models/") for n in names)
    with_models = submitted.bundle("with_models")
    assert (with_models / "models/seed0/open_clip_model.safetensors").is_file()
    # the archive holds the directory, and is byte-identical when written again
    archive = root.with_name(root.name + ".tar.gz")
    with tarfile.open(archive) as tf:
        members = {m.name for m in tf.getmembers() if m.isfile()}
    assert members == {f"{root.name}/{n}" for n in names}
    again = submitted.root / "again.tar.gz"
    write_archive(root, again)
    assert again.read_bytes() == archive.read_bytes()


@pytest.mark.slow
def test_submit_refuses_a_missing_seed_naming_the_run_command(submitted, capsys):
    assert submitted.submit("--seeds", "0,1", out="refused") == 2
    err = capsys.readouterr().err
    assert "no result for seed 1 of recipe 'sub'" in err
    assert f"smallcomp --runs {submitted.runs} run {submitted.recipe}" in err
    assert "--seeds 1" in err and "\n" not in err.strip()
    assert not (submitted.root / "refused").exists() or not any(
        (submitted.root / "refused").iterdir()
    )


@pytest.mark.slow
def test_submit_refuses_results_of_another_recipe_hash(submitted, capsys):
    changed = submitted.root / "changed.yaml"
    changed.write_text(RECIPE + "    min_words: 3\n")
    assert submitted.submit(out="refused", recipe=changed) == 2
    err = capsys.readouterr().err
    assert "are from recipe hash" in err and "it changed since" in err and "run " in err


@pytest.mark.slow
def test_submit_refuses_results_of_another_suite_version(submitted, tmp_path, capsys):
    board = tmp_path / "lb"
    shutil.copytree(submitted.board / "results", board / "results")
    (result,) = board.glob("results/*/*/*/*.json")
    _edit_json(result, lambda r: r.update(suite_version="0"))
    args = ["--runs", str(submitted.runs), "submit", str(submitted.recipe), "--scale", "micro"]
    assert main([*args, "--leaderboard", str(board), "--out", str(tmp_path / "out")]) == 2
    assert "scored with suite shapes version 0" in capsys.readouterr().err


# -- verify ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_verify_rederives_the_bundle_and_retrains_seed_zero(submitted, capsys):
    archive = next((submitted.root / "with_models").glob("*.tar.gz"))
    assert submitted.verify(archive, "--retrain", "0", "--reevaluate") == 0
    lines = _lines(capsys)
    for check in (
        "manifest",
        "track",
        "recipe",
        "curation",
        "budget",
        "numbers",
        "reevaluate",
        "retrain seed 0",
    ):
        assert any(line.startswith(f"ok       {check}:") for line in lines), (check, lines)
    assert "bit-identical (CPU)" in "\n".join(lines) or "within 0.5 points" in "\n".join(lines)
    assert lines[-1].startswith("VERIFIED: ")


@pytest.mark.slow
def test_verify_checks_the_local_tracks_curation_budget(submitted, tmp_path, capsys):
    track = tmp_path / "budgeted.yaml"
    text = TEST_TRACK.read_text()
    track.write_text(
        text.replace("losses: [clip]", "losses: [clip]\n  curation_budget: {device_s_per_1k: 5}")
    )
    bundle = submitted.bundle()
    args = ["--runs", str(submitted.runs), "verify", str(bundle), "--track", str(track)]
    assert main(args) == 0
    lines = _lines(capsys)
    assert any(x.startswith("ok       budget: estimate within 5 device-s per 1,000") for x in lines)


def _bump_metric(root: Path) -> None:
    _edit_json(
        root / "results/seed0.json",
        lambda r: r["tasks"]["zeroshot"]["metrics"].update(
            acc1=r["tasks"]["zeroshot"]["metrics"]["acc1"] + 0.1
        ),
    )


def _swap_uid(submitted: Submitted):
    def edit(root: Path) -> None:
        uids = np.load(root / "uids.npy")
        (pool,) = submitted.runs.glob("pool/*/pool.parquet")
        kept = set(map(tuple, uids.tolist()))
        outsider = next(
            u
            for u in sorted_uids(pq.read_table(pool).column("uid").to_pylist())
            if tuple(u.tolist()) not in kept
        )
        uids[0] = outsider
        np.save(root / "uids.npy", np.sort(uids))

    return edit


def _suite_version(root: Path) -> None:
    _edit_json(root / "bundle.json", lambda i: i.update(suite_version="2"))
    _edit_json(root / "results/seed0.json", lambda r: r.update(suite_version="2"))


def _unlist(root: Path) -> None:
    _edit_json(root / "manifest.json", lambda m: m["files"].pop("curation.json"))


def _escape(root: Path) -> None:
    _edit_json(
        root / "manifest.json",
        lambda m: m["files"].update({"../outside.json": {"bytes": 2, "sha256": "0" * 64}}),
    )


def _symlink(root: Path) -> None:
    (root / "results" / "seed9.json").symlink_to(Path("/etc/hostname"))


TAMPERS = {
    # name: (edit, reseal, exit code, the line that names it)
    "edited metric": (
        _bump_metric,
        True,
        1,
        "MISMATCH numbers: results/seed0.json: headline.zeroshot",
    ),
    "edited metric, manifest kept": (
        _bump_metric,
        False,
        1,
        "MISMATCH manifest: results/seed0.json does not match its sha256",
    ),
    "edited recipe": (
        lambda root: (root / "recipe.yaml").write_text(RECIPE + "    min_words: 3\n"),
        True,
        1,
        "MISMATCH recipe: recipe.yaml hashes to",
    ),
    "different suite version": (
        _suite_version,
        True,
        1,
        "MISMATCH track: suite version 2 in the bundle, the local track shapes-test has version 1",
    ),
    "file missing from the manifest": (
        _unlist,
        False,
        1,
        "MISMATCH manifest: curation.json is not in the manifest",
    ),
    "manifest path escaping the bundle": (
        _escape,
        False,
        2,
        "MALFORMED: ",
    ),
    "symlink in the bundle": (
        _symlink,
        False,
        2,
        "MALFORMED: ",
    ),
}
DETAIL = {
    "manifest path escaping the bundle": "manifest path '../outside.json' escapes the bundle",
    "symlink in the bundle": "bundle path 'results/seed9.json' is a symlink",
}


@pytest.mark.slow
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_bundle_is_caught_with_a_line_naming_it(submitted, tmp_path, capsys, tamper):
    edit, reseal, code, line = TAMPERS[tamper]
    bundle = _tampered(submitted, tmp_path, edit, reseal)
    assert submitted.verify(bundle) == code
    lines = _lines(capsys)
    assert any(x.startswith(line) for x in lines), lines
    assert DETAIL.get(tamper, "") in lines[-1]
    assert not lines[-1].startswith("VERIFIED")


@pytest.mark.slow
def test_swapped_uid_is_caught_by_the_curation_rerun(submitted, tmp_path, capsys):
    bundle = _tampered(submitted, tmp_path, _swap_uid(submitted))
    assert submitted.verify(bundle) == 1
    lines = _lines(capsys)
    assert any(
        x.startswith("MISMATCH curation: uids.npy differs from the curation here: 1 bundled uid")
        for x in lines
    ), lines


@pytest.mark.slow
def test_consistent_forgery_of_the_numbers_is_caught_by_reevaluating(submitted, tmp_path, capsys):
    """Every number edited to agree (metric, headline, leaderboard row): only the model knows."""
    copy = tmp_path / "forged"
    shutil.copytree(submitted.bundle("with_models"), copy)

    def forge(r: dict) -> None:
        r["tasks"]["zeroshot"]["metrics"]["acc1"] = 0.99
        r["headline"]["zeroshot"] = 0.99

    _edit_json(copy / "results/seed0.json", forge)
    forged = json.loads((copy / "results/seed0.json").read_text())
    from benchmark.bundle import leaderboard_row

    _edit_json(copy / "bundle.json", lambda i: i.update(leaderboard=leaderboard_row([forged])))
    seal(copy)
    assert submitted.verify(copy) == 0  # the numbers agree with each other
    capsys.readouterr()
    assert submitted.verify(copy, "--reevaluate") == 1
    lines = _lines(capsys)
    assert any(x.startswith("MISMATCH reevaluate: seed 0: zeroshot.acc1 0.99") for x in lines)


def _archive_with(submitted: Submitted, path: Path, member: tarfile.TarInfo, data=b"") -> Path:
    """The real bundle's archive plus one hostile member."""
    root = submitted.bundle()
    with tarfile.open(path, "w:gz") as tf:
        tf.add(root, root.name)
        tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("../evil.txt", tarfile.REGTYPE, "archive member '../evil.txt' escapes the bundle"),
        ("/tmp/smallcomp-evil.txt", tarfile.REGTYPE, "escapes the bundle"),
        ("b/results/link.json", tarfile.SYMTYPE, "is a symlink"),
        ("b/results/hard.json", tarfile.LNKTYPE, "is a hard link"),
        ("b/dev", tarfile.CHRTYPE, "is a device or special file"),
    ],
)
def test_hostile_archive_member_is_refused_before_unpacking(
    submitted, tmp_path, capsys, name, kind, message
):
    member = tarfile.TarInfo(name.replace("b/", submitted.bundle().name + "/"))
    member.type = kind
    if kind == tarfile.REGTYPE:
        member.size = 4
    else:
        member.linkname = "/etc/hostname"
    workdir = tmp_path / "inner" / "deeper"
    workdir.mkdir(parents=True)
    archive = _archive_with(submitted, workdir / "hostile.tar.gz", member, b"evil")
    assert submitted.verify(archive) == 2
    last = _lines(capsys)[-1]
    assert last.startswith("MALFORMED: ") and message in last
    assert not (workdir.parent / "evil.txt").exists()
    assert not Path("/tmp/smallcomp-evil.txt").exists()


def test_open_bundle_of_nothing_is_one_line(tmp_path):
    from benchmark.bundle import BundleError

    with pytest.raises(BundleError, match="no such bundle"), open_bundle(tmp_path / "none"):
        pass


# -- leaderboard --add -----------------------------------------------------------------------


@pytest.mark.slow
def test_leaderboard_add_takes_verified_bundles_only(submitted, tmp_path, capsys):
    board = tmp_path / "board"
    base = ["--runs", str(submitted.runs), "leaderboard", "--leaderboard", str(board)]
    bad = _tampered(submitted, tmp_path / "bad", _bump_metric)
    assert main([*base, "--add", str(bad), "--track", str(TEST_TRACK)]) == 1
    assert not list(board.glob("results/**/*.json"))
    archive = next((submitted.root / "bundles").glob("*.tar.gz"))
    assert main([*base, "--add", str(archive), "--track", str(TEST_TRACK)]) == 0
    (saved,) = board.glob("results/shapes-test/micro/*/*.json")
    stamp = json.loads(saved.read_text())["verified"]
    assert stamp["bundle_sha256"] == file_sha256(submitted.bundle() / "manifest.json")
    assert stamp["archive_sha256"] == file_sha256(archive)
    assert {"manifest", "recipe", "curation", "numbers"} <= set(stamp["checks"])
    assert "date" in stamp
    (row,) = leaderboard.rows(leaderboard.load_results(board))
    assert row["verified"] is True
    page = (board / "shapes-test.md").read_text()
    assert "| verified |" in page and "| ✓ |" in page and "✓ Verified:" in page


def test_unverified_rows_keep_their_shape_and_show_no_mark(tmp_path):
    result = {
        "recipe": "a",
        "recipe_hash": "a" * 16,
        "track": "t",
        "scale": "s",
        "seed": 0,
        "headline": {"zeroshot": 0.5},
        "curated": {"size": 10, "uid_hash": "u"},
        "costs": {"curation_wall_s": 1.0},
    }
    (row,) = leaderboard.rows([result])
    assert row["verified"] is False and row["tasks"]["zeroshot"][0] == 0.5
    text = leaderboard.render("t", [result])
    (line,) = [x for x in text.splitlines() if x.startswith("| 1 |")]
    assert line.startswith("| 1 | a `aaaaaaaa` |  | 1 |")
    assert "✓ Verified" not in text
