"""Loads the world's data files (world.json, sizes.json) that sit beside this module."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def _load(name: str) -> dict:
    text = (resources.files("cineneuron.sources.synth") / name).read_text()
    return json.loads(text)


def world() -> dict:
    """Kinds, colours, sizes, backgrounds, action verbs, caption templates, voxel-type mix."""
    return _load("world.json")


def sizes() -> dict:
    """Named world sizes (small, demo, paper-like), without the '_about' note."""
    return {k: v for k, v in _load("sizes.json").items() if not k.startswith("_")}


def kind_names() -> list[str]:
    return list(world()["kinds"])


def superclass_of() -> dict[str, str]:
    return {k: v["superclass"] for k, v in world()["kinds"].items()}


def category_of(kind: str) -> str | None:
    """The brain-category channel (face_body, animal, vehicle) a kind drives, or None."""
    sc = world()["kinds"][kind]["superclass"]
    for cat, members in world()["category_channels"].items():
        if sc in members:
            return cat
    return None


def category_names() -> list[str]:
    return list(world()["category_channels"])
