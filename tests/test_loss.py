"""NegCLIP's loss: negatives join the image-to-text side only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from benchmark.loss import NegClipLoss


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(
        torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))), dim=-1
    )


def test_matches_hand_computation():
    img, txt, neg = _unit(4, 8), _unit(4, 9)[:, :8], _unit(5, 8)[:4]
    img, txt, neg = (F.normalize(x, dim=-1) for x in (img, txt, neg))
    scale = torch.tensor(10.0)
    labels = torch.arange(4)
    i2t = F.cross_entropy(scale * img @ torch.cat([txt, neg]).T, labels)
    t2i = F.cross_entropy(scale * txt @ img.T, labels)
    assert torch.allclose(NegClipLoss()(img, txt, neg, scale), (i2t + t2i) / 2)


def test_hard_negative_raises_loss_over_clip():
    img = _unit(6, 16)
    txt = F.normalize(img + 0.1 * _unit(6, 16), dim=-1)
    scale = torch.tensor(20.0)
    clip = ClipLoss()(img, txt, scale)
    far = NegClipLoss()(img, txt, -img, scale)
    near = NegClipLoss()(img, txt, F.normalize(img + 0.12 * _unit(7, 16)[:6], dim=-1), scale)
    assert far >= clip - 1e-6  # a negative never lowers the loss
    assert near > far + 0.1  # a caption close to the image is a hard negative
