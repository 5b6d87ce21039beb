"""The `Source` base: a dataset on disk -> a deterministic stream of `ClipSpec`s.

Contract for every source:

- `__init__(root, **options)` only stores (and rejects unknown option names); it touches no files.
- `clips()` yields ClipSpecs in a deterministic order. `video` is the path relative to the root
  (part of the clip id), `video_uri` the absolute path, `source` the source name (or the
  `source_name` option, so two synthetic worlds can be two sources).
- A missing root or a missing required file raises `CNError` with one line saying which file goes
  where. A single unreadable video is not fatal: it is appended to `self.skipped` as
  `(video, reason)` and its clips are left out.
- `describe()` returns a dict: name, source, root, layout, options, clip counts per split, skipped.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError
from cineneuron.schemas.records import SPLITS, ClipSpec
from cineneuron.sources.video import VideoInfo, VideoReadError, probe

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class Source:
    """Base class. Subclasses set `name`, `layout` (a short description) and `defaults` (options)."""

    name = "source"
    layout = ""
    defaults: dict = {}

    def __init__(self, root: str | os.PathLike, **options):
        allowed = set(self.defaults) | {"source_name"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise CNError(f"unknown option(s) {', '.join(unknown)} for source {self.name!r}; known: {', '.join(sorted(allowed))}")
        self.root = Path(root).expanduser()
        self.options = {**self.defaults, **{k: v for k, v in options.items() if k != "source_name"}}
        self.source_name = options.get("source_name") or self.name
        self.skipped: list[tuple[str, str]] = []
        self.too_short: list[tuple[str, float]] = []  # (video, duration_s): shorter than one clip window
        self._probed: dict[str, VideoInfo | str] = {}  # video -> info, or the reason it is unreadable

    def clips(self) -> Iterator[ClipSpec]:
        raise NotImplementedError

    def describe(self) -> dict:
        self.skipped = []
        counts = Counter(c.split for c in self.clips())
        return {
            "name": self.name,
            "source": self.source_name,
            "root": str(self.root),
            "layout": self.layout,
            "options": dict(self.options),
            "clips": sum(counts.values()),
            "splits": dict(sorted(counts.items())),
            "skipped": [list(s) for s in self.skipped],
        }

    # ------------------------------------------------------------ helpers for subclasses

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise CNError(f"{self.name}: dataset root {self.root} is not a folder; give --root the folder that holds: {self.layout.splitlines()[0] if self.layout else 'the dataset'}")

    def _require(self, rel: str, what: str) -> Path:
        """A required file under the root, or CNError naming it and where it goes."""
        path = self.root / rel
        if not path.exists():
            raise CNError(f"{self.name}: {rel} not found under {self.root}; put {what} at {path}")
        return path

    def _rel(self, path: Path) -> str:
        return PurePosixPath(path.relative_to(self.root)).as_posix()

    def _spec(self, video: str, start_s: float, end_s: float, **fields) -> ClipSpec:
        split = fields.pop("split", "pool")
        if split not in SPLITS:
            raise CNError(f"{self.name}: split {split!r} for {video} is not one of {', '.join(SPLITS)}")
        return ClipSpec(source=self.source_name, video=video, video_uri=os.path.abspath(self.root / video),
                        start_s=round(float(start_s), 3), end_s=round(float(end_s), 3), split=split, **fields)

    def _probe(self, video: str) -> VideoInfo | None:
        """Header info of a video (relative path), cached; None (and a `skipped` entry) if unreadable."""
        if video not in self._probed:
            try:
                self._probed[video] = probe(self.root / video)
            except VideoReadError as e:
                self._probed[video] = e.reason
        hit = self._probed[video]
        if isinstance(hit, str):
            self._skip(video, hit)
            return None
        return hit

    def _skip(self, video: str, reason: str) -> None:
        if (video, reason) not in self.skipped:
            self.skipped.append((video, reason))


def natural_key(text: str) -> list:
    """Sort key that orders seg2 before seg10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def find_videos(root: Path, under: Path | None = None) -> list[Path]:
    """Every video file below `under` (default: root), hidden names skipped, in natural order."""
    base = under or root
    found = [p for p in base.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))
