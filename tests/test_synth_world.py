"""The synthetic toy world: kinds, drawing, scenes, captions, videos, sidecar layout."""

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest

from cineneuron.errors import CNError
from cineneuron.schemas.superclasses import SUPERCLASSES, label_vec
from cineneuron.sources.synth import ACTIONS, KINDS, generate, kind_superclass
from cineneuron.sources.synth.data import world
from cineneuron.sources.synth.features import channel_names, clip_features
from cineneuron.sources.synth.objects import sprite
from cineneuron.sources.synth.render import render_clip
from cineneuron.sources.synth.scenes import ClipScene, ObjectSpec

FRAME, FPS = 40, 6  # unequal to every other dimension in these tests: 12 frames per clip


@pytest.fixture(scope="module")
def clips_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    calls = []
    summary = generate(root, size="small", clips=90, subjects=0, seed=5, frame_size=FRAME, fps=FPS,
                       progress=lambda advance, total, what: calls.append((advance, total, what)))
    summary["progress_calls"] = calls
    return root, summary, json.loads((root / "annotations.json").read_text())


def test_kinds_cover_superclasses():
    assert len(KINDS) >= 10
    assert set(kind_superclass) == set(KINDS)
    assert set(kind_superclass.values()) <= set(SUPERCLASSES)
    assert len(set(kind_superclass.values())) >= 8
    assert len(ACTIONS) >= 6 and {"move_left", "move_right", "move_up", "jump", "rotate", "approach", "still"} <= set(ACTIONS)
    scenes = {b["scene"] for b in world()["backgrounds"].values()}
    assert scenes == {"indoor", "outdoor"}


def test_sprites_are_distinct():
    """Each kind differs from every other in silhouette or in drawing (same colour for all)."""
    imgs = {k: np.asarray(sprite(k, "blue", 32)).astype(float) / 255 for k in KINDS}  # (32, 32, 4)
    for i, a in enumerate(KINDS):
        assert imgs[a][..., 3].mean() > 0.1, a
        for b in KINDS[i + 1:]:
            ma, mb = imgs[a][..., 3] > 0.5, imgs[b][..., 3] > 0.5
            iou = (ma & mb).sum() / (ma | mb).sum()
            pa, pb = imgs[a][..., :3] * imgs[a][..., 3:], imgs[b][..., :3] * imgs[b][..., 3:]
            assert iou < 0.85 or np.abs(pa - pb).mean() > 0.08, (a, b, iou)


def test_captions_labels_factors(clips_world):
    _, summary, ann = clips_world
    clips = ann["clips"]
    assert len(clips) == summary["n_clips"] == summary["n_train_clips"] + summary["n_test_clips"]
    for c in clips:
        kinds = c["factors"]["kinds"]
        assert c["labels"] == [s for s in SUPERCLASSES if s in {kind_superclass[k] for k in kinds}]
        label_vec(c["labels"])  # all valid superclass names
        for k in kinds:  # every object is named in the caption, by one of its synonyms
            assert any(n in c["caption"] for n in world()["kinds"][k]["nouns"]), c
        f = c["factors"]
        assert {"kinds", "action", "colour", "background", "size", "scene"} <= set(f)
        assert f["action"] in ACTIONS and f["background"] in world()["backgrounds"]
    captions = [c["caption"] for c in clips]
    assert len(set(captions)) > 0.9 * len(captions)
    starts = {re.sub(r"\W.*", "", c) for c in captions}  # "a", "an", "there", "in", "on", ...
    assert len(starts) >= 3
    assert any(c["factors"]["n_objects"] == 2 for c in clips)
    assert {c["factors"]["scene"] for c in clips} == {"indoor", "outdoor"}
    assert len({c["factors"]["action"] for c in clips}) >= 6
    print("\nexample captions:", *captions[:6], sep="\n  ")


def test_layout_and_clip_times(clips_world):
    root, summary, ann = clips_world
    w = ann["world"]
    assert w["clip_s"] == 2.0 and w["fps"] == FPS and w["frame_size"] == FRAME
    assert (root / "truth" / "stimulus.npz").exists() and not list(root.glob("subject*"))
    per = summary["clips_per_segment"]
    for seg in w["train_segments"] + w["test_segments"]:
        seg_clips = [c for c in ann["clips"] if c["video"] == f"stimuli/{seg}.mp4"]
        assert len(seg_clips) == per
        assert [c["start_s"] for c in seg_clips] == [2.0 * t for t in range(per)]
        assert all(c["end_s"] == c["start_s"] + 2.0 for c in seg_clips)
        assert {c["split"] for c in seg_clips} == {"test" if seg.startswith("test") else "train"}
    assert w["train_segments"][0] == "seg1" and w["test_segments"][0] == "test1"


def test_progress_adds_up(clips_world):
    calls = clips_world[1]["progress_calls"]
    totals = {total for _, total, _ in calls}
    assert len(totals) == 1 and sum(a for a, _, _ in calls) == totals.pop()
    assert all(isinstance(what, str) and what for _, _, what in calls)


def test_videos_decode(clips_world):
    root, summary, ann = clips_world
    for seg in ann["world"]["train_segments"][:1] + ann["world"]["test_segments"]:
        frames = iio.imread(root / "stimuli" / f"{seg}.mp4")  # (T, H, W, 3)
        assert frames.shape == (summary["clips_per_segment"] * 2 * FPS, FRAME, FRAME, 3)
        assert frames.std() > 10  # not blank


def test_kinds_restriction_and_errors(tmp_path):
    generate(tmp_path, size="small", clips=12, subjects=0, kinds=["dog", "bus"], seed=1, frame_size=32)
    ann = json.loads((tmp_path / "annotations.json").read_text())
    assert {k for c in ann["clips"] for k in c["factors"]["kinds"]} <= {"dog", "bus"}
    assert ann["world"]["kinds"] == ["dog", "bus"]
    with pytest.raises(CNError, match="unknown object kind"):
        generate(tmp_path, kinds=["unicorn"], subjects=0)
    with pytest.raises(CNError, match="unknown world size"):
        generate(tmp_path, size="enormous")
    with pytest.raises(CNError, match="even"):
        generate(tmp_path, size="small", frame_size=33)


@pytest.mark.parametrize("action,direction", [("move_right", 0), ("move_left", 180), ("move_up", 90)])
def test_motion_features_follow_the_action(action, direction):
    obj = ObjectSpec("car", "red", "medium", action, 0.5 if action == "move_up" else (0.3 if action == "move_right" else 0.7),
                     0.7, 0.3, 0.3, action == "move_left")
    clip = render_clip(ClipScene("field", 1, [obj]), 48, 8, 2.0)
    feats, _ = clip_features(clip, None)  # (16, C, G, G)
    names = channel_names()
    motion = feats[:, 2:10].sum(axis=(0, 2, 3))  # energy per direction
    assert names[2 + int(np.argmax(motion))] == f"motion_{direction}"
    still = render_clip(ClipScene("field", 1, [ObjectSpec("car", "red", "medium", "still", 0.5, 0.6, 0.3, 0.0, False)]), 48, 8, 2.0)
    assert np.abs(still.velocity).max() == 0
