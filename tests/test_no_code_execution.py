"""Recipes are data: no model file a recipe names may run code when smallcomp loads it.

Every payload here is real: unpickling it, importing it or evaluating it creates a marker file.
Each test names a payload where a recipe (or a loader called as a recipe's step calls it) would
load it, and checks that it is refused with one line and that the marker never appears.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from benchmark import curate as curation
from benchmark.cli import main
from benchmark.models import clip, detector, inpainter, trust
from benchmark.models.detector import Detector
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shards import ShardReader
from benchmark.spec.recipe import Step

CLIP_CONFIG = "shapes-vit-tiny"


class Payload:
    """Unpickling this opens ``marker`` for writing, i.e. runs code of the pickle's choosing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def code(marker: Path) -> str:
    """Python that creates ``marker`` when imported."""
    return f"open({str(marker)!r}, 'w').close()\n"


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran"


@pytest.fixture
def evil_pt(tmp_path: Path, marker: Path) -> Path:
    """A torch checkpoint (zip) whose unpickling runs code, as a full ultralytics .pt does."""
    path = tmp_path / "evil.pt"
    torch.save({"model": Payload(marker)}, path)
    return path


def test_the_pickle_payload_is_real(evil_pt: Path, marker: Path) -> None:
    torch.load(evil_pt, weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("kind", ["activation", "function-layer", "model-layer"])
def test_the_yaml_payloads_are_real(kind: str, evil_pt: Path, marker: Path, tmp_path) -> None:
    """ultralytics evaluates a yaml's activation and calls its layer names: a model yaml is not
    code-free as it is."""
    path = {
        "activation": lambda: evil_activation_yaml(tmp_path, marker),
        "function-layer": lambda: evil_layer_yaml(tmp_path, evil_pt),
        "model-layer": lambda: evil_model_layer_yaml(tmp_path, marker),
    }[kind]()
    with contextlib.suppress(Exception):  # the layer payloads leave no buildable model
        detector._ultralytics().YOLO(str(path))
    assert marker.exists()
    marker.unlink()


# --- payloads, one per way in ------------------------------------------------------------------


def yolov8n() -> dict:
    """ultralytics' own yolov8n config (a tiny, valid model yaml's contents)."""
    detector._ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    return {k: v for k, v in yaml_model_load("yolov8n.yaml").items() if k != "yaml_file"}


def yolo_yaml(path: Path, **change: object) -> Path:
    path.write_text(json.dumps(yolov8n() | change))  # JSON is YAML
    return path


def evil_activation_yaml(tmp_path: Path, marker: Path) -> Path:
    # A working activation once the file is open, so the model builds and nothing is left broken.
    activation = f"nn.SiLU() if open({str(marker)!r}, 'w') else None"
    return yolo_yaml(tmp_path / "yolov8n-act.yaml", activation=activation)


def evil_layer_yaml(tmp_path: Path, evil_pt: Path) -> Path:
    """A 'layer' that is ultralytics' own unpickling function, called with a payload's path."""
    backbone = yolov8n()["backbone"]
    backbone[0] = [-1, 1, "torch_safe_load", [repr(str(evil_pt))]]
    return yolo_yaml(tmp_path / "yolov8n-layer.yaml", backbone=backbone)


def evil_model_layer_yaml(tmp_path: Path, marker: Path) -> Path:
    """A 'layer' that is a whole model, built from another (evaluating) yaml."""
    inner = evil_activation_yaml(tmp_path, marker)
    backbone = yolov8n()["backbone"]
    backbone[0] = [-1, 1, "DetectionModel", [repr(str(inner))]]
    return yolo_yaml(tmp_path / "yolov8n-model.yaml", backbone=backbone)


def pickle_as_yaml(tmp_path: Path, evil_pt: Path) -> Path:
    path = tmp_path / "renamed.yaml"
    shutil.copy(evil_pt, path)
    return path


def pickle_as_safetensors(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "renamed.safetensors"
    path.write_bytes(pickle.dumps(Payload(marker)))
    return path


def clip_dir(tmp_path: Path, name: str = "clip") -> Path:
    """A model directory as smallcomp saves one (safetensors + open_clip config)."""
    import open_clip

    out = tmp_path / name
    clip.save(open_clip.create_model(CLIP_CONFIG), CLIP_CONFIG, out)
    return out


def clip_dir_with_pickle(tmp_path: Path, marker: Path) -> Path:
    out = clip_dir(tmp_path, "clip-pickled")
    (out / clip.WEIGHTS_FILE).unlink()
    torch.save(Payload(marker), out / "open_clip_pytorch_model.bin")
    return out


def clip_dir_with_remote_code(tmp_path: Path, marker: Path) -> Path:
    """open_clip hands ``tokenizer_kwargs`` to transformers: trust_remote_code imports the
    directory's tokenizer module."""
    out = clip_dir(tmp_path, "clip-code")
    config = json.loads((out / clip.CONFIG_FILE).read_text())
    config["model_cfg"]["text_cfg"].update(
        hf_tokenizer_name="evil", tokenizer_kwargs={"trust_remote_code": True}
    )
    (out / clip.CONFIG_FILE).write_text(json.dumps(config))
    auto_map = {"AutoTokenizer": ["evil_tokenizer.EvilTokenizer", None]}
    (out / "tokenizer_config.json").write_text(json.dumps({"auto_map": auto_map}))
    (out / "evil_tokenizer.py").write_text(code(marker))
    return out


def clip_dir_with_remote_reference(tmp_path: Path, marker: Path) -> Path:
    """No code in the directory, but a config pointing at code elsewhere (a hub repo's)."""
    out = clip_dir(tmp_path, "clip-remote")
    auto_map = {"AutoTokenizer": ["someone/repo--tokenizer.EvilTokenizer", None]}
    (out / "tokenizer_config.json").write_text(json.dumps({"auto_map": auto_map}))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return inpainter.tiny_pipeline(tmp_path_factory.mktemp("tiny") / "pipe")


def pipeline_copy(tiny: Path, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(tiny, out)
    return out


def pipeline_with_pickled_unet(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    out = pipeline_copy(tiny, tmp_path, "pipe-pickled")
    (out / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(Payload(marker), out / "unet" / "diffusion_pytorch_model.bin")
    return out


def pipeline_with_custom_component(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    """model_index.json names a module of the directory's own, which diffusers would import."""
    out = pipeline_copy(tiny, tmp_path, "pipe-component")
    index = json.loads((out / "model_index.json").read_text())
    index["scheduler"] = ["evil_scheduler", "EvilScheduler"]
    (out / "model_index.json").write_text(json.dumps(index))
    (out / "scheduler" / "evil_scheduler.py").write_text(code(marker))
    return out


def pipeline_with_foreign_library(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    """A component from an installed module other than diffusers/transformers (importing a
    module runs it)."""
    out = pipeline_copy(tiny, tmp_path, "pipe-library")
    index = json.loads((out / "model_index.json").read_text())
    index["scheduler"] = ["benchmark.cli", "EPILOG"]
    (out / "model_index.json").write_text(json.dumps(index))
    return out


def pipeline_with_custom_pipeline(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    """A list ``_class_name`` is a custom pipeline class in the directory's pipeline.py."""
    out = pipeline_copy(tiny, tmp_path, "pipe-custom")
    index = json.loads((out / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "EvilPipeline"]
    (out / "model_index.json").write_text(json.dumps(index))
    (out / "pipeline.py").write_text(code(marker))
    return out


def pipeline_asking_for_remote_code(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    out = pipeline_copy(tiny, tmp_path, "pipe-remote")
    config = json.loads((out / "text_encoder" / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "someone/repo--modeling.EvilModel"}
    (out / "text_encoder" / "config.json").write_text(json.dumps(config))
    return out


def pipeline_with_renamed_pickle(tiny: Path, tmp_path: Path, marker: Path) -> Path:
    out = pipeline_copy(tiny, tmp_path, "pipe-renamed")
    weights = out / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(pickle.dumps(Payload(marker)))
    return out


PIPELINES = [
    pipeline_with_pickled_unet,
    pipeline_with_custom_component,
    pipeline_with_foreign_library,
    pipeline_with_custom_pipeline,
    pipeline_asking_for_remote_code,
    pipeline_with_renamed_pickle,
]


# --- every param that names a model is marked and checked ----------------------------------------


def model_params() -> list[tuple[str, str, trust.Loader]]:
    """(op, field, loader) for every op param marked as naming a model."""
    out = []
    for op in registry.all_ops():
        probe = op.params.model_construct(**dict.fromkeys(op.params.model_fields, "x"))
        out += [(op.name, field, loader) for field, loader, _ in trust.named_models(probe)]
    return out


def test_every_param_that_names_a_model_is_checked() -> None:
    """A param called like a model path must carry a ``Loads`` mark, or nothing would check it."""
    marked = {(op, field) for op, field, _ in model_params()}
    for op in registry.all_ops():
        for field, info in op.params.model_fields.items():
            words = ("model", "pretrained", "weights", "checkpoint", "pipeline")
            if any(w in field for w in words) and info.annotation is not bool:
                assert (op.name, field) in marked, f"{op.name}.{field} names a model unchecked"
    expected = {
        ("clip_score", "model"),
        ("clip_score", "pretrained"),
        ("embed", "model"),
        ("embed", "pretrained"),
        ("image_based", "model"),
        ("image_based", "pretrained"),
        ("nearest_images", "model"),
        ("nearest_images", "pretrained"),
        ("detect", "model"),
        ("quality_check", "detector_model"),
        ("inpaint", "model"),
        ("repaint", "model"),
    }
    assert expected <= marked


def refused(recipe_file: Path, capsys: pytest.CaptureFixture, field: str, *extra: str) -> str:
    """Both commands that load a recipe refuse it: one located line naming the field, exit 2."""
    for command in (["validate", str(recipe_file)], ["curate", str(recipe_file)]):
        runs = recipe_file.parent / "runs"
        assert main(["--runs", str(runs), *command, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"smallcomp: error: {recipe_file}:"), err
        assert f"field '{field}'" in err, err
        assert not runs.exists()  # refused before any work
    return err


@pytest.mark.parametrize(("op", "field", "loader"), model_params())
def test_a_pickle_in_any_model_param_is_refused(
    op: str, field: str, loader: trust.Loader, tmp_path, marker, evil_pt, tiny, recipe, capsys
) -> None:
    """Each loader's pickle: a model directory's weights, a pipeline component's, a .pt file."""
    path = {
        "clip": lambda: clip_dir_with_pickle(tmp_path, marker),
        "pipeline": lambda: pipeline_with_pickled_unet(tiny, tmp_path, marker),
    }.get(loader, lambda: evil_pt)()
    extra = "    model: shapes-vit-tiny\n" if field == "pretrained" else ""
    body = f"steps:\n  - op: {op}\n{extra}    {field}: {path}\n"
    err = refused(recipe(body), capsys, f"steps[0].{field}")
    assert "pickl" in err


# --- the detector --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp, marker, pt: pt,
        lambda tmp, marker, pt: evil_activation_yaml(tmp, marker),
        lambda tmp, marker, pt: evil_layer_yaml(tmp, pt),
        lambda tmp, marker, pt: evil_model_layer_yaml(tmp, marker),
        lambda tmp, marker, pt: pickle_as_yaml(tmp, pt),
    ],
    ids=["pt", "activation", "function-layer", "model-layer", "renamed-pickle"],
)
def test_detector_payloads_are_refused(make, tmp_path, marker, evil_pt, recipe, capsys) -> None:
    path = make(tmp_path, marker, evil_pt)
    refused(recipe(f"steps:\n  - op: detect\n    model: {path}\n"), capsys, "steps[0].model")
    with pytest.raises(trust.UnsafeModel):
        Detector(path)


def test_an_allowed_pickle_is_still_the_users_choice(evil_pt, recipe, capsys) -> None:
    """--allow-weights lets the recipe through validation; the file is the user's to vouch for."""
    kw = "  - op: keywords\n    vocabulary: shapes\n"
    path = recipe(f"steps:\n{kw}  - op: detect\n    model: {evil_pt}\n")
    assert main(["validate", str(path), "--allow-weights", str(evil_pt.parent)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


@pytest.fixture
def yolo_pt(tmp_path: Path) -> Path:
    """Real ultralytics weights (random init), as the track's trained detector is stored."""
    path = tmp_path / "track" / "detector.pt"
    path.parent.mkdir()
    Detector("yolov8n.yaml", imgsz=64).model.save(str(path))
    return path


def test_the_tracks_detector_and_allowed_weights_load(yolo_pt: Path) -> None:
    with pytest.raises(trust.UnsafeModel, match="unpickling"):
        Detector(yolo_pt)
    assert Detector(yolo_pt, imgsz=64, allow=[yolo_pt]).names
    assert Detector(yolo_pt, imgsz=64, allow=[yolo_pt.parent]).names  # a directory allowed
    config = yolo_yaml(yolo_pt.parent / "yolov8n.yaml")  # a clean yaml needs no allowing
    assert Detector(config, imgsz=64).names


def context(tmp_path: Path, **kw: object) -> StepContext:
    return StepContext("r.yaml: steps[0] (detect)", ShardReader(tmp_path), 0, tmp_path, **kw)


def no_keywords() -> pa.Table:
    return pa.table({"uid": ["a"], "image": ["a.png"], "caption": ["x"], "keywords": [None]})


def test_the_detect_step_trusts_the_track_and_the_allow_list_only(yolo_pt, tmp_path) -> None:
    table = no_keywords()

    def run(**kw: object) -> pa.Table:
        steps = [Step(op="detect", params=kw.pop("params", {}))]
        return curation.curate(table, steps, lambda i, s: context(tmp_path, **kw)).table

    assert "detections" in run(detector=lambda: str(yolo_pt)).column_names  # the track's own
    recipe_named = {"params": {"model": str(yolo_pt), "imgsz": 64}}
    with pytest.raises(OpError, match=r"steps\[0\] \(detect\): .*unpickling"):
        run(**recipe_named)
    assert "detections" in run(**recipe_named, allow_weights=(str(yolo_pt),)).column_names


def test_curate_takes_the_allow_list_to_its_worker(yolo_pt, tmp_path, recipe, capsys) -> None:
    """``detect`` runs in a spawned worker process: the allow-list must travel with it."""
    body = (
        "steps:\n  - op: keywords\n    vocabulary: shapes\n"
        f"  - op: detect\n    model: {yolo_pt}\n    imgsz: 32\n"
    )
    runs = ["--runs", str(tmp_path / "runs")]
    allow = ["--allow-weights", str(yolo_pt)]
    assert main([*runs, "curate", str(recipe(body)), *allow]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["op"] for s in report["steps"]] == ["keywords", "detect"]


# --- CLIP checkpoints and model directories ------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("pretrained", lambda tmp, marker: pickle_as_safetensors(tmp, marker)),
        ("model", clip_dir_with_pickle),
        ("model", clip_dir_with_remote_code),
        ("model", clip_dir_with_remote_reference),
    ],
    ids=["renamed-pickle", "pickled-dir", "remote-code", "remote-reference"],
)
def test_clip_payloads_are_refused(field, make, tmp_path, marker, recipe, capsys) -> None:
    path = make(tmp_path, marker)
    extra = f"    model: {CLIP_CONFIG}\n" if field == "pretrained" else ""
    body = f"steps:\n  - op: embed\n{extra}    {field}: {path}\n"
    refused(recipe(body), capsys, f"steps[0].{field}")
    with pytest.raises(trust.UnsafeModel):
        if field == "pretrained":
            clip.create(CLIP_CONFIG, str(path))
        else:
            clip.create(str(path))


def test_clip_from_elsewhere_is_refused(recipe, capsys) -> None:
    body = "steps:\n  - op: clip_score\n    model: hf-hub:someone/clip\n"
    refused(recipe(body), capsys, "steps[0].model")
    with pytest.raises(trust.UnsafeModel, match="elsewhere"):
        clip.create("hf-hub:someone/clip")


def test_an_allowed_clip_pickle_still_loads_weights_only(evil_pt: Path, marker: Path) -> None:
    """Allowing a torch file lets it through the check; torch still unpickles weights only."""
    with pytest.raises(pickle.UnpicklingError):
        clip.create(CLIP_CONFIG, str(evil_pt), allow=[evil_pt])


def test_clean_clip_models_load(tmp_path: Path, recipe, capsys) -> None:
    saved = clip_dir(tmp_path)
    body = f"steps:\n  - op: embed\n    model: {saved}\n  - op: clip_score\n    model: {saved}\n"
    assert main(["validate", str(recipe(body))]) == 0
    assert clip.create(str(saved)).embed_dim
    assert clip.create(CLIP_CONFIG, str(saved / clip.WEIGHTS_FILE)).embed_dim


# --- diffusion pipelines -------------------------------------------------------------------------


@pytest.mark.parametrize("make", PIPELINES, ids=[m.__name__ for m in PIPELINES])
def test_pipeline_payloads_are_refused(make, tiny, tmp_path, marker, recipe, capsys) -> None:
    path = make(tiny, tmp_path, marker)
    body = f"steps:\n  - op: inpaint\n    backend: diffusion\n    model: {path}\n"
    refused(recipe(body), capsys, "steps[0].model")
    with pytest.raises(trust.UnsafeModel):
        _ = inpainter.DiffusionInpainter(str(path), steps=1, resolution=64).pipeline


def test_pipelines_have_no_allow_list(tiny, tmp_path, marker, recipe, capsys) -> None:
    """Pipelines load from safetensors only: allowing a pickled one changes nothing."""
    path = pipeline_with_pickled_unet(tiny, tmp_path, marker)
    body = f"steps:\n  - op: inpaint\n    backend: diffusion\n    model: {path}\n"
    refused(recipe(body), capsys, "steps[0].model", "--allow-weights", str(path))


def test_a_clean_pipeline_passes(tiny: Path, recipe, capsys) -> None:
    before = "  - op: keywords\n    vocabulary: shapes\n  - op: detect\n"
    body = f"steps:\n{before}  - op: inpaint\n    backend: diffusion\n    model: {tiny}\n"
    assert main(["validate", str(recipe(body))]) == 0
    trust.pipeline_dir(tiny)


def test_a_track_the_recipe_brings_is_held_to_the_recipes_rule(
    tmp_path: Path, evil_pt: Path, capsys
) -> None:
    """A submission that ships ``tracks/<name>.yaml`` beside its recipe (found before the
    benchmark's own) must not get its pickled detector trusted as the benchmark's setting."""
    source = (Path(__file__).parent / "tracks" / "shapes-test.yaml").read_text()
    (tmp_path / "tracks").mkdir()
    evil_track = tmp_path / "tracks" / "shapes.yaml"
    evil_track.write_text(source + f"detector:\n  model: {evil_pt}\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntrack: shapes\nsteps:\n  - op: no_filter\n")
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{recipe}:2:" in err and "detector.model" in err, err
    assert main(["validate", "--allow-weights", str(evil_pt), str(recipe)]) == 0
