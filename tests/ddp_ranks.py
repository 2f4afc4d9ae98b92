"""What each rank of test_ddp's spawned loss check runs (imported light, by the children)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from benchmark.loss import NegClipLoss


def features(n: int = 8, d: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [F.normalize(torch.randn(n, d, generator=g), dim=-1) for _ in range(3)]


def losses(rank: int, world: int, port: int, out: str) -> None:
    """One rank: both losses on its slice, and the gradients they give the whole batch."""
    init = f"tcp://127.0.0.1:{port}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        results = {}
        for name, fn in (
            ("clip", ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world)),
            ("negclip", NegClipLoss(rank, world)),
        ):
            feats = [f.clone().requires_grad_() for f in features()]
            k = len(feats[0]) // world
            mine = [f[rank * k : (rank + 1) * k] for f in feats]
            args = mine if name == "negclip" else mine[:2]
            value = fn(*args, torch.tensor(10.0))
            value.backward()
            grads = [f.grad if f.grad is not None else torch.zeros_like(f) for f in feats]
            for g in grads:  # what DDP does with the ranks' parameter gradients
                dist.all_reduce(g)
                g /= world
            total = value.detach().clone()
            dist.all_reduce(total)
            results[name] = (float(total) / world, [g.tolist() for g in grads])
        if rank == 0:
            Path(out).write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
