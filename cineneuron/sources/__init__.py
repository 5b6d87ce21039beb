"""Dataset sources: a dataset on disk -> `ClipSpec`s (video file, span, caption, split).

    from cineneuron.sources import open_source
    src = open_source("cc2017", "/data/cc2017")
    for clip in src.clips(): ...
    src.describe()   # layout, options, clip counts per split, skipped videos

Names: folder, synth, cc2017, cinebrain, animal-kingdom, dream-1k, boldmoments. Each module's
docstring gives the layout it reads. Video decoding is in `cineneuron.sources.video`
(`read_clip_frames`, `probe`, `windows`). Modules are imported on lookup, so importing this
package stays light.
"""

from __future__ import annotations

import importlib
import os

from cineneuron.errors import CNError

_SOURCES = {
    "folder": ("cineneuron.sources.folder", "FolderSource"),
    "synth": ("cineneuron.sources.synth_source", "SynthSource"),
    "cc2017": ("cineneuron.sources.cc2017_clips", "CC2017Source"),
    "cinebrain": ("cineneuron.sources.cinebrain_clips", "CineBrainSource"),
    "animal-kingdom": ("cineneuron.sources.animal_kingdom", "AnimalKingdomSource"),
    "dream-1k": ("cineneuron.sources.dream1k", "Dream1KSource"),
    "boldmoments": ("cineneuron.sources.boldmoments", "BoldMomentsSource"),
}
_ALIASES = {"animal_kingdom": "animal-kingdom", "animalkingdom": "animal-kingdom", "ak": "animal-kingdom",
            "dream1k": "dream-1k", "dream_1k": "dream-1k", "bold-moments": "boldmoments", "bmd": "boldmoments"}


def source_names() -> list[str]:
    return list(_SOURCES)


def get_source(name: str):
    """The Source class registered under `name` (type[Source]); CNError for an unknown name."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _SOURCES:
        raise CNError(f"unknown source {name!r}; known sources: {', '.join(_SOURCES)}")
    module, cls = _SOURCES[key]
    return getattr(importlib.import_module(module), cls)


def open_source(name: str, root: str | os.PathLike, **options):
    """`get_source(name)(root, **options)`: stores only, reads nothing yet."""
    return get_source(name)(root, **options)


__all__ = ["get_source", "open_source", "source_names"]
