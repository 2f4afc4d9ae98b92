"""Real-data eval tasks as a track names them: each declares its options (paths into the track's
data root, checked when the track loads), wraps one task family's ``evaluate`` and adds the
single headline number the leaderboard shows.

The ImageNet and retrieval families load open_clip and torch at import, so they are imported
inside their tasks; ARO and SugarCrepe load them only to evaluate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveInt, field_validator

from benchmark.evaluate import aro, sugarcrepe
from benchmark.evaluate.registry import register
from benchmark.spec.numbers import Seed
from benchmark.spec.paths import DataDir, DataFile
from benchmark.spec.strict import Strict

if TYPE_CHECKING:
    from benchmark.models.clip import ClipBundle

# The names of imagenet.TEMPLATES (open_clip's sets), spelled here to check them without open_clip.
Templates = Literal["openai", "simple"]


class Loader(Strict):
    """How a real task reads its images."""

    batch_size: int = Field(256, gt=0, description="images per forward pass")
    num_workers: int = Field(2, ge=0, description="image decoding processes")


class ImagenetParams(Loader):
    root: DataDir = Field(description="ImageFolder val/<wnid>/, or the directory holding val/")
    templates: Templates = Field("openai", description="open_clip's prompt templates")


class SugarcrepeParams(Loader):
    root: DataDir = Field(description="directory of the 7 official JSONs")
    image_root: DataDir | None = Field(None, description="COCO val2017 images (root/val2017)")
    subsets: list[Literal[sugarcrepe.SUBSETS]] = Field(list(sugarcrepe.SUBSETS), min_length=1)


class VisualGenomeParams(Loader):
    root: DataDir = Field(description="ARO's official JSONs with images/")


class CaptionSetParams(Loader):
    """A caption set as :func:`benchmark.evaluate.retrieval.load` reads it."""

    root: DataDir = Field(description="an official Flickr/COCO layout, or the images' directory")
    captions: DataFile | None = Field(None, description="captions (.json COCO, else Flickr tokens)")
    split_file: DataFile | None = Field(
        None, description="Karpathy split JSON: its test images, with its captions unless given"
    )


class OrderParams(CaptionSetParams):
    perturbations: list[Literal[aro.PERTURBATIONS]] = Field(
        list(aro.PERTURBATIONS), min_length=1, description="the official four, or some of them"
    )
    captions_per_image: int | None = Field(None, gt=0, description="items per image (default all)")
    seed: Seed = Field(aro.OFFICIAL_SEED, description="the official draws come from seed 1")
    max_words: int = Field(30, gt=0, description="captions are cut to this many words")


class RetrievalParams(CaptionSetParams):
    ks: list[PositiveInt] = Field([1, 5, 10], description="recall@k reported")

    @field_validator("ks")
    @classmethod
    def _headline(cls, ks: list[int]) -> list[int]:
        if 1 not in ks:
            raise ValueError("must include 1: the headline is mean recall@1")
        return ks


@register("imagenet", "acc1", ImagenetParams)
def imagenet_task(bundle: ClipBundle, p: ImagenetParams) -> dict:
    """ImageNet-1k zero-shot (ImageFolder ``val/<wnid>/``)."""
    from benchmark.evaluate import imagenet

    return imagenet.evaluate(bundle, **p.model_dump())


@register("sugarcrepe", "average", SugarcrepeParams)
def sugarcrepe_task(bundle: ClipBundle, p: SugarcrepeParams) -> dict:
    """SugarCrepe's 7 subsets; the headline is ``average``, the mean of the replace/swap/add
    group means (``subset_mean`` and ``item_mean`` are reported beside it)."""
    return sugarcrepe.evaluate(bundle, **p.model_dump())


def _aro(task: str, headline: str, params: type[Loader]) -> None:
    def run(bundle: ClipBundle, p: Loader) -> dict:
        return aro.evaluate(bundle, task=task, **p.model_dump())

    run.__doc__ = f"ARO {task} (official scoring)."
    register(task, headline, params)(run)


for _task in aro.VG_FILES:
    _aro(_task, "macro_acc", VisualGenomeParams)
for _task in aro.ORDER_TASKS:
    _aro(_task, "acc", OrderParams)


def _retrieval(name: str) -> None:
    def run(bundle: ClipBundle, p: RetrievalParams) -> dict:
        from benchmark.evaluate import retrieval

        out = retrieval.evaluate(bundle, **p.model_dump())
        m = out["metrics"]
        m["mean_recall@1"] = (m["image_retrieval_recall@1"] + m["text_retrieval_recall@1"]) / 2
        return out

    run.__doc__ = f"{name}: image<->text recall@1/5/10; headline mean recall@1."
    register(name, "mean_recall@1", RetrievalParams)(run)


_retrieval("retrieval_coco")
_retrieval("retrieval_flickr")
