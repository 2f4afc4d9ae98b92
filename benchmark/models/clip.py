"""CLIP models through open_clip: build from a config name, load from a path, encode in batches.

Our own model configs live in ``models/configs/*.json`` (open_clip's format) and are registered
with open_clip at import, so ``open_clip.create_model_and_transforms(name, pretrained=PATH)``
loads any checkpoint smallcomp writes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from PIL import Image

from benchmark.models import trust
from benchmark.models.clip_configs import CONFIG_DIR

open_clip.add_model_config(CONFIG_DIR)

WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"


@dataclass
class ClipBundle:
    """A model with the image transform and tokenizer that belong to it."""

    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    device: str = "cpu"
    source: str = ""  # what the weights were loaded from: a directory, or "name:pretrained"
    # embeddings of eval inputs that several tasks of one evaluation share (shapes' scenes)
    memo: dict = field(default_factory=dict)

    @torch.no_grad()
    def encode_images(self, images: Iterable[Image.Image], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised image embeddings, in input order."""
        self.model.eval()
        out, batch = [], []
        for im in images:
            batch.append(self.preprocess(im.convert("RGB")))
            if len(batch) == batch_size:
                out.append(self._images(batch))
                batch = []
        if batch:
            out.append(self._images(batch))
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    def _images(self, batch: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack(batch).to(self.device)
        return F.normalize(self.model.encode_image(x).float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """L2-normalised text embeddings, in input order."""
        self.model.eval()
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i : i + batch_size])).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    @property
    def embed_dim(self) -> int:
        return (
            int(self.model.text_projection.shape[-1])
            if hasattr(self.model, "text_projection")
            else int(self.model.visual.output_dim)
        )


def uses_quick_gelu(name: str, pretrained: str | None) -> bool:
    """Whether config ``name`` with weights ``pretrained`` must be built with QuickGELU.

    open_clip builds ``ViT-B-32`` with nn.GELU even for its ``openai`` tag (it only warns), yet
    OpenAI's weights were trained with QuickGELU, and so was every fine-tune of them: a model
    built by architecture name then scores differently from the one trained. So the activation
    follows the weights: the config's own flag, the pretrained tag's, or, for a weights file
    smallcomp saved, the config written beside it. A local copy of OpenAI's (or another
    QuickGELU model's) weights cannot say so itself: name it with a ``-quickgelu`` config.
    """
    if (open_clip.get_model_config(name) or {}).get("quick_gelu"):
        return True
    if pretrained is None:
        return False
    tag = open_clip.get_pretrained_cfg(name, pretrained)
    if tag:
        return bool(tag.get("quick_gelu"))
    saved = Path(pretrained).parent / CONFIG_FILE
    return saved.is_file() and bool(
        json.loads(saved.read_text(encoding="utf-8"))["model_cfg"].get("quick_gelu")
    )


def create(
    name: str,
    pretrained: str | None = None,
    device: str = "cpu",
    allow: Collection[str | Path | None] = (),
) -> ClipBundle:
    """A model by open_clip config name, with weights from a path or open_clip pretrained tag.

    ``name`` may also be a directory smallcomp (or open_clip) saved: it holds config and weights.
    A path in ``allow`` (the track's own model, the user's ``--allow-weights``) loads as it is;
    any other must load without running code (``trust.check``: safetensors, code-free configs).
    Pickled checkpoints go through torch's weights-only unpickler either way.
    """
    trust.check("clip", name, allow)
    trust.check("clip_weights", pretrained, allow)
    source = f"{name}:{pretrained}"
    quick_gelu = False  # a saved directory's config says it itself
    if Path(name).is_dir():
        source, name = name, f"local-dir:{name}"
    else:
        quick_gelu = uses_quick_gelu(name, pretrained)
    model, _, preprocess = open_clip.create_model_and_transforms(
        name,
        pretrained=pretrained,
        device=device,
        weights_only=True,
        force_quick_gelu=quick_gelu,
    )
    tokenizer = open_clip.get_tokenizer(name)
    return ClipBundle(model, preprocess, tokenizer, device, source)


def save(model: torch.nn.Module, model_name: str, out_dir: Path) -> None:
    """Write weights and config so ``create(out_dir)`` and ``local-dir:`` loading both work."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE))
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise KeyError(f"unknown open_clip model config '{model_name}'")
    if any(isinstance(m, QuickGELU) for m in model.modules()):
        cfg = {**cfg, "quick_gelu": True}  # built so from its weights: it must load so again
    visual = model.visual
    preprocess_cfg = {
        "mean": list(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
        "std": list(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
    }
    (out_dir / CONFIG_FILE).write_text(
        json.dumps(
            {"model_name": model_name, "model_cfg": cfg, "preprocess_cfg": preprocess_cfg}, indent=2
        )
    )
