"""`boldmoments`: the BOLD Moments Dataset stimuli (Lahner et al., Nat. Commun. 2024).

Layout read (OpenNeuro ds005165, `derivatives/stimuli_metadata/`):

    ROOT/derivatives/stimuli_metadata/annotations.json
        {"0001": {"text_descriptions": ["...", "...", ...],   five captions per video
                  "set": "train" | "test", "objects": [...], "scenes": [...], "actions": [...], ...},
         ... "1102": {...}}          videos 0001-1000 are the training set, 1001-1102 the test set
    ROOT/derivatives/stimuli_metadata/mp4_h264/0001.mp4 ... 1102.mp4

ROOT may also be the `stimuli_metadata` folder itself, or any folder holding annotations.json
with the videos in mp4_h264/, mp4/, videos/ or beside it.

One clip per video, [0, 3) s (every BMD video is 3 s; no probing). The caption is the first
text description (`caption_index` picks another); all five are kept in factors["captions"],
and the labels are the union of the superclasses of all five, so one terse annotator does not
decide them. Split: "set" (train/test). Order: by video id.

Options: clip_s (3.0), caption_index (0), split (None: from "set"; or one split for all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, natural_key

_META = ("derivatives/stimuli_metadata", ".")
_VIDEO_DIRS = ("mp4_h264", "mp4", "videos", "stimuli", ".")


class BoldMomentsSource(Source):
    name = "boldmoments"
    layout = ("ROOT/derivatives/stimuli_metadata/annotations.json (text_descriptions, set) and "
              "ROOT/derivatives/stimuli_metadata/mp4_h264/<id>.mp4")
    defaults = {"clip_s": 3.0, "caption_index": 0, "split": None}

    def clips(self) -> Iterator[ClipSpec]:
        from cineneuron.labels import labels_from_caption

        self._check_root()
        meta_dir, notes = self._annotations()
        for vid in sorted(notes, key=natural_key):
            note = notes[vid] if isinstance(notes[vid], dict) else {}
            video = self._find_video(meta_dir, vid)
            if video is None:
                self._skip(f"{meta_dir}/mp4_h264/{vid}.mp4".removeprefix("./"), "video file not found")
                continue
            captions = [" ".join(str(c).split()) for c in note.get("text_descriptions") or [] if str(c).strip()]
            k = int(self.options["caption_index"])
            caption = captions[k] if k < len(captions) else (captions[0] if captions else None)
            labels = sorted({lab for c in captions for lab in labels_from_caption(c)}) if captions else None
            split = self.options["split"] or {"train": "train", "test": "test"}.get(str(note.get("set")), "pool")
            yield self._spec(video, 0.0, float(self.options["clip_s"]), caption=caption, labels=labels,
                             split=split, factors={"bmd_id": vid, "captions": captions})

    def _annotations(self) -> tuple[str, dict]:
        for rel in _META:
            path = self.root / rel / "annotations.json"
            if path.exists():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    raise CNError(f"boldmoments: cannot read {path}: {e}") from None
                if not isinstance(data, dict):
                    raise CNError(f"boldmoments: {path} should map video ids ('0001') to metadata objects")
                return rel, data
        raise CNError(f"boldmoments: annotations.json not found; put it at {self.root / _META[0] / 'annotations.json'} with the videos in {self.root / _META[0] / 'mp4_h264'}/")

    def _find_video(self, meta_dir: str, vid: str) -> str | None:
        for sub in _VIDEO_DIRS:
            rel = "/".join(p for p in (meta_dir, sub, f"{vid}.mp4") if p != ".")
            if (self.root / rel).is_file():
                return rel
        return None
