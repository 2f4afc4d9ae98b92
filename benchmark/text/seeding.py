"""Random generators keyed by a sample's uid, so per-sample choices do not depend on row order.

A rewrite, a negative or an epoch's caption must be the same for a sample whichever rows were
filtered before it and however the table was sharded; seeding from (seeds..., uid) gives that.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

_HEX = re.compile(r"[0-9a-f]{15}")


def uid_key(uid: str) -> int:
    """An integer for ``uid``: its first 15 hex digits (pool uids are 128-bit hex, as the trainer
    reads them), else 15 hex digits of its SHA-256."""
    head = uid[:15].lower()
    if not _HEX.fullmatch(head):
        head = hashlib.sha256(uid.encode()).hexdigest()[:15]
    return int(head, 16)


def sample_rng(uid: str, *seeds: int) -> np.random.Generator:
    """The generator for one sample under ``seeds`` (e.g. recipe seed, epoch)."""
    return np.random.default_rng([*seeds, uid_key(uid)])
