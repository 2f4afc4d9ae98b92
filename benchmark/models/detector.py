"""Object detection through ultralytics YOLO: find the objects a caption names, to inpaint them.

``Detector`` runs any YOLO detection or segmentation model (weights by local path, or a model
yaml for a random-init network) on PIL images in batches; ``train_detector`` and
``evaluate_detector`` train and score one on a YOLO-format dataset such as
``pools.shapes_detection.export`` writes.

ultralytics is imported only when a model is built, after ``_ultralytics()`` has pointed it away
from the network (``YOLO_OFFLINE``) and from the home directory and the repository (its settings,
and the fonts it fetches, live in a private temporary config dir unless ``YOLO_CONFIG_DIR`` is
set). Every run writes under a directory the caller names or a temporary one, never ultralytics'
default ``runs/``.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from PIL import Image

from benchmark.models.trust import UnsafeModel, check

if TYPE_CHECKING:
    from ultralytics import YOLO

# ultralytics looks these up in its config dir whenever it checks a dataset (plots or not) and
# fetches them from GitHub when missing: a local stand-in (matplotlib's DejaVu Sans, only ever
# drawn on plots) keeps training and validation offline.
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
# Layer classes that fetch weights of their own (torchvision's model zoo): never from a recipe.
_FETCHING = frozenset({"TorchVision"})


def _ultralytics() -> ModuleType:
    """Import ultralytics with the network and user directories out of its reach."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    default = Path(tempfile.gettempdir()) / f"smallcomp-ultralytics-{os.getuid()}"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(default))
    fonts = Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    missing = [fonts / name for name in _FONTS if not (fonts / name).exists()]
    if missing:
        import matplotlib

        dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        for path in missing:
            shutil.copyfile(dejavu, path)
    pil_open = Image.open
    import ultralytics
    import ultralytics.utils.patches  # noqa: F401 - applied now, so it can be undone here

    # ultralytics replaces PIL's Image.open process-wide with a HEIF-aware wrapper that answers a
    # corrupt file with ModuleNotFoundError (pi_heif) instead of PIL's error: every reader that
    # skips and counts bad images would crash. Its own loaders do not need the wrapper.
    Image.open = pil_open
    return ultralytics


@contextmanager
def _keeping_threads() -> Iterator[None]:
    """ultralytics sets torch's thread count process-wide (to cpu_count - 1, at most 8) whenever it
    picks a device; give the caller's count back, so the rest of the process keeps its threads."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Detection:
    """One object: ``box`` is (x0, y0, x1, y1) in the input image's pixels; ``polygon`` its
    outline in the same pixels from a segmentation model (None from a detection model)."""

    label: str
    box: tuple[float, float, float, float]
    confidence: float
    polygon: list[tuple[float, float]] | None = None


class Detector:
    """A YOLO model by local ``.pt`` path, model yaml (random init, e.g. ``yolov8n-seg.yaml``)
    or ultralytics name (which ultralytics downloads on first use: never in tests).

    ``imgsz`` is the side images are letterboxed to: 64 for the shapes world, 640 for photos.
    ``.pt`` weights are pickles, which run any code they hold when loaded: they load only from a
    path in ``allow`` (the track's own detector, the user's ``--allow-weights``); any other model
    must be a yaml that builds without running code (``check_config``).
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        imgsz: int = 640,
        allow: Collection[str | Path] = (),
    ) -> None:
        if (isinstance(model, Path) or os.sep in model) and not Path(model).exists():
            # ultralytics would take a missing file for a model name and try to download it.
            raise FileNotFoundError(f"no detector weights at {model}")
        check("detector", str(model), allow)
        self.model = _ultralytics().YOLO(str(model))
        self.device = device
        self.imgsz = imgsz
        self._ready = False

    @property
    def names(self) -> dict[int, str]:
        """Class index -> class name, as the model was trained ("0", "1", ... for a yaml model)."""
        return dict(self.model.names)

    def _predict(self, images: list[Image.Image], conf: float) -> list:
        return self.model.predict(
            images,
            conf=conf,
            imgsz=self.imgsz,
            device=self.device,
            # Square letterboxing whatever the batch: with rect, images of one shape get a
            # tighter pad than mixed ones, so an image's detections would depend on its batch.
            rect=False,
            verbose=False,
            save=False,
        )

    def detect(
        self, images: list[Image.Image], conf: float = 0.25, batch_size: int = 16
    ) -> list[list[Detection]]:
        """Detections per image, in input order, most confident first."""
        if not self._ready:
            # ultralytics picks the device when it builds its predictor, on the first call: build
            # it on one blank image, so that every real batch runs with the caller's threads.
            with _keeping_threads():
                self._predict([Image.new("RGB", (self.imgsz, self.imgsz))], conf)
            self._ready = True
        out: list[list[Detection]] = []
        for i in range(0, len(images), batch_size):
            batch = [im.convert("RGB") for im in images[i : i + batch_size]]
            out.extend(self._detections(r) for r in self._predict(batch, conf))
        return out

    def _detections(self, result: object) -> list[Detection]:
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().tolist()
        confs = boxes.conf.cpu().tolist()
        classes = boxes.cls.cpu().int().tolist()
        polygons = (
            [[(float(x), float(y)) for x, y in p] for p in result.masks.xy]
            if result.masks is not None
            else [None] * len(xyxy)
        )
        return [
            Detection(result.names[c], tuple(b), conf, poly)
            for b, conf, c, poly in zip(xyxy, confs, classes, polygons, strict=True)
        ]


def check_config(model: str) -> None:
    """Refuse a model yaml that would run code while ultralytics builds it: ultralytics passes its
    ``activation`` to ``eval`` and calls whatever name of its module namespace a layer gives, so a
    yaml could name a function that unpickles a file, or a whole model that reads another yaml.
    The yaml is resolved as ``YOLO()`` resolves it (a local file first, then ultralytics' own
    configs); only ``nn.<Layer>(literals)`` activations and torch layer classes pass."""
    _ultralytics()
    from ultralytics.nn import tasks

    try:
        config = tasks.yaml_model_load(model)
        layers = list(config["backbone"]) + list(config["head"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UnsafeModel(f"{model} is not a readable model yaml ({e})") from None
    activation = config.get("activation")
    if activation is not None and not _is_activation(activation):
        raise UnsafeModel(f"{model}: activation {activation!r} is not nn.<Layer>(literal args)")
    for layer in layers:
        module = layer[2] if isinstance(layer, list) and len(layer) == 4 else None
        if not _is_layer(module, vars(tasks)):
            raise UnsafeModel(f"{model}: layer module {module!r} is not a torch layer class")


def _is_layer(name: object, namespace: dict) -> bool:
    """Resolved as ultralytics' ``parse_model`` resolves it; whole models are not layers."""
    import torch

    if not isinstance(name, str):
        return False
    if name.startswith("nn."):
        obj = getattr(torch.nn, name[3:], None)
    elif name.startswith("torchvision.ops."):
        import torchvision.ops

        obj = getattr(torchvision.ops, name[16:], None)
    else:
        obj = namespace.get(name)
    return (
        isinstance(obj, type)
        and issubclass(obj, torch.nn.Module)
        and not issubclass(obj, namespace["BaseModel"])
        and obj.__name__ not in _FETCHING
    )


def _is_activation(spec: object) -> bool:
    """``nn.<Layer>(...)`` or ``torch.nn.<Layer>(...)`` with constant arguments only."""
    import torch

    try:
        call = ast.parse(spec, mode="eval").body
    except (SyntaxError, TypeError, ValueError):
        return False
    if not isinstance(call, ast.Call):
        return False
    if not all(
        isinstance(a, ast.Constant) for a in [*call.args, *(k.value for k in call.keywords)]
    ):
        return False
    chain, node = [], call.func
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or [*chain[1:], node.id] not in (["nn"], ["nn", "torch"]):
        return False
    layer = getattr(torch.nn, chain[0], None)
    return isinstance(layer, type) and issubclass(layer, torch.nn.Module)


def train_detector(
    data: Path,
    out: Path,
    model: str = "yolov8n.yaml",
    epochs: int = 15,
    imgsz: int = 64,
    batch: int = 32,
    seed: int = 0,
    device: str = "cpu",
    workers: int = 0,
    **overrides: object,
) -> Path:
    """Train on an ultralytics data yaml; returns the best weights (``out/train/weights/best.pt``).

    Deterministic as far as ultralytics allows (seeded, ``deterministic=True``; bitwise only on
    CPU). ``overrides`` go to ultralytics' trainer as they are: augmentation (``mosaic``,
    ``scale``, ``fliplr``, ...), schedule (``warmup_epochs``, ...), ``val=False`` to validate
    after the last epoch only. Plots and AMP stay off: both would fetch files (a font;
    ultralytics' AMP check downloads a model on CUDA), and neither changes what the model learns
    on CPU.
    """
    out = Path(out).resolve()
    yolo = _ultralytics().YOLO(str(model))
    with _keeping_threads():
        yolo.train(
            data=str(Path(data).resolve()),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            seed=seed,
            deterministic=True,
            device=device,
            workers=workers,
            project=str(out),
            name="train",
            exist_ok=True,
            plots=False,
            amp=False,
            verbose=False,
            **overrides,
        )
    weights = Path(yolo.trainer.best)
    return weights if weights.is_file() else Path(yolo.trainer.last)


def evaluate_detector(
    weights: str | Path,
    data: Path,
    imgsz: int = 64,
    split: str = "val",
    device: str = "cpu",
    batch: int = 64,
) -> dict[str, float]:
    """Box mAP at IoU 0.5 and averaged over IoU 0.5-0.95 on one split of a data yaml.

    ultralytics' validator writes a run directory even with plots off: it goes to a temporary
    directory that is removed afterwards.
    """
    yolo: YOLO = _ultralytics().YOLO(str(weights))
    with tempfile.TemporaryDirectory(prefix="smallcomp-val-") as tmp, _keeping_threads():
        metrics = yolo.val(
            data=str(Path(data).resolve()),
            imgsz=imgsz,
            split=split,
            device=device,
            batch=batch,
            project=tmp,
            name="val",
            plots=False,
            save_json=False,
            verbose=False,
        )
    return {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map)}
