"""A track fixes everything but the data: pool, scales (model and training budget), eval suite."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from benchmark.spec.numbers import Seed
from benchmark.spec.strict import Strict

# Adam's moment decay rates: torch refuses anything outside [0, 1) when training starts.
Beta = Annotated[float, Field(ge=0, lt=1)]


class Scale(Strict):
    """Standardized training: every hyperparameter written out, equal for every recipe."""

    model: str = Field(description="open_clip model config name (benchmark/models/configs)")
    pretrained: str | None = Field(None, description="checkpoint path or open_clip tag")
    samples_seen: int = Field(
        gt=0, le=10**11, description="at most 100 billion (DataComp xlarge: 12.8B)"
    )
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0, le=1)
    warmup: int = Field(ge=0, description="warmup steps")
    schedule: Literal["cosine", "const"] = "cosine"
    weight_decay: float = Field(ge=0)
    betas: tuple[Beta, Beta] = (0.9, 0.98)
    eps: float = Field(1e-6, gt=0, le=1)
    precision: Literal["fp32", "amp_bf16", "amp"] = "fp32"
    seeds: list[Seed] = Field(min_length=1)
    checkpoint_every: int = Field(200, gt=0, description="steps between resumable checkpoints")
    workers: int = Field(1, ge=0, description="data loader processes")

    @property
    def steps(self) -> int:
        return self.samples_seen // self.batch_size


class Reference(Strict):
    """The model score steps use (DataComp scores with OpenAI's CLIP).

    Either a model to load (``model`` + ``pretrained``) or, for embedded worlds, a clean split the
    harness trains on once (``train``: a scale, ``pool``: the clean pool's options).
    """

    model: str | None = None
    pretrained: str | None = None
    pool: dict | None = None
    train: Scale | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Reference:
        if (self.train is None) == (self.model is None):
            raise ValueError("give either 'model' (to load) or 'train' + 'pool' (to train)")
        if self.train is not None and self.pool is None:
            raise ValueError("'train' needs 'pool': the clean split to train on")
        return self


class DetectorTraining(Strict):
    """A YOLO detector the harness trains once on the track's embedded world and caches."""

    model: str = Field("yolov8n.yaml", description="ultralytics model yaml (random init)")
    train_size: int = Field(2000, gt=0, description="training scenes")
    val_size: int = Field(500, gt=0, description="held-out scenes (mAP50 reported)")
    seed: Seed = Field(11, description="scene seed (disjoint from pool, eval and reference)")
    image_size: int = Field(64, gt=0, description="scene size in pixels")
    epochs: int = Field(20, gt=0)
    imgsz: int = Field(64, ge=32, description="training size (multiple of 32)")
    batch: int = Field(64, gt=0)
    overrides: dict = Field({}, description="further ultralytics train arguments (augmentation)")


class Detector(Strict):
    """The detector counterfactual steps use: weights to load, or a world to train one on."""

    model: str | None = Field(None, description="weights path or model name")
    train: DetectorTraining | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Detector:
        if (self.train is None) == (self.model is None):
            raise ValueError("give either 'model' (to load) or 'train' (to train on the world)")
        return self


class Budget(Strict):
    """A cap on curation compute, so recipes compare at equal total compute."""

    device_s_per_1k: float = Field(
        gt=0, description="estimated device-seconds allowed per 1,000 pool samples"
    )


class Rules(Strict):
    losses: list[Literal["clip", "negclip"]] = ["clip"]
    curation_budget: Budget | None = None


class Eval(Strict):
    suite: str
    version: str
    tasks: list[str] = Field(min_length=1)
    headline: list[str] | None = Field(
        None,
        description="the tasks whose plain mean ranks recipes, each counted once (default: "
        "every task)",
    )
    options: dict[str, dict] = Field(
        {},
        description="per task, and 'all' for every task that takes the option; each task's "
        "params model checks them when the track loads",
    )

    @field_validator("headline")
    @classmethod
    def _among_tasks(cls, headline: list[str] | None, info: ValidationInfo) -> list[str] | None:
        unknown = [t for t in headline or () if t not in info.data.get("tasks", ())]
        if unknown:
            raise ValueError(f"names {unknown}, which are not among the eval tasks")
        return headline

    @property
    def headline_tasks(self) -> list[str]:
        return self.headline or self.tasks


class EvalImages(Strict):
    """Images the suite evaluates on; pools are checked against them (by id and by pHash)."""

    name: str
    dir: str | None = Field(None, description="directory of the eval images (hashed)")
    split_file: str | None = Field(
        None, description="Karpathy split JSON: its test images' ids are excluded from the pool"
    )
    dataset: str | None = Field(None, description="pool source whose image ids are comparable")

    @model_validator(mode="after")
    def _something(self) -> EvalImages:
        if self.dir is None and self.split_file is None:
            raise ValueError("give 'dir' (images to hash) or 'split_file' (ids), or both")
        return self


class Track(Strict):
    name: str
    description: str = ""
    data_root: str | None = Field(
        None, description="where relative data paths point; ${VAR:-default} expands"
    )
    pool: dict
    eval_images: list[EvalImages] = []
    reference: Reference | None = None
    detector: Detector | None = None
    eval: Eval
    rules: Rules = Rules()
    scales: dict[str, Scale] = Field(min_length=1)
