"""Which CLIP model config names exist, answered without importing open_clip.

Importing open_clip loads torch (seconds and about a gigabyte), and checking a track's model
names must not cost that: ``validate`` runs on every save and in CI. The names are files: ours in
``configs/`` and open_clip's bundled ``model_configs/``, found through the package's location
without running it, and read with open_clip's own rule for what makes a file a model config.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")  # open_clip skips files lacking one


@cache
def _config_dirs() -> tuple[Path, ...]:
    spec = importlib.util.find_spec("open_clip")  # locates the package; imports nothing
    places = (spec.submodule_search_locations or []) if spec else []
    return (CONFIG_DIR, *(Path(p) / "model_configs" for p in places))


def known_config(name: str) -> bool:
    """True for an open_clip model config name (ours included) or a saved model directory."""
    if Path(name).is_dir():
        return True
    if not name or Path(name).name != name:  # a config name, never a path to some other file
        return False
    for directory in _config_dirs():
        try:
            config = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and all(k in config for k in REQUIRED_KEYS):
            return True
    return False
