from __future__ import annotations

import os
from pathlib import Path

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
