"""Inpainting: masks from detector/segmenter output, classical fills checked against the shapes
world's known background, and a random-weight diffusion pipeline loaded by path, offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.models.inpainter import (
    ClassicalInpainter,
    DiffusionInpainter,
    ShapesPainter,
    mask_from_boxes,
    mask_from_polygons,
    tiny_pipeline,
)
from benchmark.world import (
    BACKGROUND,
    COLOURS,
    SHAPES,
    Scene,
    render,
    sample_objects,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any hub request fails: the hub reads the variable once at import, so patch the constant."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def scene(seed: int, n: int) -> tuple[Scene, Image.Image]:
    s = Scene(sample_objects(np.random.default_rng(seed), n), noise_seed=seed)
    return s, render(s)


# --- masks -----------------------------------------------------------------------------------


def test_box_mask_is_height_by_width_and_includes_the_far_edge() -> None:
    mask = mask_from_boxes((40, 30), [(2, 3, 5, 7)])
    assert mask.shape == (30, 40) and mask.dtype == bool
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 7, 2, 5)


def test_box_mask_covers_fractional_boxes_and_clips_to_the_image() -> None:
    mask = mask_from_boxes((10, 10), [(2.6, 1.2, 4.1, 3.9), (-5, 8.5, 50, 40)])
    rows, cols = np.nonzero(mask[:5])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 3, 2, 4)
    assert mask[8:].all()
    assert not mask_from_boxes((10, 10), [(20, 20, 30, 30)]).any()


def test_box_dilation_grows_by_a_disc() -> None:
    mask = mask_from_boxes((30, 30), [(10, 10, 19, 19)], dilate=3)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 22, 7, 22)
    assert mask[7, 15] and mask[15, 22]
    assert not mask[7, 7]  # a disc kernel leaves the box's corners rounded
    assert mask.sum() > mask_from_boxes((30, 30), [(10, 10, 19, 19)]).sum()
    with pytest.raises(ValueError, match="dilate"):
        mask_from_boxes((30, 30), [(1, 1, 2, 2)], dilate=-1)


def test_polygon_mask_takes_coco_and_array_polygons_alike() -> None:
    flat = [5.0, 5.0, 25.0, 5.0, 25.0, 15.0, 5.0, 15.0]
    coco = mask_from_polygons((32, 20), [flat])
    array = mask_from_polygons((32, 20), [np.array(flat).reshape(-1, 2)])
    assert coco.shape == (20, 32)
    assert np.array_equal(coco, array)
    assert np.array_equal(coco, mask_from_boxes((32, 20), [(5, 5, 25, 15)]))
    triangle = mask_from_polygons((32, 32), [[0, 0, 30, 0, 0, 30]])
    assert triangle.sum() == sum(range(1, 32))  # rows of 31, 30, ... 1 pixels: outline inside


def test_polygon_mask_dilates_and_ignores_degenerate_polygons() -> None:
    polygons = [[10, 10, 20, 10, 15, 18], [1, 1, 3, 3]]  # the second has two vertices
    plain = mask_from_polygons((30, 30), polygons)
    grown = mask_from_polygons((30, 30), polygons, dilate=2)
    assert not plain[:5, :5].any()
    assert grown[plain].all() and grown.sum() > plain.sum()
    assert grown[8, 15] and not plain[8, 15]


# --- classical -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classical_removal_leaves_the_background(method: str, seed: int) -> None:
    s, image = scene(seed, n=1)
    (obj,) = s.objects
    box = mask_from_boxes(image.size, [obj.box])
    mask = mask_from_boxes(image.size, [obj.box], dilate=2)
    before = np.asarray(image, dtype=int)
    assert np.abs(before[box] - BACKGROUND).max() > 30  # the object is there

    (out,) = ClassicalInpainter(method=method, radius=3).inpaint([image], [mask])
    after = np.asarray(out, dtype=int)
    assert out.size == image.size and out.mode == "RGB"
    inside = np.abs(after[box] - BACKGROUND)
    assert inside.max() <= 12  # the render's noise is +-6 around the background
    assert inside.mean() < 4
    assert np.array_equal(after[~mask], before[~mask])


def test_classical_removal_keeps_the_other_objects() -> None:
    s, image = scene(7, n=3)
    removed, *kept = s.objects
    mask = mask_from_boxes(image.size, [removed.box], dilate=2)
    (out,) = ClassicalInpainter().inpaint([image], [mask])
    after = np.asarray(out, dtype=int)
    colour = np.array(COLOURS[removed.colour])
    # None of the removed object's colour is left where it was.
    assert np.abs(after[mask] - colour).sum(axis=1).min() > 60
    assert np.array_equal(after[~mask], np.asarray(image, dtype=int)[~mask])
    for obj in kept:
        (x, y) = obj.x, obj.y
        assert np.abs(after[y, x] - COLOURS[obj.colour]).max() <= 6 or mask[y, x]


def test_inpainters_check_masks_against_images() -> None:
    image = Image.new("RGB", (20, 10))
    with pytest.raises(ValueError, match="WxH"):
        ClassicalInpainter().inpaint([image], [np.zeros((20, 10), dtype=bool)])
    with pytest.raises(ValueError, match="1 images but 2 masks"):
        ClassicalInpainter().inpaint([image], [np.zeros((10, 20), dtype=bool)] * 2)
    with pytest.raises(ValueError, match="method"):
        ClassicalInpainter(method="biharmonic")  # type: ignore[arg-type]


def test_classical_takes_any_mode_and_size() -> None:
    images = [Image.new("L", (50, 30), 90), Image.new("RGBA", (17, 41), (1, 2, 3, 0))]
    masks = [mask_from_boxes(im.size, [(3, 3, 9, 9)]) for im in images]
    out = ClassicalInpainter(method="ns").inpaint(images, masks)
    assert [o.size for o in out] == [(50, 30), (17, 41)]
    assert np.abs(np.asarray(out[0], dtype=int) - 90).max() == 0


def test_classical_fill_refuses_to_paint_objects() -> None:
    _, image = scene(1, n=1)
    with pytest.raises(ValueError, match="can only remove"):
        ClassicalInpainter().inpaint([image], [np.zeros((64, 64), bool)], ["circle"])


# --- shapes painter --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_shapes_painter_draws_the_named_shape_in_the_objects_colour_and_size(seed: int) -> None:
    """The edit is the scene the world would render with that one object's shape changed: the
    colour and the size come from the pixels, the position from the mask."""
    s, image = scene(seed, n=3)
    old, *rest = s.objects
    mask = mask_from_boxes(image.size, [old.box])
    for shape in (x for x in SHAPES if x != old.shape):
        (out,) = ShapesPainter(seed=seed).inpaint([image], [mask], [shape])
        truth = render(Scene((type(old)(shape, old.colour, old.size, old.x, old.y), *rest), seed))
        off = np.abs(np.asarray(out, int) - np.asarray(truth, int)).max(axis=2) > 24
        assert off.sum() <= 3, (shape, off.sum())
        assert np.array_equal(np.asarray(out)[~mask & ~off], np.asarray(image)[~mask & ~off])


def test_shapes_painter_removes_without_objects_and_adds_the_worlds_noise() -> None:
    s, image = scene(4, n=2)
    mask = mask_from_boxes(image.size, [s.objects[0].box], dilate=1)
    (removed,) = ShapesPainter().inpaint([image], [mask])
    inside = np.asarray(removed, int)[mask] - BACKGROUND
    assert np.abs(inside).max() <= 12 and 2 < np.abs(inside).mean() < 4.5  # noisy background
    assert np.array_equal(np.asarray(removed)[~mask], np.asarray(image)[~mask])
    (painted,) = ShapesPainter().inpaint([image], [mask], ["star"])
    again = ShapesPainter().inpaint([image], [mask], ["star"])
    assert np.array_equal(np.asarray(painted), np.asarray(again[0]))
    with pytest.raises(ValueError, match=r"not \['dog'\]"):
        ShapesPainter().inpaint([image], [mask], ["dog"])
    with pytest.raises(ValueError, match="1 images but 2 objects"):
        ShapesPainter().inpaint([image], [mask], ["star", "cross"])


# --- diffusion -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The tiny pipeline's ops are too small to split: on a shared 2-core machine two OpenMP
    threads spin against other processes and make a 0.05 s call take seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline(tmp_path_factory.mktemp("tiny-inpaint"))


def diffusion(model: Path, **kw) -> DiffusionInpainter:
    return DiffusionInpainter(str(model), **{"steps": 3, "resolution": 64, **kw})


def inputs() -> tuple[list[Image.Image], list[np.ndarray]]:
    _, shapes = scene(3, n=2)
    photo = shapes.resize((80, 60))
    images = [shapes, photo]
    masks = [
        mask_from_boxes(shapes.size, [(10, 10, 30, 30)]),
        mask_from_boxes((80, 60), [(40, 5, 70, 35)]),
    ]
    return images, masks


def test_tiny_pipeline_loads_by_path_without_a_safety_checker(tiny: Path) -> None:
    from diffusers import AutoPipelineForInpainting, StableDiffusionInpaintPipeline

    pipe = AutoPipelineForInpainting.from_pretrained(str(tiny))
    assert isinstance(pipe, StableDiffusionInpaintPipeline)
    assert pipe.unet.config.in_channels == 9
    assert pipe.vae_scale_factor == 8
    # The tokenizer built from open_clip's BPE file tokenizes as open_clip does.
    import open_clip

    ids = pipe.tokenizer("a red circle to the left of a blue square").input_ids
    expected = open_clip.get_tokenizer("ViT-B-32")(["a red circle to the left of a blue square"])
    assert ids == expected[0][: len(ids)].tolist()
    assert diffusion(tiny).pipeline.safety_checker is None


def test_diffusion_keeps_sizes_and_is_deterministic_per_seed(tiny: Path) -> None:
    images, masks = inputs()
    first = diffusion(tiny, seed=5).inpaint(images, masks)
    assert [o.size for o in first] == [im.size for im in images]
    assert all(o.mode == "RGB" for o in first)
    again = diffusion(tiny, seed=5, batch_size=1).inpaint(images, masks)
    other = diffusion(tiny, seed=6).inpaint(images, masks)
    for a, b, c, mask in zip(first, again, other, masks, strict=True):
        a, b, c = (np.asarray(x, dtype=int) for x in (a, b, c))
        # Same seed: the same fill whatever the batching (up to float reassociation).
        assert np.abs(a - b).max() <= 2
        assert np.abs(a[mask] - c[mask]).mean() > 5


def test_diffusion_noise_depends_on_the_image_not_its_position(tiny: Path) -> None:
    images, masks = inputs()
    inpainter = diffusion(tiny)
    alone = np.asarray(inpainter.inpaint(images[1:], masks[1:])[0], dtype=int)
    second = np.asarray(inpainter.inpaint(images, masks)[1], dtype=int)
    assert np.abs(alone - second).max() <= 2


def test_diffusion_outside_the_mask(tiny: Path) -> None:
    """By default only the masked pixels change; without ``keep_unmasked`` the whole image is the
    pipeline's (VAE-decoded, resized) output and differs everywhere."""
    images, masks = inputs()
    kept = diffusion(tiny).inpaint(images, masks)
    whole = diffusion(tiny, keep_unmasked=False).inpaint(images, masks)
    for im, mask, k, w in zip(images, masks, kept, whole, strict=True):
        original = np.asarray(im, dtype=int)
        assert np.array_equal(np.asarray(k, dtype=int)[~mask], original[~mask])
        assert np.abs(np.asarray(w, dtype=int)[~mask] - original[~mask]).mean() > 5
        assert w.size == im.size


def test_diffusion_prompts_name_the_painted_object(tiny: Path) -> None:
    images, masks = inputs()
    named = diffusion(tiny, prompt="a photo of a {object}").inpaint(images, masks, ["cat", "dog"])
    cat = diffusion(tiny, prompt="a photo of a cat").inpaint(images[:1], masks[:1])
    dog = diffusion(tiny, prompt="a photo of a dog").inpaint(images[1:], masks[1:])
    bare = diffusion(tiny, prompt="").inpaint(images[:1], masks[:1], ["a photo of a cat"])
    for a, b in ((named[0], cat[0]), (named[1], dog[0]), (bare[0], cat[0])):
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 2
    other = diffusion(tiny, prompt="a photo of a {object}").inpaint(images[:1], masks[:1], ["car"])
    assert np.abs(np.asarray(other[0], int) - np.asarray(cat[0], int)).max() > 2


def test_diffusion_refuses_half_precision_on_cpu_and_bad_resolutions(tiny: Path) -> None:
    with pytest.raises(ValueError, match="GPU"):
        DiffusionInpainter(str(tiny), dtype="bf16")
    with pytest.raises(ValueError, match="multiple of 8"):
        DiffusionInpainter(str(tiny), resolution=100)


def test_a_hub_id_is_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(OSError):
        _ = DiffusionInpainter("smallcomp-test/no-such-inpainting-model").pipeline
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
