"""`cc2017` and `synth`: stimulus videos cut into one clip per 2 s TR.

Layout read (the cc2017 release; `cn synth` writes the same layout):

    ROOT/stimuli/seg1.mp4 ... seg18.mp4    -> split "train"
    ROOT/stimuli/test1.mp4 ... test5.mp4   -> split "test"
    ROOT/annotations.json (optional sidecar, or the `annotations` option):
        {"world": {...},
         "clips": [{"video": "stimuli/seg1.mp4", "start_s": 0.0, "end_s": 2.0, "split": "train",
                    "caption": "...", "labels": [...], "factors": {...}}, ...]}

Clip t of a video is [t*L, t*L + L) for t = 0 .. floor(duration / L) - 1, L = 2 s (one cc2017
TR; a synthetic world's `world.clip_s` when the sidecar gives one), so clip t lines up with fMRI
volume t of that run (the haemodynamic lag is the fMRI side's business). The
video path in each ClipSpec is `stimuli/<name>.mp4`, relative to ROOT. Captions, labels, factors
and split come from the sidecar entry with the same video and span, where there is one; the
split otherwise follows the file name. Order: seg1..segN, then test1..testN (natural order).

Options: annotations (sidecar path, absolute or relative to ROOT), clip_s (None: world.clip_s, else 2.0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cineneuron.errors import CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.sources.base import Source, natural_key
from cineneuron.sources.video import windows

_PATTERNS = (("train", re.compile(r"^seg(\d+)\.mp4$", re.I)), ("test", re.compile(r"^test(\d+)\.mp4$", re.I)))


class CC2017Source(Source):
    name = "cc2017"
    layout = ("ROOT/stimuli/seg1.mp4 ... seg18.mp4 (train) and ROOT/stimuli/test1.mp4 ... test5.mp4 (test); "
              "optional ROOT/annotations.json sidecar with captions/labels/factors per clip")
    # split: force one split for every clip, e.g. "pool" when a world only extends the memory pool.
    defaults = {"annotations": None, "clip_s": None, "split": None}

    def clips(self) -> Iterator[ClipSpec]:
        self._check_root()
        side = self._sidecar()
        notes = side.get("clips", {})
        world = side.get("world") if isinstance(side.get("world"), dict) else {}
        length = float(self.options["clip_s"] or world.get("clip_s") or 2.0)
        for split, video in self._videos():
            info = self._probe(video)
            if info is None:
                continue
            for start, end in windows(info.duration_s, length, length):
                note = notes.get(_key(video, start, end), {})
                yield self._spec(video, start, end, caption=note.get("caption"), labels=note.get("labels"),
                                 split=self.options["split"] or note.get("split") or split,
                                 factors=dict(note.get("factors") or {}))

    def describe(self) -> dict:
        out = super().describe()
        side = self._sidecar()
        out["world"] = side.get("world")
        out["annotations"] = str(side["path"]) if side.get("path") else None
        return out

    def _videos(self) -> list[tuple[str, str]]:
        stim = self.root / "stimuli"
        found: dict[str, list[str]] = {"train": [], "test": []}
        if stim.is_dir():
            for p in stim.iterdir():
                for split, pattern in _PATTERNS:
                    if pattern.match(p.name) and p.is_file():
                        found[split].append(p.name)
        if not found["train"] and not found["test"]:
            raise CNError(f"{self.name}: no stimuli/seg*.mp4 or stimuli/test*.mp4 under {self.root}; put the stimulus videos in {stim}/ as seg1.mp4 ... seg18.mp4 and test1.mp4 ... test5.mp4")
        return [(split, f"stimuli/{name}") for split in ("train", "test") for name in sorted(found[split], key=natural_key)]

    def _sidecar(self) -> dict:
        """{"path", "world", "clips": {(video, start, end): entry}}; empty when there is no sidecar."""
        if hasattr(self, "_side"):
            return self._side
        given = self.options["annotations"]
        if given:
            path = Path(given) if Path(given).is_absolute() else self.root / given
            if not path.exists():
                raise CNError(f"{self.name}: annotations file {path} not found; give the sidecar JSON ({{'clips': [...]}}) or leave the option out")
        else:
            path = self.root / "annotations.json"
            if not path.exists():
                self._side = {}
                return self._side
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["clips"] if isinstance(data, dict) else data
            clips = {_key(_norm(e["video"]), float(e["start_s"]), float(e["end_s"])): e for e in entries}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CNError(f"{self.name}: cannot read {path}: expected {{'clips': [{{'video', 'start_s', 'end_s', ...}}]}} ({type(e).__name__}: {e})") from None
        self._side = {"path": path, "world": data.get("world") if isinstance(data, dict) else None, "clips": clips}
        return self._side


def _key(video: str, start: float, end: float) -> tuple[str, float, float]:
    return (video, round(start, 3), round(end, 3))


def _norm(video: str) -> str:
    return PurePosixPath(str(video).replace("\\", "/")).as_posix().removeprefix("./")
