"""Hostile recipes and tracks: bombs, deep nesting, huge files, foreign tags and wild numbers get
one located line in milliseconds, and nothing in a recipe ever runs as code.

Small cases live in ``malformed/`` (checked line by line by test_spec.py); the large ones are
generated here into ``tmp_path`` rather than committed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from benchmark.cli import main
from benchmark.evaluate import registry as tasks
from benchmark.models.llm import LLMConfig
from benchmark.ops.registry import all_ops
from benchmark.pools import get as pool_kind
from benchmark.spec import load
from benchmark.spec.errors import SpecError
from benchmark.spec.track import DetectorTraining, Scale
from benchmark.spec.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_VALUES, load_yaml

HERE = Path(__file__).parent
REPO = HERE.parent
TRACK = HERE / "tracks" / "shapes-test.yaml"
HEAD = f"name: x\ntrack: {TRACK}\n"
CORPUS = sorted((HERE / "malformed").glob("*.yaml"))
REFUSE_S = 0.5  # a refusal is milliseconds of work; this leaves room for a loaded machine


def _bomb() -> str:
    """Billion laughs: nine levels of ten aliases each, 10**9 strings once expanded."""
    lines = [HEAD + "l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\ndescription: *l9\n"


def _block_mappings(depth: int) -> str:
    return HEAD + "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "v\n"


LARGE: dict[str, tuple[Callable[[], str], str]] = {
    "alias_bomb": (_bomb, f"more than {MAX_VALUES:,} values"),
    "recursive_alias": (lambda: HEAD + "description: &a [b, *a]\n", "recursive"),
    "brackets_10000": (lambda: HEAD + "description: " + "[" * 10_000 + "]" * 10_000, "nest"),
    "flow_mappings_3000": (lambda: HEAD + "sampler: " + "{a: " * 3000 + "1" + "}" * 3000, "nest"),
    "block_mappings_1400": (lambda: _block_mappings(1400), f"more than {MAX_DEPTH} levels"),
    "block_mappings_3000": (lambda: _block_mappings(3000), "at most 1 MiB"),
    "size_50mb": (lambda: HEAD + "description: '" + "a" * 50_000_000 + "'\n", "50,000,"),
    "size_one_byte_over": (
        lambda: HEAD + "description: " + "a" * (MAX_BYTES - len(HEAD) - 13) + "\n",
        "at most 1 MiB",
    ),
    "steps_10000": (
        lambda: HEAD + "steps:\n" + "  - op: caption_length\n    min_words: 2\n" * 10_000,
        f"more than {MAX_VALUES:,} values",
    ),
}


@pytest.fixture(scope="module")
def warm() -> None:
    """Import what validation uses, so the timings below measure the work, not the imports."""
    load.load_recipe(REPO / "recipes" / "baselines" / "basic.yaml", device="cpu")


@pytest.mark.parametrize("name", LARGE)
def test_large_hostile_file_is_refused_fast(name: str, tmp_path: Path, capsys) -> None:
    make, expected = LARGE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(make())
    start = time.perf_counter()
    with pytest.raises(SpecError) as e:
        load_yaml(path)
    took = time.perf_counter() - start
    assert took < REFUSE_S, f"{name}: {took * 1000:.0f} ms"
    assert expected in e.value.message
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300, err
    assert re.match(rf"smallcomp: error: {re.escape(str(path))}:\d+:\d+: ", err), err


def test_file_at_the_size_cap_and_near_the_value_cap_loads(tmp_path: Path) -> None:
    """The caps refuse only what no spec needs: a 1 MiB file and 8,900 values still load."""
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "description: " + "a" * (MAX_BYTES - len(HEAD) - 14) + "\n")
    assert big.stat().st_size == MAX_BYTES
    many = tmp_path / "many.yaml"
    many.write_text(HEAD + "description:\n" + "  - [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" * 890)
    for path in (big, many):
        start = time.perf_counter()
        load_yaml(path)
        assert time.perf_counter() - start < 2 * REFUSE_S


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_every_malformed_file_is_refused_in_well_under_a_second(path: Path, warm, capsys) -> None:
    start = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    took = time.perf_counter() - start
    capsys.readouterr()
    assert took < 1.0, f"{took:.2f} s"


PAYLOADS = [
    'description: !!python/object/apply:os.system ["touch MARKER"]',
    "description: !!python/object/apply:os.system {args: [touch MARKER]}",
    "description: !!python/object/new:os.system [touch MARKER]",
    "sampler: !!python/object/apply:subprocess.call [[touch, MARKER]]",
    "%TAG ! tag:yaml.org,2002:python/\n---\ndescription: !object/apply:os.system [touch MARKER]",
]


def test_payload_is_live_under_an_unsafe_loader(tmp_path: Path, monkeypatch) -> None:
    """The marker test below means something: PyYAML's unsafe loader does run this payload."""
    monkeypatch.chdir(tmp_path)
    yaml.unsafe_load(PAYLOADS[0])
    assert (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_runs_through_the_cli(payload: str, tmp_path: Path) -> None:
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(
        payload.replace("---\n", "---\n" + HEAD) if "%TAG" in payload else HEAD + payload
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "validate", str(recipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "is not supported" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "MARKER").exists()


def _seed_fields() -> list[tuple[type[BaseModel], str]]:
    """Every field named like a seed in a model a recipe or track fills in."""
    ops = [op.params for op in all_ops()]
    pools = [pool_kind(name).params for name in ("shapes", "coco", "flickr", "cc3m", "byod")]
    evals = sorted({tasks.get(name).params for name in tasks.names()}, key=str)
    models = [Scale, DetectorTraining, LLMConfig, *ops, *pools, *evals]
    return [(m, name) for m in models for name in m.model_fields if "seed" in name]


SEED_FIELDS = _seed_fields()


def test_seed_fields_are_found() -> None:
    names = {f"{m.__name__}.{name}" for m, name in SEED_FIELDS}
    assert {"Scale.seeds", "DetectorTraining.seed", "LLMConfig.seed", "ShapesPool.seed"} <= names
    assert len(names) >= 10


@pytest.mark.parametrize(
    ("model", "name"), SEED_FIELDS, ids=[f"{m.__name__}.{n}" for m, n in SEED_FIELDS]
)
def test_every_seed_field_refuses_negative_and_over_32_bits(
    model: type[BaseModel], name: str
) -> None:
    as_list = "list" in str(model.model_fields[name].annotation)
    for bad, kind in ((-1, "greater_than_equal"), (2**32, "less_than")):
        with pytest.raises(ValidationError) as e:  # the model's other fields may fail too
            model.model_validate({name: [bad] if as_list else bad})
        assert kind in {err["type"] for err in e.value.errors() if err["loc"][0] == name}


def test_cli_seeds_are_bounded_like_spec_seeds(capsys) -> None:
    for seeds in ("-1", f"0,{2**32}"):
        with pytest.raises(SystemExit) as e:
            main(["run", str(REPO / "recipes/baselines/no_filter.yaml"), "--seeds", seeds])
        assert e.value.code == 2
        assert "seeds must be in 0..4294967295" in capsys.readouterr().err


def test_aliases_within_the_caps_still_work_and_errors_point_at_the_use(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(HEAD + "steps:\n  - &d {op: dedup, threshold: 0.2}\n  - *d\n")
    spec = load.load_recipe(ok, device="cpu")
    assert [s.params["threshold"] for s in spec.recipe.steps] == [0.2, 0.2]
    use = "  - {op: caption_length, min_words: *t}"
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + f"steps:\n  - {{op: dedup, threshold: &t 0.5}}\n{use}\n")
    with pytest.raises(SpecError) as e:
        load.load_recipe(bad)
    assert (e.value.line, e.value.col) == (5, use.index("*t") + 1)
    assert "steps[1].min_words" in e.value.message


def test_validate_reads_each_file_once(monkeypatch, capsys) -> None:
    reads: list[str] = []

    def counting(path):
        reads.append(Path(path).name)
        return load_yaml(path)

    monkeypatch.setattr(load, "load_yaml", counting)
    assert main(["validate", str(REPO / "recipes/baselines/basic.yaml"), str(TRACK)]) == 0
    assert reads == ["basic.yaml", "shapes.yaml", TRACK.name]  # the recipe's track, then TRACK
