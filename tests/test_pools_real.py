"""Pool adapters on the real data packs and on broken copies of them."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import ValidationError

from benchmark import pools
from benchmark.pools import REQUIRED_COLUMNS, PoolBuild
from benchmark.pools.images import sample_uid
from benchmark.pools.shards import ShardReader

REPO = Path(__file__).resolve().parents[1]
UID = re.compile(r"[0-9a-f]{32}")


def build(kind: str, out: Path, **params: object) -> PoolBuild:
    k = pools.get(kind)
    return k.build(k.params(kind=kind, **params), out)


def check_table(table: pa.Table) -> None:
    """What every adapter promises about its table."""
    assert table.column_names[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    assert table.schema.field("width").type == pa.int32()
    assert table.schema.field("height").type == pa.int32()
    uids = table["uid"].to_pylist()
    assert all(UID.fullmatch(u) for u in uids)
    assert len(set(uids)) == len(uids)
    assert all(c.strip() == c and c for c in table["caption"].to_pylist())


def check_images(out: Path, table: pa.Table, originals: dict[str, bytes]) -> None:
    """Each distinct image decodes at the recorded size; stored bytes equal the source's."""
    reader = ShardReader(out)
    seen = {}
    for row in table.select(["image", "width", "height", "image_group"]).to_pylist():
        seen.setdefault(row["image"], row)
    for ref, row in seen.items():
        assert reader.read_image(ref).size == (row["width"], row["height"])
        assert reader.read_bytes(ref) == originals[row["image_group"]]
    reader.close()


# --- the packs, read unchanged ------------------------------------------------------------------


def test_coco_mini_train(samples: Path, tmp_path: Path) -> None:
    root = samples / "coco-mini"
    b = build("coco", tmp_path, root=root)
    t = b.table
    check_table(t)
    assert b.skipped == {}
    assert t.num_rows == 400
    groups = t["image_group"].to_pylist()
    assert len(set(groups)) == 80
    assert set(t["source"].to_pylist()) == {"coco"}
    assert len(set(t["image"].to_pylist())) == 80  # five captions share one shard member

    captions = json.loads((root / "annotations/captions_train2017.json").read_text())
    ann = {(str(a["image_id"]), a["caption"].strip()) for a in captions["annotations"]}
    assert set(zip(groups, t["caption"].to_pylist(), strict=True)) == ann
    originals = {str(int(p.stem)): p.read_bytes() for p in (root / "train2017").glob("*.jpg")}
    check_images(tmp_path, t, originals)

    # hidden object ground truth: every instance annotation, once per image, with names
    per_image = {g: objs for g, objs in zip(groups, t["gt_objects"].to_pylist(), strict=True)}
    assert sum(len(o) for o in per_image.values()) == 739
    first = next(o for objs in per_image.values() for o in objs)
    assert isinstance(first["category"], str) and len(first["bbox"]) == 4


def test_coco_refuses_val2017(samples: Path) -> None:
    with pytest.raises(ValidationError, match="val2017 holds the evaluation images"):
        pools.get("coco").params(kind="coco", root=samples / "coco-mini", split="val2017")


def test_flickr8k_1k(samples: Path, tmp_path: Path) -> None:
    root = samples / "flickr8k-1k"
    b = build("flickr", tmp_path, root=root)
    t = b.table
    check_table(t)
    assert b.skipped == {}
    assert (t.num_rows, len(set(t["image_group"].to_pylist()))) == (5000, 1000)
    assert t["uid"][0].as_py() == sample_uid("flickr8k", "1000268201_693b08cb0e.jpg", "0")
    originals = {p.name: p.read_bytes() for p in (root / "Images").glob("*.jpg")}
    check_images(tmp_path, t, originals)


def test_flickr_split_file_keeps_listed_images_only(samples: Path, tmp_path: Path) -> None:
    root = tmp_path / "flickr"
    root.mkdir()
    (root / "Images").symlink_to(samples / "flickr8k-1k" / "Images")
    lines = (samples / "flickr8k-1k" / "captions.txt").read_bytes().splitlines(keepends=True)
    (root / "captions.txt").write_bytes(b"".join(lines[:50]))
    names = sorted({line.split(b"#")[0].decode() for line in lines[:50]})
    (root / "train.txt").write_text("\n".join(names[:3]) + "\n")
    b = build("flickr", tmp_path / "pool", root=root, split_file="train.txt")
    assert sorted(set(b.table["image_group"].to_pylist())) == names[:3]
    assert b.table.num_rows == 15


def test_same_pool_twice_gives_identical_tables(samples: Path, tmp_path: Path) -> None:
    for kind, root in (("coco", "coco-mini"), ("flickr", "flickr8k-1k")):
        a = build(kind, tmp_path / kind / "a", root=samples / root).table
        b = build(kind, tmp_path / kind / "b", root=samples / root).table
        assert a.equals(b)


# --- broken input: skipped, counted, and the build goes on ---------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height``: a decompression bomb without the memory bill."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def photos(samples: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((samples / "flickr8k-1k" / "Images").glob("*.jpg"))[:8]]


BROKEN = {  # reason -> how a Flickr token line + image file break it
    "missing_image": 1,
    "corrupt_image": 2,  # truncated JPEG, and bytes that are no image at all
    "image_too_large": 2,  # PIL's hard limit (error) and its soft limit (warning)
    "non_utf8_caption": 1,
    "empty_caption": 1,
    "malformed_line": 1,
}


def test_flickr_bad_input(photos: list[bytes], tmp_path: Path) -> None:
    root = tmp_path / "flickr"
    (root / "Images").mkdir(parents=True)
    files = {
        "good0.jpg": photos[0],
        "good1.jpg": photos[1],
        "truncated.jpg": photos[2][: len(photos[2]) // 2],
        "garbage.jpg": b"not an image at all",
        "bomb.png": png_header(20_000, 20_000),
        "soft_bomb.png": png_header(9_000, 8_000),
    }
    for name, data in files.items():
        (root / "Images" / name).write_bytes(data)
    lines = [
        b"good0.jpg#0\tA dog runs .",
        b"good0.jpg#1\t\xff\xfe not utf-8",
        b"good0.jpg#2\t   ",
        b"good1.jpg#0\tA cat sits .",
        b"good1.jpg#0 no tab here",
        b"missing.jpg#0\tNobody home .",
        b"truncated.jpg#0\tHalf a photo .",
        b"garbage.jpg#0\tText .",
        b"bomb.png#0\tHuge .",
        b"soft_bomb.png#0\tLarge .",
    ]
    (root / "captions.txt").write_bytes(b"\n".join(lines) + b"\n")
    b = build("flickr", tmp_path / "pool", root=root)
    assert b.skipped == dict(sorted(BROKEN.items()))
    assert b.table["caption"].to_pylist() == ["A dog runs .", "A cat sits ."]
    check_table(b.table)


def test_coco_bad_input(samples: Path, tmp_path: Path) -> None:
    src = samples / "coco-mini"
    root = tmp_path / "coco"
    shutil.copytree(src / "train2017", root / "train2017")
    (root / "annotations").mkdir()
    captions = json.loads((src / "annotations/captions_train2017.json").read_text())
    files = sorted((root / "train2017").glob("*.jpg"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:500])
    broken = {int(f.stem) for f in files[:2]}
    next(a for a in captions["annotations"] if a["image_id"] not in broken)["caption"] = " \n"
    captions["annotations"].append({"image_id": 1, "id": 1, "caption": "no such image"})
    (root / "annotations/captions_train2017.json").write_text(json.dumps(captions))

    b = build("coco", tmp_path / "pool", root=root)
    assert "gt_objects" not in b.table.column_names  # no instances file: no ground truth column
    assert b.skipped == {"corrupt_image": 5, "empty_caption": 1, "missing_image": 6}
    assert b.table.num_rows == 400 - 5 - 5 - 1
    check_table(b.table)


def test_coco_bad_captions_are_skipped_and_counted(samples: Path, tmp_path: Path) -> None:
    """coco-mini's JSONs with captions that are no text, not UTF-8, or missing: the build goes
    on, every other caption is a row, and each defect is counted under its reason."""
    src = samples / "coco-mini"
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").symlink_to(src / "train2017")
    captions = json.loads((src / "annotations/captions_train2017.json").read_text())
    anns = captions["annotations"]
    for a, bad in zip(anns, [7, None, ["a", "list"], "@LATIN1@", "@SURROGATE@"], strict=False):
        a["caption"] = bad
    del anns[5]["caption"]
    del anns[6]["image_id"]
    anns.append("not an annotation")
    text = json.dumps(captions)
    # raw Latin-1 bytes in the file (invalid UTF-8), and a JSON escape of a lone surrogate
    text = text.replace('"@SURROGATE@"', '"caf\\udce9"')
    data = text.encode().replace(b"@LATIN1@", "café au lait".encode("latin-1"))
    (root / "annotations/captions_train2017.json").write_bytes(data)
    instances = json.loads((src / "annotations/instances_train2017.json").read_text())
    del instances["annotations"][0]["bbox"]
    instances["annotations"][1]["category_id"] = -1
    (root / "annotations/instances_train2017.json").write_text(json.dumps(instances))

    b = build("coco", tmp_path / "pool", root=root)
    check_table(b.table)
    assert b.skipped == {
        "caption_not_text": 2,
        "empty_caption": 1,
        "malformed_annotation": 2,
        "malformed_object": 2,
        "missing_caption": 1,
        "non_utf8_caption": 2,
    }
    assert b.table.num_rows == 400 - 7
    kept = set(b.table["uid"].to_pylist())
    assert kept == {sample_uid("coco", str(a["image_id"]), a["id"]) for a in anns[7:-1]}
    t = b.table.to_pydict()
    per_image = dict(zip(t["image_group"], t["gt_objects"], strict=True))
    assert sum(len(o) for o in per_image.values()) == 739 - 2

    (root / "annotations/captions_train2017.json").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="captions_train2017.json: not JSON"):
        build("coco", tmp_path / "pool2", root=root)


def test_flickr_token_file_with_bad_lines(samples: Path, tmp_path: Path) -> None:
    """flickr8k-1k's token file with a Latin-1 caption, a name that is not UTF-8 and an empty
    caption: those three lines are counted, the other 4,997 captions are rows."""
    src = samples / "flickr8k-1k"
    root = tmp_path / "flickr"
    root.mkdir()
    (root / "Images").symlink_to(src / "Images")
    lines = (src / "captions.txt").read_bytes().splitlines()
    lines[0] = lines[0].partition(b"\t")[0] + b"\t" + "A dog in a café .".encode("latin-1")
    lines[1] = b"\xff" + lines[1]
    lines[2] = lines[2].partition(b"\t")[0] + b"\t  "
    (root / "captions.txt").write_bytes(b"\n".join(lines) + b"\n")
    b = build("flickr", tmp_path / "pool", root=root)
    check_table(b.table)
    assert b.skipped == {"empty_caption": 1, "malformed_line": 1, "non_utf8_caption": 1}
    assert b.table.num_rows == 5000 - 3
    assert b.table["uid"][0].as_py() == sample_uid("flickr8k", "1000268201_693b08cb0e.jpg", "3")


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tf:
        for s in samples:
            for ext, data in s.items():
                if ext == "__key__":
                    continue
                info = tarfile.TarInfo(f"{s['__key__'].decode()}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_cc3m_img2dataset_output(photos: list[bytes], tmp_path: Path) -> None:
    root = tmp_path / "cc3m"
    root.mkdir()
    written = {}
    for shard, n in ((0, 6), (1, 6)):
        samples, rows = [], []
        for i in range(n):
            key, url = f"{shard:05d}{i:04d}", f"https://example.com/{shard}/{i}.jpg"
            meta = {"url": url, "caption": f"photo {shard} {i}", "key": key, "status": "success"}
            s = {"__key__": key.encode(), "jpg": photos[i], "txt": meta["caption"].encode()}
            samples.append(s | {"json": json.dumps(meta).encode()})
            rows.append(meta)
        rows.append(
            {
                "url": "https://gone.example/x.jpg",
                "caption": "x",
                "key": "x",
                "status": "failed_to_download",
            }
        )
        written[shard] = samples
        write_tar(root / f"{shard:05d}.tar", samples)
        pq.write_table(pa.Table.from_pylist(rows), root / f"{shard:05d}.parquet")
    # shard 0 carries bad samples; shard 1 is cut in the middle of its 4th sample's image
    bad = written[0]
    bad[1]["jpg"] = bad[1]["jpg"][:300]
    bad[2]["txt"] = b"\xff\xfe"
    del bad[3]["txt"]
    write_tar(root / "00000.tar", bad)
    data = (root / "00001.tar").read_bytes()
    cut = data.index(b"000010003.jpg") + 512 + 100
    (root / "00001.tar").write_bytes(data[:cut])

    b = build("cc3m", tmp_path / "pool", root=root)
    check_table(b.table)
    assert b.skipped == {
        "corrupt_image": 1,
        "lost_in_truncated_tar": 3,  # the cut sample and the two after it, per the parquet
        "missing_caption": 1,
        "non_utf8_caption": 1,
        "truncated_tar": 1,
    }
    assert b.table.num_rows == 3 + 3
    url = "https://example.com/1/2.jpg"
    assert b.table["uid"].to_pylist()[-1] == sample_uid("cc3m", url, 0)
    assert b.table["image_group"].to_pylist()[-1] == url


def test_byod_webdataset_and_truncation_without_parquet(
    photos: list[bytes], tmp_path: Path
) -> None:
    src = tmp_path / "wds"
    src.mkdir()
    png = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).save(png, format="PNG")
    write_tar(
        src / "a.tar",
        [
            {"__key__": b"x/0", "png": png.getvalue(), "txt": b"a png"},
            {"__key__": b"x/1", "jpeg": photos[1], "txt": b"a jpeg"},
            {"__key__": b"x/2", "txt": b"no image"},
            {"__key__": b"x/3", "jpg": png_header(20_000, 20_000), "txt": b"a bomb"},
        ],
    )
    write_tar(
        src / "b.tar",
        [{"__key__": f"{i}".encode(), "jpg": photos[i], "txt": b"ok"} for i in range(4)],
    )
    data = (src / "b.tar").read_bytes()
    # cut exactly where sample 2's header starts: tarfile sees a clean end, the missing
    # end-of-archive block gives it away, and sample 1 (possibly incomplete) is dropped
    (src / "b.tar").write_bytes(data[: data.index(b"2.jpg")])
    for path in (str(src), str(src / "*.tar"), str(src / "{a,b}.tar")):
        b = build("byod", tmp_path / "pool", path=path)
        check_table(b.table)
        assert b.skipped == {
            "image_too_large": 1,
            "lost_in_truncated_tar": 1,
            "missing_image": 1,
            "truncated_tar": 1,
        }
        assert b.table["image_group"].to_pylist() == ["a.tar/x/0", "a.tar/x/1", "b.tar/0"]
        assert [r.rsplit(".", 1)[1] for r in b.table["image"].to_pylist()] == ["png", "jpg", "jpg"]


def test_byod_parquet(
    photos: list[bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        (tmp_path / "imgs" / f"{i}.jpg").write_bytes(photos[i])
    bmp = io.BytesIO()
    Image.open(io.BytesIO(photos[3])).save(bmp, format="BMP")
    (tmp_path / "imgs" / "3.bmp").write_bytes(bmp.getvalue())
    rows = [
        ("imgs/0.jpg", "relative path"),
        ("imgs/0.jpg", "same image, second caption"),
        (str(tmp_path / "imgs" / "1.jpg"), "absolute path"),
        ((tmp_path / "imgs" / "2.jpg").as_uri(), "file url"),
        ("imgs/3.bmp", "stored as png"),
        ("https://example.com/a.jpg", "remote"),
        ("imgs/nope.jpg", "missing"),
        (None, "no path"),
        ("imgs/1.jpg", None),
    ]
    pq.write_table(
        pa.table({"path": [r[0] for r in rows], "text": [r[1] for r in rows]}),
        tmp_path / "p.parquet",
    )
    with caplog.at_level(logging.WARNING, logger="benchmark.pools.byod"):
        b = build(
            "byod",
            tmp_path / "pool",
            path=str(tmp_path / "p.parquet"),
            url_col="path",
            caption_col="text",
        )
    check_table(b.table)
    assert b.skipped == {"empty_caption": 1, "missing_image": 2, "remote_url_not_downloaded": 1}
    assert "img2dataset --url_list" in caplog.text
    t = b.table.to_pylist()
    assert [r["caption"] for r in t] == [r[1] for r in rows[:5]]
    assert t[0]["image"] == t[1]["image"]  # stored once, shared by its captions
    assert t[4]["image"].endswith(".png")
    assert t[1]["uid"] == sample_uid("byod", "imgs/0.jpg", 1)
    with pytest.raises(ValueError, match=r"column\(s\) caption, url not found"):
        build("byod", tmp_path / "pool2", path=str(tmp_path / "p.parquet"))
