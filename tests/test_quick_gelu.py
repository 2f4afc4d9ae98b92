"""The activation follows the weights: OpenAI's CLIP (and every fine-tune of it) was trained with
QuickGELU, which open_clip's ``ViT-B-32`` config does not build. All models here are random-init
from configs: nothing downloads."""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from open_clip.transformer import QuickGELU

from benchmark.models import clip
from benchmark.spec.load import load_track

REPO = Path(__file__).resolve().parents[1]


def quick(model: torch.nn.Module) -> bool:
    return any(isinstance(m, QuickGELU) for m in model.modules())


def test_the_finetune_scale_builds_openai_vit_b32_with_quick_gelu():
    scale = load_track(REPO / "tracks" / "coco-finetune.yaml").track.scales["negclip"]
    assert (scale.model, scale.pretrained) == ("ViT-B-32", "openai")
    # the scale's model as train.train builds it, without the download of its weights
    built = open_clip.create_model(
        scale.model, force_quick_gelu=clip.uses_quick_gelu(scale.model, scale.pretrained)
    )
    assert quick(built)
    assert not quick(open_clip.create_model(scale.model))  # what the name alone builds


def test_quick_gelu_follows_the_pretrained_tag():
    assert clip.uses_quick_gelu("ViT-B-32", "openai")
    assert clip.uses_quick_gelu("RN50", "openai")
    assert clip.uses_quick_gelu("ViT-B-32-quickgelu", None)  # the config says it
    assert not clip.uses_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    assert not clip.uses_quick_gelu("ViT-B-32", None)


def test_a_saved_finetune_loads_with_quick_gelu_by_directory_or_by_name(tmp_path: Path):
    torch.manual_seed(0)
    model = open_clip.create_model("shapes-vit-tiny", force_quick_gelu=True)
    clip.save(model, "shapes-vit-tiny", tmp_path)
    assert quick(clip.create(str(tmp_path)).model)
    # loaded by architecture name with the saved weights file, as users of a fine-tune do
    weights = str(tmp_path / clip.WEIGHTS_FILE)
    assert clip.uses_quick_gelu("shapes-vit-tiny", weights)
    loaded = clip.create("shapes-vit-tiny", weights).model
    assert quick(loaded)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    # a model trained with nn.GELU keeps it
    plain = tmp_path / "plain"
    clip.save(open_clip.create_model("shapes-vit-tiny"), "shapes-vit-tiny", plain)
    assert not quick(clip.create(str(plain)).model)
