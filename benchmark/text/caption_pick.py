"""Which caption a sample is trained on in an epoch, when a rewrite step gave it several.

LaCLIP trains on the original caption or one of its rewrites, drawn uniformly afresh each epoch,
so the text tower sees every phrasing without the sample counting more than once.
"""

from __future__ import annotations

from benchmark.text.seeding import sample_rng


def pick_caption(uid: str, caption: str, rewrites: list[str] | None, seed: int, epoch: int) -> str:
    """Uniform over the original and its rewrites; a pure function of (seed, epoch, uid), so a
    resumed or re-sharded run trains on the same text (the draw matches the trainer's own)."""
    options = [caption, *(rewrites or [])]
    return options[int(sample_rng(uid, seed, epoch).integers(len(options)))]
