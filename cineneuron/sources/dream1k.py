"""`dream-1k`: DREAM-1K (Tarsier, Wang et al. 2024), 1,000 short videos with detailed descriptions.

Layout read (the Hugging Face release `omni-research/DREAM-1K`, video zip unpacked):

    ROOT/json/metadata.json    a list of {"idx": 0, "video_file": "video/1.mp4",
                               "description": "...", "events": [...], "source": "...", ...}
                               (without metadata.json, every *.json in json/ is read: each a
                               list of such objects or one object)
    ROOT/video/DREAM-1K_videos/<name>.mp4   the unpacked DREAM-1K_videos.zip; a video is looked
                               up there first, then at ROOT/<video_file>, then ROOT/video/<name>

One clip per video, the whole video (duration from the header); the caption is the
description. Order: the json files' order.

Options: split ("pool": memories without fMRI; any split name for all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, natural_key


class Dream1KSource(Source):
    name = "dream-1k"
    layout = "ROOT/json/metadata.json (video_file, description) and ROOT/video/DREAM-1K_videos/<name>.mp4"
    defaults = {"split": "pool"}

    def clips(self) -> Iterator[ClipSpec]:
        self._check_root()
        for item in self._items():
            video = self._find_video(str(item.get("video_file") or item.get("video") or ""))
            if video is None:
                self._skip(str(item.get("video_file")), "video file not found")
                continue
            info = self._probe(video)
            if info is None:
                continue
            factors = {k: item[k] for k in ("idx", "source") if k in item}
            yield self._spec(video, 0.0, info.duration_s, caption=_text(item.get("description")),
                             split=self.options["split"], factors=factors)

    def _items(self) -> list[dict]:
        jdir = self.root / "json"
        files = [jdir / "metadata.json"] if (jdir / "metadata.json").exists() else sorted(jdir.glob("*.json"), key=lambda p: natural_key(p.name))
        if not files:
            raise CNError(f"dream-1k: json/metadata.json not found under {self.root}; put DREAM-1K's json/ folder (metadata.json) at {jdir}/")
        items: list[dict] = []
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise CNError(f"dream-1k: cannot read {path}: {e}") from None
            items += [d for d in (data if isinstance(data, list) else [data]) if isinstance(d, dict)]
        return items

    def _find_video(self, video_file: str) -> str | None:
        name = PurePosixPath(video_file.replace("\\", "/")).name
        if not name:
            return None
        for rel in (f"video/DREAM-1K_videos/{name}", video_file.removeprefix("./"), f"video/{name}", f"videos/{name}"):
            if rel and (self.root / rel).is_file():
                return PurePosixPath(Path(rel).as_posix()).as_posix()
        return None


def _text(value) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None
