"""CineBrain's released layout: subject folders and the CineSync training lists.

Shared by the clip half (`cinebrain_clips.py`) and the fMRI half (`fmri/cinebrain_release.py`)
so both build the same clip ids. What the release holds (the CineBrain repository's
`cifit2npy.py` and CineSync's `data_video.py`):

    ROOT/video_annos/clips/{i:06d}.mp4     pre-cut clips, 33 frames at 8 fps (clip i = 4 s)
    ROOT/sub_0001/visual_audio/{t}.npy     one ROI-masked, z-scored, +4 s-shifted volume per TR
    ROOT/[sub_0001/]*.json                 CineSync lists: [{"fmri": [per-TR .npy paths],
                                           "eeg": [...], "text": caption, "video": ".../video_annos/
                                           clips/{i:06d}.mp4"}, ...], e.g. sub_0001_train_va.json

The lists' paths are the authors' absolute paths; they are resolved by their tails: a TR is the
integer stem of its file name, a clip the part of its path from `video_annos/clips/` on.
Split: the list's file name when it says train or test, else the clip number (test clips
are 7560-8099). Nothing here imports numpy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError

CLIP_DIR = "video_annos/clips"
TEST_CLIPS = range(7560, 8100)
CLIP_S = 4.0  # 33 frames at 8 fps span 0..4 s


def subject_dirs(root: Path, subject: int) -> list[Path]:
    """Candidate folders, the release's spelling first (sub_0001), then those read before."""
    names = [f"sub_{subject:04d}", f"sub-{subject:04d}", f"sub-{subject:02d}", f"sub-{subject}",
             f"sub_{subject}", f"sub{subject}", f"subject{subject}"]
    return [root / n for n in dict.fromkeys(names) if (root / n).is_dir()]


def clip_video(path: str) -> tuple[str, int]:
    """('video_annos/clips/007560.mp4', 7560) from a list's video path, absolute or relative."""
    p = str(path).replace("\\", "/")
    tail = p[p.index(CLIP_DIR):] if CLIP_DIR in p else f"{CLIP_DIR}/{PurePosixPath(p).name}"
    stem = PurePosixPath(tail).stem
    if not stem.isdigit():
        raise CNError(f"CineSync list video {path!r} is not a numbered clip ({CLIP_DIR}/NNNNNN.mp4)")
    return tail, int(stem)


def split_of(list_name: str, clip_index: int) -> str:
    name = list_name.lower()
    if re.search(r"(^|[^a-z])test([^a-z]|$)", name):
        return "test"
    if re.search(r"(^|[^a-z])train([^a-z]|$)", name):
        return "train"
    return "test" if clip_index in TEST_CLIPS else "train"


@dataclass(frozen=True)
class ListItem:
    video: str  # ROOT-relative: video_annos/clips/007560.mp4
    clip_index: int
    trs: tuple[int, ...]  # per-TR file numbers of its response (already shifted by the release)
    text: str | None
    split: str
    list_file: str


def find_lists(root: Path, subject: int | None = None) -> list[Path]:
    """JSON files under ROOT and its subject folders that hold CineSync items, for one subject
    (file name or folder names it) or, without a subject, all of them."""
    dirs = [root] + (subject_dirs(root, subject) if subject is not None else sorted(root.glob("sub*")))
    out = []
    for d in dirs:
        for path in sorted(d.glob("*.json")):
            if subject is not None and d == root and re.search(r"sub[_-]?\d+", path.name):
                if not re.search(rf"sub[_-]?0*{subject}(\D|$)", path.name):
                    continue  # another subject's list
            if _looks_like_list(path):
                out.append(path)
    return out


def _looks_like_list(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith("[") and '"fmri"' in head and '"video"' in head


def read_lists(paths: list[Path]) -> list[ListItem]:
    items = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CNError(f"cinebrain: cannot read CineSync list {path}: {e}") from None
        if not isinstance(data, list):
            raise CNError(f"cinebrain: {path} is not a JSON list of {{fmri, video, text}} items")
        for k, row in enumerate(data):
            try:
                video, idx = clip_video(row["video"])
                trs = tuple(_tr_number(p) for p in row["fmri"])
            except (KeyError, TypeError) as e:
                raise CNError(f"cinebrain: {path} item {k} lacks {e}; expected fmri (list of paths) and video") from None
            text = row.get("text")
            items.append(ListItem(video, idx, trs, str(text) if text else None, split_of(path.name, idx), path.name))
    return items


def _tr_number(p: str) -> int:
    stem = PurePosixPath(str(p).replace("\\", "/")).stem
    if not stem.isdigit():
        raise CNError(f"cinebrain: CineSync list fMRI path {p!r} is not a numbered TR file ({{t}}.npy)")
    return int(stem)
