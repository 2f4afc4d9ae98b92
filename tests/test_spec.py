"""Malformed recipes and tracks: one FILE:LINE:COL line naming the field, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.spec.load import load_recipe, load_track

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "malformed").glob("*.yaml"))
REPO = HERE.parent


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 80


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_malformed_file_gives_one_located_line(path: Path, capsys):
    where, expected = path.with_suffix(".expect").read_text().splitlines()[:2]
    code = main(["validate", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert f"{path}:{where}: " in err, err
    assert expected in err, err


def test_real_cli_exit_code_and_stderr():
    bad = HERE / "malformed" / "recipe_param_range.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert f"{bad}:5:15:" in proc.stderr


def test_shipped_tracks_and_recipes_validate():
    for track in (REPO / "tracks").glob("*.yaml"):
        load_track(track)
    recipes = list((REPO / "recipes").rglob("*.yaml"))
    assert len(recipes) >= 5
    for recipe in recipes:
        spec = load_recipe(recipe)
        assert spec.track.track.name


def test_recipe_hash_ignores_prose_but_not_params(tmp_path: Path):
    track = HERE / "tracks" / "shapes-test.yaml"
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    c = tmp_path / "c.yaml"
    body = "track: {t}\nsteps:\n  - op: clip_score\n    fraction: {f}\n"
    a.write_text("name: a\ndescription: one\n" + body.format(t=track, f=0.3))
    b.write_text("name: a\ndescription: two\n" + body.format(t=track, f=0.3))
    c.write_text("name: a\n" + body.format(t=track, f=0.4))
    assert load_recipe(a).hash == load_recipe(b).hash != load_recipe(c).hash


def test_params_defaults_are_filled_in(tmp_path: Path):
    track = HERE / "tracks" / "shapes-test.yaml"
    r = tmp_path / "r.yaml"
    steps = "  - op: dedup\n  - op: keywords\n  - op: detect\n  - op: inpaint\n"
    r.write_text(f"name: r\ntrack: {track}\nsteps:\n{steps}sampler:\n  op: paired\n")
    spec = load_recipe(r)
    assert spec.recipe.steps[0].params == {"by": "image", "threshold": 0.35}
    assert spec.recipe.sampler.params["column"] == "parent_uid"
