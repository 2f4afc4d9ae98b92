"""NegCLIP's hard-negative contrastive loss (Yuksekgonul et al., ICLR 2023).

Each image's hard-negative caption joins the text side of the image-to-text logits, so the model
must rank the true caption above a minimally edited false one, not just above other images'
captions. Text-to-image logits are CLIP's. Single process: the batch is the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NegClipLoss(torch.nn.Module):
    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        negative_features: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> torch.Tensor:
        texts = torch.cat([text_features, negative_features])
        logits_image = logit_scale * image_features @ texts.T
        logits_text = logit_scale * text_features @ image_features.T
        labels = torch.arange(len(image_features), device=image_features.device)
        return (F.cross_entropy(logits_image, labels) + F.cross_entropy(logits_text, labels)) / 2
