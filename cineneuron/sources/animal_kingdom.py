"""`animal-kingdom`: the action-recognition part of Animal Kingdom (Ng et al., CVPR 2022).

Layout read (as released, `action_recognition/` of the download):

    ROOT/annotation/train.csv, ROOT/annotation/val.csv
        Charades-style, space-separated, one row per frame, with a header:
            original_vido_id video_id frame_id path labels [type]
        (the dataset README names them clip_id clip_number frame_number clip_path action_labels;
        both spellings, and comma-separated files, are read). `labels` is a comma-separated list
        of action indices, e.g. "7,83".
    ROOT/annotation/df_action.xlsx   action index -> name (columns "index" and "action"; a
                                     df_action.csv with the same columns also works)
    ROOT/dataset/video/<original_vido_id>.mp4   (also found in ROOT/video/, ROOT/videos/ or ROOT/)

One clip per video, spanning the whole video (duration from the header, or `n_frames / fps`
with the `fps` option, which skips probing). The caption is built from the action names:
"an animal eating and walking". Order: train.csv videos, then val.csv videos, each sorted by id.

Options: split ("pool": the clips are memories without fMRI; "dataset": train.csv -> train,
val.csv -> test; or any split name for all), fps (None), video_dir (None: search as above).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, natural_key
from cineneuron.sources.xlsx import read_xlsx

_COLUMNS = {  # our name -> accepted header spellings
    "video": ("original_vido_id", "original_video_id", "clip_id"),
    "number": ("video_id", "clip_number"),
    "frame": ("frame_id", "frame_number"),
    "path": ("path", "clip_path"),
    "labels": ("labels", "action_labels"),
}
_VIDEO_DIRS = ("dataset/video", "video", "videos", "dataset/videos", ".")


@dataclass
class _Video:
    name: str
    csv_split: str
    n_frames: int = 0
    labels: set[int] = field(default_factory=set)


class AnimalKingdomSource(Source):
    name = "animal-kingdom"
    layout = ("ROOT/annotation/{train,val}.csv (original_vido_id video_id frame_id path labels), "
              "ROOT/annotation/df_action.xlsx (action index -> name), ROOT/dataset/video/<original_vido_id>.mp4")
    defaults = {"split": "pool", "fps": None, "video_dir": None}

    def clips(self) -> Iterator[ClipSpec]:
        self._check_root()
        csvs = self._annotation_files()
        actions = self._action_names()
        video_dir = self._video_dir()
        for csv_path, csv_split in csvs:
            videos = _read_annotation(csv_path, csv_split)
            for name in sorted(videos, key=natural_key):
                yield from self._clip(videos[name], actions, video_dir)

    def _clip(self, v: _Video, actions: dict[int, str], video_dir: str) -> Iterator[ClipSpec]:
        video = f"{video_dir}/{v.name}.mp4" if video_dir != "." else f"{v.name}.mp4"
        if not (self.root / video).exists():
            self._skip(video, "video file not found")
            return
        if self.options["fps"]:
            duration = v.n_frames / float(self.options["fps"])
        else:
            info = self._probe(video)
            if info is None:
                return
            duration = info.duration_s
        names = [actions.get(i, f"action {i}") for i in sorted(v.labels)]
        yield self._spec(video, 0.0, duration, caption=_caption(names), split=self._split(v.csv_split),
                         factors={"actions": names, "action_ids": sorted(v.labels), "dataset_split": v.csv_split})

    def _split(self, csv_split: str) -> str:
        split = self.options["split"]
        if split == "dataset":
            return "train" if csv_split == "train" else "test"
        return split

    def _annotation_files(self) -> list[tuple[Path, str]]:
        out = []
        for split in ("train", "val"):
            for rel in (f"annotation/{split}.csv", f"{split}.csv"):
                if (self.root / rel).exists():
                    out.append((self.root / rel, split))
                    break
        if not out:
            raise CNError(f"animal-kingdom: annotation/train.csv or annotation/val.csv not found under {self.root}; put the action-recognition annotation CSVs in {self.root / 'annotation'}/")
        return out

    def _action_names(self) -> dict[int, str]:
        for rel in ("annotation/df_action.xlsx", "df_action.xlsx", "annotation/df_action.csv", "df_action.csv"):
            path = self.root / rel
            if path.exists():
                return _read_action_table(path)
        raise CNError(f"animal-kingdom: annotation/df_action.xlsx not found under {self.root}; it maps action indices to names: put it in {self.root / 'annotation'}/")

    def _video_dir(self) -> str:
        if self.options["video_dir"]:
            rel = str(self.options["video_dir"]).strip("/")
            if not (self.root / rel).is_dir():
                raise CNError(f"animal-kingdom: video folder {self.root / rel} not found")
            return rel
        for rel in _VIDEO_DIRS:
            d = self.root / rel
            if d.is_dir() and next(d.glob("*.mp4"), None) is not None:
                return rel
        raise CNError(f"animal-kingdom: no .mp4 videos found; put them in {self.root / 'dataset' / 'video'}/ as <original_vido_id>.mp4")


def _caption(actions: list[str]) -> str:
    words = [a.strip().lower() for a in actions if a.strip()]
    if not words:
        return "an animal"
    if len(words) == 1:
        return f"an animal {words[0]}"
    return f"an animal {', '.join(words[:-1])} and {words[-1]}"


def _read_annotation(path: Path, csv_split: str) -> dict[str, _Video]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        header_line = f.readline()
        spaced = len(header_line.split()) >= 5
        header = header_line.split() if spaced else next(csv.reader([header_line]))
        cols = _column_positions([h.strip().strip('"').lower() for h in header])
        rows = (line.split() for line in f) if spaced else csv.reader(f)
        videos: dict[str, _Video] = {}
        for n, row in enumerate(rows, start=2):
            if not row:
                continue
            try:
                name = row[cols["video"]].strip('"')
                labels = {int(x) for x in row[cols["labels"]].strip('"').split(",") if x.strip()}
            except (IndexError, ValueError):
                raise CNError(f"animal-kingdom: {path} line {n} is malformed; expected columns original_vido_id video_id frame_id path labels") from None
            v = videos.setdefault(name, _Video(name, csv_split))
            v.n_frames += 1
            v.labels |= labels
    return videos


def _column_positions(header: list[str]) -> dict[str, int]:
    pos = {}
    for key, names in _COLUMNS.items():
        hits = [header.index(n) for n in names if n in header]
        pos[key] = hits[0] if hits else list(_COLUMNS).index(key)  # no header name: the standard order
    return pos


def _read_action_table(path: Path) -> dict[int, str]:
    """Action index -> name from df_action.xlsx/.csv (header names "index"/"action", else columns D/C)."""
    try:
        if path.suffix == ".xlsx":
            rows = read_xlsx(path)
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
    except Exception as e:
        raise CNError(f"animal-kingdom: cannot read {path}: {e}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    i_id = next((header.index(h) for h in ("index", "label", "action_id", "id") if h in header), 3)
    i_name = next((header.index(h) for h in ("action", "name", "action_name") if h in header), 2)
    out = {}
    for row in rows[1:]:
        try:
            out[int(float(row[i_id]))] = row[i_name].strip()
        except (IndexError, ValueError):
            continue  # blank or note rows
    if not out:
        raise CNError(f"animal-kingdom: no action names in {path}; expected columns 'index' and 'action'")
    return out
