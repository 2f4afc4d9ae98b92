"""The eval suite on the real sample packs: pack counts, agreement with clip_benchmark to 1e-6
for the same random-init model, official ARO / SugarCrepe scoring with a model whose scores the
test controls, and bad input skipped and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import open_clip
import pytest
import torch
from clip_benchmark.datasets.builder import image_captions_collate_fn
from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CocoCaptions, ImageFolder

from benchmark.evaluate import aro, imagenet, retrieval, sugarcrepe, zeroshot
from benchmark.models.clip import ClipBundle, create

REPO = Path(__file__).resolve().parents[1]
OFFLINE_SUGARCREPE = {
    "add_att": 12,
    "add_obj": 59,
    "replace_att": 19,
    "replace_obj": 44,
    "replace_rel": 43,
    "swap_att": 24,
    "swap_obj": 10,
}


@pytest.fixture(scope="module")
def bundle() -> ClipBundle:
    torch.manual_seed(0)
    return create("shapes-vit-tiny")


# --- a model whose scores the test chooses ------------------------------------------------------


class ColorModel(torch.nn.Module):
    """Image embedding: the image's mean RGB. Text embedding: the vector the tokenizer looked up.
    So a caption's score against an image is set by the colours the test draws."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens


class VectorTokenizer:
    def __init__(self, vectors: dict[str, tuple[float, float, float]]) -> None:
        self.vectors = vectors

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32)


RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def color_bundle(vectors: dict[str, tuple[float, float, float]]) -> ClipBundle:
    preprocess = transforms.Compose([transforms.Resize((4, 4)), transforms.ToTensor()])
    return ClipBundle(ColorModel(), preprocess, VectorTokenizer(vectors))


def red_blue_image(path: Path) -> None:
    """40x20: left half red, right half blue; only a box crop sees one pure colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    image.save(path)


LEFT, RIGHT = (0, 0, 20, 20), (20, 0, 20, 20)


def vg_entry(image: str, box, true: str, false: str, **group) -> dict:
    x, y, w, h = box
    return {
        "image_path": image,
        "bbox_x": x,
        "bbox_y": y,
        "bbox_w": w,
        "bbox_h": h,
        "true_caption": true,
        "false_caption": false,
        **group,
    }


# --- ImageNet ------------------------------------------------------------------------------------


def _clip_benchmark_zeroshot(bundle, dataset: ImageFolder) -> dict:
    """clip_benchmark's own zero-shot evaluation, simple templates, on CPU without amp."""
    loader = DataLoader(dataset, batch_size=64)
    return zeroshot_classification.evaluate(
        bundle.model,
        loader,
        bundle.tokenizer,
        dataset.classes,
        imagenet.template_strings("simple"),
        "cpu",
        amp=False,
    )


def test_imagenet_pack_has_1000_classes_in_wnid_order(samples):
    refs, labels, skipped = imagenet.find_images(samples / "imagenet-samples")
    assert len(refs) == 1000 and not skipped
    assert labels == list(range(1000))
    assert [ref.path.parent.name for ref in refs] == imagenet.wnids()
    assert imagenet.wnids()[0] == "n01440764" and imagenet.wnids()[-1] == "n15075141"
    assert len(open_clip.IMAGENET_CLASSNAMES) == 1000


def test_imagenet_matches_clip_benchmark(bundle, samples):
    root = samples / "imagenet-samples"
    ours = imagenet.evaluate(bundle, root, templates="simple", num_workers=2)
    assert ours["counts"] == {"images": 1000, "classes": 1000} and ours["skipped"] == {}

    dataset = ImageFolder(str(root / "val"), transform=bundle.preprocess)
    dataset.classes = list(open_clip.IMAGENET_CLASSNAMES)
    theirs = _clip_benchmark_zeroshot(bundle, dataset)
    for key in ("acc1", "acc5", "mean_per_class_recall"):
        assert ours["metrics"][key] == pytest.approx(theirs[key], abs=1e-6)


def test_classifier_and_text_encoder_match_clip_benchmark(bundle):
    names = open_clip.IMAGENET_CLASSNAMES[:40]
    templates = imagenet.template_strings("openai")
    ours = zeroshot.classifier(bundle, names, templates)
    theirs = zeroshot_classification.zero_shot_classifier(
        bundle.model, bundle.tokenizer, list(names), templates, "cpu", amp=False
    )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)

    texts = ["a dog", "a photo of a very long and winding caption about a cat", "a dog"]
    with torch.no_grad():
        full = torch.nn.functional.normalize(
            bundle.model.encode_text(bundle.tokenizer(texts)), dim=-1
        )
    encoded = zeroshot.encode_texts(bundle, texts)
    torch.testing.assert_close(encoded, full, atol=1e-6, rtol=0)
    assert torch.equal(encoded[0], encoded[2])  # duplicates are bit-equal (exact ties)


def test_partial_imagenet_is_mapped_by_wnid_and_bad_files_counted(bundle, samples, tmp_path):
    source = samples / "imagenet-samples" / "val"
    wnids = imagenet.wnids()
    picked = wnids[3::100]  # 10 classes, not the first 10
    for wnid in picked:
        shutil.copytree(source / wnid, tmp_path / "val" / wnid)
    (tmp_path / "val" / picked[0] / "broken.JPEG").write_bytes(b"not a jpeg")
    good = next((source / picked[1]).iterdir()).read_bytes()
    (tmp_path / "val" / picked[1] / "truncated.JPEG").write_bytes(good[: len(good) // 3])
    (tmp_path / "val" / picked[2] / "notes.txt").write_text("not an image")

    refs, labels, _ = imagenet.find_images(tmp_path)
    assert sorted(set(labels)) == [wnids.index(w) for w in picked]

    result = imagenet.evaluate(bundle, tmp_path, templates="simple", num_workers=0)
    assert result["counts"]["images"] == 10
    assert result["skipped"] == {"unreadable_image": 2, "not_an_image_file": 1}

    clean = ImageFolder(str(source), transform=bundle.preprocess)
    clean.samples = [s for s in clean.samples if clean.classes[s[1]] in picked]
    clean.targets = [t for _, t in clean.samples]
    clean.classes = list(open_clip.IMAGENET_CLASSNAMES)
    theirs = _clip_benchmark_zeroshot(bundle, clean)
    for key in ("acc1", "acc5", "mean_per_class_recall"):
        assert result["metrics"][key] == pytest.approx(theirs[key], abs=1e-6)


def test_imagenet_rejects_folders_that_are_not_wnids(tmp_path):
    (tmp_path / "val" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="not ImageNet-1k wnids"):
        imagenet.find_images(tmp_path)


# --- retrieval -----------------------------------------------------------------------------------


def test_retrieval_matches_clip_benchmark_on_coco_mini(bundle, samples):
    root = samples / "coco-mini"
    ours = retrieval.evaluate(bundle, root, num_workers=0)
    assert ours["counts"] == {"images": 159, "captions": 795} and ours["skipped"] == {}

    dataset = CocoCaptions(
        str(root / "val2017"),
        str(root / "annotations" / "captions_val2017.json"),
        transform=bundle.preprocess,
    )
    theirs = zeroshot_retrieval.evaluate(
        bundle.model,
        DataLoader(dataset, batch_size=64, collate_fn=image_captions_collate_fn),
        bundle.tokenizer,
        "cpu",
        amp=False,
        recall_k_list=[1, 5, 10],
    )
    assert set(ours["metrics"]) == set(theirs)
    for key, value in theirs.items():
        assert ours["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_flickr_token_format_and_karpathy_split(bundle, samples, tmp_path):
    root = samples / "flickr8k-1k"
    data = retrieval.load(root)
    assert len(data.images) == 1000 and sum(map(len, data.captions)) == 5000
    assert not data.skipped

    names = data.keys[:4]
    split = {
        "dataset": "flickr8k",
        "images": [
            {"filename": names[0], "split": "test"},
            {"filename": names[1], "split": "test"},
            {"filename": names[2], "split": "train"},
            {"filename": names[3], "split": "test"},
            {"filename": "not_in_the_pack.jpg", "split": "test"},
        ],
    }
    split_file = tmp_path / "dataset_flickr8k.json"
    split_file.write_text(json.dumps(split))
    result = retrieval.evaluate(bundle, root, split_file=split_file, num_workers=0)
    assert result["counts"] == {"images": 3, "captions": 15}
    assert result["skipped"] == {"not_in_captions": 1}
    assert result["metrics"]["text_retrieval_recall@5"] == 1.0  # k >= candidates


def test_retrieval_skips_and_counts_bad_images(bundle, samples, tmp_path):
    source = sorted((samples / "coco-mini" / "val2017").iterdir())[:2]
    for path in source:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    names = [p.name for p in source] + ["corrupt.jpg", "missing.jpg"]
    coco = {
        "images": [{"id": i, "file_name": n} for i, n in enumerate(names)],
        "annotations": [
            {"id": 10 * i + j, "image_id": i, "caption": f"caption {j} of {n}"}
            for i, n in enumerate(names)
            for j in range(2)
        ]
        + [{"id": 99, "image_id": 0, "caption": "  "}],
    }
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    result = retrieval.evaluate(bundle, tmp_path, captions=tmp_path / "captions.json")
    assert result["counts"] == {"images": 2, "captions": 4}
    assert result["skipped"] == {"unreadable_image": 1, "missing_image": 1, "empty_caption": 1}


def _coco_captions(samples: Path, split: str) -> dict[int, list[str]]:
    data = json.loads(
        (samples / "coco-mini" / "annotations" / f"captions_{split}.json").read_text()
    )
    out: dict[int, list[str]] = {}
    for a in data["annotations"]:
        out.setdefault(a["image_id"], []).append(a["caption"])
    return out


def karpathy_fixture(samples: Path, root: Path) -> tuple[Path, dict[str, list[str]]]:
    """A COCO root holding Karpathy test images the three ways a download has them: under
    val2014 names, under val2017 names and under train2017 names (the 2017 re-split moved val2014
    images into both); its dataset_coco.json carries captions that differ from COCO's files, so
    a test can tell where captions came from. Returns the split file and the captions by key."""
    val = sorted((samples / "coco-mini" / "val2017").iterdir())[:8]
    train = sorted((samples / "coco-mini" / "train2017").iterdir())[:4]
    captions = _coco_captions(samples, "val2017") | _coco_captions(samples, "train2017")
    (root / "val2014").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "train2017").mkdir()
    entries, expected = [], {}
    for i, path in enumerate(val + train):
        cocoid = int(path.stem)
        name = f"COCO_val2014_{cocoid:012d}.jpg"
        if i < 4:
            shutil.copy(path, root / "val2014" / name)
        else:
            shutil.copy(path, root / path.parent.name / path.name)
        sentences = [f"karpathy: {c.strip()}" for c in captions[cocoid]]
        entries.append(
            {
                "filepath": "val2014",
                "filename": name,
                "cocoid": cocoid,
                "split": "test",
                "sentences": [{"raw": s, "tokens": s.lower().split()} for s in sentences],
            }
        )
        expected[str(cocoid)] = sentences
    entries.append({**entries[0], "cocoid": 1, "filename": "COCO_val2014_1.jpg", "split": "train"})
    split = root / "dataset_coco.json"
    split.write_text(json.dumps({"dataset": "coco", "images": entries}))
    return split, expected


def test_karpathy_retrieval_and_order_take_captions_from_the_split_file(bundle, samples, tmp_path):
    split, expected = karpathy_fixture(samples, tmp_path / "coco")
    data = retrieval.load(tmp_path / "coco", split_file=split)
    assert data.keys == list(expected) and not data.skipped  # every test image, in split order
    assert dict(zip(data.keys, data.captions, strict=True)) == expected
    assert sorted({p.parent.name for p in data.images}) == ["train2017", "val2014", "val2017"]
    result = retrieval.evaluate(bundle, tmp_path / "coco", split_file=split, num_workers=0)
    assert result["counts"] == {"images": 12, "captions": sum(map(len, expected.values()))}
    order = aro.evaluate(
        bundle,
        tmp_path / "coco",
        task="coco_order",
        split_file=split,
        perturbations=("shuffle_within_trigrams", "shuffle_trigrams"),
        num_workers=0,
    )
    assert order["counts"] == {"items": result["counts"]["captions"], "images": 12}


def test_karpathy_flickr_split_carries_its_captions(samples, tmp_path):
    root = samples / "flickr8k-1k"  # images in Images/, as the Flickr30k download has them
    names = sorted(p.name for p in (root / "Images").iterdir())[:3]
    entries = [
        {"filename": n, "split": "test", "sentences": [{"raw": f"{n} {k}"} for k in range(5)]}
        for n in names
    ]
    split = tmp_path / "dataset_flickr30k.json"
    split.write_text(json.dumps({"dataset": "flickr30k", "images": entries}))
    data = retrieval.load(root, split_file=split)
    assert data.keys == names and data.images == [root / "Images" / n for n in names]
    assert data.captions == [[f"{n} {k}" for k in range(5)] for n in names]


def test_karpathy_split_disagreeing_with_its_images_is_an_error(samples, tmp_path):
    root = tmp_path / "coco"
    split, expected = karpathy_fixture(samples, root)
    # the old pairing: captions_val2017.json drops the test images val2017 does not hold
    val_captions = samples / "coco-mini" / "annotations" / "captions_val2017.json"
    with pytest.raises(ValueError, match=r"8 of its 12 test images are not found"):
        retrieval.load(root / "val2017", captions=val_captions, split_file=split)
    # a handful missing is counted; one more is an error naming how many and which
    lost = sorted((root / "val2014").iterdir()) + sorted((root / "val2017").iterdir())
    for path in lost[: retrieval.HANDFUL]:
        path.unlink()
    data = retrieval.load(root, split_file=split)
    assert len(data.images) == 12 - retrieval.HANDFUL
    assert data.skipped == {"missing_image": retrieval.HANDFUL}
    lost[retrieval.HANDFUL].unlink()
    with pytest.raises(ValueError, match=r"6 of its 12 test images .* \(e\.g\. \d+"):
        retrieval.load(root, split_file=split)


# --- SugarCrepe ----------------------------------------------------------------------------------


def test_sugarcrepe_pack_counts(samples):
    subsets = sugarcrepe.load(samples / "sugarcrepe", samples / "coco-mini" / "val2017")
    assert sum(s.total for s in subsets) == 7511
    assert {s.name: len(s.items) for s in subsets} == OFFLINE_SUGARCREPE
    assert sum(len(s.items) for s in subsets) == 211


def test_sugarcrepe_matches_official_loop(bundle, samples):
    images = samples / "coco-mini" / "val2017"
    result = sugarcrepe.evaluate(bundle, samples / "sugarcrepe", image_root=images, num_workers=0)
    assert result["skipped"] == {"missing_image": 7300}
    assert {k: v["evaluated"] for k, v in result["subsets"].items()} == OFFLINE_SUGARCREPE

    model = bundle.model.eval()
    for subset in sugarcrepe.load(samples / "sugarcrepe", images):
        right = 0
        with torch.no_grad():  # RAIVNLab/sugar-crepe main_eval.py, one item at a time
            for item in subset.items:
                image = bundle.preprocess(Image.open(item.image)).unsqueeze(0)
                image_emb = model.encode_image(image, normalize=True)
                pos = model.encode_text(bundle.tokenizer([item.caption]), normalize=True)
                neg = model.encode_text(bundle.tokenizer([item.negative]), normalize=True)
                right += int((pos @ image_emb.T).item() > (neg @ image_emb.T).item())
        assert result["metrics"][subset.name] == pytest.approx(right / len(subset.items), abs=1e-9)


def test_sugarcrepe_scoring_with_controlled_scores(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "red.jpg")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "blue.jpg")
    data = {
        "replace_obj": {
            "0": {"filename": "red.jpg", "caption": "red", "negative_caption": "blue"},  # right
            "1": {"filename": "red.jpg", "caption": "red", "negative_caption": "red too"},  # tie
            "2": {"filename": "gone.jpg", "caption": "red", "negative_caption": "blue"},
        },
        "swap_att": {
            "7": {"filename": "blue.jpg", "caption": "blue", "negative_caption": "red"},  # right
        },
    }
    for name, items in data.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(items))
    fake = color_bundle({"red": RED, "red too": RED, "blue": BLUE})
    result = sugarcrepe.evaluate(
        fake, tmp_path, image_root=tmp_path, subsets=["replace_obj", "swap_att"], num_workers=0
    )
    assert result["metrics"] == {
        "replace_obj": 0.5,
        "swap_att": 1.0,
        "replace": 0.5,
        "swap": 1.0,
        "average": 0.75,  # groups replace, swap
        "subset_mean": 0.75,
        "item_mean": 2 / 3,  # 2 right of 3 items
    }
    assert result["subsets"]["replace_obj"] == {
        "items": 3,
        "evaluated": 2,
        "skipped": {"missing_image": 1},
    }
    assert result["skipped"] == {"missing_image": 1}


# --- ARO -----------------------------------------------------------------------------------------


def test_vg_relation_crops_boxes_and_scores_officially(tmp_path):
    red_blue_image(tmp_path / "images" / "1.png")
    entries = [
        vg_entry("1.png", LEFT, "r on", "b on", relation_name="on"),  # right
        vg_entry("1.png", RIGHT, "r on", "b on", relation_name="on"),  # wrong
        vg_entry("1.png", LEFT, "r holding", "b holding", relation_name="holding"),  # right
        vg_entry("1.png", LEFT, "b next to", "r next to", relation_name="next to"),  # symmetric
        vg_entry("1.png", LEFT, "r wearing", "r2 wearing", relation_name="wearing"),  # tie: wrong
        vg_entry("2.png", LEFT, "r on", "b on", relation_name="on"),  # image missing
        {"image_path": "1.png", "true_caption": "r on", "false_caption": "b on"},  # no box
    ]
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps(entries))
    vectors = {
        "r on": RED,
        "b on": BLUE,
        "r holding": RED,
        "b holding": BLUE,
        "b next to": BLUE,
        "r next to": RED,
        "r wearing": RED,
        "r2 wearing": RED,
    }
    result = aro.evaluate(color_bundle(vectors), tmp_path, task="vg_relation", num_workers=0)
    assert result["metrics"]["acc"] == pytest.approx(2 / 5)
    assert result["metrics"]["macro_acc"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert result["counts"] == {"items": 5, "groups": 3}
    assert result["skipped"] == {"missing_image": 1, "malformed_item": 1}


def test_vg_attribution_keeps_pairs_with_25_cases(tmp_path):
    red_blue_image(tmp_path / "images" / "1.png")
    entries = (
        [vg_entry("1.png", LEFT, "r", "b", attributes=["white", "black"])] * 20
        + [vg_entry("1.png", RIGHT, "r", "b", attributes=["white", "black"])] * 5
        + [vg_entry("1.png", LEFT, "r", "b", attributes=["small", "large"])] * 24
    )
    (tmp_path / "visual_genome_attribution.json").write_text(json.dumps(entries))
    result = aro.evaluate(
        color_bundle({"r": RED, "b": BLUE}), tmp_path, task="vg_attribution", num_workers=0
    )
    assert result["metrics"]["macro_acc"] == pytest.approx(0.8)  # small_large has 24 cases
    assert result["metrics"]["acc"] == pytest.approx(44 / 49)
    assert result["counts"] == {"items": 49, "groups": 1}


def test_coco_order_on_coco_mini(bundle, samples):
    root = samples / "coco-mini"
    trigram_only = ("shuffle_within_trigrams", "shuffle_trigrams")
    result = aro.evaluate(bundle, root, task="coco_order", perturbations=trigram_only, seed=1)
    assert result["counts"] == {"items": 795, "images": 159}
    again = aro.evaluate(bundle, root, task="coco_order", perturbations=trigram_only, seed=1)
    assert again["metrics"] == result["metrics"]
    one = aro.evaluate(
        bundle, root, task="coco_order", perturbations=trigram_only, captions_per_image=1
    )
    assert one["counts"] == {"items": 159, "images": 159}
    assert 0.0 <= one["metrics"]["acc"] <= 1.0


def test_order_tasks_need_spacy_for_the_tagger_perturbations(bundle, samples):
    try:
        aro._spacy()
    except ImportError as err:
        assert "pip install spacy && python -m spacy download en_core_web_sm" in str(err)
        with pytest.raises(ImportError, match="en_core_web_sm"):
            aro.evaluate(bundle, samples / "coco-mini", task="coco_order")
    else:
        result = aro.evaluate(bundle, samples / "coco-mini", task="coco_order", num_workers=0)
        assert result["counts"]["items"] == 795 and len(result["perturbations"]) == 4
