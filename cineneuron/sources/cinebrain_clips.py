"""`cinebrain`: the video side of CineBrain (Gao et al. 2025, episodes of The Big Bang Theory).

The release (read first, when ROOT/video_annos/clips/ exists; `sources/cinebrain_lists.py`):

    ROOT/video_annos/clips/{i:06d}.mp4    the pre-cut clips (33 frames at 8 fps): clip [0, 4) of each
    ROOT/[sub_0001/]*.json                the CineSync lists: "text" is the clip's caption, the
                                          list's name (train/test) its split, else clip 7560-8099
                                          are test

Otherwise, the layout read before the release's was known (arrange episodes into it, or point
the options at your files). It shares the behaviour files of the fMRI side
(`cineneuron/fmri/cinebrain_fmri.py`), so both build the same clip ids:

    ROOT/stimuli/<episode>.mp4        the videos as shown in the scanner, e.g. stimuli/s01e01.mp4
    ROOT/sub-XX/behavior/<run>.csv    optional (the fMRI side's files): video,start_s,stop_s
                                      [,video_offset_s][,split], one row per video shown
    ROOT/captions.csv                 optional: video,start_s,end_s,caption[,split] (4 s clips)
      or ROOT/captions.json           [{"video", "start_s", "end_s", "caption", "split"}, ...]
                                      (video relative to ROOT, or a bare file name)
    ROOT/splits.json (optional)       {"train": ["stimuli/s01e01.mp4", ...], "test": [...]}

Clips are 4 s (5 TRs of 0.8 s). With behaviour files, every video shown gives the clips
[off + 4i, off + 4i + 4) for i < floor((stop_s - start_s) / 4), off = video_offset_s (0): the
clips the fMRI side pairs with volumes (it applies the 4 s stimulus shift), deduplicated over
subjects and runs. Without them, every video in stimuli/ is cut into [4k, 4k + 4) up to its
duration. A clip takes the caption that overlaps it most. Split: splits.json, else the
behaviour row's split, else the caption row's, else the `split` option. Order: videos in natural
order of their paths, clips in time order.

Options: clip_s (4.0), captions (a captions file instead of ROOT/captions.*), split ("train").
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, find_videos, natural_key
from cineneuron.sources.captions import CaptionTable, load_captions
from cineneuron.sources.cinebrain_lists import CLIP_DIR, find_lists, read_lists, split_of
from cineneuron.sources.video import windows


class CineBrainSource(Source):
    name = "cinebrain"
    layout = ("the release: ROOT/video_annos/clips/{i:06d}.mp4 with the CineSync JSON lists; or "
              "ROOT/stimuli/<episode>.mp4 and ROOT/captions.csv (video,start_s,end_s,caption[,split]) "
              "or captions.json; optional ROOT/splits.json")
    defaults = {"clip_s": 4.0, "captions": None, "split": "train"}

    def clips(self) -> Iterator[ClipSpec]:
        self._check_root()
        if (self.root / CLIP_DIR).is_dir():
            yield from self._release_clips()
            return
        table, splits = self._captions(), self._splits()
        for video, start, end, shown_split in self._spans():
            entry = table.match(video, start, end) if table else None
            split = splits.get(video) or shown_split or (entry.split if entry else None) or self.options["split"]
            yield self._spec(video, start, end, caption=entry.caption if entry else None, split=split)

    def _release_clips(self) -> Iterator[ClipSpec]:
        """Every numbered clip file, captioned and split by the CineSync lists (any subject's)."""
        listed = {i.video: i for i in read_lists(find_lists(self.root))}
        files = sorted((p for p in (self.root / CLIP_DIR).glob("*.mp4") if p.stem.isdigit()), key=lambda p: int(p.stem))
        if not files:
            raise CNError(f"cinebrain: no numbered clips in {self.root / CLIP_DIR}/ (expected 000000.mp4, ...)")
        end = float(self.options["clip_s"])
        for path in files:
            video = f"{CLIP_DIR}/{path.name}"
            item = listed.get(video)
            split = item.split if item else split_of("", int(path.stem))
            yield self._spec(video, 0.0, end, caption=item.text if item else None, split=split)

    def _spans(self) -> list[tuple[str, float, float, str | None]]:
        """(video, start, end, split from the behaviour file or None), sorted and deduplicated."""
        length = float(self.options["clip_s"])
        shown = _behaviour_rows(self.root)
        spans: dict[tuple[str, float], tuple[str, float, float, str | None]] = {}
        if shown:
            for row in shown:
                if not (self.root / row["video"]).is_file():
                    self._skip(row["video"], "video file not found (named in a behavior CSV)")
                    continue
                n = int(math.floor((row["stop_s"] - row["start_s"]) / length + 1e-6))
                for i in range(max(n, 0)):
                    start = round(row["offset_s"] + i * length, 6)
                    spans.setdefault((row["video"], start), (row["video"], start, round(start + length, 6), row["split"]))
        else:
            stim = self.root / "stimuli"
            videos = find_videos(self.root, stim) if stim.is_dir() else []
            if not videos:
                raise CNError(f"cinebrain: no videos in {stim}/; put the episodes there as .mp4 files (e.g. stimuli/s01e01.mp4)")
            for path in videos:
                video = self._rel(path)
                info = self._probe(video)
                for start, end in windows(info.duration_s, length, length) if info else []:
                    spans[(video, start)] = (video, start, end, None)
        return [spans[k] for k in sorted(spans, key=lambda k: (natural_key(k[0]), k[1]))]

    def _captions(self) -> CaptionTable | None:
        given = self.options["captions"]
        if given:
            path = Path(given) if Path(given).is_absolute() else self.root / given
            if not path.exists():
                raise CNError(f"cinebrain: captions file {path} not found")
            return load_captions(path)
        for name in ("captions.csv", "captions.json"):
            if (self.root / name).exists():
                return load_captions(self.root / name)
        return None  # clips without captions: labels can still come from a captioner

    def _splits(self) -> dict[str, str]:
        path = self.root / "splits.json"
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {str(v).removeprefix("./"): split for split, vids in data.items() for v in vids}
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise CNError(f"cinebrain: cannot read {path}: expected {{'train': [videos], 'test': [videos]}} ({e})") from None


def _behaviour_rows(root: Path) -> list[dict]:
    """Rows of every ROOT/sub*/behavior/*.csv: video, start_s, stop_s, offset_s, split (or None)."""
    rows = []
    for path in sorted(root.glob("sub*/behavior/*.csv"), key=lambda p: natural_key(p.as_posix())):
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                for row in csv.DictReader(f):
                    rows.append({"video": PurePosixPath(row["video"].strip().replace("\\", "/")).as_posix().removeprefix("./"),
                                 "start_s": float(row["start_s"]), "stop_s": float(row["stop_s"]),
                                 "offset_s": float(row.get("video_offset_s") or 0.0),
                                 "split": (row.get("split") or "").strip() or None})
        except (OSError, KeyError, ValueError, AttributeError) as e:
            raise CNError(f"cinebrain: cannot read {path}: expected columns video,start_s,stop_s[,video_offset_s][,split] ({type(e).__name__}: {e})") from None
    return rows
