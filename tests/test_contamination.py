"""Eval images hidden in a pool are found by id and by perceptual hash; others are left alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from benchmark import pools
from benchmark.pools.contamination import EvalSet, native_id, remove_contaminated
from benchmark.pools.shards import ShardReader

REPO = Path(__file__).resolve().parents[1]
REENCODINGS = ((256, 75), (200, 60), (160, 50))  # longest side in px, JPEG quality


def reencode(src: Path, dst: Path, size: int, quality: int) -> None:
    with Image.open(src) as im:
        im = im.convert("RGB")
        scale = size / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
        im.save(dst, format="JPEG", quality=quality)


def test_native_ids() -> None:
    assert native_id("val2017/000000431848.jpg") == "431848"
    assert native_id("coco/val2014/COCO_val2014_000000431848.jpg") == "431848"
    assert native_id(431848) == native_id("431848") == "431848"
    assert native_id(Path("Images/1000268201_693b08cb0e.jpg")) == "1000268201_693b08cb0e.jpg"


def test_reencoded_val_images_are_caught_and_train_images_are_not(
    samples: Path, tmp_path: Path
) -> None:
    """A web-style pool: val2017 photos re-encoded at three sizes and qualities, hidden among
    coco-mini train2017, flickr8k-1k and imagenet-samples images (all unrelated to val2017)."""
    coco = samples / "coco-mini"
    val = sorted((coco / "val2017").glob("*.jpg"))
    (tmp_path / "leaked").mkdir()
    paths, leaked = [], set()
    for size, quality in REENCODINGS:
        for f in val:
            dst = tmp_path / "leaked" / f"{size}_{quality}_{f.name}"
            reencode(f, dst, size, quality)
            paths.append(str(dst))
            leaked.add(str(dst))
    clean = sorted((coco / "train2017").glob("*.jpg"))
    clean += sorted((samples / "flickr8k-1k" / "Images").glob("*.jpg"))
    clean += sorted((samples / "imagenet-samples" / "val").glob("*/*"))
    paths += [str(p) for p in clean]
    pq.write_table(
        pa.table({"url": paths, "caption": ["a photo"] * len(paths)}), tmp_path / "pool.parquet"
    )
    k = pools.get("byod")
    build = k.build(k.params(kind="byod", path=str(tmp_path / "pool.parquet")), tmp_path / "pool")
    assert build.skipped == {}
    table = build.table

    kept, report = remove_contaminated(
        table, ShardReader(tmp_path / "pool"), [EvalSet("sugarcrepe", files=val, dataset="coco")]
    )
    removed = set(table["image_group"].to_pylist()) - set(kept["image_group"].to_pylist())
    assert removed == leaked  # every re-encoding of every val image, and nothing else
    assert report.removed_rows == len(leaked) == 3 * 159
    assert report.by_set == {"sugarcrepe": {"id": 0, "hash": 3 * 159}}
    assert kept.num_rows == len(clean) == 80 + 1000 + 1000  # no false positives
    assert report.unreadable == 0
    assert max(m["phash_distance"] for m in report.matches) <= 6
    assert {m["eval_image"] for m in report.matches} == {str(f) for f in val}


def test_coco_ids_remove_every_caption_of_an_image(samples: Path, tmp_path: Path) -> None:
    k = pools.get("coco")
    table = k.build(k.params(kind="coco", root=samples / "coco-mini"), tmp_path).table
    first = table["image_group"][0].as_py()
    # ARO names COCO images by their 2014 file names; the id is what matters
    aro = EvalSet("aro", ids=[f"COCO_val2014_{int(first):012d}.jpg"], dataset="coco")
    other = EvalSet("other", ids=[first], dataset="flickr8k")  # another dataset's ids: no match
    kept, report = remove_contaminated(table, ShardReader(tmp_path), [aro, other])
    assert report.removed_rows == 5
    assert report.by_set == {"aro": {"id": 5, "hash": 0}, "other": {"id": 0, "hash": 0}}
    assert first not in kept["image_group"].to_pylist()
    assert report.images_checked == 0  # nothing to hash against


def test_flickr_file_names_and_hashes(samples: Path, tmp_path: Path) -> None:
    root = samples / "flickr8k-1k"
    k = pools.get("flickr")
    table = k.build(k.params(kind="flickr", root=root), tmp_path).table
    names = sorted({p.name for p in (root / "Images").glob("*.jpg")})[:4]
    eval_set = EvalSet(
        "flickr-test",
        files=[root / "Images" / n for n in names[:2]],
        ids=names[2:],
        dataset="flickr8k",
    )
    kept, report = remove_contaminated(table, ShardReader(tmp_path), [eval_set])
    assert report.removed_rows == 4 * 5
    assert report.by_set == {"flickr-test": {"id": 20, "hash": 10}}
    assert report.images_checked == 1000
    assert set(kept["image_group"].to_pylist()).isdisjoint(names)
