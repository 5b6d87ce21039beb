"""Model architecture configs kept as data (JSON in `presets/models/`), toy and full size alike.

`wan2.1-t2v-1.3b`, `wan-toy` (DiT + VAE + scheduler), `umt5-xxl`, `viclip-l14`, `viclip-b16`,
`openclip-vit-h-14` and the Brain Model's `brain-toy`, `brain-small`, `brain-paper`. The same
code builds any of them (random weights, or on the meta device for `cn doctor`), so the toy
configs in the tests and the published sizes go through one path. Torch-free.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from cineneuron.errors import CNError


def _root():
    return resources.files("cineneuron.schemas") / "presets" / "models"


def model_configs() -> list[str]:
    return sorted(p.name[:-5] for p in _root().iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def _load(name: str) -> str:
    res = _root() / f"{name}.json"
    if not res.is_file():
        raise CNError(f"unknown model config {name!r}; known: {', '.join(model_configs())}")
    return res.read_text()


def load_model_config(name: str, family: str | None = None) -> dict:
    """A fresh copy of a model config; `family` checks it is of the expected kind."""
    cfg = json.loads(_load(name))
    if family and cfg.get("family") != family:
        names = [n for n in model_configs() if json.loads(_load(n)).get("family") == family]
        raise CNError(f"model config {name!r} is a {cfg.get('family')}, not a {family}; use one of {', '.join(names)}")
    return cfg
