"""NegCLIP's hard-negative contrastive loss (Yuksekgonul et al., ICLR 2023).

Each image's hard-negative caption joins the text side of the image-to-text logits, so the model
must rank the true caption above a minimally edited false one, not just above other images'
captions. Text-to-image logits are CLIP's.

Over several ranks each computes the loss of its own rows against every rank's features,
gathered with their gradients (open_clip's ``local_loss`` + ``gather_with_grad``), so N ranks
optimize the same objective as one process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NegClipLoss(torch.nn.Module):
    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.rank, self.world_size = rank, world_size

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        negative_features: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> torch.Tensor:
        all_images, all_texts, all_negatives = image_features, text_features, negative_features
        if self.world_size > 1:
            from torch.distributed.nn import all_gather

            all_images, all_texts, all_negatives = (
                torch.cat(all_gather(f)) for f in (image_features, text_features, negative_features)
            )
        texts = torch.cat([all_texts, all_negatives])
        logits_image = logit_scale * image_features @ texts.T
        logits_text = logit_scale * text_features @ all_images.T
        # this rank's rows sit at rank * local batch in the gathered features
        labels = torch.arange(len(image_features), device=image_features.device)
        labels = labels + self.rank * len(image_features)
        return (F.cross_entropy(logits_image, labels) + F.cross_entropy(logits_text, labels)) / 2
