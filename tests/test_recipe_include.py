"""``include:``: a recipe built on another has the included recipe's steps, then its own, and
the included one's sampler, loss and track unless it sets them; it hashes as the recipe written
out, and an error inside an included file points into that file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, TEST_TRACK

from benchmark.cli import main
from benchmark.spec.errors import SpecError
from benchmark.spec.load import MAX_INCLUDES, load_recipe

# Hashes of the shipped recipes from before they were rewritten with include: (their steps
# written out); the rewrite must not change what they do.
HASHES = {
    "counterfactual.yaml": "c0e8ee61ea41c017",
    "counterfactual_negclip.yaml": "714febd37095d14a",  # hard_negatives: + shuffles (suite v2)
    "counterfactual_replace.yaml": "b7af1deab795c6c2",
    "negclip_hard_images.yaml": "e27d27c33e8725f4",  # likewise
    "ablations/counterfactual_unfiltered.yaml": "416623b263bbf190",
}

BASE = """name: base
description: the base
track: {track}
steps:
  - op: language
    keep: [en]
  - op: dedup
sampler:
  op: grouped
  column: source
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _validate(path: Path, capsys) -> str:
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", HASHES)
def test_shipped_recipes_keep_their_hashes(name: str):
    spec = load_recipe(REPO / "recipes" / name)
    assert spec.hash == HASHES[name]


def test_shipped_recipes_include_rather_than_copy():
    cf = load_recipe(REPO / "recipes" / "counterfactual.yaml")
    base = load_recipe(REPO / "recipes" / "baselines" / "basic_and_clip_score.yaml")
    assert cf.includes == (str(REPO / "recipes" / "baselines" / "basic_and_clip_score.yaml"),)
    assert cf.recipe.steps[: len(base.recipe.steps)] == base.recipe.steps
    assert (cf.recipe.name, cf.recipe.sampler.op) == ("counterfactual", "paired")
    negclip = load_recipe(REPO / "recipes" / "counterfactual_negclip.yaml")
    assert len(negclip.includes) == 2  # counterfactual.yaml, and what it includes
    assert negclip.recipe.steps[:-1] == cf.recipe.steps
    assert (negclip.recipe.sampler, negclip.recipe.loss) == (cf.recipe.sampler, "negclip")


def test_steps_come_after_the_included_ones_and_settings_are_inherited(tmp_path: Path):
    _write(tmp_path / "base" / "base.yaml", BASE.format(track=TEST_TRACK))
    child = _write(
        tmp_path / "child.yaml",
        "name: child\ninclude: base/base.yaml\nsteps:\n  - op: clip_score\n    fraction: 0.5\n",
    )
    spec = load_recipe(child)
    assert [s.op for s in spec.recipe.steps] == ["language", "dedup", "clip_score"]
    assert spec.recipe.sampler.op == "grouped"  # inherited, as the track is
    assert spec.track.track.name == "shapes-test"
    assert (spec.recipe.name, spec.recipe.description) == ("child", "")  # never inherited
    written_out = _write(
        tmp_path / "flat.yaml",
        f"name: flat\ntrack: {TEST_TRACK}\nsteps:\n  - op: language\n    keep: [en]\n"
        "  - op: dedup\n  - op: clip_score\n    fraction: 0.5\nsampler:\n  op: grouped\n"
        "  column: source\n",
    )
    assert spec.hash == load_recipe(written_out).hash
    own = _write(
        tmp_path / "own.yaml", "name: own\ninclude: base/base.yaml\nsampler:\n  op: random\n"
    )
    assert load_recipe(own).recipe.sampler.op == "random"  # set here: not inherited


def test_expanded_source_stands_alone_with_the_same_hash(tmp_path: Path):
    """What a submission bundle ships for a recipe that includes others."""
    spec = load_recipe(REPO / "recipes" / "counterfactual_negclip.yaml")
    alone = tmp_path / "recipe.yaml"
    alone.write_bytes(spec.source())
    again = load_recipe(alone, str(REPO / "tracks" / "shapes.yaml"))
    assert (again.hash, again.recipe.name, again.includes) == (spec.hash, spec.recipe.name, ())
    plain = REPO / "recipes" / "baselines" / "basic.yaml"
    assert load_recipe(plain).source() == plain.read_bytes()


def test_an_error_in_an_included_step_points_into_that_file(tmp_path: Path, capsys):
    base = _write(
        tmp_path / "lib" / "base.yaml",
        f"name: base\ntrack: {TEST_TRACK}\nsteps:\n  - op: dedup\n  - op: clip_score\n"
        "    fraction: 1.5\n",
    )
    child = _write(tmp_path / "child.yaml", "name: child\ninclude: lib/base.yaml\n")
    err = _validate(child, capsys)
    assert f"{base}:6:15: field 'steps[1].fraction'" in err, err
    _write(base, f"name: base\ntrack: {TEST_TRACK}\nsteps:\n  - op: clip_scor\n")
    assert f"{base}:4:9: unknown op 'clip_scor'; did you mean clip_score?" in _validate(
        child, capsys
    )


def test_an_included_column_or_loss_error_points_where_it_was_written(tmp_path: Path, capsys):
    base = _write(
        tmp_path / "base.yaml",
        f"name: base\ntrack: {TEST_TRACK}\nsteps:\n  - op: detect\n",  # reads keywords
    )
    child = _write(tmp_path / "child.yaml", "name: child\ninclude: base.yaml\n")
    assert f"{base}:4:9: field 'steps[0]': 'detect' reads column 'keywords'" in _validate(
        child, capsys
    )
    _write(base, f"name: base\ntrack: {TEST_TRACK}\nloss: negclip\n")
    assert f"{base}:3:7: field 'loss': track allows only clip" in _validate(child, capsys)


def test_hostile_yaml_in_an_included_file_is_refused_there(tmp_path: Path, capsys):
    child = _write(tmp_path / "child.yaml", "name: child\ninclude: bad.yaml\n")
    bad = _write(tmp_path / "bad.yaml", "name: !!python/object:os.system x\n")
    assert f"{bad}:1:7: YAML tag '!!python/object:os.system' is not supported" in _validate(
        child, capsys
    )
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    _write(bad, bomb)
    assert f"{bad}:" in (err := _validate(child, capsys)) and "more than 10,000 values" in err
    _write(bad, "name: x\n" + "#" * (1 << 20))
    assert f"{bad}:1:1: file is" in _validate(child, capsys)


def test_include_cycles_depth_and_missing_files(tmp_path: Path, capsys):
    a = _write(tmp_path / "a.yaml", f"name: a\ntrack: {TEST_TRACK}\ninclude: sub/b.yaml\n")
    b = _write(tmp_path / "sub" / "b.yaml", f"name: b\ntrack: {TEST_TRACK}\ninclude: ../a.yaml\n")
    err = _validate(a, capsys)
    assert f"{b}:3:10: field 'include': recipes include each other: {a} -> {b} -> " in err, err
    (tmp_path / "dir.yaml").mkdir()
    _write(b, f"name: b\ntrack: {TEST_TRACK}\ninclude: ../dir.yaml\n")
    assert f"{b}:3:10: field 'include': no recipe file" in _validate(a, capsys)
    chain = [tmp_path / f"c{i}.yaml" for i in range(MAX_INCLUDES + 2)]
    for i, path in enumerate(chain):
        more = f"include: c{i + 1}.yaml\n" if i + 1 < len(chain) else ""
        _write(path, f"name: c{i}\ntrack: {TEST_TRACK}\n{more}")
    with pytest.raises(SpecError, match=f"includes nest more than {MAX_INCLUDES} deep") as e:
        load_recipe(chain[0])
    assert e.value.file == str(chain[MAX_INCLUDES])
    assert len(load_recipe(chain[1]).includes) == MAX_INCLUDES  # as deep as allowed


def test_files_a_step_names_are_relative_to_the_loading_recipe(tmp_path: Path, capsys):
    """Curation looks for them beside the recipe it runs, so that is where loading looks."""
    _write(tmp_path / "lists" / "u.txt", f"{0xA:032x}\n")
    _write(
        tmp_path / "lib" / "base.yaml",
        f"name: base\ntrack: {TEST_TRACK}\nsteps:\n  - op: uids\n    path: lists/u.txt\n",
    )
    child = _write(tmp_path / "child.yaml", "name: child\ninclude: lib/base.yaml\n")
    assert load_recipe(child).recipe.steps[0].params["path"] == "lists/u.txt"
    err = _validate(tmp_path / "lib" / "base.yaml", capsys)  # alone, it has no lists/ beside it
    assert "no such file" in err, err
