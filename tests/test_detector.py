"""The ultralytics detector wrapper and the shapes detection export, on real images, offline."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.models.detector import Detection, Detector, evaluate_detector, train_detector
from benchmark.pools.shapes import scene_of
from benchmark.pools.shapes_detection import export
from benchmark.world import CANVAS, SHAPES, Scene, render

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Fail any test in which ultralytics so much as looks up a host name or opens a connection.

    Blocking alone would hide an attempt (ultralytics swallows the error and carries on), so
    every attempt is recorded and the test fails at teardown.
    """
    attempts: list[object] = []
    connect = socket.socket.connect

    def lookup(host: object, *args: object, **kwargs: object) -> list:
        attempts.append(host)
        raise OSError("network disabled in tests")

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network disabled in tests")
        connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield
    assert not attempts, f"network attempted: {attempts}"


@pytest.fixture(scope="module")
def photos(samples: Path) -> list[Image.Image]:
    paths = sorted((samples / "coco-mini" / "val2017").glob("*.jpg"))[:5]
    assert len(paths) == 5
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    assert len({im.size for im in images}) > 1, "want photos of different shapes in one batch"
    return images


def _inside(image: Image.Image, x: float, y: float) -> bool:
    return 0 <= x <= image.width and 0 <= y <= image.height


def test_import_does_not_load_ultralytics() -> None:
    code = "import sys, benchmark.models.detector; print('ultralytics' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


def test_random_init_detector_on_photos(photos: list[Image.Image]) -> None:
    threads = torch.get_num_threads()
    detector = Detector("yolov8n.yaml", imgsz=320)
    # A random-init network is unsure of everything: conf 0 keeps its guesses, to check their form.
    results = detector.detect(photos, conf=0.0, batch_size=2)
    assert torch.get_num_threads() == threads, "ultralytics' thread count leaked into the process"
    assert len(results) == len(photos)
    names = set(detector.names.values())
    for image, detections in zip(photos, results, strict=True):
        assert detections and all(isinstance(d, Detection) for d in detections)
        for d in detections:
            x0, y0, x1, y1 = d.box
            assert x0 <= x1 and y0 <= y1
            assert _inside(image, x0, y0) and _inside(image, x1, y1)
            assert d.label in names and 0 <= d.confidence <= 1 and d.polygon is None
        confidences = [d.confidence for d in detections]
        assert confidences == sorted(confidences, reverse=True)


def test_batching_does_not_change_detections(photos: list[Image.Image]) -> None:
    """Photos of different shapes are letterboxed alike whatever else shares their batch."""
    detector = Detector("yolov8n.yaml", imgsz=320)
    together = detector.detect(photos, conf=0.0, batch_size=len(photos))
    alone = detector.detect(photos, conf=0.0, batch_size=1)
    for a, b in zip(together, alone, strict=True):
        top_a = np.array([d.box for d in a[:20]])
        top_b = np.array([d.box for d in b[:20]])
        np.testing.assert_allclose(top_a, top_b, atol=1e-2)


def test_segmentation_model_gives_polygons(photos: list[Image.Image]) -> None:
    torch.manual_seed(0)  # a random-init network: the same one every run
    detector = Detector("yolov8n-seg.yaml", imgsz=320)
    results = detector.detect(photos[:2], conf=0.0)
    for image, detections in zip(photos[:2], results, strict=True):
        assert detections
        assert all(d.polygon is not None for d in detections)
        assert any(len(d.polygon) >= 3 for d in detections)
        for d in detections:
            assert all(_inside(image, x, y) for x, y in d.polygon)


def test_missing_weights_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such.pt"):
        Detector(tmp_path / "no-such.pt")


def _labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(c), *map(float, xywh)) for c, *xywh in rows]


def test_export_matches_the_world(tmp_path: Path) -> None:
    data = export(tmp_path / "ds", train_size=12, val_size=5, seed=3, image_size=96)
    assert data == (tmp_path / "ds" / "data.yaml").resolve()
    for split, n, seed in (("train", 12, 3), ("val", 5, 4)):
        images = sorted((tmp_path / "ds" / "images" / split).glob("*.png"))
        labels = sorted((tmp_path / "ds" / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == n
        assert [p.stem for p in images] == [p.stem for p in labels]
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            with Image.open(image) as im:
                assert im.size == (96, 96)
            objs, _ = scene_of(seed, i, 3)
            expected = [
                (
                    SHAPES.index(o.shape),
                    (o.box[0] + o.box[2]) / 2 / CANVAS,
                    (o.box[1] + o.box[3]) / 2 / CANVAS,
                    (o.box[2] - o.box[0]) / CANVAS,
                    (o.box[3] - o.box[1]) / CANVAS,
                )
                for o in objs
            ]
            got = _labels(label)
            assert [g[0] for g in got] == [e[0] for e in expected]
            np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in expected], atol=1e-6)


def test_export_is_seeded_and_holds_out_validation(tmp_path: Path) -> None:
    export(tmp_path / "a", train_size=4, val_size=4, seed=0)
    export(tmp_path / "b", train_size=4, val_size=4, seed=0)
    for split in ("train", "val"):
        for p in sorted((tmp_path / "a" / "images" / split).glob("*.png")):
            q = tmp_path / "b" / "images" / split / p.name
            assert p.read_bytes() == q.read_bytes()
    train = {p.read_text() for p in (tmp_path / "a" / "labels" / "train").glob("*.txt")}
    val = {p.read_text() for p in (tmp_path / "a" / "labels" / "val").glob("*.txt")}
    assert not train & val
    with pytest.raises(ValueError, match="val_seed"):
        export(tmp_path / "c", train_size=1, val_size=1, seed=5, val_seed=5)


def test_tiny_training_run_gives_loadable_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # ultralytics' default runs/ would land here
    data = export(tmp_path / "ds", train_size=16, val_size=8, seed=0)
    weights = train_detector(data, tmp_path / "out", epochs=1, imgsz=64, batch=8)
    assert weights.is_file() and weights.is_relative_to(tmp_path / "out")
    assert not any(work.iterdir())

    metrics = evaluate_detector(weights, data, imgsz=64)
    assert set(metrics) == {"mAP50", "mAP50-95"}
    assert all(0 <= v <= 1 for v in metrics.values())
    assert not any(work.iterdir())

    detector = Detector(weights, imgsz=64, allow=[weights])  # weights we trained: a pickle we trust
    assert list(detector.names.values()) == list(SHAPES)
    objs, _ = scene_of(0, 0, 3)
    (detections,) = detector.detect([render(Scene(objs, noise_seed=0))], conf=0.0)
    assert all(d.label in SHAPES for d in detections)


def test_ultralytics_leaves_pil_open_alone(tmp_path: Path) -> None:
    """A corrupt file must still raise PIL's own error after a detector ran, so readers that
    skip and count bad images keep working in a process that also detects."""
    Detector("yolov8n.yaml", imgsz=64).detect([Image.new("RGB", (64, 64))])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError):
        Image.open(bad)
