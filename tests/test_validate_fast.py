"""`validate` stays cheap enough to run on every save: it loads op and task modules for their
params, never the heavy libraries the ops run on (``benchmarks/validate_speed.py`` measures it)."""

from __future__ import annotations

import resource
import subprocess
import sys

from conftest import REPO

from benchmark import device
from benchmark.models.clip_configs import _config_dirs, known_config

HEAVY = ("torch", "ultralytics", "diffusers", "open_clip")
# detect, inpaint, clip_score, keywords, dedup and quality_check, on a track with a budget check
FILES = (REPO / "recipes" / "counterfactual.yaml", REPO / "tracks" / "coco-mini.yaml")
CHECK = f"""
import sys
from benchmark.cli import main
assert main(["validate", *{[str(f) for f in FILES]!r}]) == 0
loaded = sorted(set({HEAVY!r}) & {{m.split(".")[0] for m in sys.modules}})
assert not loaded, f"validate imported {{loaded}}"
"""


def test_validate_imports_no_heavy_library_and_takes_seconds():
    """Timed in CPU seconds of the child: on a shared machine its wall time mostly measures the
    neighbours, while importing torch alone costs several CPU seconds, whoever else runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 3.0, cpu


def test_config_names_match_open_clip_without_importing_it():
    import open_clip

    from benchmark.models import clip  # registers our configs with open_clip

    found = {p.stem for d in _config_dirs() for p in d.glob("*.json") if known_config(p.stem)}
    assert found == set(open_clip.list_models())
    assert clip.CONFIG_DIR in _config_dirs()
    assert known_config(str(REPO / "benchmark" / "models" / "configs"))  # a saved directory
    assert not known_config("no-such-model")
    assert not known_config("../configs/shapes-vit-tiny")


def test_device_without_torch_reads_the_driver_and_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    driver = tmp_path / "version"
    driver.write_text("NVRM version: test")
    monkeypatch.setattr(device, "NVIDIA_DRIVER", driver)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device.default_device(import_torch=False) == "cuda"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert device.default_device(import_torch=False) == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(device, "NVIDIA_DRIVER", tmp_path / "absent")
    assert device.default_device(import_torch=False) == "cpu"
    assert "torch" not in sys.modules
