"""Caption files shared by the `folder` and `cinebrain` sources.

Accepted formats (the video is a path relative to the dataset root, or a bare file name when
that name is unique):

- CSV with a header: `video,start_s,end_s,caption` (timed) or `video,caption` (whole video);
  an optional `split` column; empty start/end cells also mean "whole video". Rows may mix.
- JSON: `{"<video>": "caption", ...}`, or a list of objects with the CSV's fields, or
  `{"clips": [ ...that list... ]}`.

A clip takes the timed caption that overlaps it most (ties: the earlier one); with no overlap it
takes the video's whole-video caption, if any.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError


@dataclass(frozen=True)
class CaptionEntry:
    video: str
    caption: str
    start_s: float | None = None  # None: the whole video
    end_s: float | None = None
    split: str | None = None


class CaptionTable:
    def __init__(self, entries: list[CaptionEntry]):
        self.entries = entries
        self._by_video: dict[str, list[CaptionEntry]] = {}
        for e in entries:
            self._by_video.setdefault(e.video, []).append(e)
        names: dict[str, list[str]] = {}
        for v in self._by_video:
            names.setdefault(PurePosixPath(v).name, []).append(v)
        self._by_name = {n: vs[0] for n, vs in names.items() if len(vs) == 1}

    def __len__(self) -> int:
        return len(self.entries)

    def for_video(self, video: str) -> list[CaptionEntry]:
        key = video if video in self._by_video else self._by_name.get(PurePosixPath(video).name)
        if key is None and video in self._by_name:  # the table names a path, the caller a bare name
            key = self._by_name[video]
        return self._by_video.get(key, []) if key else []

    def match(self, video: str, start_s: float, end_s: float) -> CaptionEntry | None:
        entries = self.for_video(video)
        timed = [(round(min(end_s, e.end_s) - max(start_s, e.start_s), 6), e) for e in entries if e.start_s is not None]
        timed = [(o, e) for o, e in timed if o > 0]
        if timed:
            return min(timed, key=lambda oe: (-oe[0], oe[1].start_s))[1]  # most overlap, then earliest
        whole = [e for e in entries if e.start_s is None]
        return whole[0] if whole else None


def load_captions(path: Path) -> CaptionTable:
    """Read a captions CSV or JSON file (see the module docstring)."""
    if not path.exists():
        raise CNError(f"captions file {path} not found")
    try:
        if path.suffix.lower() == ".json":
            rows = _json_rows(json.loads(path.read_text(encoding="utf-8")))
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CNError(f"cannot read captions file {path}: {e}") from None
    return CaptionTable([_entry(r, path, i) for i, r in enumerate(rows)])


def _json_rows(data) -> list[dict]:
    if isinstance(data, dict) and "clips" in data:
        data = data["clips"]
    if isinstance(data, dict):
        return [{"video": k, "caption": v} for k, v in data.items()]
    if isinstance(data, list):
        return data
    raise ValueError("expected an object or a list")


def _entry(row: dict, path: Path, i: int) -> CaptionEntry:
    if not isinstance(row, dict):
        raise CNError(f"captions file {path}: entry {i + 1} is not an object with 'video' and 'caption'")
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    video, caption = row.get("video"), row.get("caption")
    if not video or caption is None:
        raise CNError(f"captions file {path}: row {i + 1} needs 'video' and 'caption' (columns: video,start_s,end_s,caption or video,caption)")
    try:
        start, end = _num(row.get("start_s")), _num(row.get("end_s"))
        bad = (start is None) != (end is None) or (start is not None and end <= start)
    except ValueError:
        start = end = None
        bad = True
    if bad:
        raise CNError(f"captions file {path}: row {i + 1} has a bad span start_s={row.get('start_s')!r} end_s={row.get('end_s')!r}")
    split = (row.get("split") or "").strip() or None
    return CaptionEntry(_norm(str(video)), str(caption).strip(), start, end, split)


def _num(v) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    return float(v)


def _norm(video: str) -> str:
    return PurePosixPath(video.strip().replace("\\", "/")).as_posix().removeprefix("./")
