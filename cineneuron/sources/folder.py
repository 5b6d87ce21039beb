"""`folder`: every video under a folder, cut into fixed windows, with optional captions.

Layout read:

    ROOT/**/*.mp4|avi|mov|mkv|webm|m4v|mpg|mpeg   every video at any depth (hidden names skipped)
    ROOT/captions.csv  (optional)  video,start_s,end_s,caption  or  video,caption (whole video)
    ROOT/captions.json (optional)  {"<video>": "caption"} or [{"video", "start_s", "end_s", "caption"}]

Each video becomes windows [k*stride, k*stride + window) (default 2 s every 2 s); the tail
shorter than a window is dropped, so a video shorter than one window gives no clip. A window
takes the timed caption that overlaps it most, else the video's whole-video caption. Videos are
listed in natural order of their relative paths; clips in time order.

Options: window_s (2.0), stride_s (2.0), split ("pool"; a `split` column in the captions file
wins), captions (a captions file path, absolute or relative to ROOT, instead of the default).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, find_videos
from cineneuron.sources.captions import CaptionTable, load_captions
from cineneuron.sources.video import windows


class FolderSource(Source):
    name = "folder"
    layout = ("ROOT/**/*.mp4 (any video format, any depth); optional ROOT/captions.csv "
              "(video,start_s,end_s,caption or video,caption) or ROOT/captions.json")
    defaults = {"window_s": 2.0, "stride_s": 2.0, "split": "pool", "captions": None}

    def clips(self) -> Iterator[ClipSpec]:
        self._check_root()
        table = self._captions()
        videos = find_videos(self.root)
        if not videos:
            raise CNError(f"folder: no video files under {self.root}; put .mp4 (or .avi/.mov/.mkv/.webm) files there")
        for path in videos:
            video = self._rel(path)
            info = self._probe(video)
            if info is None:
                continue
            spans = windows(info.duration_s, float(self.options["window_s"]), float(self.options["stride_s"]))
            if not spans and (video, info.duration_s) not in self.too_short:
                self.too_short.append((video, info.duration_s))  # said in the ingest summary, not silently dropped
            for start, end in spans:
                entry = table.match(video, start, end) if table else None
                yield self._spec(video, start, end, caption=entry.caption if entry else None,
                                 split=(entry.split if entry and entry.split else self.options["split"]))

    def _captions(self) -> CaptionTable | None:
        given = self.options["captions"]
        if given:
            path = Path(given) if Path(given).is_absolute() else self.root / given
            if not path.exists():
                raise CNError(f"folder: captions file {path} not found; give an existing CSV or JSON file")
            return load_captions(path)
        for name in ("captions.csv", "captions.json"):
            if (self.root / name).exists():
                return load_captions(self.root / name)
        return None
