"""Inpainting for counterfactual augmentation: remove a detected object from an image, or paint
an object of another category in its place.

Three backends behind one call, ``inpaint(images, masks, objects=None) -> images``:
``ClassicalInpainter`` (OpenCV's Telea / Navier-Stokes fill: no weights, CPU, fills flat
backgrounds exactly, smears textured ones; removal only), ``DiffusionInpainter`` (any diffusers
inpainting pipeline, by hub id or local directory: plausible fills on real photos, at GPU cost;
``objects`` become its prompts) and ``ShapesPainter`` (the `shapes` world's own renderer: it
draws the named shape where the old one was, in its colour). Masks are boolean HxW arrays,
True where the object is; ``mask_from_boxes`` and ``mask_from_polygons`` turn detector or
segmenter output into them, dilated so that the object's edge and shadow go too.

``tiny_pipeline`` writes a random-weight Stable-Diffusion inpainting pipeline built from configs:
tests and CPU benchmarks load it by path exactly as they would a real one, and on a new GPU machine
it checks the diffusers stack end to end without downloading a model.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np
from PIL import Image, ImageDraw

from benchmark import world
from benchmark.models import trust

if TYPE_CHECKING:  # diffusers and transformers load in seconds: only the diffusion path pays
    from diffusers import DiffusionPipeline
    from transformers import CLIPTokenizer

Box = Sequence[float]  # (x0, y0, x1, y1) in pixels, as detectors and the shapes world give them
Polygon = Sequence[float] | np.ndarray  # COCO's flat [x0, y0, x1, y1, ...] or an (N, 2) array

DTYPES = ("fp32", "fp16", "bf16")


def _dilated(mask: np.ndarray, dilate: int) -> np.ndarray:
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0, got {dilate}")
    if dilate == 0:
        return mask
    # A disc, not a square: a square kernel would grow every corner of the mask by sqrt(2) x.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def mask_from_boxes(size: tuple[int, int], boxes: Iterable[Box], dilate: int = 0) -> np.ndarray:
    """Boolean HxW mask for ``size`` = (width, height), PIL's ``Image.size`` order.

    A box covers every pixel it touches, its far edges included, so an object drawn up to its
    box's integer edge (as the shapes world and PIL draw them) is covered whole before dilation.
    """
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        c1, r1 = min(int(np.floor(x1)), width - 1), min(int(np.floor(y1)), height - 1)
        if c0 <= c1 and r0 <= r1:
            mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return _dilated(mask, dilate)


def mask_from_polygons(
    size: tuple[int, int], polygons: Iterable[Polygon], dilate: int = 0
) -> np.ndarray:
    """Boolean HxW mask for ``size`` = (width, height) from segmentation polygons.

    Takes COCO's flat coordinate lists and ultralytics' ``masks.xy`` arrays alike. Vertices are
    rounded to the nearest pixel and pixels on the outline are inside, as for boxes, so a
    rectangle gives the same mask as its box. Outlines traced on a photo still miss the object's
    blurred rim and shadow: dilate by a few pixels when removing.
    """
    width, height = size
    canvas = np.zeros((height, width), dtype=np.uint8)
    points = [np.rint(np.asarray(p, dtype=float).reshape(-1, 2)).astype(np.int32) for p in polygons]
    points = [p for p in points if len(p) >= 3]
    if points:
        cv2.fillPoly(canvas, points, 1)
    return _dilated(canvas.astype(bool), dilate)


class Inpainter(Protocol):
    """What augmentation ops call: one output per input, each the size of its input. ``objects``
    names what to paint into each mask; None fills it with background (removal)."""

    def inpaint(
        self, images: list[Image.Image], masks: list[np.ndarray], objects: list[str] | None = None
    ) -> list[Image.Image]: ...


def _checked(images: list[Image.Image], masks: list[np.ndarray]) -> list[np.ndarray]:
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    out = []
    for i, (im, mask) in enumerate(zip(images, masks, strict=True)):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (im.height, im.width):
            raise ValueError(
                f"mask {i} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
                f"{im.width}x{im.height}"
            )
        out.append(mask)
    return out


@dataclass
class ClassicalInpainter:
    """OpenCV inpainting: fills the mask by propagating the colours around it inwards.

    ``radius`` is how far around each masked pixel the fill looks. Pixels outside the mask come
    back unchanged; images come back RGB.
    """

    method: Literal["telea", "ns"] = "telea"
    radius: int = 3

    def __post_init__(self) -> None:
        if self.method not in ("telea", "ns"):
            raise ValueError(f"unknown inpainting method {self.method!r}; use 'telea' or 'ns'")
        if self.radius < 1:
            raise ValueError(f"radius must be >= 1, got {self.radius}")

    def inpaint(
        self, images: list[Image.Image], masks: list[np.ndarray], objects: list[str] | None = None
    ) -> list[Image.Image]:
        if objects is not None:
            raise ValueError("the classical fill can only remove; painting objects needs a model")
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        out = []
        # cv2.inpaint treats the channels alike, so RGB needs no round trip through BGR.
        for im, mask in zip(images, _checked(images, masks), strict=True):
            rgb = np.asarray(im.convert("RGB"))
            filled = cv2.inpaint(rgb, mask.astype(np.uint8), self.radius, flag)
            out.append(Image.fromarray(filled))
        return out


def _image_seed(seed: int, image: Image.Image, mask: np.ndarray) -> int:
    """A seed from the run seed and the pixels: the same input gets the same fill in any batch or
    order, while different images get different noise (one shared noise pattern for every image
    would be a dataset-wide artefact a model can learn)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(seed.to_bytes(8, "little", signed=True))
    h.update(f"{image.width}x{image.height}".encode())
    h.update(image.tobytes())
    h.update(np.packbits(mask).tobytes())
    return int.from_bytes(h.digest(), "little") >> 1  # torch seeds are signed 64-bit


@dataclass
class DiffusionInpainter:
    """A diffusers inpainting pipeline (``AutoPipelineForInpainting``) by hub id or local path.

    Images are resized to ``resolution`` x ``resolution`` for the pipeline and back to their own
    size. With ``keep_unmasked`` (the default) the original pixels are pasted back outside the
    mask, so only the object changes, as with ``ClassicalInpainter``; without it the whole image is
    the pipeline's output, which has been through the VAE and two resizes and so differs
    everywhere, slightly. The safety checker is never loaded: it blanks outputs it misjudges and
    would silently turn counterfactuals into black images.
    """

    model: str
    steps: int = 30
    guidance: float = 7.5
    strength: float = 1.0
    seed: int = 0
    resolution: int = 512
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    device: str = "cpu"
    batch_size: int = 4
    prompt: str = ""
    keep_unmasked: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use one of {', '.join(DTYPES)}")
        if self.dtype != "fp32" and self.device == "cpu":
            raise ValueError(f"dtype {self.dtype} needs a GPU; use fp32 on the CPU")
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @cached_property
    def pipeline(self) -> DiffusionPipeline:
        """Loaded on first use, so building the object (in a recipe check) costs nothing.

        A recipe names the pipeline, so it must load without running code: a hub id is fetched
        first and checked like a local directory (``trust.pipeline_dir``), and diffusers is told
        to load safetensors only and no code of the repository's own."""
        import torch
        from diffusers import AutoPipelineForInpainting, DiffusionPipeline

        safe = {"use_safetensors": True, "trust_remote_code": False}
        folder = self.model
        if not Path(folder).is_dir():
            folder = DiffusionPipeline.download(folder, **safe)
        trust.pipeline_dir(Path(folder))
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype]
        extra = {}
        if "safety_checker" in AutoPipelineForInpainting.load_config(folder):
            extra = {"safety_checker": None, "requires_safety_checker": False}
        # ``torch_dtype``, not its new name ``dtype``: diffusers from before the rename (0.42 has
        # it) would ignore ``dtype`` with only a warning, and the project allows diffusers>=0.30.
        pipe = AutoPipelineForInpainting.from_pretrained(folder, torch_dtype=dtype, **safe, **extra)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(self.device)

    def inpaint(
        self, images: list[Image.Image], masks: list[np.ndarray], objects: list[str] | None = None
    ) -> list[Image.Image]:
        """With ``objects``, each image's prompt is ``prompt`` with ``{object}`` filled in
        (``prompt`` without the placeholder: the object's name alone)."""
        masks = _checked(images, masks)
        if objects is None:
            prompts = [self.prompt] * len(images)
        elif len(objects) != len(images):
            raise ValueError(f"{len(images)} images but {len(objects)} objects")
        elif "{object}" in self.prompt:
            prompts = [self.prompt.replace("{object}", o) for o in objects]
        else:
            prompts = list(objects)
        out: list[Image.Image] = []
        for i in range(0, len(images), self.batch_size):
            part = slice(i, i + self.batch_size)
            out += self._batch(images[part], masks[part], prompts[part])
        return out

    def _batch(
        self, images: list[Image.Image], masks: list[np.ndarray], prompts: list[str]
    ) -> list[Image.Image]:
        import torch

        side = (self.resolution, self.resolution)
        rgb = [im.convert("RGB") for im in images]
        # Bilinear then "any coverage": a thin mask survives downscaling instead of vanishing.
        small_masks = [
            Image.fromarray(m.astype(np.uint8) * 255)
            .resize(side, Image.BILINEAR)
            .point(lambda v: 255 if v else 0)
            for m in masks
        ]
        # CPU generators: the same noise whatever the device, so a GPU run matches a CPU run's.
        generators = [
            torch.Generator("cpu").manual_seed(_image_seed(self.seed, im, m))
            for im, m in zip(rgb, masks, strict=True)
        ]
        with torch.inference_mode():
            result = self.pipeline(
                prompt=prompts,
                image=[im.resize(side, Image.BICUBIC) for im in rgb],
                mask_image=small_masks,
                height=self.resolution,
                width=self.resolution,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                strength=self.strength,
                generator=generators,
                output_type="pil",
            ).images
        out = []
        for im, mask, filled in zip(rgb, masks, result, strict=True):
            filled = filled.resize(im.size, Image.BICUBIC)
            if self.keep_unmasked:
                filled = Image.composite(filled, im, Image.fromarray(mask))
            out.append(filled)
        return out


@dataclass
class ShapesPainter:
    """The `shapes` world's renderer as an inpainter, the track's stand-in for a text-to-image
    fill model (as its harness-trained YOLO stands in for a COCO one). The world's background is
    flat, so the mask is filled with the median colour of the ring around it (a neighbour
    touching the ring is outvoted, where a Telea fill would smear it inwards); a named shape is
    then drawn centred in the mask at the world's nearest size, in the colour the masked object
    had, and the painted area gets the world's pixel noise, so an edit carries no "edited" tell.
    Only the pixels and the mask are read: the colours and the size come from the image."""

    seed: int = 0
    noise: int = 24  # a pixel that differs from the background by more than this is an object

    def inpaint(
        self, images: list[Image.Image], masks: list[np.ndarray], objects: list[str] | None = None
    ) -> list[Image.Image]:
        masks = _checked(images, masks)
        if objects is None:
            objects = [None] * len(images)
        elif len(objects) != len(images):
            raise ValueError(f"{len(images)} images but {len(objects)} objects")
        unknown = sorted(set(objects) - set(world.SHAPES) - {None})
        if unknown:
            raise ValueError(f"the shapes painter draws {', '.join(world.SHAPES)}, not {unknown}")
        return [
            self._paint(im.convert("RGB"), mask, shape)
            for im, mask, shape in zip(images, masks, objects, strict=True)
        ]

    def _paint(self, im: Image.Image, mask: np.ndarray, shape: str | None) -> Image.Image:
        if not mask.any():
            return im
        before = np.asarray(im, dtype=np.int16)
        ring = _dilated(mask, 2) & ~mask
        background = np.median(before[ring if ring.any() else ~mask], axis=0)
        object_px = mask & (np.abs(before - background).max(axis=2) > self.noise)
        canvas = before.copy()
        canvas[mask] = background
        area = mask.copy()
        if shape is not None and object_px.any():
            colour = tuple(int(v) for v in np.median(before[object_px], axis=0))
            rows, cols = np.nonzero(mask)
            x, y = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
            half = max(cols.max() - cols.min(), rows.max() - rows.min()) / 2
            r = min(world.SIZES.values(), key=lambda size: abs(size - half))
            drawn = Image.new("L", im.size, 0)
            world.draw_shape(ImageDraw.Draw(drawn), shape, x, y, r, 255)
            painted = np.asarray(drawn) > 0
            canvas[painted] = colour
            area |= painted
        flat = Image.fromarray(canvas.astype(np.uint8))
        noisy = np.asarray(world.add_noise(flat, _image_seed(self.seed, im, mask)))
        out = np.where(area[..., None], noisy, np.asarray(im))
        return Image.fromarray(out.astype(np.uint8))


def _clip_tokenizer() -> CLIPTokenizer:
    """A CLIPTokenizer with OpenAI CLIP's vocabulary, from the BPE merges open_clip ships.

    The vocabulary is the 256 byte symbols, the same with the end-of-word mark, one token per merge
    (in merge order), then the two special tokens: 49408 entries, as in every SD text encoder.
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # Line 0 is a version header; CLIP used the first 48894 merges.
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    tokenizer.model_max_length = 77
    return tokenizer


def tiny_pipeline(out: Path) -> Path:
    """Write a random-weight Stable-Diffusion inpainting pipeline to ``out`` and return ``out``.

    The layout is SD's (9-channel UNet input: latents, mask, masked-image latents; VAE downscaling
    by 8; CLIP text encoder with the real vocabulary), the widths tiny, so it runs in about a
    second on a CPU at 64 px. Weights come from a fixed seed: every call writes the same model.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=9,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 8, 16, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out)
    return out
