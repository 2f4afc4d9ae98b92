from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_TRACK = REPO / "tests" / "tracks" / "shapes-test.yaml"


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real data packs (``../shared/data`` unless SMALLCOMP_SAMPLES says otherwise)."""
    root = Path(os.environ.get("SMALLCOMP_SAMPLES", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.fail(f"sample data not found at {root}; set SMALLCOMP_SAMPLES")
    return root


@pytest.fixture
def recipe(tmp_path: Path):
    """Write a recipe for the test track; returns its path."""

    def write(body: str, name: str = "r") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\ntrack: {TEST_TRACK}\n{body}")
        return path

    return write


def with_world_boxes(table: pa.Table) -> pa.Table:
    """``table`` with a ``detections`` column holding the world's own boxes (from the hidden
    ``gt_objects``): a perfect detector, so generate steps make real edits where a random-weight
    detector finds nothing."""
    from benchmark.ops.detect import DETECTION

    dets = [
        [
            {"label": o["shape"], "x0": o["x0"], "y0": o["y0"], "x1": o["x1"], "y1": o["y1"]}
            | {"confidence": 1.0, "polygon": None}
            for o in objs
        ]
        for objs in table.column("gt_objects").to_pylist()
    ]
    return table.append_column("detections", pa.array(dets, pa.list_(DETECTION)))
